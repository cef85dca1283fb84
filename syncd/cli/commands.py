"""What each command does: load the config, open one session, call the engine, return its result.

Public names: session, Session, load, one_mirror, reconcile, status, pull, train, review.

`session()` is the one place a command opens the service: it takes the ledger locks the command
needs, opens the client (the embedded emulator's projects included), and turns an ApiError that
escapes into the typed service error of the mirror being worked on. Nothing here prints but the
progress line and config warnings (through syncd.cli.render) or picks an exit code (syncd.cli.main).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syncd.api import ApiError, Iteration, TrainingClient
from syncd.cli import render
from syncd.cli.loading import Mirrors, load
from syncd.config import Config, MirrorConfig, check_value
from syncd.errors import LedgerOfAnotherProjectError, UsageError
from syncd.ledger import Ledger, LedgerLock
from syncd.reconcile import (
    MirrorReport,
    open_client,
    open_ledger,
    reconcile_mirror,
    require_project,
    service_error,
)
from syncd.scan import walk_tree

if TYPE_CHECKING:
    from syncd.earlywalk import EarlyWalks
    from syncd.pull import ExportOptions, PullReport
    from syncd.review import Review


# --- the session --------------------------------------------------------------------------------


@dataclass
class Session:
    """An open client for one command; `mirror` is the mirror being worked on (a service error
    names it)."""

    config: Config
    client: TrainingClient
    mirror: MirrorConfig

    def ledger(self) -> contextlib.AbstractContextManager[Ledger]:
        """The current mirror's ledger, for writing."""
        return open_ledger(self.mirror)


@contextlib.contextmanager
def _locked(mirrors: Mirrors, wait_seconds: float, command: str) -> Iterator[None]:
    """Hold every mirror's ledger lock for the whole command (LedgerBusyError if one is held)."""
    if wait_seconds < 0:
        raise UsageError(f"--wait-lock must be 0 or more seconds, got {wait_seconds:g}")
    with contextlib.ExitStack() as stack:
        for mirror in mirrors:
            assert mirror.ledger is not None  # load_config sets it
            stack.enter_context(
                LedgerLock.acquire(mirror.ledger, wait_seconds=wait_seconds, command=command)
            )
        yield


@contextlib.asynccontextmanager
async def session(
    config: Config, mirrors: Mirrors, *, lock: str | None = None, wait_lock: float = 0.0
) -> AsyncIterator[Session]:
    """Take the mirrors' ledger locks if `lock` names the command, open the client for the
    config's endpoint, and yield the Session; an ApiError that leaves the block is raised as the
    ServiceError of `Session.mirror`."""
    locks = _locked(mirrors, wait_lock, lock) if lock else contextlib.nullcontext()
    with locks:
        async with open_client(config.service, mirrors) as client:
            opened = Session(config, client, mirrors[0])
            endpoint = config.service.endpoint
            try:
                yield opened
            except ApiError as exc:
                raise service_error(exc, opened.mirror, endpoint) from None
            except LedgerOfAnotherProjectError:
                # Most often a mistyped project_id: if so, say that instead.
                await require_project(client, opened.mirror, endpoint)
                raise


def _project_first(
    config: Config, mirror: MirrorConfig, refusal: LedgerOfAnotherProjectError
) -> None:
    """Raise ProjectMissingError if the mirror's project is not at the endpoint, else `refusal`:
    a ledger of another project is most often a mistyped project_id, and that is the error to
    fix first."""

    async def check() -> None:
        async with session(config, (mirror,)) as s:
            await require_project(s.client, mirror, config.service.endpoint)

    asyncio.run(check())
    raise refusal


@contextlib.contextmanager
def _waits_shown(
    client: TrainingClient, line: render.ProgressLine | None, endpoint: str
) -> Iterator[None]:
    """While the block runs, `line` (if any) says what the client waits for: the first answer
    (connecting), a retry, a throttled or paced wait."""
    if line is None:
        yield
        return
    before = client.on_wait, client.on_call
    client.on_wait, client.on_call = line.waiting, line.answered
    line.connecting(endpoint)
    try:
        yield
    finally:
        client.on_wait, client.on_call = before


# --- config -------------------------------------------------------------------------------------


def one_mirror(args: argparse.Namespace) -> tuple[Config, MirrorConfig]:
    """The config and its one mirror (or the one `--mirror` names)."""
    config, mirrors = load(args)
    if len(mirrors) > 1:
        names = ", ".join(m.name for m in mirrors)
        raise UsageError(f"{args.command} works on one mirror: pass --mirror (one of {names})")
    return config, mirrors[0]


# --- reconcile ----------------------------------------------------------------------------------


def reconcile(
    args: argparse.Namespace,
    loaded: tuple[Config, Mirrors] | None = None,
    walks: EarlyWalks | None = None,
) -> list[MirrorReport]:
    """Reconcile each mirror once; return their reports. `loaded`: the config and mirrors if
    already loaded; `walks`: their walks, if already started (syncd.earlywalk)."""
    config, mirrors = loaded or load(args)
    # A dry run reads a copy of the ledger: it needs no lock, and works while another writes.
    lock = None if args.dry_run else "syncd reconcile"
    shown = sys.stderr.isatty() and not args.json

    async def run() -> list[MirrorReport]:
        reports = []
        async with session(config, mirrors, lock=lock, wait_lock=args.wait_lock) as s:
            for mirror in mirrors:
                s.mirror = mirror
                with (
                    render.progress_line(sys.stderr, shown) as bar,
                    _waits_shown(s.client, bar, config.service.endpoint),
                ):
                    report = await reconcile_mirror(
                        config,
                        mirror,
                        s.client,
                        dry_run=args.dry_run,
                        allow_mass_delete=args.allow_mass_delete,
                        full=args.full,
                        progress=bar,
                        walk=walks.walker(mirror) if walks else walk_tree,
                    )
                reports.append(report)
        return reports

    return asyncio.run(run())


# --- status -------------------------------------------------------------------------------------


def status(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each mirror's ledger account (and, with --remote, the service's counts)."""
    config, mirrors = load(args)
    entries = []
    for mirror in mirrors:
        try:
            entries.append(_ledger_status(config, mirror))
        except LedgerOfAnotherProjectError as refusal:
            if not args.remote:  # without --remote, status does not ask the service
                raise
            _project_first(config, mirror, refusal)
    if args.remote:
        shown = sys.stderr.isatty() and not args.json
        asyncio.run(_add_remote_counts(config, mirrors, entries, shown))
    return entries


def _ledger_status(config: Config, mirror: MirrorConfig) -> dict[str, Any]:
    """What the ledger says, read-only: works while another process writes it, and on a
    read-only file system; never creates, migrates or writes the file."""
    entry: dict[str, Any] = {
        "name": mirror.name,
        "project_id": mirror.project_id,
        "endpoint": config.service.endpoint,
        "root": os.path.normpath(mirror.root),
        "ledger": os.path.normpath(str(mirror.ledger)),
    }
    assert mirror.ledger is not None  # load_config sets it
    if not Path(mirror.ledger).exists():
        entry["synced"] = False
        return entry
    with Ledger.open_read_only(mirror.ledger, project_id=mirror.project_id) as ledger:
        state = None if ledger.empty else ledger.status()
    if state is None:
        entry["synced"] = False
        return entry
    last = state.last_run
    entry.update(
        {
            "synced": last is not None,
            "files": state.files,
            "files_ok": state.files_ok,
            "problems": dict(state.problems),
            "images": dict(state.images),
            "images_total": sum(state.images.values()),
            "pending_uploads": state.pending_uploads,
            "tags": state.tags,
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
                for e in state.recent_errors
            ],
            "problem_files": [
                {
                    "path": p.path,
                    "kind": p.kind,
                    "detail": p.detail,
                    "advice": p.advice,
                    "since": p.since,
                }
                for p in state.problem_files
            ],
        }
    )
    return entry


async def _add_remote_counts(
    config: Config, mirrors: Mirrors, entries: list[dict[str, Any]], shown: bool
) -> None:
    async with session(config, mirrors) as s:
        with (
            render.progress_line(sys.stderr, shown) as line,
            _waits_shown(s.client, line, config.service.endpoint),
        ):
            await _remote_counts(s, mirrors, entries)


async def _remote_counts(s: Session, mirrors: Mirrors, entries: list[dict[str, Any]]) -> None:
    for mirror, entry in zip(mirrors, entries, strict=True):
        s.mirror = mirror
        images = await s.client.count_images(mirror.project_id)
        tags = await s.client.list_tags(mirror.project_id)
        entry["remote"] = {"images": images, "tags": len(tags)}
        entry["remote_agrees"] = images == entry.get("images_total") and len(tags) == entry.get(
            "tags"
        )


# --- pull ---------------------------------------------------------------------------------------


def _pull_overrides(
    args: argparse.Namespace, config: Config, mirror: MirrorConfig
) -> tuple[Config, MirrorConfig]:
    """Apply --project and --endpoint, checked as the config checks those keys."""
    if args.project is not None:
        problem = check_value("mirror.project_id", args.project)
        if problem:
            raise UsageError(f"--project: {problem}")
        mirror = dataclasses.replace(mirror, project_id=args.project.lower())
    if args.endpoint is not None:
        problem = check_value(
            "service.endpoint",
            args.endpoint,
            allow_insecure_http=config.service.allow_insecure_http,
        )
        if problem:
            raise UsageError(f"--endpoint: {problem}")
        service = dataclasses.replace(config.service, endpoint=args.endpoint)
        config = dataclasses.replace(config, service=service)
    return config, mirror


def _export_options(args: argparse.Namespace) -> ExportOptions:
    """--format and the AutoML options, checked."""
    from syncd.export import ExportFormat
    from syncd.pull import ExportOptions

    fmt = ExportFormat(args.export_format) if args.export_format else None
    automl = fmt is ExportFormat.AUTOML
    if not 0.0 <= args.split < 1.0:
        raise UsageError(f"--split must be at least 0 and under 1, got {args.split}")
    if not automl and (args.split or args.image_url_prefix or args.seed):
        raise UsageError("--split, --seed and --image-url-prefix go with --format automl")
    return ExportOptions(fmt, args.image_url_prefix, args.split, args.seed)


def pull(args: argparse.Namespace) -> PullReport:
    """Write the mirror's project out as a tree; return the report."""
    from syncd.pull import pull_project

    options = _export_options(args)
    config, mirror = one_mirror(args)
    config, mirror = _pull_overrides(args, config, mirror)
    into = (args.into or Path(mirror.root)).expanduser().resolve()

    async def run() -> PullReport:
        async with session(config, (mirror,), lock="syncd pull", wait_lock=args.wait_lock) as s:
            with (
                render.progress_line(sys.stderr, sys.stderr.isatty(), "downloaded") as bar,
                _waits_shown(s.client, bar, config.service.endpoint),
                s.ledger() as ledger,
            ):
                return await pull_project(
                    s.client,
                    mirror,
                    ledger,
                    into,
                    endpoint=config.service.endpoint,
                    progress=bar,
                    options=options,
                )

    return asyncio.run(run())


# --- train --------------------------------------------------------------------------------------


def train(args: argparse.Namespace) -> tuple[Config, Iteration]:
    """Start training (and with --wait, wait for it); return the config and the iteration."""
    from syncd.train import start_training, wait_for_iteration

    config, mirror = one_mirror(args)
    shown = sys.stderr.isatty() and not args.json

    async def run() -> Iteration:
        async with session(config, (mirror,)) as s:
            with (
                render.progress_line(sys.stderr, shown) as line,
                _waits_shown(s.client, line, config.service.endpoint),
            ):
                iteration = await start_training(
                    s.client,
                    mirror.project_id,
                    force=args.force,
                    advanced=args.advanced,
                    budget_hours=args.budget_hours,
                    notify=args.notify,
                )
                if not args.wait:
                    return iteration

                def on_poll(polled: Iteration, elapsed: float) -> None:
                    if line is not None:
                        line.show(render.iteration_line(polled, elapsed))

                on_poll(iteration, 0.0)
                return await wait_for_iteration(
                    s.client, mirror.project_id, iteration, on_poll=on_poll
                )

    return config, asyncio.run(run())


# --- review -------------------------------------------------------------------------------------


def review(args: argparse.Namespace) -> tuple[Review, int | None]:
    """Review an iteration; return it and the number of links made (None: no --link-into)."""
    from syncd.review import link_tree, pick_iteration, review_iteration

    if not 0.0 <= args.threshold <= 1.0:
        raise UsageError(f"--threshold must be between 0 and 1, got {args.threshold}")
    config, mirror = one_mirror(args)
    root = Path(mirror.root)
    assert mirror.ledger is not None  # load_config sets it
    if not Path(mirror.ledger).exists():
        raise UsageError(
            f"mirror {mirror.name} has no ledger yet: run `syncd reconcile` (or `syncd pull`)"
            " first, so image ids can be joined to files"
        )
    try:
        with Ledger.open_read_only(mirror.ledger, project_id=mirror.project_id) as ledger:
            paths = {} if ledger.empty else ledger.local_paths_by_image()
    except LedgerOfAnotherProjectError as refusal:
        _project_first(config, mirror, refusal)

    shown = sys.stderr.isatty() and not args.json

    async def run() -> Review:
        async with session(config, (mirror,)) as s:
            with (
                render.progress_line(sys.stderr, shown) as line,
                _waits_shown(s.client, line, config.service.endpoint),
            ):
                iteration = await pick_iteration(s.client, mirror.project_id, args.iteration)
                return await review_iteration(
                    s.client, mirror.project_id, iteration, paths, root, args.threshold
                )

    found = asyncio.run(run())
    links = link_tree(found, root, args.link_into) if args.link_into else None
    return found, links
