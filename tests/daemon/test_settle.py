"""The settle rule without sleeping: SettleTracker and hold_unsettled with a fake clock and stat."""

from __future__ import annotations

import os
from pathlib import Path

from syncd.core.model import LocalFile, LocalSnapshot, MarkerState, ProblemKind
from syncd.watch import SettleTracker, accepts_path, hold_unsettled


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
