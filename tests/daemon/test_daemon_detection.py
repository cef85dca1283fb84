"""`syncd run` on a detection mirror: an annotation file's create, change or delete is an event
for its image; a change to a COCO file (outside the root) re-diffs only the images whose entries
changed. Nothing is uploaded again for boxes."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.daemon.conftest import World
from tests.support.detection import (
    DATASET,
    Item,
    detection_project,
    expected_boxes,
    sdk_boxes,
    without_ids,
    write_dataset,
    write_label,
)


def _boxes(world: World) -> dict[str, tuple[tuple[str, tuple[float, float, float, float]], ...]]:
    return without_ids(sdk_boxes(world.url, world.project_id))


def test_a_label_file_written_changed_and_deleted_moves_its_images_boxes(world: World) -> None:
    world.project_id = detection_project(world.http)
    world.write_config(mirror={"annotations": {"format": "yolo"}})
    daemon = world.start_daemon()
    daemon.wait_ready()
    hashes = write_dataset(world.root, "yolo")
    daemon.wait_for(lambda: _boxes(world) == expected_boxes(hashes), "the dataset's boxes")
    uploads = world.uploads.images
    assert uploads == len(DATASET)

    first = DATASET[0]
    edited = Item(first.path, first.seed, first.size, (first.boxes[0], ("spoon", (0, 0, 10, 8))))
    write_label(world.root, "yolo", edited)  # only the label changes: no image event at all
    want = expected_boxes(hashes, [edited, *DATASET[1:]])
    daemon.wait_for(lambda: _boxes(world) == want, "the edited box")
    [changed] = daemon.wait_event("boxes_changed")  # the log names the image by its file
    assert changed["path"] == first.path and changed["image_id"]
    assert (changed["deleted"], changed["created"]) == (1, 1)
    assert changed["tags"] == ["knife", "spoon"]

    label = write_label(world.root, "yolo", edited)
    label.unlink()
    want[hashes[first.path]] = ()
    daemon.wait_for(lambda: _boxes(world) == want, "the deleted label's boxes gone")
    assert world.uploads.images == uploads  # boxes never cost an upload
    assert daemon.stop() == 0


def test_a_coco_file_outside_the_root_rediffs_only_the_images_whose_entries_changed(
    world: World,
) -> None:
    world.project_id = detection_project(world.http)
    coco = world.tmp / "annotations" / "instances.json"
    coco.parent.mkdir()
    world.write_config(mirror={"annotations": {"format": "coco", "coco_file": str(coco)}})
    hashes = write_dataset(world.root, "coco", coco_file=coco)
    daemon = world.start_daemon()
    daemon.wait_ready()
    daemon.wait_for(lambda: _boxes(world) == expected_boxes(hashes), "the dataset's boxes")
    before = sdk_boxes(world.url, world.project_id)

    document = json.loads(coco.read_text(encoding="utf-8"))
    [entry] = [a for a in document["annotations"] if a["image_id"] == 100 and a["category_id"] == 3]
    entry["bbox"] = [52, 40, 30, 24]  # a.jpg's knife moves by 2 px
    _write_atomically(coco, json.dumps(document))
    sha = hashes[DATASET[0].path]
    daemon.wait_for(
        lambda: ("knife", (0.52, 0.5, 0.3, 0.3)) in _boxes(world)[sha], "the moved knife"
    )
    after = sdk_boxes(world.url, world.project_id)
    # Every other image keeps its regions, ids and all; a.jpg keeps its fork's id.
    assert {s: v for s, v in after.items() if s != sha} == {
        s: v for s, v in before.items() if s != sha
    }
    assert [v for v in after[sha] if v.tag == "fork"] == [v for v in before[sha] if v.tag == "fork"]
    assert world.uploads.images == len(DATASET)
    assert daemon.stop() == 0


def _write_atomically(path: Path, text: str) -> None:
    """As annotation tools save: a temporary file renamed over the old one."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def test_a_coco_file_still_being_written_holds_every_image_back(world: World) -> None:
    """A script writing a COCO file in place, slowly: a flush that another file's event starts
    meanwhile must not read the half-written JSON (every image would turn into a problem, and
    back again): the images wait for the file to settle."""
    world.project_id = detection_project(world.http)
    coco = world.tmp / "instances.json"
    world.write_config(mirror={"annotations": {"format": "coco", "coco_file": str(coco)}})
    hashes = write_dataset(world.root, "coco", coco_file=coco)
    daemon = world.start_daemon()
    daemon.wait_ready()
    daemon.wait_for(lambda: _boxes(world) == expected_boxes(hashes), "the dataset's boxes")

    document = json.loads(coco.read_text(encoding="utf-8"))
    [entry] = [a for a in document["annotations"] if a["image_id"] == 100 and a["category_id"] == 3]
    entry["bbox"] = [52, 40, 30, 24]
    text = json.dumps(document, indent=1)
    step = len(text) // 12 + 1
    with coco.open("w", encoding="utf-8") as f:  # in place, ~2.4 s, pausing 0.2 s a chunk
        for n, start in enumerate(range(0, len(text), step)):
            f.write(text[start : start + step])
            f.flush()
            if n == 2:  # meanwhile another image arrives, and settles, and is flushed
                write_dataset(world.root / "more", "yolo", [DATASET[3]])
            time.sleep(0.2)
    sha = hashes[DATASET[0].path]
    daemon.wait_for(
        lambda: ("knife", (0.52, 0.5, 0.3, 0.3)) in _boxes(world)[sha], "the moved knife"
    )
    assert daemon.events("problem_found") == [], daemon.log()
    assert daemon.stop() == 0
