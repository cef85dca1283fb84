"""Folder watching for `syncd run`: watchdog events become coalesced dirty paths that must settle.

Public names: SettleTracker, flush_due, settle_poll_in, Watcher, WatchAlarm, hold_unsettled,
accepts_path, make_observer, watch_failure_advice.

Events are hints, never facts: they only mark a path (relative to the root, posix) dirty in a
`SettleTracker` the daemon's loop owns. A dirty path counts as settled once its (size, mtime)
has not changed for `settle` seconds; the daemon then rescans the tree and plans as usual, with
`hold_unsettled` holding back whatever is still being written. The tracker and the hold rule
take their clocks and `stat` as parameters, so they are tested without sleeping, and so is the
batching rule (`flush_due`, `settle_poll_in`: when settled paths are sent).
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import time
from collections.abc import Callable, Collection, Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from syncd.core.model import LocalSnapshot, Problem, ProblemKind, Skipped

_GONE = (-1, -1)  # the stat of a path that does not exist (a deletion settles like a change)
_UNSEEN = (-2, -2)  # not stat'ed yet

TICK_MAX = 0.5  # seconds between polls of dirty paths while any are settling
# Poll this long after the first dirty path is due: the timer does not wake to the microsecond,
# and the events of one burst (a folder of files moved in: hundreds of events over a few ms)
# settle in the same poll. Every file waits this long after its settle time.
SETTLE_SLACK = 0.02
# Settled paths wait for a dirty one only if it may settle within this long: the rest of a burst
# and a fast stream of files (a copy: a file every few ms) join until the batch is full or
# max_delay_seconds, while a drip (a file every few tenths of a second) goes file by file. Each
# join can be followed by another, so this is kept to moments: at 0.2 s, a drip of a file every
# 0-0.4 s chained its files into one flush a second (the bench's D: p95 settle + 0.9 s).
JOIN_SECONDS = 0.05


def _stat_key(path: str, stat: Callable[[str], os.stat_result]) -> tuple[int, int]:
    try:
        st = stat(path)
    except OSError:
        return _GONE
    return (st.st_size, st.st_mtime_ns)


@dataclasses.dataclass
class _Dirty:
    stat: tuple[int, int]
    changed_at: float


class SettleTracker:
    """Dirty paths under one root, each with the time its stat last changed."""

    def __init__(
        self,
        root: Path,
        settle: float,
        *,
        stat: Callable[[str], os.stat_result] = os.stat,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root = root
        self.settle = settle
        self._stat = stat
        self._clock = clock
        self._dirty: dict[str, _Dirty] = {}

    def touch(self, rel: str) -> None:
        """An event for `rel`: it is dirty, and its settle time starts again."""
        self._dirty[rel] = _Dirty(_UNSEEN, self._clock())

    def add(self, rel: str) -> None:
        """Make `rel` dirty unless it already is (its settle time keeps running)."""
        if rel not in self._dirty:
            self.touch(rel)

    def poll(self) -> list[str]:
        """Stat every dirty path; return (and forget) those unchanged for `settle` seconds."""
        now = self._clock()
        settled = []
        for rel, dirty in list(self._dirty.items()):
            key = _stat_key(str(self.root / rel), self._stat)
            if key != dirty.stat:
                if dirty.stat is not _UNSEEN:
                    dirty.changed_at = now
                dirty.stat = key
            elif now - dirty.changed_at >= self.settle:
                settled.append(rel)
                del self._dirty[rel]
        return settled

    def unsettled(self) -> frozenset[str]:
        return frozenset(self._dirty)

    def next_check(self) -> float | None:
        """Seconds until a poll may find something settled (None: nothing is dirty)."""
        if not self._dirty:
            return None
        soonest = min(d.changed_at for d in self._dirty.values()) + self.settle
        return max(0.0, soonest - self._clock())

    def __len__(self) -> int:
        return len(self._dirty)


def flush_due(
    settled_at: Collection[float],
    next_settle: float | None,
    now: float,
    *,
    batch_size: int,
    max_delay: float,
) -> bool:
    """True if the settled paths (`settled_at`: when each one settled) are to be sent now.

    `next_settle` is the time until a dirty path may settle (`SettleTracker.next_check`). They
    leave as one full batch, `max_delay` after the first one settled, or at once when no dirty
    path could settle in time to join them (within JOIN_SECONDS, and before that deadline).
    """
    if not settled_at:
        return False
    if len(settled_at) >= batch_size:
        return True
    deadline = min(settled_at) + max_delay
    if now >= deadline:
        return True
    # Waiting only pays if a path still settling can join soon, and before the deadline (a file
    # with no event yet needs a whole settle time, longer than max_delay by default): a lone drop
    # and each file of a drip go at once, a burst still leaves in full batches.
    return next_settle is None or next_settle > JOIN_SECONDS or now + next_settle > deadline


def settle_poll_in(next_settle: float | None) -> float | None:
    """Seconds until the dirty paths are next polled, given `SettleTracker.next_check`."""
    return None if next_settle is None else min(next_settle + SETTLE_SLACK, TICK_MAX)


def _under(rel: str, paths: Collection[str]) -> bool:
    """True if `rel` or a folder above it is in `paths`."""
    if rel in paths:
        return True
    parts = PurePosixPath(rel).parts
    return any("/".join(parts[:i]) in paths for i in range(1, len(parts)))


def hold_unsettled(
    local: LocalSnapshot,
    unsettled: Collection[str],
    settled: Collection[str],
    *,
    settle_ns: int,
    now_ns: int,
) -> tuple[LocalSnapshot, list[str]]:
    """Return `local` with files still being written held back, and the held paths.

    A file is held if it (or a folder above it) is dirty and unsettled, or if it is not known to
    have settled and its mtime is within `settle_ns` of `now_ns` (a write the watcher has not
    reported yet, or no watcher at all). A held file becomes a `Skipped` entry with a read-error
    kind: its content is unknown this run, so nothing is uploaded from it and the planner's guard
    deletes nothing that run (the held file may be the new home of content that looks deleted).
    """
    kept, held = [], []
    for f in local.files:
        recent = abs(now_ns - f.mtime_ns) < settle_ns and f.path not in settled
        if recent or _under(f.path, unsettled):
            held.append(f.path)
        else:
            kept.append(f)
    if not held:
        return local, []
    problem = Problem(ProblemKind.CHANGED_WHILE_READING, "still being written; waiting to settle")
    skipped = tuple(sorted((*local.skipped, *(Skipped(p, problem) for p in held)), key=_path))
    # No digest: the tree as walked is not what this run will sync (see LocalSnapshot.digest).
    return dataclasses.replace(local, files=tuple(kept), skipped=skipped, digest=None), held


def _path(s: Skipped) -> str:
    return s.path


def accepts_path(rel: str, is_directory: bool, extensions: Iterable[str]) -> bool:
    """True if an event on `rel` can matter: not hidden (the marker, editors' temp files) and, for
    a file, one of the mirrored extensions (a `.part` file counts once renamed)."""
    if not rel or rel == "." or rel.startswith("../"):
        return False
    if any(part.startswith(".") for part in rel.split("/")):
        return False
    if is_directory:
        return True
    return PurePosixPath(rel).suffix.lower() in {e.lower() for e in extensions}


def make_observer() -> BaseObserver:
    """Return a new watchdog observer (inotify on Linux). The seam the watch-limit test replaces."""
    return Observer()


def watch_failure_advice(exc: OSError) -> str:
    """Say which limit an observer failure hit and how to raise it."""
    if exc.errno == errno.ENOSPC:
        return (
            "inotify watch limit reached (fs.inotify.max_user_watches; one watch per folder)."
            " Raise it: `sudo sysctl fs.inotify.max_user_watches=524288`, and make it permanent in"
            " /etc/sysctl.d/90-syncd.conf"
        )
    if exc.errno == errno.EMFILE:
        return (
            "the inotify instance limit is reached (fs.inotify.max_user_instances). Raise it:"
            " `sudo sysctl fs.inotify.max_user_instances=1024`, and make it permanent in"
            " /etc/sysctl.d/90-syncd.conf"
        )
    if exc.errno == errno.ENOENT:
        return "the root folder does not exist"
    return f"the folder watcher failed: {exc.strerror or exc}"


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return  # reads change nothing
        if getattr(event, "is_synthetic", False):
            # watchdog's own walk of a folder moved in (one event per file, made after the
            # folder's): `report` walked it already, at once; these would restart the settle
            # time of each file as they trickle in, splitting the folder's files into flushes.
            return
        if event.is_directory and event.event_type == "modified":
            # A folder's mtime moves whenever an entry is added or removed, and each entry
            # reports its own event; held as dirty, the folder would hold back every file under
            # it for as long as files keep arriving.
            return
        paths = [event.src_path, getattr(event, "dest_path", "")]
        self.watcher.report(
            [os.fsdecode(p) for p in paths if p], is_directory=bool(event.is_directory)
        )


class Watcher:
    """A recursive watchdog observer on one root, reporting relative paths that may matter."""

    def __init__(
        self,
        root: Path,
        extensions: Iterable[str],
        on_paths: Callable[[list[str]], None],
    ) -> None:
        self.root = root
        self.extensions = tuple(extensions)
        self.on_paths = on_paths  # called on watchdog's thread
        self._observer: BaseObserver | None = None

    def start(self) -> None:
        """Start watching; raise OSError if the observer cannot (root missing, inotify limits)."""
        observer = make_observer()
        try:
            observer.schedule(_Handler(self), str(self.root), recursive=True)
            observer.start()
        except BaseException:
            _stop_quietly(observer, 1.0)
            raise
        self._observer = observer

    def report(self, paths: list[str], *, is_directory: bool) -> None:
        rels = []
        for path in paths:
            rel = os.path.relpath(path, self.root).replace(os.sep, "/")
            if not accepts_path(rel, is_directory, self.extensions):
                continue
            if is_directory and os.path.isdir(path):
                # A folder created or moved in: its files settle one by one (a folder's own
                # mtime moves with every entry, so it would never settle while files arrive).
                rels += self._files_under(path)
            else:
                rels.append(rel)  # a file, or a folder gone (deleted or moved away)
        if rels:
            self.on_paths(rels)

    def _files_under(self, folder: str) -> list[str]:
        found = []
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                rel = os.path.relpath(os.path.join(dirpath, name), self.root)
                rel = rel.replace(os.sep, "/")
                if accepts_path(rel, False, self.extensions):
                    found.append(rel)
        return found

    def alive(self) -> bool:
        """False once the observer or one of its emitter threads has died."""
        observer = self._observer
        if observer is None or not observer.is_alive():
            return False
        return all(emitter.is_alive() for emitter in observer.emitters)

    def stop(self, timeout: float = 1.0) -> None:
        if self._observer is not None:
            _stop_quietly(self._observer, timeout)
            self._observer = None


def _stop_quietly(observer: BaseObserver, timeout: float) -> None:
    try:
        observer.stop()
        if observer.is_alive():
            observer.join(timeout)
    except (OSError, RuntimeError):
        pass


class WatchAlarm(logging.Handler):
    """Hears watchdog's own warnings (inotify queue overflow, watches it could not rebuild): events
    were lost, so `on_alarm(message)` asks for a rescan."""

    LOGGERS = ("watchdog.observers.inotify", "watchdog.observers.inotify_c")

    def __init__(self, on_alarm: Callable[[str], Any]) -> None:
        super().__init__(level=logging.WARNING)
        self.on_alarm = on_alarm

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.on_alarm(record.getMessage())
        except Exception:  # a logging handler must not raise into watchdog's thread
            self.handleError(record)

    def install(self) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).addHandler(self)

    def remove(self) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).removeHandler(self)
