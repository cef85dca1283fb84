"""`syncd run`'s loop: reconcile at start, then follow the tree as it changes.

Public names: run, Daemon, BATCH_SIZE, BACKOFF.

One loop per mirror, all in one asyncio event loop sharing one client (one key, one pacer):

    start watcher -> reconcile -> wait for: settled paths | batch full | max delay | timers
                                   -> reconcile again (rescan + plan + execute: the same path)

- Watchdog events only mark paths dirty in the mirror's SettleTracker (syncd.watch). A flush
  happens when 64 settled paths wait (a full upload batch), when no dirty path could settle in
  time to join the ones waiting (syncd.watch.flush_due), or `max_delay_seconds` after the first
  one settled. A flush is
  a `reconcile_mirror` with the settle rule as its `hold`: the rescan costs a walk and stats
  (hashes only for changed files), the remote check is the cheap count path (3 calls) when
  nothing else changed, and the planner stays pure. The counts are asked at most every
  `count_check_seconds` (60): a flush sooner after a run that asked them (and had no failed item
  since) trusts the ledger instead (it records everything syncd does), so a change is not held up by
  three paced calls; drift made elsewhere is seen at the next check or full reconcile.
- A detection mirror's annotation files are watched too (syncd.core.policy.ANNOTATION_SUFFIXES,
  and the COCO file, in its own folder if that is outside the root): a label file created,
  changed or deleted is an event for its image(s) (syncd.annotations.annotated_image_stems), which
  are held back while it is still being written. The reconcile it starts reads the annotations
  again, and only images whose boxes changed get region calls (the planner's diff).
- Every `full_reconcile_seconds`, a reconcile with `full=True` lists the whole project: the
  backstop for missed events and remote drift. If the watcher cannot run (inotify limits, root
  missing) or dies, a warning says why and how to fix it, and the tree is rescanned every
  `rescan_seconds` instead (the watcher is retried at each rescan). A root that does not exist
  is never "in sync": the status says so (`root_missing` is logged once), nothing is uploaded or
  deleted, and the rescans pick the root up when it is mounted or restored.
- A failed reconcile (service down, throttled, 5xx past the client's retries) is retried with
  capped exponential backoff; events keep being recorded meanwhile, and the next reconcile
  rescans everything, so nothing is dropped. Recovery is logged once.
- The daemon holds every mirror's ledger lock (syncd.ledger.LedgerLock) from start to exit, so a
  `syncd reconcile` or a second daemon on the same ledger exits 5 instead of writing beside it.
- SIGTERM/SIGINT: stop taking work, give the in-flight reconcile `shutdown_timeout_seconds` (less
  a margin) to finish, then cancel it (the ledger records each result as it arrives, so a
  cancelled upload is resolved by the next run), close the ledger, exit 0. A timer exits the
  process hard if even that overruns. SIGHUP: reload the config; a bad one is logged and the
  running one kept.
- systemd: READY=1 once every mirror's first reconcile has finished (or failed: the daemon is
  then up, retrying, and recording changes), STATUS= lines, WATCHDOG=1 pings, STOPPING=1.
- WATCHDOG=1 proves progress, not just a running event loop: each mirror loop records a heartbeat
  (Liveness.beat) at every step it completes: a wait that ended (idle waits are cut to at most
  _IDLE_BEAT_SECONDS), a reconcile that ended or failed, a file checked, an API call answered, an
  item executed or downloaded. Once any loop has had no heartbeat for `daemon.stall_seconds`, the
  pings stop (systemd then restarts the process), STATUS= says "stalled" and one error is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from syncd.api import Project, TrainingClient
from syncd.api.limits import MAX_IMAGES_PER_UPLOAD
from syncd.api.pacer import Backoff
from syncd.config import Config, MirrorConfig, load_config
from syncd.core.model import LocalSnapshot
from syncd.core.planner import GuardReason
from syncd.core.policy import ANNOTATION_SUFFIXES, YOLO_NAMES_FILES, AnnotationFormat
from syncd.daemon.metrics import Metrics
from syncd.daemon.notify import Notifier
from syncd.errors import LedgerBusyError, SyncdError
from syncd.ledger import LedgerLock
from syncd.problems import FileProblem
from syncd.reconcile import KEPT_EXAMPLES, MirrorReport, open_client, reconcile_mirror
from syncd.watch import (
    SettleTracker,
    WatchAlarm,
    Watcher,
    flush_due,
    hold_unsettled,
    settle_poll_in,
    watch_failure_advice,
)

BATCH_SIZE = MAX_IMAGES_PER_UPLOAD  # settled paths that make a flush worth sending at once
# After failed reconcile n: 1 s doubling to 60 s, the upper half of it drawn at random so that
# mirrors (and daemons) that failed together do not retry in step.
BACKOFF = Backoff(first_s=1.0, max_s=60.0, jitter=0.5)
_SHUTDOWN_MARGIN = 2.0  # seconds of the shutdown budget kept for cancelling and closing
# An idle loop (nothing due for up to full_reconcile_seconds) still wakes this often to beat.
_IDLE_BEAT_SECONDS = 10.0

# The heartbeat of the mirror loop whose task (or worker thread) is running: the shared client's
# on_call hook credits an answered request to the loop that sent it.
_current_beat: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "syncd_current_beat", default=None
)

_log = structlog.get_logger(component="daemon")


def _load(path: str | Path) -> Config:
    """Return the config at `path`; raise ConfigError or CredentialsError if it or its key
    source is unusable."""
    config = load_config(path)
    if not config.service.is_embedded:
        config.service.training_key.load()
    return config


def run(config_path: str | Path) -> None:
    """Run the daemon until SIGTERM/SIGINT; raise a typed error (syncd.errors) if it cannot
    start (a bad config or key, a ledger another process writes)."""
    config = _load(config_path)
    for warning in config.warnings:
        _log.warning("config_warning", warning=warning)
    ledgers = HeldLedgers()
    ledgers.hold(config)  # another writer: LedgerBusyError (exit 5) before anything starts
    try:
        daemon = Daemon(Path(config_path), config, Notifier.from_env(), ledgers=ledgers)
        asyncio.run(daemon.run())
    finally:
        ledgers.release_all()


class HeldLedgers:
    """The ledger locks the daemon holds for its whole life: one per mirror of its config."""

    def __init__(self) -> None:
        self._held: dict[Path, LedgerLock] = {}

    def hold(self, config: Config) -> None:
        """Hold the locks of `config`'s ledgers, taking the new ones before letting go of those
        no longer used; raise LedgerBusyError (holding what was held before) if one is busy."""
        wanted = {Path(m.ledger) for m in config.mirrors if m.ledger is not None}
        taken: dict[Path, LedgerLock] = {}
        try:
            for path in sorted(wanted - self._held.keys()):
                taken[path] = LedgerLock.acquire(path, command="syncd run")
        except LedgerBusyError:
            for lock in taken.values():
                lock.release()
            raise
        for path in self._held.keys() - wanted:
            self._held.pop(path).release()
        self._held.update(taken)

    def release_all(self) -> None:
        for lock in self._held.values():
            lock.release()
        self._held = {}


class Liveness:
    """When each mirror loop last showed progress, and which ones are stuck."""

    def __init__(self, stall_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_seconds = stall_seconds
        self.clock = clock
        self._last: dict[str, float] = {}

    def watch(self, name: str) -> None:
        """Start judging loop `name` (as if it just beat)."""
        self._last[name] = self.clock()

    def beat(self, name: str) -> None:
        """Record progress of loop `name`; ignored for a loop not watched (a stray thread of a
        session that ended must not bring back a loop that is gone)."""
        if name in self._last:
            self._last[name] = self.clock()  # one dict store: safe from a worker thread too

    def reset(self) -> None:
        """Forget every loop (a new session's loops beat as they start)."""
        self._last = {}

    def stuck(self) -> dict[str, float]:
        """Mirror name -> seconds without progress, for each loop past the stall bound."""
        now = self.clock()
        since = {name: now - at for name, at in list(self._last.items())}
        return {name: s for name, s in since.items() if s > self.stall_seconds}


@dataclass
class _State:
    """What one mirror's loop reports for STATUS= and logs."""

    phase: str = "starting"
    pending: int = 0
    failures: int = 0
    watching: bool = False
    last_error: str | None = None
    last_sync: float | None = None
    last_full: float | None = None

    def describe(self, name: str) -> str:
        if self.failures:
            return f"{name}: retrying ({(self.last_error or '')[:160]})"
        watch = "watching" if self.watching else "rescanning (no watcher)"
        return f"{name}: {self.phase}, {watch}, {self.pending} pending"


class _MirrorLoop:
    """Follows one mirror: its watcher, its dirty paths, its reconciles and retries."""

    def __init__(
        self,
        config: Config,
        mirror: MirrorConfig,
        client: TrainingClient,
        metrics: Metrics | None = None,
        liveness: Liveness | None = None,
    ) -> None:
        self.config = config
        self.liveness = liveness or Liveness(config.daemon.stall_seconds)
        self.liveness.watch(mirror.name)
        self.metrics = metrics
        self.mirror = mirror
        self.client = client
        self.settings = config.daemon
        self.root = Path(mirror.root)
        self.tracker = SettleTracker(self.root, self.settings.settle_seconds)
        self.ready: dict[str, float] = {}  # settled path -> when it settled
        self.watcher: Watcher | None = None
        self.coco_watcher: Watcher | None = None  # a COCO file outside the root
        self.watch_problem: str | None = None
        self.rescan_at: float | None = None  # set while there is no watcher, or events were lost
        self.full_at = time.monotonic() + self.settings.full_reconcile_seconds
        self.retry_at: float | None = None
        self.wake = asyncio.Event()
        self.stopping = False
        self.first_done = asyncio.Event()
        self.root_was_missing = False
        self.problems: dict[str, FileProblem] = {}  # path -> its problem, as last logged
        self.refused: frozenset[str] = frozenset()  # ids of the images whose deletes are refused
        self.held_back = False  # the running reconcile held files back (still being written)
        # When the counts were last asked, by a run with no failed item, and the project it read:
        # until count_check_seconds later a flush trusts the ledger (remote.trusted_counts).
        self.counts_checked: tuple[float, Project] | None = None
        self.state = _State()
        self.log = _log.bind(mirror=mirror.name)
        self.rand: Callable[[], float] = random.random  # the backoff's jitter (tests fix it)
        self._loop = asyncio.get_running_loop()

    # --- events (watchdog's thread hands them to the loop) --------------------------------------

    def _on_paths(self, rels: list[str]) -> None:
        self._loop.call_soon_threadsafe(self._touch, rels)

    def _touch(self, rels: list[str]) -> None:
        for rel in rels:
            self.tracker.touch(rel)
            self.ready.pop(rel, None)  # changed again: it must settle again
        if self.metrics is not None:
            self.metrics.set_pending(self.mirror.name, len(self.ready) + len(self.tracker))
        self.wake.set()

    def events_lost(self, message: str) -> None:
        """Watchdog said events were lost (queue overflow): rescan soon."""
        self.log.warning("watch_events_lost", detail=message, action="rescan")
        self.rescan_at = time.monotonic()
        self.wake.set()

    def stop(self) -> None:
        self.stopping = True
        self.wake.set()

    def beat(self) -> None:
        """Record that this loop just completed a step (see Liveness)."""
        self.liveness.beat(self.mirror.name)

    def _progress(self, _kind: str, _n: int) -> None:
        self.beat()

    # --- the watcher ----------------------------------------------------------------------------

    def _watched_suffixes(self) -> tuple[str, ...]:
        """The image extensions, and a detection mirror's annotation files' suffixes (the COCO
        file's too, when it is inside the root)."""
        annotations = self.mirror.annotations
        suffixes = [*self.mirror.files.extensions]
        suffixes += sorted(ANNOTATION_SUFFIXES.get(annotations.format, ()))
        coco = self._coco_file()
        if coco is not None and coco.is_relative_to(self.root):
            suffixes.append(coco.suffix)
        return tuple(suffixes)

    def _coco_file(self) -> Path | None:
        annotations = self.mirror.annotations
        if annotations.format is not AnnotationFormat.COCO or annotations.coco_file is None:
            return None
        return Path(os.path.abspath(annotations.coco_file))

    def _start_coco_watcher(self) -> None:
        """Watch a COCO file outside the root in its own folder; its changes are reported by
        its absolute path (the tracker stats it there)."""
        coco = self._coco_file()
        if coco is None or coco.is_relative_to(self.root) or self.coco_watcher is not None:
            return

        def on_paths(rels: list[str]) -> None:
            if coco.name in rels:
                self._on_paths([str(coco)])

        watcher = Watcher(coco.parent, (coco.suffix,), on_paths)
        try:
            watcher.start()
        except OSError as exc:
            self.log.warning(
                "coco_watcher_unavailable",
                path=str(coco),
                reason=watch_failure_advice(exc),
                fallback="its changes are seen at the next rescan or full reconcile",
            )
            return
        self.coco_watcher = watcher

    def _with_annotated_images(self, paths: frozenset[str]) -> frozenset[str]:
        """`paths` and, for each annotation file among them, the images its boxes are for
        (every extension the mirror takes): held back while their label is being written."""
        fmt = self.mirror.annotations.format
        if fmt is AnnotationFormat.NONE or not paths:
            return paths
        from syncd.annotations import annotated_image_stems

        images = {
            stem + suffix
            for rel in paths
            for stem in annotated_image_stems(rel, fmt)
            for suffix in self.mirror.files.extensions
        }
        return paths | images

    def _dataset_file_unsettled(self, paths: frozenset[str]) -> bool:
        """True if a file every image's boxes depend on is among `paths`: the COCO file, or
        YOLO's class names at the root."""
        fmt = self.mirror.annotations.format
        coco = self._coco_file()
        if coco is not None and (str(coco) in paths or self._relative(coco) in paths):
            return True
        return fmt is AnnotationFormat.YOLO and not paths.isdisjoint(YOLO_NAMES_FILES)

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) else ""

    def start_watcher(self) -> None:
        self._start_coco_watcher()
        watcher = Watcher(self.root, self._watched_suffixes(), self._on_paths)
        try:
            watcher.start()
        except OSError as exc:
            problem = watch_failure_advice(exc)
            if problem != self.watch_problem:
                self.log.warning(
                    "watcher_unavailable",
                    root=str(self.root),
                    reason=problem,
                    fallback=f"rescanning every {self.settings.rescan_seconds:g} s",
                )
            self.watch_problem = problem
            self.state.watching = False
            self.rescan_at = time.monotonic() + self.settings.rescan_seconds
            return
        if self.watch_problem is not None:
            self.log.info("watcher_started", root=str(self.root), was=self.watch_problem)
        self.watcher, self.watch_problem = watcher, None
        self.state.watching = True

    def _check_watcher(self) -> None:
        if self.watcher is not None and not self.watcher.alive():
            self.log.warning(
                "watcher_died",
                root=str(self.root),
                fallback=f"rescanning every {self.settings.rescan_seconds:g} s",
            )
            self.watcher.stop(0.5)
            self.watcher = None
            self.watch_problem = "the folder watcher stopped"
            self.state.watching = False
            self.rescan_at = time.monotonic()

    def stop_watcher(self) -> None:
        if self.watcher is not None:
            self.watcher.stop(1.0)
            self.watcher = None
        if self.coco_watcher is not None:
            self.coco_watcher.stop(1.0)
            self.coco_watcher = None

    # --- the loop -------------------------------------------------------------------------------

    async def run(self) -> None:
        _current_beat.set(self.beat)  # this task's context: inherited by its tasks and threads
        self.beat()
        try:
            await asyncio.to_thread(self.start_watcher)
            await self.reconcile("startup")
            self.first_done.set()
            while not self.stopping:
                await self._wait()
                self.beat()
                if self.stopping:
                    break
                self._check_watcher()
                now = time.monotonic()
                for rel in self.tracker.poll():
                    self.ready.setdefault(rel, now)
                self.state.pending = len(self.ready) + len(self.tracker)
                if self.retry_at is not None and now < self.retry_at:
                    continue
                if now >= self.full_at:
                    await self.reconcile("full", full=True)
                elif self.retry_at is not None or self._flush_due(now):
                    await self.reconcile("retry" if self.retry_at is not None else "changes")
                elif self.rescan_at is not None and now >= self.rescan_at:
                    await self.reconcile("rescan")
        finally:
            self.first_done.set()
            await asyncio.to_thread(self.stop_watcher)

    def _flush_due(self, now: float) -> bool:
        return flush_due(
            self.ready.values(),
            self.tracker.next_check(),
            now,
            batch_size=BATCH_SIZE,
            max_delay=self.settings.max_delay_seconds,
        )

    def _next_wake(self) -> float:
        now = time.monotonic()
        times = [self.full_at]
        if self.retry_at is not None:
            times.append(self.retry_at)
        elif self.ready:
            times.append(min(self.ready.values()) + self.settings.max_delay_seconds)
        if self.rescan_at is not None:
            times.append(self.rescan_at)
        poll_in = settle_poll_in(self.tracker.next_check())
        if poll_in is not None:
            times.append(now + poll_in)
        # Wake to beat even with nothing due, well within the stall bound.
        times.append(now + min(_IDLE_BEAT_SECONDS, self.liveness.stall_seconds / 4))
        return max(0.0, min(times) - now)

    async def _wait(self) -> None:
        timeout = self._next_wake()
        if timeout > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout)
        self.wake.clear()

    def _hold(self, local: LocalSnapshot) -> LocalSnapshot:
        settle_ns = int(self.settings.settle_seconds * 1e9)
        unsettled = self._with_annotated_images(self.tracker.unsettled())
        if self._dataset_file_unsettled(unsettled):
            # The COCO file or the YOLO class names, half written: every image's boxes wait.
            unsettled |= {f.path for f in local.files}
        held_back, held = hold_unsettled(
            local,
            unsettled,
            self.ready.keys(),
            settle_ns=settle_ns,
            now_ns=time.time_ns(),
        )
        for rel in held:
            self.tracker.add(rel)  # look again once it has settled
        self.held_back = bool(held)
        if held:
            self.log.info("held_back", files=len(held), example=held[0])
        return held_back

    async def reconcile(self, reason: str, *, full: bool = False) -> MirrorReport | None:
        """Rescan, plan and execute once; on failure schedule a retry with backoff."""
        answered = set(self.ready)
        if self.watcher is None and not self.stopping:
            await asyncio.to_thread(self.start_watcher)  # retried at each rescan
        self.state.phase = "syncing"
        self.held_back = False
        started = time.monotonic()
        try:
            report = await reconcile_mirror(
                self.config,
                self.mirror,
                self.client,
                full=full,
                progress=self._progress,
                hold=self._hold,
                trusted_project=self._trusted_project(started),
            )
        except SyncdError as exc:
            self.counts_checked = None
            self.beat()
            self._failed(reason, exc)
            if self.metrics is not None:
                self.metrics.observe_failed_reconcile(self.mirror.name)
            return None
        finally:
            self.state.phase = "idle"
        self.beat()
        now = time.monotonic()
        if self.state.failures:
            self.log.info("service_recovered", after_failures=self.state.failures)
        self.state.failures, self.state.last_error, self.retry_at = 0, None, None
        self._note_counts(report, started)
        for rel in answered:
            self.ready.pop(rel, None)
        self.state.pending = len(self.ready) + len(self.tracker)
        self.state.last_sync = time.time()
        if self.metrics is not None:
            self.metrics.observe_reconcile(self.mirror.name, report, full=full)
            self.metrics.set_pending(self.mirror.name, self.state.pending)
        self.state.phase = "in sync" if report.in_sync else "not everything mirrored"
        if report.root_missing:
            await self._root_missing()
        else:
            self.root_was_missing = False
        if full:
            self.full_at = now + self.settings.full_reconcile_seconds
            self.state.last_full = time.time()
        if self.watcher is None:
            self.rescan_at = now + self.settings.rescan_seconds
        else:
            self.rescan_at = None
        _log_actions(self.log, report)
        self._log_problems(report)
        self._log_refused(report)
        self.log.info(
            "reconciled",
            reason=reason,
            full=full,
            listing=report.remote.listing,
            api_calls=report.api_calls,
            seconds=round(now - started, 3),
            exit_code=report.exit_code,
            **report.plan.counts(),
        )
        return report

    def _trusted_project(self, now: float) -> Project | None:
        """The project of the last count check if it is recent enough to trust the ledger."""
        if self.counts_checked is None:
            return None
        checked_at, project = self.counts_checked
        return project if now - checked_at < self.settings.count_check_seconds else None

    def _note_counts(self, report: MirrorReport, started: float) -> None:
        # A failed item may have left the project other than the ledger says: ask next time. A
        # round that is only not in sync for files held back or with problems keeps the trust
        # (the ledger still holds all that syncd did), or a steady drip of files would ask the
        # counts at every flush.
        if report.failures:
            self.counts_checked = None
        elif report.remote.listing != "ledger":  # this run asked the service (counts or listing)
            self.counts_checked = (started, report.remote.project)

    def _log_problems(self, report: MirrorReport) -> None:
        """Log each problem file once when it appears (path, reason, what to do) and once when
        it clears, not at every reconcile. A missing root changes nothing here: its files are
        neither fixed nor broken, only out of sight (root_missing says so)."""
        if report.root_missing:
            return
        current = {p.path: p for p in report.tracked_problems()}
        for path, problem in sorted(current.items()):
            if self.problems.get(path) != problem:
                self.log.warning(
                    "problem_found",
                    path=path,
                    kind=problem.kind,
                    reason=problem.detail,
                    advice=problem.advice,
                    since=report.problem_since.get(path, ""),
                )
        for path, problem in sorted(self.problems.items()):
            if path not in current:
                self.log.info("problem_cleared", path=path, kind=problem.kind)
        self.problems = current

    def _log_refused(self, report: MirrorReport) -> None:
        """Say when the guard starts refusing deletes (or refuses other ones), naming the first
        few files, and when it stops: once each, not at every reconcile."""
        refused = report.plan.refused
        if report.root_missing:
            return  # `root_missing` says it, once
        if refused is not None and self.held_back and refused.reasons == (GuardReason.READ_ERRORS,):
            return  # files still being written: the reconcile after they settle decides
        ids = frozenset(d.image_id.lower() for d in refused.images) if refused else frozenset()
        if ids == self.refused:
            return
        if refused is not None and ids:
            self.log.warning(
                "deletes_refused",
                images=len(ids),
                reasons=[str(r) for r in refused.reasons],
                advice=refused.message,
                first=[_where(report, d.image_id) for d in refused.images[:KEPT_EXAMPLES]],
            )
        else:
            self.log.info("deletes_no_longer_refused", images=len(self.refused))
        self.refused = ids

    async def _root_missing(self) -> None:
        """Say so (once until it comes back) and rescan for it: a watch on a folder that was
        removed sees nothing of the one mounted or restored in its place."""
        advice = "mount it, or fix `root` in the config; nothing is uploaded or deleted meanwhile"
        self.state.phase = f"root {self.root} does not exist ({advice})"
        if not self.root_was_missing:
            self.log.warning("root_missing", root=str(self.root), advice=advice)
        self.root_was_missing = True
        if self.watcher is not None:
            await asyncio.to_thread(self.stop_watcher)
            self.state.watching = False

    def _failed(self, reason: str, exc: SyncdError) -> None:
        self.state.failures += 1
        self.state.last_error = str(exc)
        delay = BACKOFF.delay(self.state.failures, self.rand)
        self.retry_at = time.monotonic() + delay
        self.log.warning(
            "reconcile_failed",
            reason=reason,
            error=str(exc),
            error_type=type(exc).__name__,
            attempt=self.state.failures,
            retry_in=round(delay, 2),
            pending=len(self.ready) + len(self.tracker),
        )


def _where(report: MirrorReport, image_id: str) -> dict[str, Any]:
    """A log line's fields naming one image by its file: `path` (its first file, or where its
    content was last seen, then with `gone`), `other_paths` (how many more), `image_id`."""
    return {**report.image_files(image_id).log_fields(), "image_id": image_id}


def _log_actions(log: structlog.typing.FilteringBoundLogger, report: MirrorReport) -> None:
    """One line per action taken, naming the image's file: where its content is now, or, for a
    file that is gone, where it was last seen (`path` is then that, and `gone` true)."""
    execution = report.execution
    if execution is None:
        return
    failed = {f.subject for f in execution.failures}
    failed.update(p for r in execution.rejected for p in r.paths)  # logged as problem_found

    the_plan = report.plan
    for adopt in the_plan.adopts:
        log.info("adopted", **_where(report, adopt.image_id))
    for up in the_plan.uploads:
        if not failed.intersection(up.paths):
            boxes = {"boxes": len(up.regions)} if up.regions else {}
            log.info("uploaded", path=up.paths[0], tags=list(up.tag_names), **boxes)
    for edit in the_plan.edit_regions:  # object detection: one line per image whose boxes moved
        if not failed.intersection(edit.paths):
            tags = sorted({r.tag for r in (*edit.deleted, *edit.create)}, key=str.casefold)
            log.info(
                "boxes_changed",
                **_where(report, edit.image_id),
                deleted=len(edit.delete),
                created=len(edit.create),
                tags=tags,
            )
    for rm in the_plan.remove_tags:
        if rm.image_id not in failed:
            log.info("untagged", **_where(report, rm.image_id), tags=list(rm.tag_names))
    for add in the_plan.add_tags:
        if add.image_id not in failed:
            log.info("tagged", **_where(report, add.image_id), tags=list(add.tag_names))
    if execution.skipped_deletes:
        return
    for gone in the_plan.delete_images:
        if gone.image_id not in failed:
            log.info("deleted", **_where(report, gone.image_id), reason=str(gone.reason))


@dataclass
class _Session:
    """One configuration's mirrors, running until asked to stop (a reload starts a new one)."""

    config: Config
    metrics: Metrics | None = None
    liveness: Liveness | None = None
    loops: list[_MirrorLoop] = field(default_factory=list)
    started: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        async with open_client(self.config.service, self.config.mirrors) as client:
            client.on_call = self._on_call
            self.loops = [
                _MirrorLoop(self.config, m, client, self.metrics, self.liveness)
                for m in self.config.mirrors
            ]
            self.started.set()
            await asyncio.gather(*(loop.run() for loop in self.loops))

    def _on_call(self, operation: str, outcome: str) -> None:
        """An API call was answered (or failed): progress for the loop that sent it."""
        if self.metrics is not None:
            self.metrics.observe_call(operation, outcome)
        beat = _current_beat.get()
        if beat is not None:
            beat()

    async def first_reconciles(self) -> None:
        await self.started.wait()
        await asyncio.gather(*(loop.first_done.wait() for loop in self.loops))

    def stop(self) -> None:
        for loop in self.loops:
            loop.stop()

    def describe(self) -> str:
        if not self.loops:
            return "starting"
        return "; ".join(loop.state.describe(loop.mirror.name) for loop in self.loops)

    def events_lost(self, message: str) -> None:
        for loop in self.loops:
            loop.events_lost(message)


class Daemon:
    """The process: signals, config reloads, systemd notifications, and the current session."""

    def __init__(
        self,
        config_path: Path,
        config: Config,
        notifier: Notifier,
        clock: Callable[[], float] = time.monotonic,
        ledgers: HeldLedgers | None = None,
    ) -> None:
        self.ledgers = ledgers
        self.config_path = config_path
        self.config = config
        self.notifier = notifier
        self.liveness = Liveness(config.daemon.stall_seconds, clock)
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # tests make it virtual
        self._stalled: dict[str, float] = {}  # the stuck loops while pings are held back
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._session: _Session | None = None
        # Served from the first config only: a reload does not move the endpoint.
        self.metrics = Metrics() if config.daemon.metrics_address else None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._on_stop, "SIGTERM")
        loop.add_signal_handler(signal.SIGINT, self._on_stop, "SIGINT")
        loop.add_signal_handler(signal.SIGHUP, self._reload.set)
        alarm = WatchAlarm(lambda message: loop.call_soon_threadsafe(self._events_lost, message))
        alarm.install()
        helpers = [
            asyncio.create_task(self.watch_progress()),
            asyncio.create_task(self._status_lines()),
        ]
        self._log_start()
        self._serve_metrics()
        try:
            while not self._stop.is_set():
                self.liveness.reset()
                self.liveness.stall_seconds = self.config.daemon.stall_seconds
                session = self._session = _Session(self.config, self.metrics, self.liveness)
                task = asyncio.create_task(session.run())
                # READY=1 at start, and again once a reloaded config's first reconciles are done.
                await self._send_ready(session, task)
                restart = await self._serve(session, task)
                await self._end(session, task)
                if not restart:
                    break
        finally:
            alarm.remove()
            for helper in helpers:
                helper.cancel()
            if self.metrics is not None:
                self.metrics.close()
            self.notifier.close()
        _log.info("stopped")

    def _serve_metrics(self) -> None:
        address = self.config.daemon.metrics_address
        if self.metrics is None or address is None:
            return
        try:
            self.metrics.serve(address)
        except OSError as exc:
            # A busy port should not stop the syncing; the warning says what to change.
            _log.warning("metrics_unavailable", address=address, error=exc.strerror)
            self.metrics = None
            return
        _log.info("metrics_serving", address=address, path="/metrics")

    def _log_start(self) -> None:
        _log.info(
            "started",
            pid=os.getpid(),
            config=str(self.config_path),
            mirrors=[m.name for m in self.config.mirrors],
            settle_seconds=self.config.daemon.settle_seconds,
            stall_seconds=self.config.daemon.stall_seconds,
            notify=self.notifier.enabled,
            watchdog_seconds=self.notifier.watchdog_interval,
        )
        read_timeout = self.config.service.read_timeout
        # Read defensively: the request deadline is a newer key than this check.
        deadline = getattr(self.config.service, "request_deadline_seconds", None) or read_timeout
        if self.config.daemon.stall_seconds <= deadline:
            _log.warning(
                "config_warning",
                warning=f"daemon.stall_seconds ({self.config.daemon.stall_seconds:g}) is not above "
                f"one request's deadline ({deadline:g} s): a healthy daemon waiting on one slow "
                "request can be taken for stalled and restarted by systemd's watchdog",
            )

    def _on_stop(self, name: str) -> None:
        if not self._stop.is_set():
            _log.info("stopping", signal=name)
            self.notifier.stopping()
            self._stop.set()
            # The backstop: whatever hangs (a thread hashing a huge file cannot be cancelled),
            # the process ends within the bound systemd and the user were promised.
            limit = self.config.daemon.shutdown_timeout_seconds
            timer = threading.Timer(limit, _exit_now, args=(limit,))
            timer.daemon = True
            timer.start()
        if self._session is not None:
            self._session.stop()

    def _events_lost(self, message: str) -> None:
        if self._session is not None:
            self._session.events_lost(message)

    async def _send_ready(self, session: _Session, task: asyncio.Task[None]) -> None:
        """READY=1 once every mirror's first reconcile is over (not if the session ended)."""
        first = asyncio.create_task(session.first_reconciles())
        stop = asyncio.create_task(self._stop.wait())
        await asyncio.wait({first, task, stop}, return_when=asyncio.FIRST_COMPLETED)
        first.cancel()
        stop.cancel()
        if task.done() or self._stop.is_set():
            return
        self.notifier.ready(session.describe())
        _log.info("ready", status=session.describe(), endpoint=self.config.service.endpoint)

    async def _serve(self, session: _Session, task: asyncio.Task[None]) -> bool:
        """Wait for a stop (return False) or an accepted reload (return True)."""
        while True:
            stop = asyncio.create_task(self._stop.wait())
            reload = asyncio.create_task(self._reload.wait())
            await asyncio.wait({task, stop, reload}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            reload.cancel()
            if self._stop.is_set():
                return False
            if task.done():
                task.result()  # a session only ends early by raising: let it surface
                return False
            self._reload.clear()
            self.notifier.reloading()
            try:
                new = await asyncio.to_thread(_load, self.config_path)
            except SyncdError as exc:
                _log.error("config_reload_rejected", error=str(exc), kept="the running config")
                self.notifier.ready(session.describe())
                continue
            if self.ledgers is not None:
                try:
                    self.ledgers.hold(new)
                except LedgerBusyError as exc:
                    _log.error("config_reload_rejected", error=str(exc), kept="the running config")
                    self.notifier.ready(session.describe())
                    continue
            for warning in new.warnings:
                _log.warning("config_warning", warning=warning)
            _log.info("config_reloaded", mirrors=[m.name for m in new.mirrors])
            self.config = new
            return True

    async def _end(self, session: _Session, task: asyncio.Task[None]) -> None:
        """Stop the session: let in-flight work finish within the budget, then cancel it."""
        session.stop()
        budget = self.config.daemon.shutdown_timeout_seconds
        grace = max(budget - _SHUTDOWN_MARGIN, budget / 2)
        done, _ = await asyncio.wait({task}, timeout=grace)
        if not done:
            _log.warning("shutdown_cancelling", after_seconds=grace)
            task.cancel()
            await asyncio.wait({task}, timeout=max(budget - grace - 0.5, 0.1))
        if task.done() and not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if isinstance(exc, SyncdError):
                raise exc
            _log.error("session_failed", error=repr(exc))

    async def watch_progress(self) -> None:
        """Judge progress (and ping WATCHDOG=1) until cancelled: at each ping when systemd asks
        for them; else only to log a stall, a quarter of the bound apart and no oftener than the
        idle loop beats (an idle daemon is not woken every second to learn nothing)."""
        while True:
            self.check_progress()
            interval = self.notifier.watchdog_interval
            if interval is None:
                interval = min(_IDLE_BEAT_SECONDS, self.liveness.stall_seconds / 4)
            await self.sleep(interval)

    def check_progress(self) -> None:
        """Ping WATCHDOG=1 if every mirror loop showed progress within the stall bound; else
        hold the pings back (systemd restarts the process), say so in STATUS= and log it once."""
        stuck = {} if self._stop.is_set() else self.liveness.stuck()  # stopping has its own bound
        if not stuck:
            if self._stalled:
                _log.info("progress_resumed", mirrors=sorted(self._stalled))
                self._stalled = {}
                self._send_status()
            if self.notifier.watchdog_interval is not None:
                self.notifier.watchdog()
            return
        if not self._stalled:
            _log.error(
                "stalled",
                mirrors=sorted(stuck),
                seconds_without_progress=round(max(stuck.values()), 1),
                bound_seconds=self.liveness.stall_seconds,
                action="WATCHDOG=1 pings stopped: systemd's watchdog restarts syncd",
            )
        self._stalled = stuck
        self._send_status()

    def describe(self) -> str:
        """The STATUS= text: each mirror's state, led by the stall if there is one."""
        text = self._session.describe() if self._session is not None else "starting"
        if self._stalled:
            names = ", ".join(sorted(self._stalled))
            seconds = max(self._stalled.values())
            text = f"stalled: no progress for {seconds:.0f} s in {names}; {text}"
        return text

    def _send_status(self) -> None:
        if not self._stop.is_set():
            self.notifier.status(self.describe())

    async def _status_lines(self) -> None:
        if not self.notifier.enabled:
            return
        while True:
            await asyncio.sleep(1.0)
            if self._session is not None:
                self._send_status()


def _exit_now(limit: float) -> None:
    _log.error("shutdown_timeout", seconds=limit, action="exiting now")
    sys.stderr.flush()
    os._exit(0)  # a clean stop as systemd sees it: the next start finishes the work
