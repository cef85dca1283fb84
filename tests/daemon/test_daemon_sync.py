"""`syncd run` follows the tree: drops, bulk drops, slow writes, moves, renames, deletes."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from tests.daemon.conftest import World, new_project
from tests.daemon.support import image_count
from tests.support.images import image_bytes, write_image
from tests.support.project_view import content, remote_images, sha256


def _tags_by_sha(world: World) -> dict[str, frozenset[str]]:
    return content(remote_images(world.http, world.project_id))


def test_one_dropped_file_is_uploaded_and_tagged(world: World) -> None:
    daemon = world.start_daemon()
    (ready,) = daemon.wait_event("ready")
    assert ready["endpoint"] == world.url  # the ready line names the service it syncs into
    data = write_image(world.root / "Dog" / "rex.jpg", 1)
    daemon.wait_for(lambda: _tags_by_sha(world) == {sha256(data): {"Dog"}}, "rex.jpg tagged Dog")
    assert world.uploads.images == 1
    uploaded = daemon.wait_event("uploaded")
    assert uploaded[0]["path"] == "Dog/rex.jpg" and uploaded[0]["tags"] == ["Dog"]
    assert daemon.stop() == 0


def test_a_bulk_drop_is_uploaded_in_full_batches(world: World) -> None:
    daemon = world.start_daemon()
    daemon.wait_ready()
    staging = world.tmp / "staging" / "Cat"
    expected = {sha256(write_image(staging / f"c{i:03}.jpg", 1000 + i)) for i in range(500)}
    os.rename(staging, world.root / "Cat")  # 500 files appear at once
    daemon.wait_for(lambda: image_count(world.http, world.project_id) == 500, "500 images")
    assert set(_tags_by_sha(world)) == expected
    # One tag, 500 files: full batches of 64, never a trickle of small ones. The minimum is 8
    # calls; on a loaded machine the watcher may report a few files of the burst after the
    # others have settled, and those go in one more call of their own.
    batches = sorted(world.uploads.batches, reverse=True)
    assert sum(batches) == 500 and batches[:7] == [64] * 7 and len(batches) <= 9, batches
    assert daemon.stop() == 0


def test_a_slowly_written_file_is_uploaded_once_complete(world: World) -> None:
    world.write_config(daemon={"settle_seconds": 1.0})
    daemon = world.start_daemon()
    daemon.wait_ready()
    data = image_bytes(7, size=(400, 300))
    target = world.root / "Dog" / "slow.jpg"
    target.parent.mkdir()
    step = len(data) // 20 + 1
    chunks = [data[i : i + step] for i in range(0, len(data), step)]
    with target.open("wb") as f:  # a camera writing for ~5 s, pausing 0.25 s between chunks
        for chunk in chunks:
            f.write(chunk)
            f.flush()
            time.sleep(0.25)
    daemon.wait_for(lambda: world.uploads.images >= 1, "an upload")
    daemon.wait_event("reconciled", count=2)  # startup + the flush that sent the file
    assert world.uploads.images == 1, world.uploads.batches
    assert _tags_by_sha(world) == {sha256(data): {"Dog"}}
    assert daemon.stop() == 0


def test_moves_and_folder_renames_are_retags_not_uploads(world: World) -> None:
    a = write_image(world.root / "Dog" / "a.jpg", 11)
    b = write_image(world.root / "Dog" / "b.jpg", 12)
    c = write_image(world.root / "Cat" / "c.jpg", 13)
    daemon = world.start_daemon()
    daemon.wait_ready()
    ids_before = {i.sha256: i.id for i in remote_images(world.http, world.project_id)}
    assert world.uploads.images == 3

    os.rename(world.root / "Dog" / "a.jpg", world.root / "Cat" / "a.jpg")
    os.rename(world.root / "Cat", world.root / "Kitty")
    want = {sha256(a): {"Kitty"}, sha256(b): {"Dog"}, sha256(c): {"Kitty"}}
    daemon.wait_for(lambda: _tags_by_sha(world) == want, "a.jpg and Cat/ retagged to Kitty")
    assert world.uploads.images == 3  # nothing sent again
    ids_after = {i.sha256: i.id for i in remote_images(world.http, world.project_id)}
    assert ids_after == ids_before
    assert daemon.stop() == 0


def test_deleted_files_and_folders_are_deleted_remotely(world: World) -> None:
    keep = write_image(world.root / "Dog" / "keep.jpg", 21)
    write_image(world.root / "Dog" / "gone.jpg", 22)
    write_image(world.root / "Cat" / "c1.jpg", 23)
    write_image(world.root / "Cat" / "c2.jpg", 24)
    daemon = world.start_daemon()
    daemon.wait_ready()
    assert image_count(world.http, world.project_id) == 4

    (world.root / "Dog" / "gone.jpg").unlink()
    shutil.rmtree(world.root / "Cat")
    daemon.wait_for(lambda: _tags_by_sha(world) == {sha256(keep): {"Dog"}}, "3 images deleted")
    assert daemon.stop() == 0


def test_several_mirrors_run_side_by_side(world: World) -> None:
    second_root = world.tmp / "second"
    second_root.mkdir()
    other_project = new_project(world.http, "second")
    world.write_config(
        mirrors=[
            {"name": "one", "root": str(world.root), "project_id": world.project_id},
            {"name": "two", "root": str(second_root), "project_id": other_project},
        ]
    )
    daemon = world.start_daemon()
    daemon.wait_ready()
    one = write_image(world.root / "Dog" / "x.jpg", 31)
    two = write_image(second_root / "Cat" / "y.jpg", 32)
    daemon.wait_for(lambda: _tags_by_sha(world) == {sha256(one): {"Dog"}}, "mirror one")
    daemon.wait_for(
        lambda: content(remote_images(world.http, other_project)) == {sha256(two): {"Cat"}},
        "mirror two",
    )
    assert {Path(p).name for p in os.listdir(world.tmp / "state")} >= {
        "one.ledger.sqlite",
        "two.ledger.sqlite",
    }
    assert daemon.stop() == 0


def test_the_ready_line_names_the_embedded_endpoint_in_clear(world: World) -> None:
    # The embedded emulator takes any key; a fixed word as that key was scrubbed from every log
    # line as if it were a secret, so the ready line read `"endpoint": "***"`.
    world.write_config(service={"endpoint": "embedded"})
    daemon = world.start_daemon(env={"SYNCD_TRAINING_KEY": ""})
    (ready,) = daemon.wait_event("ready")
    assert ready["endpoint"] == "embedded"
    assert daemon.stop() == 0
