"""Where the trash puts an original: at its last known paths, else where `pull` would put it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from syncd.trash import Trash, trash_folder

JPEG = b"\xff\xd8\xff\xe0"


def test_the_folder_is_dated_in_utc_without_colons(tmp_path: Path) -> None:
    when = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert trash_folder(tmp_path, when) == tmp_path / "2026-03-04T050607Z"


def test_known_paths_are_used_and_unsafe_ones_fall_back(tmp_path: Path) -> None:
    trash = Trash(
        tmp_path,
        {"i1": ("Dog/a.jpg", "Cat/a.jpg"), "i2": ("../../etc/x.jpg",)},
        lambda image_id: ("Bird",),
    )
    assert trash.targets("I1", JPEG) == [tmp_path / "Dog/a.jpg", tmp_path / "Cat/a.jpg"]
    # a path that would leave the trash folder is never written: the tag's folder instead
    assert trash.targets("i2", JPEG) == [tmp_path / "Bird/i2.jpg"]
    # no known path (the run that saw the file go was cut short): named by id, in its tag folder
    assert trash.targets("i3", b"\x89PNG\r\n\x1a\n") == [tmp_path / "Bird/i3.png"]
    untagged = Trash(tmp_path, {}, lambda image_id: ("",))
    assert untagged.targets("i4", b"GIF89a") == [tmp_path / "i4.gif"]
