"""`syncd review` on an object detection iteration: exactly the boxes planted as missed, the boxes
of an image the model was told to see as another tag, and the confident predictions where no box
was drawn; `--link-into` writes an overlay JPEG per listed image.

The project is labelled "in the portal" (over plain HTTP), pulled with `--format yolo` (files are
named by image id, which is how review finds them without a scan), trained with the emulator's
random misses and false positives turned off, and the mistakes planted through its test seams.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from syncd.emulator.limits import Quotas
from syncd.emulator.server import EmulatorServer
from tests.e2e.support import Sandbox
from tests.emulator.support import api_client
from tests.roundtrip.support import DetectionProject, label_detection_project
from tests.support import TEST_KEY
from tests.support.spec_check import SpecChecker

GREEN, MAGENTA = (0, 200, 0), (255, 0, 255)


@pytest.fixture
def detection_server(spec_checker: SpecChecker) -> Iterator[EmulatorServer]:
    quotas = Quotas(min_images_per_detection_tag=1)  # a small project may train
    with EmulatorServer(
        training_key=TEST_KEY,
        response_observer=spec_checker.observe,
        training_seconds=0,
        quotas=quotas,
    ) as running:
        yield running


def _seam(http: httpx.Client, project_id: str, what: str, body: dict) -> None:
    root_url = str(http.base_url).split("/customvision")[0]
    r = http.post(f"{root_url}/emulator/projects/{project_id}/{what}", json=body)
    assert r.status_code == 204, r.text


def _key(tag: str, box: dict | tuple) -> tuple:
    values = [box[k] for k in ("left", "top", "width", "height")] if isinstance(box, dict) else box
    return (tag, *(round(v, 3) for v in values))


@pytest.fixture
def trained(
    tmp_path: Path,
    detection_server: EmulatorServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Sandbox, DetectionProject, set[tuple], dict[str, str]]]:
    """A pulled, trained detection project; returns (sandbox, project, the planted misses as
    (tag, box) keys, image id -> the tag it was told to mispredict as)."""
    monkeypatch.setenv("SYNCD_TRAINING_KEY", TEST_KEY)
    for name in ("SYNCD_CONFIG", "SYNCD_ENDPOINT", "SYNCD_STATE_DIR"):
        monkeypatch.delenv(name, raising=False)
    with api_client(detection_server.url) as api:
        project = label_detection_project(api, images=12, names=("fork", "scissors"), negatives=0)
        box = Sandbox(tmp_path, detection_server.url, project.project_id, api, capsys)
        box.write_config(annotations={"format": "yolo"})
        _seam(api, project.project_id, "detection-rates", {"missRate": 0, "falsePositiveRate": 0})
        with_boxes = sorted(i for i, b in project.boxes.items() if b)
        missed = set()
        for image_id in with_boxes[:3]:  # the first box of three images
            _seam(
                api,
                project.project_id,
                "missed-regions",
                {"regionId": project.region_ids[image_id][0]},
            )
            tag, b = project.boxes[image_id][0]
            missed.add(_key(tag, b))
        # An image with a box of another tag than scissors, told to see all as scissors.
        seen_as = next(
            i for i in with_boxes[3:] if any(t != "scissors" for t, _ in project.boxes[i])
        )
        mispredicted = {seen_as: "scissors"}
        for image_id, tag in mispredicted.items():
            body = {"imageId": image_id, "tagId": project.tag_ids[tag]}
            _seam(api, project.project_id, "mispredictions", body)
        pulled = box.cli("pull", "--config", str(box.config_path), "--json")
        assert pulled.exit_code == 0, str(pulled)
        train = box.cli("train", "--config", str(box.config_path), "--wait", "--json")
        assert train.exit_code == 0, str(train)
        yield box, project, missed, mispredicted


def test_review_finds_exactly_the_planted_boxes(
    trained: tuple[Sandbox, DetectionProject, set[tuple], dict[str, str]],
) -> None:
    box, project, missed, mispredicted = trained
    run = box.cli("review", "--config", str(box.config_path), "--format", "json")
    assert run.exit_code == 0, str(run)
    document = json.loads(run.stdout)
    findings = [(d["image_id"], f) for d in document["detections"] for f in d["findings"]]
    assert {_key(f["tag"], f["box"]) for _, f in findings if f["kind"] == "missed"} == missed
    # The image told to be seen as scissors: each of its boxes of another tag is "other tag".
    ((image_id, as_tag),) = mispredicted.items()
    other = {
        _key(f["tag"], f["box"]) for i, f in findings if f["kind"] == "other tag" and i == image_id
    }
    assert other == {_key(t, b) for t, b in project.boxes[image_id] if t != as_tag}
    assert all(f["predicted"] == as_tag for _, f in findings if f["kind"] == "other tag")
    assert not [f for _, f in findings if f["kind"] == "no box"]  # false positives turned off
    assert all(d["paths"] == [f"images/{d['image_id']}.jpg"] for d in document["detections"])


def test_a_confident_prediction_with_no_box_is_listed(
    trained: tuple[Sandbox, DetectionProject, set[tuple], dict[str, str]],
) -> None:
    box, project, _, _ = trained
    _seam(box.http, project.project_id, "detection-rates", {"missRate": 0, "falsePositiveRate": 1})
    train = box.cli("train", "--config", str(box.config_path), "--wait", "--force", "--json")
    assert train.exit_code == 0, str(train)
    run = box.cli("review", "--config", str(box.config_path), "--format", "json")
    document = json.loads(run.stdout)
    no_box = {
        d["image_id"]
        for d in document["detections"]
        for f in d["findings"]
        if f["kind"] == "no box"
    }
    assert no_box == {i for i, b in project.boxes.items() if b}  # one on every trained image


def test_link_into_writes_an_overlay_per_listed_image(
    trained: tuple[Sandbox, DetectionProject, set[tuple], dict[str, str]], tmp_path: Path
) -> None:
    box, _, _, mispredicted = trained
    into = tmp_path / "look"
    run = box.cli("review", "--config", str(box.config_path), "--link-into", str(into))
    assert run.exit_code == 0, str(run)
    rows = [line.split() for line in run.stdout.splitlines() if line[:1].isdigit()]
    listed = [row[1] for row in rows if row[1].startswith("images/")]
    listed_ids = {Path(p).stem for p in listed}
    assert len(listed_ids) == 4  # three images with a missed box, one mispredicted
    overlays = sorted(into.glob("*.overlay.jpg"))
    assert {p.name.removesuffix(".overlay.jpg") for p in overlays} == listed_ids
    assert f"{len(listed_ids)} symlinks, each with its .overlay.jpg, under {into}" in run.stdout
    for overlay in overlays:
        with Image.open(overlay) as image:
            assert image.format == "JPEG"
            colours = image.convert("RGB").getcolors(maxcolors=1 << 20) or []
        drawn = {
            name
            for name, want in (("expected", GREEN), ("predicted", MAGENTA))
            if any(
                all(abs(c - w) < 40 for c, w in zip(rgb, want, strict=True)) for _, rgb in colours
            )
        }
        image_id = overlay.name.removesuffix(".overlay.jpg")
        # Every listed image has boxes; the mispredicted one also has confident predictions.
        assert drawn == (
            {"expected", "predicted"} if image_id in mispredicted else drawn | {"expected"}
        )
        assert (into / overlay.name.replace(".overlay.jpg", ".jpg")).is_symlink()
    # A second review rebuilds the folder (overlays included) instead of refusing it.
    again = box.cli("review", "--config", str(box.config_path), "--link-into", str(into))
    assert again.exit_code == 0, str(again)
    assert sorted(into.glob("*.overlay.jpg")) == overlays
    assert next(iter(mispredicted)) in listed_ids
