"""The settle rule without sleeping: SettleTracker and hold_unsettled with a fake clock and stat,
and the batching rule (flush_due, settle_poll_in) played in virtual time."""

from __future__ import annotations

import os
import random
from pathlib import Path

from syncd.core.model import LocalFile, LocalSnapshot, MarkerState, ProblemKind
from syncd.daemon.loop import BATCH_SIZE
from syncd.watch import SettleTracker, accepts_path, flush_due, hold_unsettled, settle_poll_in


class FakeDisk:
    def __init__(self) -> None:
        self.now = 0.0
        self.files: dict[str, tuple[int, int]] = {}

    def clock(self) -> float:
        return self.now

    def stat(self, path: str) -> os.stat_result:
        if path not in self.files:
            raise FileNotFoundError(path)
        size, mtime = self.files[path]
        return os.stat_result((0o100644, 0, 0, 1, 0, 0, size, 0, 0, 0, 0, 0, mtime, 0))


def test_a_path_settles_only_after_its_stat_is_still_for_the_settle_time() -> None:
    disk = FakeDisk()
    tracker = SettleTracker(Path("/r"), 2.0, stat=disk.stat, clock=disk.clock)
    disk.files["/r/a.jpg"] = (10, 1)
    tracker.touch("a.jpg")
    assert tracker.poll() == []
    disk.now, disk.files["/r/a.jpg"] = 1.5, (20, 2)  # still growing
    assert tracker.poll() == []
    disk.now = 3.0  # 1.5 s since the last change
    assert tracker.poll() == []
    disk.now = 3.6
    assert tracker.poll() == ["a.jpg"]
    assert len(tracker) == 0


def test_a_deleted_path_settles_too() -> None:
    disk = FakeDisk()
    tracker = SettleTracker(Path("/r"), 1.0, stat=disk.stat, clock=disk.clock)
    tracker.touch("gone.jpg")
    tracker.poll()
    disk.now = 1.0
    assert tracker.poll() == ["gone.jpg"]


def _snapshot(*files: tuple[str, int]) -> LocalSnapshot:
    return LocalSnapshot(
        root="/r",
        root_exists=True,
        marker=MarkerState.PRESENT,
        files=tuple(LocalFile(p, 1, mtime, 1, "h" + p) for p, mtime in files),
        digest="digest-of-the-whole-tree",
    )


def test_hold_keeps_back_unsettled_and_recently_written_files() -> None:
    second = 1_000_000_000
    local = _snapshot(
        ("Dog/old.jpg", 0),  # written long ago
        ("Dog/fresh.jpg", 99 * second),  # written 1 s ago, no event seen yet
        ("Cat/moved.jpg", 0),  # under a folder still settling
        ("Dog/settled.jpg", 99 * second),  # fresh, but the tracker saw it settle
    )
    held_back, held = hold_unsettled(
        local, {"Cat"}, {"Dog/settled.jpg"}, settle_ns=2 * second, now_ns=100 * second
    )
    assert sorted(held) == ["Cat/moved.jpg", "Dog/fresh.jpg"]
    assert [f.path for f in held_back.files] == ["Dog/old.jpg", "Dog/settled.jpg"]
    # Held files are read errors this run: never uploaded, and the guard deletes nothing.
    assert all(s.problem.kind is ProblemKind.CHANGED_WHILE_READING for s in held_back.skipped)
    assert held_back.has_read_errors
    # The walk's digest describes files this run does not sync: a run that ends in sync must not
    # vouch that the tree is unchanged, or the next run would skip the held files for good.
    assert held_back.digest is None


def test_events_on_hidden_or_foreign_files_are_ignored() -> None:
    exts = (".jpg", ".png")
    assert accepts_path("Dog/a.JPG", False, exts)
    assert accepts_path("Dog", True, exts)
    assert not accepts_path(".syncd-root", False, exts)
    assert not accepts_path("Dog/.a.jpg.swp", False, exts)
    assert not accepts_path("Dog/a.jpg.part", False, exts)
    assert not accepts_path("../elsewhere.jpg", False, exts)


def _flushes(
    drops: list[tuple[float, str]], *, settle: float, max_delay: float
) -> list[tuple[float, dict[str, float]]]:
    """Play `drops` (time, path; in time order) through the settle and batching rules in virtual
    time, waking as the daemon's loop does: at each event, when a dirty path is to be polled, and
    at the batch's deadline. Return each flush: its time, and its paths with when each settled."""
    disk = FakeDisk()
    tracker = SettleTracker(Path("/r"), settle, stat=disk.stat, clock=disk.clock)
    ready: dict[str, float] = {}
    flushes: list[tuple[float, dict[str, float]]] = []
    pending = list(drops)
    while pending or len(tracker) or ready:
        wakes = [pending[0][0]] if pending else []
        poll_in = settle_poll_in(tracker.next_check())
        if poll_in is not None:
            wakes.append(disk.now + poll_in)
        if ready:
            wakes.append(min(ready.values()) + max_delay)
        disk.now = max(disk.now, min(wakes))
        while pending and pending[0][0] <= disk.now:
            path = pending.pop(0)[1]
            disk.files[f"/r/{path}"] = (1, int(disk.now * 1e9))
            tracker.touch(path)
        for rel in tracker.poll():
            ready.setdefault(rel, disk.now)
        due = flush_due(
            ready.values(),
            tracker.next_check(),
            disk.now,
            batch_size=BATCH_SIZE,
            max_delay=max_delay,
        )
        if due:
            flushes.append((disk.now, ready))
            ready = {}
    return flushes


def test_each_file_of_a_drip_leaves_moments_after_it_settles() -> None:
    # The bench's D: 200 files, one every 0-0.4 s. Some file is nearly always settling, but a
    # settled file waits for another only if that one settles within moments, so no file waits
    # anywhere near max_delay for the next (it used to: chained 0.2 s joins, up to 1 s).
    rng = random.Random(7)
    drops, now = [], 0.0
    for n in range(200):
        now += rng.uniform(0, 0.4)
        drops.append((now, f"Dog/drop{n:03}.jpg"))
    dropped = {path: at for at, path in drops}

    flushes = _flushes(drops, settle=2.0, max_delay=1.0)

    sent = {path: at for at, paths in flushes for path in paths}
    assert sent.keys() == dropped.keys()
    latencies = sorted(sent[p] - dropped[p] for p in dropped)
    assert latencies[0] >= 2.0  # never read before it has been still for the settle time
    assert latencies[-1] <= 2.0 + 0.25, latencies[-10:]


def test_a_burst_leaves_in_one_flush() -> None:
    # 200 files within 10 ms (a folder copied in) settle together: one flush sends them all (the
    # executor's upload calls then carry full batches of 64).
    drops = [(n * 0.00005, f"Cat/c{n:03}.jpg") for n in range(200)]
    flushes = _flushes(drops, settle=2.0, max_delay=1.0)
    assert [len(paths) for _, paths in flushes] == [200]


def test_a_fast_stream_of_files_still_fills_batches() -> None:
    # A file every 10 ms for 3 s: each settles just after the one before, so they keep joining
    # until a batch is full.
    drops = [(n * 0.01, f"Cam/f{n:03}.jpg") for n in range(300)]
    flushes = _flushes(drops, settle=2.0, max_delay=1.0)
    sizes = [len(paths) for _, paths in flushes]
    assert sum(sizes) == 300 and min(sizes[:-1]) >= BATCH_SIZE, sizes
