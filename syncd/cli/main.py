"""Command line: `syncd reconcile | run | status | pull | train | review | emulator`.

Public names: main, entry_point, build_parser, EXIT_CODES, exit_code_for, EXIT_OK,
EXIT_NOT_IN_SYNC, EXIT_INTERRUPTED.

The parser, the dispatch, and the one place errors become exit codes: `EXIT_CODES`, a table
from the engine's typed errors (syncd.errors and the few raised beside their modules) to the
codes the README's "Commands and exit codes" table documents (a test keeps the two equal).
The commands themselves live in `commands`, all their output in `render`.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, NoReturn

from syncd import __version__
from syncd.cli import render
from syncd.config import ConfigError
from syncd.credentials import CredentialsError
from syncd.errors import (
    LedgerBusyError,
    LedgerRefusedError,
    NothingToTrainError,
    ProjectKindError,
    PullError,
    ReviewError,
    ServiceError,
    SyncdError,
    TrainingRefusedError,
    UsageError,
)
from syncd.localio import LocalIOError, local_fault

# `syncd.cli.commands` (and through it the client, the ledger and the engine) is imported by each
# command when it runs, not here: a no-op reconcile's walk starts before those imports
# (syncd.earlywalk), and `syncd --help` needs none of them.

__all__ = [
    "EXIT_CODES",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_IN_SYNC",
    "EXIT_OK",
    "entry_point",
    "exit_code_for",
    "main",
]

EXIT_OK = 0  # in sync: everything planned was done
EXIT_NOT_IN_SYNC = 1  # finished, but not everything is mirrored (all listed)
EXIT_INTERRUPTED = 130  # SIGINT (128 + SIGINT, as shells report it)

# The one table: a typed error -> the exit code (README "Commands and exit codes"). A subclass
# not listed takes its nearest listed base's code.
EXIT_CODES: dict[type[SyncdError], int] = {
    ReviewError: 1,  # the review cannot be made (no trained iteration, a link folder with files)
    TrainingRefusedError: 1,  # the service would not train: the data, not syncd
    ConfigError: 2,
    CredentialsError: 2,
    UsageError: 2,
    LedgerRefusedError: 2,  # a ledger syncd must not touch
    ProjectKindError: 2,  # a project syncd cannot mirror (not classification)
    PullError: 2,  # the pull's target is another project's tree
    ServiceError: 3,  # unreachable, key refused, project missing, an error answer
    NothingToTrainError: 4,
    LedgerBusyError: 5,
    LocalIOError: 6,
    SyncdError: 2,  # the base: any other reason syncd cannot go on is a usage or setup error
}


def exit_code_for(exc: SyncdError) -> int:
    """The exit code of `exc`: its own type's, else its nearest listed base's."""
    return next(EXIT_CODES[cls] for cls in type(exc).__mro__ if cls in EXIT_CODES)


DEFAULT_CONFIG = "syncd.yaml"
# How long a writing command waits for another syncd process to release a ledger by default: not
# at all. A reconcile started (by hand or by a timer) while the daemon runs should say so at once.
DEFAULT_WAIT_LOCK_SECONDS = 0.0


def _add_wait_lock(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait-lock",
        metavar="SECONDS",
        type=float,
        default=DEFAULT_WAIT_LOCK_SECONDS,
        help="if another syncd process writes the ledger, wait this long for it, then exit 5 "
        f"(default {DEFAULT_WAIT_LOCK_SECONDS:g}: exit at once)",
    )


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=os.environ.get("SYNCD_CONFIG", DEFAULT_CONFIG),
        help=f"the YAML config (default: $SYNCD_CONFIG, else ./{DEFAULT_CONFIG})",
    )
    parser.add_argument("--mirror", metavar="NAME", help="only this mirror (default: all)")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="syncd",
        description="Mirror a folder tree of labelled images into Azure Custom Vision.",
        epilog="Exit codes: 0 in sync; 1 not everything mirrored (listed); 2 config or usage "
        "error; 3 service unreachable, key refused or project missing; 4 (train) nothing "
        "changed since the last training; 5 another syncd process is writing the ledger; "
        "6 a local file or folder could not be written or read (the message names it); "
        "130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"syncd {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log progress events on a terminal too"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    rec = sub.add_parser("reconcile", help="make the project mirror the folder tree, once")
    _add_config(rec)
    rec.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    rec.add_argument(
        "--allow-mass-delete",
        action="store_true",
        help="go past the guard's size limits (max_delete, max_delete_fraction) this run only;"
        " never past a missing or empty root, a missing or foreign marker, or read errors",
    )
    rec.add_argument(
        "--full",
        action="store_true",
        help="list the whole project even if the service's counts agree with the ledger",
    )
    _add_wait_lock(rec)

    daemon = sub.add_parser(
        "run", help="reconcile, then keep the project in step as the tree changes (the daemon)"
    )
    daemon.add_argument(
        "--config",
        metavar="PATH",
        default=os.environ.get("SYNCD_CONFIG", DEFAULT_CONFIG),
        help=f"the YAML config (default: $SYNCD_CONFIG, else ./{DEFAULT_CONFIG})",
    )

    status = sub.add_parser("status", help="show the ledger's account of each mirror")
    _add_config(status)
    status.add_argument(
        "--remote", action="store_true", help="also compare counts with the service"
    )

    pull = sub.add_parser(
        "pull", help="write the project out as a folder tree (the tag mapping reversed)"
    )
    _add_config(pull)
    pull.add_argument(
        "--into",
        metavar="DIR",
        type=Path,
        help="the folder to write into (default: the mirror's root)",
    )
    pull.add_argument("--project", metavar="ID", help="the project to pull (default: the config's)")
    pull.add_argument(
        "--format",
        dest="export_format",
        choices=("folders", "coco", "yolo", "voc", "automl"),
        help="what to write (default: the mirror's annotations.format, or folders)",
    )
    pull.add_argument(
        "--image-url-prefix",
        metavar="URL",
        default="",
        help="automl: put before each image's path in image_url (e.g. an azureml:// folder)",
    )
    pull.add_argument(
        "--split",
        type=float,
        metavar="F",
        default=0.0,
        help="automl: put this fraction of the images in validation/ (seeded by --seed)",
    )
    pull.add_argument("--seed", type=int, default=0, help="automl: the split's seed (0)")
    pull.add_argument(
        "--endpoint", metavar="URL", help="the service (default: the config's, or $SYNCD_ENDPOINT)"
    )
    _add_wait_lock(pull)

    train = sub.add_parser("train", help="train the project (TrainProject)")
    _add_config(train)
    train.add_argument("--wait", action="store_true", help="wait until the iteration finishes")
    train.add_argument(
        "--force", action="store_true", help="train even if nothing changed (forceTrain)"
    )
    train.add_argument(
        "--advanced", action="store_true", help="advanced training (trainingType Advanced)"
    )
    train.add_argument(
        "--budget-hours",
        type=int,
        default=0,
        metavar="N",
        help="reserved budget for advanced training (reservedBudgetInHours)",
    )
    train.add_argument(
        "--notify", metavar="EMAIL", help="e-mail the service notifies when training ends"
    )

    review = sub.add_parser(
        "review", help="list the files a trained iteration gets wrong, worst first"
    )
    _add_config(review)
    review.add_argument(
        "--iteration", default="latest", metavar="latest|ID", help="the iteration (latest)"
    )
    review.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        metavar="P",
        help="list an image when its own tag scores under P, or another tag wins (0.5)",
    )
    review.add_argument("--format", choices=("table", "csv", "json"), default="table")
    review.add_argument(
        "--link-into",
        metavar="DIR",
        type=Path,
        help="build a tree of symlinks DIR/<expected>→<predicted>/<file> to look through",
    )

    from syncd.emulator.options import add_arguments as add_emulator_arguments

    emu = sub.add_parser("emulator", help="run the local Custom Vision Training API emulator")
    add_emulator_arguments(emu)
    return parser


class _ReaderMayLeave:
    """sys.stdout or sys.stderr while a command runs. If the reader of the pipe leaves early
    (`syncd status | head -1`: head exits after its line), the rest of the output goes to
    /dev/null, quietly, as the Python docs' "Note on SIGPIPE" does it: a closed pipe is not a
    failure of the work, so the command ends with its own exit code (README, exit codes)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._to_devnull()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._to_devnull()

    def _to_devnull(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())  # what is still buffered goes there too
        finally:
            os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def _reader_may_leave() -> Iterator[None]:
    """Run the block with stdout and stderr guarded by _ReaderMayLeave; flush them before the
    guard goes (a closed pipe found by the interpreter's own flush at exit would be reported)."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _ReaderMayLeave(sys.stdout), _ReaderMayLeave(sys.stderr)
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        sys.stdout, sys.stderr = saved


def main(argv: Sequence[str] | None = None) -> int:
    with _reader_may_leave():
        return _main(argv)


def entry_point() -> NoReturn:
    """The `syncd` command and `python -m syncd`: main(), then leave the process with its code."""
    code = main()
    if threading.active_count() > 1:
        sys.exit(code)  # another thread still runs: the interpreter's own exit joins it
    # The command is done and every file it wrote is closed. What the interpreter's own exit
    # would add is its teardown: every module and object freed one by one, ~0.1 s after a
    # first sync of 1,280 images (bench A2), for memory the process is about to give back.
    # Its atexit hooks (tempfile's cleanups among them) run as they would, the output is flushed.
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a reader gone, a stream closed
            stream.flush()
    os._exit(code)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "emulator":
        from syncd.emulator.server import run_from_args

        return run_from_args(args)

    as_json = getattr(args, "json", False)
    try:
        if args.command != "reconcile":  # which configures it once its walks have started
            _configure_logging(args)
        return _COMMANDS[args.command](args)
    except SyncdError as exc:
        return render.error(str(exc), exit_code_for(exc), as_json)
    except OSError as exc:
        if exc.filename is None:  # not a file's: not ours to explain
            raise
        # The last line of defence: a local file no edge named yet still gets one line.
        fault = local_fault(exc.filename, "use", exc)
        return render.error(str(fault), exit_code_for(fault), as_json)
    except KeyboardInterrupt:
        render.interrupted()
        return EXIT_INTERRUPTED


def _configure_logging(args: argparse.Namespace) -> None:
    from syncd.log import configure_logging

    # On a terminal the summary tells the story; elsewhere (systemd, cron, CI) log every event.
    # The daemon has no summary: it always logs its events.
    quiet = sys.stderr.isatty() and not args.verbose and args.command != "run"
    configure_logging(level="warning" if quiet else "info")


def _run(args: argparse.Namespace) -> int:
    from syncd.daemon import run

    run(args.config)
    return EXIT_OK


def _reconcile(args: argparse.Namespace) -> int:
    from syncd.cli.loading import load
    from syncd.earlywalk import EarlyWalks

    loaded = load(args)
    # Each mirror's walk starts now, in a child process, while this one imports the rest.
    with EarlyWalks(loaded[1]) as walks:
        from syncd.tls import start_building

        start_building()  # the client's TLS context, on a thread beside the imports
        _configure_logging(args)
        from syncd.cli import commands

        reports = commands.reconcile(args, loaded, walks)
    code = EXIT_OK if all(r.in_sync for r in reports) else EXIT_NOT_IN_SYNC
    if args.json:
        render.json_document({"exit_code": code, "mirrors": [r.to_json() for r in reports]})
    else:
        for report in reports:
            render.reconcile_summary(report, sys.stdout)
    return code


def _status(args: argparse.Namespace) -> int:
    from syncd.cli import commands

    entries = commands.status(args)
    if args.json:
        render.json_document({"exit_code": EXIT_OK, "mirrors": entries})
    else:
        for entry in entries:
            render.status_summary(entry, sys.stdout)
    return EXIT_OK


def _pull(args: argparse.Namespace) -> int:
    from syncd.cli import commands

    report = commands.pull(args)
    if args.json:
        render.json_document(report.to_json())
    else:
        render.pull_summary(report, sys.stdout)
    return EXIT_OK if report.complete else EXIT_NOT_IN_SYNC


def _train(args: argparse.Namespace) -> int:
    from syncd.cli import commands

    config, iteration = commands.train(args)
    code = EXIT_NOT_IN_SYNC if args.wait and not iteration.completed else EXIT_OK
    endpoint = config.service.endpoint
    if args.json:
        render.json_document(render.train_document(iteration, endpoint, code))
    else:
        render.train_summary(iteration, endpoint, args.wait, sys.stdout)
    return code


def _review(args: argparse.Namespace) -> int:
    from syncd.cli import commands

    review, links = commands.review(args)
    if args.format == "json" or args.json:
        document = render.review_document(review)
        if links is not None:
            document["links"] = {"into": str(args.link_into), "made": links}
        render.json_document(document)
    elif args.format == "csv":
        render.review_csv(review, sys.stdout)
    else:
        render.review_table(review, sys.stdout)
        if links is not None and review.detection:
            render.overlays_made(links, args.link_into, sys.stdout)
        elif links is not None:
            render.links_made(links, args.link_into, sys.stdout)
    return EXIT_OK


_COMMANDS = {
    "run": _run,
    "reconcile": _reconcile,
    "status": _status,
    "pull": _pull,
    "train": _train,
    "review": _review,
}


if __name__ == "__main__":
    sys.exit(main())
