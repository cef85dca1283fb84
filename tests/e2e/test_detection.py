"""A detection mirror end to end: `syncd reconcile` against the emulator over HTTP, the project
read back by the official SDK.

The same dataset in YOLO, VOC and COCO gives the same project; an edited box is one region
deleted and one created, with no upload; a deleted label file removes the image's boxes; 300
boxes go and 301 are reported; COCO's non-contiguous category ids map by name; a detection
mirror against a classification project is refused naming annotations.format.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from syncd.emulator.limits import Quotas
from syncd.emulator.server import EmulatorServer
from tests.e2e.support import Sandbox
from tests.emulator.support import api_client
from tests.support import TEST_KEY
from tests.support.detection import (
    DATASET,
    Item,
    detection_project,
    expected_boxes,
    sdk_boxes,
    without_ids,
    write_dataset,
    write_images,
    write_label,
)
from tests.support.project_view import sha256
from tests.support.spec_check import SpecChecker


@pytest.fixture
def detection(sandbox: Sandbox, http: httpx.Client) -> Sandbox:
    """The sandbox pointed at a new object detection project (folders carry no tags there)."""
    sandbox.project_id = detection_project(http)
    return sandbox


def _configure(box: Sandbox, fmt: str) -> Path | None:
    coco = box.tmp / "coco.json" if fmt == "coco" else None
    annotations: dict[str, Any] = {"format": fmt}
    if coco is not None:
        annotations["coco_file"] = str(coco)
    box.write_config(annotations=annotations)
    return coco


def _uploads(run_mirror: dict[str, Any]) -> int:
    return int(run_mirror["done"]["uploads"])


@pytest.mark.parametrize("fmt", ["yolo", "voc", "coco"])
def test_the_same_dataset_in_each_format_gives_the_same_project(
    detection: Sandbox, emulator: EmulatorServer, fmt: str
) -> None:
    coco = _configure(detection, fmt)
    hashes = write_dataset(detection.root, fmt, coco_file=coco)
    run = detection.reconcile()
    assert run.exit_code == 0, str(run)
    assert run.mirror["done"]["uploads"] == len(DATASET)
    assert run.mirror["done"]["create_tags"] == 3
    boxes = sdk_boxes(emulator.url, detection.project_id)
    assert without_ids(boxes) == expected_boxes(hashes)
    # Folders carry no tags: an image's tags are its boxes' classes, nothing else.
    tags = {t["name"] for t in detection.http.get(f"/projects/{detection.project_id}/tags").json()}
    assert tags == {"fork", "knife", "spoon"}

    again = detection.reconcile()
    assert again.exit_code == 0, str(again)
    assert again.mirror["planned"] == dict.fromkeys(again.mirror["planned"], 0)


def test_editing_one_box_deletes_one_region_and_creates_one_without_an_upload(
    detection: Sandbox, emulator: EmulatorServer
) -> None:
    _configure(detection, "yolo")
    hashes = write_dataset(detection.root, "yolo")
    assert detection.reconcile().exit_code == 0
    before = sdk_boxes(emulator.url, detection.project_id)

    first = DATASET[0]
    edited = Item(first.path, first.seed, first.size, (first.boxes[0], ("knife", (52, 40, 30, 24))))
    write_label(detection.root, "yolo", edited)
    run = detection.reconcile()
    assert run.exit_code == 0, str(run)
    done = run.mirror["done"]
    assert (done["uploads"], done["edit_regions"]) == (0, 1)
    assert (done["regions_deleted"], done["regions_created"]) == (1, 1)
    after = sdk_boxes(emulator.url, detection.project_id)
    sha = hashes[first.path]
    kept_fork = [v for v in after[sha] if v.tag == "fork"]
    assert kept_fork == [v for v in before[sha] if v.tag == "fork"]  # same region id
    [knife] = [v for v in after[sha] if v.tag == "knife"]
    assert knife.box == (0.52, 0.5, 0.3, 0.3)
    assert knife.region_id not in {v.region_id for v in before[sha]}
    # Every other image is untouched, ids and all.
    assert {s: v for s, v in after.items() if s != sha} == {
        s: v for s, v in before.items() if s != sha
    }
    status = detection.status()
    assert "changed the boxes of 1 image, deleted 1 region, created 1 region" in status.stdout


def test_deleting_a_label_file_removes_the_images_boxes(
    detection: Sandbox, emulator: EmulatorServer
) -> None:
    _configure(detection, "voc")
    hashes = write_dataset(detection.root, "voc")
    assert detection.reconcile().exit_code == 0
    first = DATASET[0]
    (detection.root / first.path).with_suffix(".xml").unlink()
    run = detection.reconcile()
    assert run.exit_code == 0, str(run)
    assert run.mirror["done"]["uploads"] == 0
    assert run.mirror["done"]["regions_deleted"] == 2
    boxes = sdk_boxes(emulator.url, detection.project_id)
    assert boxes[hashes[first.path]] == ()
    assert len(boxes) == len(DATASET)  # the image stays, without boxes


def test_moving_an_image_with_its_label_is_not_an_upload(detection: Sandbox) -> None:
    _configure(detection, "voc")
    write_dataset(detection.root, "voc")
    assert detection.reconcile().exit_code == 0
    first = DATASET[0]
    moved = detection.root / "elsewhere" / Path(first.path).name
    moved.parent.mkdir()
    (detection.root / first.path).rename(moved)
    (detection.root / first.path).with_suffix(".xml").rename(moved.with_suffix(".xml"))
    run = detection.reconcile()
    assert run.exit_code == 0, str(run)
    assert run.mirror["planned"] == dict.fromkeys(run.mirror["planned"], 0)


def _grid(count: int) -> str:
    """count distinct YOLO boxes (class 0) on a 20 x 20 grid."""
    lines = []
    for i in range(count):
        cx, cy = (i % 20) * 0.05 + 0.02, (i // 20) * 0.05 + 0.02
        lines.append(f"0 {cx:.4f} {cy:.4f} 0.0400 0.0400\n")
    return "".join(lines)


def test_300_boxes_go_and_301_are_reported_by_file(
    detection: Sandbox, emulator: EmulatorServer
) -> None:
    _configure(detection, "yolo")
    (detection.root / "classes.txt").write_text("fork\n", encoding="utf-8")
    hashes = write_images(
        detection.root,
        [Item("full.jpg", 1, (100, 80), ()), Item("over.jpg", 2, (100, 80), ())],
    )
    (detection.root / "full.txt").write_text(_grid(300), encoding="utf-8")
    (detection.root / "over.txt").write_text(_grid(301), encoding="utf-8")
    run = detection.reconcile()
    assert run.exit_code == 1, str(run)
    [problem] = run.mirror["problems"]
    assert problem["path"] == "over.jpg" and problem["kind"] == "bad_annotation"
    assert "over.txt: 301 boxes" in problem["detail"] and "300" in problem["detail"]
    boxes = sdk_boxes(emulator.url, detection.project_id)
    assert list(boxes) == [hashes["full.jpg"]] and len(boxes[hashes["full.jpg"]]) == 300
    text = detection.cli("reconcile", "--config", str(detection.config_path))
    assert "over.jpg" in text.stdout and "301 boxes" in text.stdout


def test_coco_category_ids_map_by_name_whatever_their_numbers(
    detection: Sandbox, emulator: EmulatorServer
) -> None:
    coco = _configure(detection, "coco")
    hashes = write_dataset(detection.root, "coco", coco_file=coco)
    assert detection.reconcile().exit_code == 0
    boxes = without_ids(sdk_boxes(emulator.url, detection.project_id))
    a = DATASET[0]
    assert [tag for tag, _ in boxes[hashes[a.path]]] == ["fork", "knife"]


def test_an_unusable_annotation_leaves_the_images_boxes_alone(
    detection: Sandbox, emulator: EmulatorServer
) -> None:
    _configure(detection, "voc")
    hashes = write_dataset(detection.root, "voc")
    assert detection.reconcile().exit_code == 0
    before = sdk_boxes(emulator.url, detection.project_id)
    first = DATASET[0]
    xml = (detection.root / first.path).with_suffix(".xml")
    xml.write_text("<annotation><object>", encoding="utf-8")  # cut short: not XML
    run = detection.reconcile()
    assert run.exit_code == 1, str(run)
    [problem] = run.mirror["problems"]
    assert (problem["path"], problem["kind"]) == (first.path, "bad_annotation")
    assert "not valid XML" in problem["detail"]
    assert sdk_boxes(emulator.url, detection.project_id) == before
    assert sha256((detection.root / first.path).read_bytes()) == hashes[first.path]


def test_a_detection_mirror_and_a_classification_project_are_refused_both_ways(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    write_dataset(sandbox.root, "voc")
    sandbox.write_config(annotations={"format": "voc"})  # the sandbox's project classifies
    run = sandbox.cli("reconcile", "--config", str(sandbox.config_path))
    assert run.exit_code == 2, str(run)
    assert "annotations.format is voc" in run.stderr
    assert "its domain type is Classification" in run.stderr
    assert "Traceback" not in run.stderr

    sandbox.project_id = detection_project(http)
    sandbox.write_config(annotations={"format": "none"}, ledger=str(sandbox.tmp / "other.sqlite"))
    run = sandbox.cli("reconcile", "--config", str(sandbox.config_path))
    assert run.exit_code == 2, str(run)
    assert "annotations.format is none" in run.stderr
    assert "its domain type is ObjectDetection" in run.stderr


def test_a_dry_run_names_the_box_changes_by_file_and_sends_none(
    detection: Sandbox, emulator: EmulatorServer
) -> None:
    _configure(detection, "yolo")
    write_dataset(detection.root, "yolo")
    assert detection.reconcile().exit_code == 0
    before = sdk_boxes(emulator.url, detection.project_id)
    first = DATASET[0]
    edited = Item(first.path, first.seed, first.size, (first.boxes[0], ("spoon", (52, 40, 30, 24))))
    write_label(detection.root, "yolo", edited)
    new = Item("images/new/e.jpg", 9, (100, 80), (("fork", (0, 0, 10, 8)),))
    write_images(detection.root, [new])
    write_label(detection.root, "yolo", new)

    run = detection.cli("reconcile", "--config", str(detection.config_path), "--dry-run")
    assert run.exit_code == 0, str(run)
    lines = run.stdout.splitlines()
    assert "    upload: images/new/e.jpg -> ['fork'], 1 box" in lines
    assert (
        "    edit boxes: images/kitchen/a.jpg: delete 1 box ['knife'], create 1 box ['spoon']"
        in lines
    )
    table = {line.split()[0]: line.split()[1:] for line in lines if line.startswith("  regions_")}
    assert table == {"regions_created": ["1", "-"], "regions_deleted": ["1", "-"]}
    document = detection.reconcile("--dry-run").mirror
    [edit] = document["edit_regions"]
    assert edit["paths"] == [first.path]
    assert [d["tag"] for d in edit["delete"]] == ["knife"] and edit["delete"][0]["region_id"]
    assert edit["create"] == [{"tag": "spoon", "box": [0.52, 0.5, 0.3, 0.3]}]
    assert sdk_boxes(emulator.url, detection.project_id) == before


def test_class_names_are_renamed_and_folders_give_no_tags(
    detection: Sandbox, emulator: EmulatorServer
) -> None:
    _configure(detection, "voc")
    detection.write_config(tags={"rename": {"Fork": "table fork"}, "root_files": "skip"})
    items = [
        Item("_negative/a.jpg", 1, (100, 80), (("fork", (10, 8, 20, 16)),)),
        Item("root.jpg", 2, (100, 80), (("knife", (0, 0, 50, 40)),)),
        Item("Dog/unlabelled.jpg", 3, (100, 80), ()),
    ]
    hashes = write_images(detection.root, items)
    write_label(detection.root, "voc", items[0])
    write_label(detection.root, "voc", items[1])  # items[2] has no annotation file at all
    run = detection.reconcile()
    assert run.exit_code == 0, str(run)
    assert "tags.root_files is ignored in a detection mirror" in run.stderr
    boxes = without_ids(sdk_boxes(emulator.url, detection.project_id))
    assert boxes == {
        hashes["_negative/a.jpg"]: (("table fork", (0.1, 0.1, 0.2, 0.2)),),
        hashes["root.jpg"]: (("knife", (0.0, 0.0, 0.5, 0.5)),),
        hashes["Dog/unlabelled.jpg"]: (),
    }
    tags = {t["name"] for t in detection.http.get(f"/projects/{detection.project_id}/tags").json()}
    assert tags == {"table fork", "knife"}  # no Negative, no Dog


def test_the_detection_sample_syncs_into_the_embedded_emulator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's sample as shipped: the embedded emulator makes a detection project for a
    detection mirror, and every image goes up with its boxes."""
    import shutil

    from syncd.cli.main import main

    examples = Path(__file__).resolve().parents[2] / "examples"
    shutil.copytree(examples / "detection", tmp_path / "detection")
    config = (examples / "detection.yaml").read_text(encoding="utf-8")
    (tmp_path / "detection.yaml").write_text(
        config.replace("../.syncd-demo-od", str(tmp_path / "state")), encoding="utf-8"
    )
    code = main(["reconcile", "--config", str(tmp_path / "detection.yaml"), "--json"])
    out = capsys.readouterr().out
    assert code == 0, out
    import json

    [mirror] = json.loads(out)["mirrors"]
    labels = sorted((tmp_path / "detection" / "labels").glob("*.txt"))
    boxes = sum(len(p.read_text().splitlines()) for p in labels)
    assert (mirror["done"]["uploads"], mirror["done"]["create_tags"]) == (len(labels), 3)
    assert boxes > len(labels)


def test_a_box_whose_tag_cannot_be_created_leaves_that_images_boxes_as_they_were(
    tmp_path: Path,
    spec_checker: SpecChecker,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The project is at its tag quota: the image whose edit needs a new tag keeps its old box
    (deleting it with no way to add the new one would lose it); the other edits go."""
    server = EmulatorServer(
        training_key=TEST_KEY,
        quotas=Quotas(max_tags_per_project=3),
        response_observer=spec_checker.observe,
    )
    with server, api_client(server.url) as http:
        monkeypatch.setenv("SYNCD_TRAINING_KEY", TEST_KEY)
        box = Sandbox(tmp_path, server.url, detection_project(http), http, capsys)
        box.root.mkdir()
        _configure(box, "voc")
        hashes = write_dataset(box.root, "voc")
        assert box.reconcile().exit_code == 0
        before = sdk_boxes(server.url, box.project_id)
        a, b = DATASET[0], DATASET[1]
        write_label(
            box.root, "voc", Item(a.path, a.seed, a.size, (a.boxes[0], ("bowl", a.boxes[1][1])))
        )
        write_label(box.root, "voc", Item(b.path, b.seed, b.size, (("spoon", (0, 0, 100, 50)),)))
        run = box.reconcile()
        assert run.exit_code == 1, str(run)
        assert {(f["operation"], f["subject"]) for f in run.mirror["failed"]} >= {
            ("edit_regions", a.path)
        }
        after = sdk_boxes(server.url, box.project_id)
        assert after[hashes[a.path]] == before[hashes[a.path]]
        assert without_ids(after)[hashes[b.path]] == (("spoon", (0.0, 0.0, 0.5, 1.0)),)


@pytest.mark.parametrize("prepared", [False, True])
def test_a_box_on_an_exif_turned_photo_lands_where_the_service_sees_it(
    detection: Sandbox, emulator: EmulatorServer, prepared: bool
) -> None:
    """A photo stored 64 x 48 whose EXIF says "turn 90 degrees clockwise" (6) is annotated on
    the upright 48 x 64 picture. Sent as it is, the service has the stored pixels, so the box is
    turned back into their frame; turned upright by files.prepare (orient), the service has the
    upright pixels and the box is sent as drawn."""
    from tests.support.images import rotated_jpeg

    image = detection.root / "images" / "photo.jpg"
    image.parent.mkdir(parents=True)
    image.write_bytes(rotated_jpeg(7, orientation=6, size=(64, 48)))
    # VOC (1-based, inclusive) on the displayed 48 x 64 picture: the top-left 24 x 16 px.
    image.with_suffix(".xml").write_text(
        "<annotation><size><width>48</width><height>64</height></size><object><name>cup</name>"
        "<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>24</xmax><ymax>16</ymax></bndbox></object>"
        "</annotation>"
    )
    detection.write_config(
        annotations={"format": "voc"}, **({"files": {"prepare": {}}} if prepared else {})
    )
    run = detection.reconcile()
    assert run.exit_code == 0, str(run)
    ((regions),) = sdk_boxes(emulator.url, detection.project_id).values()
    (region,) = regions
    if prepared:  # the upright picture: as drawn, 24/48 wide and 16/64 high from its top left
        assert region.box == (0.0, 0.0, 0.5, 0.25)
    else:  # the stored picture: the upright top-left corner is its bottom-left
        assert region.box == (0.0, 0.5, 0.25, 0.5)
