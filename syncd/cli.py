"""Command line: `syncd reconcile | run | status | pull | train | review | emulator`.

The one place that turns errors into messages and exit codes (README, "Exit codes"):
0 in sync; 1 finished but not everything is mirrored (failed items, problem files, conflicts,
refused deletes: all listed); 2 config or usage error; 3 cannot reach or authenticate to the
service, or the project is missing; 4 `train`: nothing changed since the last training;
5 busy: another syncd process holds the mirror's ledger lock (LedgerBusyError);
6 a local file or folder could not be written or read (disk full, read-only, name too long,
permission: the line names the path); 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from syncd import __version__
from syncd.display import printable, printable_tree
from syncd.ledger import LedgerBusyError, LedgerLock
from syncd.localio import EXIT_LOCAL, LocalIOError, local_fault
from syncd.sync import (
    ACTION_KINDS,
    EXIT_BUSY,
    EXIT_INTERRUPTED,
    EXIT_NOT_IN_SYNC,
    EXIT_OK,
    EXIT_SERVICE,
    EXIT_USAGE,
    MirrorReport,
    SyncError,
)

if TYPE_CHECKING:
    from syncd.config import Config, MirrorConfig

Mirrors = tuple["MirrorConfig", ...]

__all__ = ["EXIT_BUSY", "EXIT_NOT_IN_SYNC", "EXIT_OK", "EXIT_SERVICE", "EXIT_USAGE", "main"]

DEFAULT_CONFIG = "syncd.yaml"
_SHOWN_ITEMS = 10  # items of each list a human summary shows
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


@contextlib.contextmanager
def _writing(mirrors: Mirrors, wait_seconds: float, command: str) -> Iterator[None]:
    """Hold every mirror's ledger lock for the whole command (LedgerBusyError: exit 5)."""
    if wait_seconds < 0:
        raise SyncError(f"--wait-lock must be 0 or more seconds, got {wait_seconds:g}", EXIT_USAGE)
    with contextlib.ExitStack() as stack:
        for mirror in mirrors:
            assert mirror.ledger is not None  # load_config sets it
            stack.enter_context(
                LedgerLock.acquire(mirror.ledger, wait_seconds=wait_seconds, command=command)
            )
        yield


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "emulator":
        from syncd.emulator.server import run_from_args

        return run_from_args(args)

    from syncd.log import configure_logging

    # On a terminal the summary tells the story; elsewhere (systemd, cron, CI) log every event.
    # The daemon has no summary: it always logs its events.
    quiet = sys.stderr.isatty() and not args.verbose and args.command != "run"
    configure_logging(level="warning" if quiet else "info")
    try:
        if args.command == "run":
            from syncd.daemon import run

            return run(args.config)
        if args.command == "reconcile":
            return _reconcile(args)
        if args.command == "pull":
            return _pull(args)
        if args.command == "train":
            return _train(args)
        if args.command == "review":
            return _review(args)
        return _status(args)
    except SyncError as exc:
        return _error(args, str(exc), exc.exit_code)
    except LedgerBusyError as exc:
        return _error(args, str(exc), EXIT_BUSY)
    except LocalIOError as exc:
        return _error(args, str(exc), EXIT_LOCAL)
    except OSError as exc:
        if exc.filename is None:  # not a file's: not ours to explain
            raise
        # The last line of defence: a local file no edge named yet still gets one line.
        return _error(args, str(local_fault(exc.filename, "use", exc)), EXIT_LOCAL)
    except KeyboardInterrupt:
        print("syncd: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _error(args: argparse.Namespace, message: str, code: int) -> int:
    print(f"syncd: error: {printable(message)}", file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps({"exit_code": code, "error": message}))
    return code


def _load(args: argparse.Namespace) -> tuple[Config, Mirrors]:
    from syncd.config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        raise SyncError(str(exc), EXIT_USAGE) from None
    for warning in config.warnings:
        print(f"syncd: warning: {warning}", file=sys.stderr)
    mirrors = config.mirrors
    if args.mirror is not None:
        mirrors = tuple(m for m in mirrors if m.name == args.mirror)
        if not mirrors:
            names = ", ".join(m.name for m in config.mirrors)
            raise SyncError(f"--mirror {args.mirror}: no such mirror (have: {names})", EXIT_USAGE)
    return config, mirrors


# --- reconcile ----------------------------------------------------------------------------------


def _reconcile(args: argparse.Namespace) -> int:
    config, mirrors = _load(args)
    # A dry run reads a copy of the ledger: it needs no lock, and works while another writes.
    writing = (
        contextlib.nullcontext()
        if args.dry_run
        else _writing(mirrors, args.wait_lock, "syncd reconcile")
    )
    with writing:
        reports = asyncio.run(_reconcile_all(config, mirrors, args))
    code = max(r.exit_code for r in reports)
    if args.json:
        print(json.dumps({"exit_code": code, "mirrors": [r.to_json() for r in reports]}))
    else:
        for report in reports:
            _print_summary(report, sys.stdout)
    return code


async def _reconcile_all(
    config: Config, mirrors: Mirrors, args: argparse.Namespace
) -> list[MirrorReport]:
    from syncd.sync import open_client, reconcile_mirror

    reports = []
    async with open_client(config.service, mirrors) as client:
        for mirror in mirrors:
            bar = _ProgressBar(sys.stderr) if sys.stderr.isatty() and not args.json else None
            try:
                report = await reconcile_mirror(
                    config,
                    mirror,
                    client,
                    dry_run=args.dry_run,
                    allow_mass_delete=args.allow_mass_delete,
                    full=args.full,
                    progress=bar,
                )
            finally:
                if bar is not None:
                    bar.close()
            reports.append(report)
    return reports


class _ProgressBar:
    """One self-rewriting line on a terminal: done counts per kind and the upload rate."""

    def __init__(self, out: IO[str], rate_kind: str = "uploads") -> None:
        self.out = out
        self.rate_kind = rate_kind
        self.counts: dict[str, int] = {}
        self.started = time.monotonic()
        self.drawn = 0.0

    def __call__(self, kind: str, n: int) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + n
        now = time.monotonic()
        if now - self.drawn >= 0.1:
            self.drawn = now
            rate = self.counts.get(self.rate_kind, 0) / max(now - self.started, 1e-9)
            parts = [f"{k.replace('_', ' ')} {v}" for k, v in self.counts.items()]
            self.out.write("\r\033[K" + " · ".join(parts) + f" · {rate:.1f} {self.rate_kind}/s")
            self.out.flush()

    def close(self) -> None:
        if self.drawn:
            self.out.write("\r\033[K")
            self.out.flush()


def _print_summary(report: MirrorReport, out: IO[str]) -> None:
    data = printable_tree(report.to_json())  # server text and file names: shown, never obeyed
    title = f"mirror {report.name} -> project {report.project_id}"
    if report.dry_run:
        title += " (dry run: nothing was changed)"
    print(title, file=out)
    local, remote = data["local"], data["remote"]
    hashed = (
        "unchanged since the last run in sync"
        if local["unchanged"]
        else f"{local['hashed']} hashed this run"
    )
    print(f"  local: {local['ok']} files ok, {local['problems']} with problems, {hashed}", file=out)
    print(
        f"  remote: {remote['images']} images ({remote['listing']} check"
        f", {remote['downloads_hashed']} originals hashed), {data['api_calls']} API calls",
        file=out,
    )
    print(f"  {'action':<14}{'planned':>9}{'done':>9}", file=out)
    for kind in ACTION_KINDS:
        planned = data["planned"][kind]
        done = "-" if report.dry_run else str(data["done"][kind])
        if planned or (done not in ("-", "0")):
            print(f"  {kind:<14}{planned:>9}{done:>9}", file=out)
    if report.dry_run:
        _print_plan_items(report, out)
    sections = (
        ("problem files", [f"{p['path']}: {p['kind']} {p['detail']}" for p in data["problems"]]),
        ("failed", [f"{f['operation']} {f['subject']}: {f['message']}" for f in data["failed"]]),
        ("conflicts", [f"{c['kind']}: {c['detail']} {c['paths']}" for c in data["conflicts"]]),
        ("warnings", data["warnings"]),
    )
    for name, lines in sections:
        if lines:
            print(f"  {name} ({len(lines)}):", file=out)
            for line in lines[:_SHOWN_ITEMS]:
                print(f"    {line}", file=out)
            if len(lines) > _SHOWN_ITEMS:
                print(f"    ... and {len(lines) - _SHOWN_ITEMS} more (--json lists all)", file=out)
    if data["skipped_deletes"]:
        print(f"  deletes skipped: {data['skipped_deletes']} (something failed earlier)", file=out)
    if data["refused"]:
        print(f"  {data['refused']['message']}", file=out)
    training = data.get("training")
    if training:
        if training["started"]:
            what = f"started {training['iteration']} ({training['iteration_id']})"
        else:
            what = f"not started: {training['reason']}"
        changed = f"{training['changed_images']} images changed, threshold {training['threshold']}"
        print(f"  training: {what} ({changed})", file=out)
    verdict = "in sync" if report.exit_code == EXIT_OK else "not everything is mirrored"
    if report.dry_run:
        verdict = "plan only"
    print(f"  result: {verdict}", file=out)


def _print_plan_items(report: MirrorReport, out: IO[str]) -> None:
    plan = report.plan
    items: list[tuple[str, list[str]]] = [
        ("create tag", [f"{a.name} ({a.type})" for a in plan.create_tags]),
        ("upload", [f"{a.paths[0]} -> {list(a.tag_names)}" for a in plan.uploads]),
        ("adopt", [f"{a.image_id}" for a in plan.adopts]),
        ("remove tags", [f"{a.image_id}: {list(a.tag_names)}" for a in plan.remove_tags]),
        ("add tags", [f"{a.image_id}: {list(a.tag_names)}" for a in plan.add_tags]),
        ("delete image", [f"{a.image_id} ({a.reason})" for a in plan.delete_images]),
        ("delete tag", [a.name for a in plan.delete_tags]),
    ]
    for verb, lines in items:
        for line in lines[:_SHOWN_ITEMS]:
            print(f"    {verb}: {printable(line)}", file=out)
        if len(lines) > _SHOWN_ITEMS:
            print(f"    {verb}: ... and {len(lines) - _SHOWN_ITEMS} more", file=out)


# --- pull ---------------------------------------------------------------------------------------


def _one_mirror(args: argparse.Namespace) -> tuple[Config, MirrorConfig]:
    config, mirrors = _load(args)
    if len(mirrors) > 1:
        names = ", ".join(m.name for m in mirrors)
        message = f"{args.command} works on one mirror: pass --mirror (one of {names})"
        raise SyncError(message, EXIT_USAGE)
    return config, mirrors[0]


def _pull_overrides(
    args: argparse.Namespace, config: Config, mirror: MirrorConfig
) -> tuple[Config, MirrorConfig]:
    """Apply --project and --endpoint, checked as the config checks those keys."""
    from syncd.config import check_value

    if args.project is not None:
        problem = check_value("mirror.project_id", args.project)
        if problem:
            raise SyncError(f"--project: {problem}", EXIT_USAGE)
        mirror = dataclasses.replace(mirror, project_id=args.project.lower())
    if args.endpoint is not None:
        problem = check_value(
            "service.endpoint",
            args.endpoint,
            allow_insecure_http=config.service.allow_insecure_http,
        )
        if problem:
            raise SyncError(f"--endpoint: {problem}", EXIT_USAGE)
        service = dataclasses.replace(config.service, endpoint=args.endpoint)
        config = dataclasses.replace(config, service=service)
    return config, mirror


def _pull(args: argparse.Namespace) -> int:
    from syncd.pull import PullError, pull_project
    from syncd.sync import _open_ledger, _service_error, open_client

    config, mirror = _one_mirror(args)
    config, mirror = _pull_overrides(args, config, mirror)
    into = (args.into or Path(mirror.root)).expanduser().resolve()

    async def run() -> Any:
        async with open_client(config.service, (mirror,)) as client:
            bar = _ProgressBar(sys.stderr, "downloaded") if sys.stderr.isatty() else None
            try:
                with _open_ledger(mirror, False) as ledger:
                    return await pull_project(client, mirror, ledger, into, progress=bar)
            finally:
                if bar is not None:
                    bar.close()

    from syncd.api import ApiError

    try:
        with _writing((mirror,), args.wait_lock, "syncd pull"):
            report = asyncio.run(run())
    except PullError as exc:
        raise SyncError(str(exc), EXIT_USAGE) from None
    except ApiError as exc:
        raise _service_error(exc, mirror) from None
    data = report.to_json()
    if args.json:
        print(json.dumps(data))
        return report.exit_code
    print(f"pulled project {mirror.project_id} into {printable(str(into))}")
    print(
        f"  images: {report.images}; downloaded {report.downloaded}"
        f" ({report.bytes_downloaded / 1e6:.1f} MB), already here and verified {report.verified},"
        f" extra links/copies {report.extra_files}; {report.api_calls} API calls"
    )
    kept = [(path, f"image {image_id} differs: kept as it is") for path, image_id in report.kept]
    for title, rows in (
        ("skipped", report.skipped),
        ("failed", report.failed),
        ("kept, edited here", kept),
    ):
        if rows:
            print(f"  {title} ({len(rows)}):")
            for subject, why in rows[:_SHOWN_ITEMS]:
                print(f"    {printable(subject)}: {printable(why)}")
            if len(rows) > _SHOWN_ITEMS:
                print(f"    ... and {len(rows) - _SHOWN_ITEMS} more (--json lists all)")
    verdict = "complete" if report.exit_code == 0 else "not every image was pulled"
    print(f"  result: {verdict}")
    return report.exit_code


# --- status -------------------------------------------------------------------------------------


def _status(args: argparse.Namespace) -> int:
    config, mirrors = _load(args)
    entries = [_ledger_status(m) for m in mirrors]
    if args.remote:
        asyncio.run(_add_remote_counts(config, mirrors, entries))
    if args.json:
        print(json.dumps({"exit_code": EXIT_OK, "mirrors": entries}))
        return EXIT_OK
    for entry in entries:
        _print_status(printable_tree(entry), sys.stdout)
    return EXIT_OK


def _ledger_status(mirror: MirrorConfig) -> dict[str, Any]:
    """What the ledger says, read-only: works while another process writes it, and on a
    read-only file system; never creates, migrates or writes the file."""
    from syncd.ledger import Ledger, LedgerError

    entry: dict[str, Any] = {
        "name": mirror.name,
        "project_id": mirror.project_id,
        "root": os.path.normpath(mirror.root),
        "ledger": os.path.normpath(str(mirror.ledger)),
    }
    assert mirror.ledger is not None  # load_config sets it
    if not Path(mirror.ledger).exists():
        entry["synced"] = False
        return entry
    try:
        with Ledger.open_read_only(mirror.ledger, project_id=mirror.project_id) as ledger:
            status = None if ledger.empty else ledger.status()
    except LedgerError as exc:
        raise SyncError(str(exc), EXIT_USAGE) from None
    if status is None:
        entry["synced"] = False
        return entry
    last = status.last_run
    entry.update(
        {
            "synced": last is not None,
            "files": status.files,
            "files_ok": status.files_ok,
            "problems": dict(status.problems),
            "images": dict(status.images),
            "images_total": sum(status.images.values()),
            "pending_uploads": status.pending_uploads,
            "tags": status.tags,
            "last_run": None
            if last is None
            else {
                "run_id": last.run_id,
                "started_at": last.started_at,
                "finished_at": last.finished_at,
                "outcome": str(last.outcome),
                "counts": dict(last.counts),
                "error": last.error,
            },
            "recent_errors": [
                {
                    "at": e.at,
                    "operation": e.operation,
                    "subject": e.subject,
                    "code": e.code,
                    "message": e.message,
                }
                for e in status.recent_errors
            ],
        }
    )
    return entry


async def _add_remote_counts(
    config: Config, mirrors: Mirrors, entries: list[dict[str, Any]]
) -> None:
    from syncd.api import ApiError
    from syncd.sync import _service_error, open_client

    async with open_client(config.service, mirrors) as client:
        for mirror, entry in zip(mirrors, entries, strict=True):
            try:
                images = await client.count_images(mirror.project_id)
                tags = await client.list_tags(mirror.project_id)
            except ApiError as exc:
                raise _service_error(exc, mirror) from None
            entry["remote"] = {"images": images, "tags": len(tags)}
            entry["remote_agrees"] = images == entry.get("images_total") and len(tags) == entry.get(
                "tags"
            )


def _print_status(entry: dict[str, Any], out: IO[str]) -> None:
    print(f"mirror {entry['name']} -> project {entry['project_id']}", file=out)
    print(f"  root: {entry['root']}", file=out)
    print(f"  ledger: {entry['ledger']}", file=out)
    if not entry.get("synced"):
        print("  never synced (run `syncd reconcile`)", file=out)
    else:
        problems = ", ".join(f"{k} {v}" for k, v in entry["problems"].items()) or "none"
        images = ", ".join(f"{k} {v}" for k, v in entry["images"].items()) or "none"
        print(f"  files: {entry['files']} ({entry['files_ok']} ok; problems: {problems})", file=out)
        print(f"  images: {entry['images_total']} ({images}); tags: {entry['tags']}", file=out)
        if entry["pending_uploads"]:
            print(f"  uploads never answered: {entry['pending_uploads']}", file=out)
        last = entry["last_run"]
        counts = ", ".join(f"{k} {v}" for k, v in sorted(last["counts"].items()) if v)
        print(
            f"  last run: #{last['run_id']} {last['outcome']} at {last['finished_at'] or '-'}"
            + (f" ({counts})" if counts else ""),
            file=out,
        )
        if last["error"]:
            print(f"    error: {last['error']}", file=out)
        for error in entry["recent_errors"][:_SHOWN_ITEMS]:
            print(
                f"  error {error['at']} {error['operation']} {error['subject']}: "
                f"{error['message']}",
                file=out,
            )
    if "remote" in entry:
        remote = entry["remote"]
        verdict = "agrees with" if entry["remote_agrees"] else "differs from"
        print(
            f"  service: {remote['images']} images, {remote['tags']} tags ({verdict} the ledger)",
            file=out,
        )


# --- train --------------------------------------------------------------------------------------


def _train(args: argparse.Namespace) -> int:
    from syncd.api import ApiError, BadRequestError
    from syncd.sync import _service_error, open_client
    from syncd.train import (
        EXIT_NOTHING_TO_TRAIN,
        TrainingNotNeeded,
        start_training,
        wait_for_iteration,
    )

    config, mirror = _one_mirror(args)
    terminal = sys.stderr.isatty() and not args.json

    def show(iteration: Any, elapsed: float) -> None:
        if terminal:
            sys.stderr.write(f"\r\033[K{iteration.name}: {iteration.status} ({elapsed:.0f} s)")
            sys.stderr.flush()

    async def run() -> Any:
        async with open_client(config.service, (mirror,)) as client:
            iteration = await start_training(
                client,
                mirror.project_id,
                force=args.force,
                advanced=args.advanced,
                budget_hours=args.budget_hours,
                notify=args.notify,
            )
            if args.wait:
                show(iteration, 0.0)
                iteration = await wait_for_iteration(
                    client, mirror.project_id, iteration, on_poll=show
                )
                if terminal:
                    sys.stderr.write("\r\033[K")
            return iteration

    try:
        iteration = asyncio.run(run())
    except TrainingNotNeeded as exc:
        return _error(args, str(exc), EXIT_NOTHING_TO_TRAIN)
    except BadRequestError as exc:
        # e.g. BadRequestTrainingValidationFailed: too few images per tag. The data, not syncd.
        return _error(args, f"the service would not train: {exc}", EXIT_NOT_IN_SYNC)
    except ApiError as exc:
        raise _service_error(exc, mirror) from None
    failed = args.wait and not iteration.completed
    code = EXIT_NOT_IN_SYNC if failed else EXIT_OK
    document = {
        "exit_code": code,
        "iteration_id": str(iteration.id),
        "name": iteration.name,
        "status": iteration.status,
        "trained_at": iteration.trained_at.isoformat() if iteration.trained_at else None,
    }
    shown = printable(f"{iteration.name} ({iteration.id}): {iteration.status}")
    if args.json:
        print(json.dumps(document))
    elif args.wait:
        print(shown)
    else:
        print(f"{shown} (started; --wait waits)")
    return code


# --- review -------------------------------------------------------------------------------------


def _review(args: argparse.Namespace) -> int:
    from syncd.api import ApiError
    from syncd.ledger import Ledger, LedgerError
    from syncd.review import (
        ReviewError,
        link_tree,
        pick_iteration,
        review_iteration,
        review_json,
        write_csv,
        write_table,
    )
    from syncd.sync import _service_error, open_client

    if not 0.0 <= args.threshold <= 1.0:
        raise SyncError(f"--threshold must be between 0 and 1, got {args.threshold}", EXIT_USAGE)
    config, mirror = _one_mirror(args)
    root = Path(mirror.root)
    assert mirror.ledger is not None  # load_config sets it
    if not Path(mirror.ledger).exists():
        raise SyncError(
            f"mirror {mirror.name} has no ledger yet: run `syncd reconcile` (or `syncd pull`)"
            " first, so image ids can be joined to files",
            EXIT_USAGE,
        )
    try:
        with Ledger.open_read_only(mirror.ledger, project_id=mirror.project_id) as ledger:
            paths = {} if ledger.empty else ledger.local_paths_by_image()
    except LedgerError as exc:
        raise SyncError(str(exc), EXIT_USAGE) from None

    async def run() -> Any:
        async with open_client(config.service, (mirror,)) as client:
            iteration = await pick_iteration(client, mirror.project_id, args.iteration)
            return await review_iteration(
                client, mirror.project_id, iteration, paths, root, args.threshold
            )

    try:
        review = asyncio.run(run())
        links = link_tree(review, root, args.link_into) if args.link_into else None
    except ReviewError as exc:
        return _error(args, str(exc), EXIT_NOT_IN_SYNC)
    except ApiError as exc:
        raise _service_error(exc, mirror) from None
    if args.format == "json" or args.json:
        document = review_json(review)
        if links is not None:
            document["links"] = {"into": str(args.link_into), "made": links}
        print(json.dumps(document))
    elif args.format == "csv":
        write_csv(review, sys.stdout)
    else:
        write_table(review, sys.stdout)
        if links is not None:
            print(f"{links} symlinks under {args.link_into} (<tagged>→<predicted>/)")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
