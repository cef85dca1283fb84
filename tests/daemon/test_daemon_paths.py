"""The daemon's log lines about an image name its file (issue 15): a retag names where the file
is now, a delete where it was, an adoption the file that holds the content."""

from __future__ import annotations

import os
import time

from tests.daemon.conftest import World
from tests.support.images import image_bytes, write_image
from tests.support.project_view import remote_images, sha256


def _ids(world: World) -> dict[str, str]:
    return {i.sha256: i.id for i in remote_images(world.http, world.project_id)}


def test_retag_delete_and_adopt_log_lines_name_the_path_and_image(world: World) -> None:
    moved = write_image(world.root / "Dog" / "a.jpg", 31)
    gone = write_image(world.root / "Dog" / "gone.jpg", 32)
    # The image to adopt appears in the project while the daemon runs: with the counts asked at
    # every flush it is seen at once (by default, at the next count check, within a minute).
    world.write_config(daemon={"count_check_seconds": 0})
    daemon = world.start_daemon()
    daemon.wait_ready()
    ids = _ids(world)

    (world.root / "Cat").mkdir()
    os.rename(world.root / "Dog" / "a.jpg", world.root / "Cat" / "a.jpg")  # a retag
    (world.root / "Dog" / "gone.jpg").unlink()
    daemon.wait_for(lambda: daemon.events("deleted"), "a 'deleted' line")

    (deleted,) = daemon.events("deleted")
    assert deleted["path"] == "Dog/gone.jpg" and deleted["image_id"] == ids[sha256(gone)], deleted
    daemon.wait_event("tagged")
    for event in (*daemon.events("untagged"), *daemon.events("tagged")):
        assert event["path"] == "Cat/a.jpg" and event["image_id"] == ids[sha256(moved)], event

    data = image_bytes(33)
    r = world.http.post(
        f"/projects/{world.project_id}/images",
        files={"imageData": ("x.jpg", data, "image/jpeg")},
    )
    assert r.status_code == 200, r.text
    foreign_id = str(r.json()["images"][0]["image"]["id"])
    (world.root / "Cat" / "same.jpg").write_bytes(data)
    daemon.wait_for(lambda: daemon.events("adopted"), "an 'adopted' line")

    (adopted,) = daemon.events("adopted")
    assert adopted["path"] == "Cat/same.jpg" and adopted["image_id"] == foreign_id, adopted
    assert daemon.stop() == 0


def test_refused_deletes_are_logged_once_with_their_paths_and_once_when_they_clear(
    world: World,
) -> None:
    world.write_config(mirror={"guard": {"max_delete": 2}})
    birds = {
        f"Bird/b{i}.jpg": write_image(world.root / "Bird" / f"b{i}.jpg", 40 + i) for i in range(3)
    }
    write_image(world.root / "Dog" / "d.jpg", 45)
    daemon = world.start_daemon()
    daemon.wait_ready()
    ids = _ids(world)

    os.rename(world.root / "Bird", world.tmp / "Bird")  # 3 deletes at once: over max_delete
    (refused,) = daemon.wait_event("deletes_refused")
    assert refused["level"] == "warning" and refused["images"] == 3, refused
    assert refused["reasons"] == ["too_many"] and "--allow-mass-delete" in refused["advice"]
    named = {(f["path"], f["image_id"]) for f in refused["first"]}
    assert named == {(rel, ids[sha256(data)]) for rel, data in birds.items()}, refused
    assert all(f["gone"] for f in refused["first"]), refused

    write_image(world.root / "Dog" / "new.jpg", 49)  # another reconcile, the same refusal
    daemon.wait_for(lambda: len(remote_images(world.http, world.project_id)) == 5, "new.jpg sent")
    daemon.wait_event("reconciled", count=3)
    assert len(daemon.events("deletes_refused")) == 1  # said once, not at every reconcile

    os.rename(world.tmp / "Bird", world.root / "Bird")  # back: nothing to delete any more
    (cleared,) = daemon.wait_event("deletes_no_longer_refused")
    assert cleared["images"] == 3, cleared
    assert daemon.stop() == 0


def test_a_delete_waiting_for_a_file_being_written_is_not_reported_as_refused(
    world: World,
) -> None:
    world.write_config(daemon={"settle_seconds": 1.0})
    write_image(world.root / "Dog" / "keep.jpg", 51)
    write_image(world.root / "Dog" / "gone.jpg", 52)
    daemon = world.start_daemon()
    daemon.wait_ready()
    # Both are uploaded before one goes: a daemon that starts within the settle time of their
    # writes holds them back at first, and sends them once they settle.
    daemon.wait_event("uploaded", count=2)

    data = image_bytes(53, size=(400, 300))
    step = len(data) // 16 + 1
    (world.root / "Dog" / "gone.jpg").unlink()
    with (world.root / "Dog" / "slow.jpg").open("wb") as f:  # ~4 s of writing, 0.25 s pauses
        for start in range(0, len(data), step):
            f.write(data[start : start + step])
            f.flush()
            time.sleep(0.25)
    (deleted,) = daemon.wait_event("deleted")
    daemon.wait_event("uploaded", count=3)  # keep, gone, then slow

    assert deleted["path"] == "Dog/gone.jpg", deleted
    assert daemon.events("held_back"), daemon.log()  # the delete did wait for slow.jpg
    assert daemon.events("deletes_refused") == [], daemon.log()  # a wait, not a refusal
    assert daemon.stop() == 0


def test_a_failed_delete_is_logged_with_the_path_of_its_image(world: World) -> None:
    trash = world.tmp / "trash"
    trash.write_text("not a folder\n")  # the original cannot be kept, so it is not deleted
    world.write_config(mirror={"trash_dir": str(trash)})
    write_image(world.root / "Dog" / "keep.jpg", 61)
    gone = write_image(world.root / "Dog" / "gone.jpg", 62)
    daemon = world.start_daemon()
    daemon.wait_ready()
    image_id = _ids(world)[sha256(gone)]

    (world.root / "Dog" / "gone.jpg").unlink()
    (failed,) = daemon.wait_event("item_failed")

    assert failed["operation"] == "trash" and failed["subject"] == image_id, failed
    assert failed["path"] == "Dog/gone.jpg" and failed["gone"] is True, failed
    assert daemon.stop() == 0
