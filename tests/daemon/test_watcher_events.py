"""What the watcher (syncd.watch.Watcher) reports for real inotify events."""

from __future__ import annotations

import os
from pathlib import Path

from syncd.watch import Watcher
from tests.daemon.support import wait_until


def test_a_folder_moved_in_reports_each_of_its_files_once(tmp_path: Path) -> None:
    # The watcher walks a folder moved in as soon as it hears of it. watchdog then makes an event
    # of its own for each file in it, a little later: reported again, those restarted each file's
    # settle time as they trickled in, and a folder's files left in more flushes than one.
    root, staging = tmp_path / "root", tmp_path / "staging" / "Cat"
    root.mkdir()
    staging.mkdir(parents=True)
    for n in range(50):
        (staging / f"c{n:02}.jpg").write_bytes(b"jpeg")
    reported: list[str] = []
    watcher = Watcher(root, (".jpg",), reported.extend)  # on watchdog's thread
    watcher.start()
    try:
        os.rename(staging, root / "Cat")
        (root / "after.jpg").write_bytes(b"jpeg")  # its events come after all of the move's
        wait_until(lambda: "after.jpg" in reported, "the event of after.jpg")
    finally:
        watcher.stop()
    moved = [rel for rel in reported if rel.startswith("Cat/")]
    assert sorted(moved) == [f"Cat/c{n:02}.jpg" for n in range(50)]
