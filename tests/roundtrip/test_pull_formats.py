"""`syncd pull --format`: each format, from a multi-class, a multi-label and a detection project of
the emulator, read back by an independent reader and compared with what was put in the project.

The readers here are not syncd's: pycocotools loads the COCO file, globox parses the YOLO and VOC
files, every AutoML JSONL line is validated against the JSON schema vendored in docs/spec/ (written
from Microsoft's AutoML image schema page), and the two classification layouts no library reads
(YOLO's class folders, VOC's ImageSets lists) are read from the disk here. What each reader must
find is the README's table of rules ("Leaving Custom Vision"), written out again below.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import globox
import httpx
import jsonschema
import pytest
import yaml
from pycocotools.coco import COCO

from syncd.core.regions import Box, ImageSize, Region
from syncd.emulator.server import EmulatorServer
from syncd.export import ExportFormat, ExportImage, ProjectKind
from syncd.exportcheck import check_export
from tests.e2e.support import REPO, Sandbox
from tests.emulator.support import api_client
from tests.roundtrip.conftest import new_sandbox
from tests.roundtrip.support import (
    DetectionProject,
    LabelledProject,
    label_detection_project,
    label_project,
)
from tests.support import TEST_KEY
from tests.support.spec_check import SpecChecker

SCHEMAS = json.loads((REPO / "docs/spec/automl-images.schema.json").read_text(encoding="utf-8"))
CLASSIFICATION_COUNTS = {
    "multiclass": {("Dog",): 6, ("Cat",): 5, ("Negative",): 2, (): 2},
    "multilabel": {("Dog",): 4, ("Cat",): 4, ("Cat", "Dog"): 3, ("Negative",): 2, (): 2},
}
# image id -> (labels, boxes as (tag, left, top, right, bottom) in fractions of the displayed image)
Read = dict[str, tuple[frozenset[str], list[tuple[str, float, float, float, float]]]]


def _pull(box: Sandbox, into: Path, *args: str) -> dict:
    run = box.cli("pull", "--config", str(box.config_path), "--json", "--into", str(into), *args)
    assert run.document is not None, str(run)
    return run.document


@pytest.fixture
def make_box(
    tmp_path: Path,
    server: EmulatorServer,
    api: httpx.Client,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[[str], tuple[Sandbox, LabelledProject | DetectionProject]]]:
    monkeypatch.setenv("SYNCD_TRAINING_KEY", TEST_KEY)
    for name in ("SYNCD_CONFIG", "SYNCD_ENDPOINT", "SYNCD_STATE_DIR"):
        monkeypatch.delenv(name, raising=False)

    def make(kind: str) -> tuple[Sandbox, LabelledProject | DetectionProject]:
        if kind == "detection":
            project: LabelledProject | DetectionProject = label_detection_project(api)
        else:
            classification = "Multiclass" if kind == "multiclass" else "Multilabel"
            r = api.post("/projects", params={"name": kind, "classificationType": classification})
            assert r.status_code == 200, r.text
            project = label_project(api, r.json()["id"], CLASSIFICATION_COUNTS[kind])
        sandbox = Sandbox(tmp_path, server.url, project.project_id, api, capsys)
        sandbox.write_config()
        return sandbox, project

    yield make


# --- what each format must hold (the README's rules) ---------------------------------------------


def _displayed(box: tuple[float, float, float, float], orientation: int) -> tuple[float, ...]:
    """A stored-frame box (left, top, width, height) as (left, top, right, bottom) on the
    displayed image. Orientation 6 shows the stored image turned 90 degrees clockwise: the
    stored point (s, t) is displayed at (1 - t, s)."""
    left, top, width, height = box
    if orientation == 6:
        return (1 - (top + height), left, 1 - top, left + width)
    return (left, top, left + width, top + height)


def _expected(kind: str, fmt: str, project: LabelledProject | DetectionProject) -> Read:
    if isinstance(project, DetectionProject):
        return {
            image_id: (
                frozenset(t for t, _ in boxes),
                sorted((t, *_displayed(b, project.orientation[image_id])) for t, b in boxes),
            )
            for image_id, boxes in project.boxes.items()
        }
    out: Read = {}
    for image_id, names in project.images.items():
        labels = frozenset(names)
        regular = labels - {"Negative"}
        if fmt == "yolo" and not regular:
            continue  # YOLO classification: untagged and Negative images are left out
        if fmt == "automl":
            if kind == "multiclass" and (len(regular) != 1 or "Negative" in labels):
                continue  # AutoML multi-class: one label, no "none"
            labels = regular  # multi-label: [] for an untagged or Negative image
        out[image_id] = (labels, [])
    return out


def _close(read: Read, expected: Read, sizes: dict[str, tuple[int, int]]) -> None:
    """Same images, same labels, every box within 1 px of the project's on each side."""
    assert read.keys() == expected.keys()
    for image_id, (labels, boxes) in expected.items():
        got_labels, got_boxes = read[image_id]
        assert got_labels == labels, image_id
        assert len(got_boxes) == len(boxes), image_id
        width, height = sizes.get(image_id, (1, 1))
        for got, want in zip(sorted(got_boxes), boxes, strict=True):
            assert got[0] == want[0], image_id
            for n, (a, b) in enumerate(zip(got[1:], want[1:], strict=True)):
                side = width if n % 2 == 0 else height
                assert abs(a - b) * side <= 1.0 + 1e-6, (image_id, got, want)


def _displayed_sizes(project: LabelledProject | DetectionProject) -> dict[str, tuple[int, int]]:
    if not isinstance(project, DetectionProject):
        return {}
    return {
        i: (h, w) if project.orientation[i] == 6 else (w, h) for i, (w, h) in project.sizes.items()
    }


# --- the independent readers ---------------------------------------------------------------------


def _stem(name: str) -> str:
    return Path(name).stem


def read_coco(into: Path, kind: str) -> Read:
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(into / "annotations.json"))
    out: Read = {}
    for number, image in coco.imgs.items():
        labels, boxes = set(), []
        for ann in coco.imgToAnns[number]:
            name = coco.cats[ann["category_id"]]["name"]
            labels.add(name)
            if kind == "detection":
                x, y, w, h = ann["bbox"]
                W, H = image["width"], image["height"]
                boxes.append((name, x / W, y / H, (x + w) / W, (y + h) / H))
            else:
                assert "bbox" not in ann  # classification: category only, documented
        out[_stem(image["file_name"])] = (frozenset(labels), sorted(boxes))
    return out


def read_yolo(into: Path, kind: str) -> Read:
    names = yaml.safe_load((into / "data.yaml").read_text(encoding="utf-8"))["names"]
    out: Read = {}
    if kind != "detection":  # Ultralytics' classification layout: train/<class>/<image>
        for class_dir in (into / "train").iterdir():
            assert class_dir.name in names.values()
            for image in class_dir.iterdir():
                labels, _ = out.get(_stem(image.name), (frozenset(), []))
                out[_stem(image.name)] = (labels | {class_dir.name}, [])
        return out
    dataset = globox.AnnotationSet.from_yolo_v5(
        into / "labels", image_folder=into / "images", image_extension=".jpg"
    )
    for annotation in dataset:
        W, H = annotation.image_size
        boxes = sorted(
            (names[int(b.label)], b.xmin / W, b.ymin / H, b.xmax / W, b.ymax / H)
            for b in annotation.boxes
        )
        out[_stem(annotation.image_id)] = (frozenset(b[0] for b in boxes), boxes)
    return out


def read_voc(into: Path, kind: str) -> Read:
    out: Read = {}
    if kind != "detection":  # the devkit's classification lists: ImageSets/Main/<class>_trainval
        for path in (into / "ImageSets/Main").glob("*_trainval.txt"):
            tag = path.name.removesuffix("_trainval.txt")
            for line in path.read_text(encoding="utf-8").splitlines():
                stem, flag = line.split()
                labels, _ = out.get(stem, (frozenset(), []))
                out[stem] = (labels | ({tag} if flag == "1" else set()), [])
        return out
    for annotation in globox.AnnotationSet.from_pascal_voc(into / "images"):
        W, H = annotation.image_size
        # 1-based inclusive (the devkit's): the first pixel column is xmin = 1
        boxes = sorted(
            (b.label, (b.xmin - 1) / W, (b.ymin - 1) / H, b.xmax / W, b.ymax / H)
            for b in annotation.boxes
        )
        out[_stem(annotation.image_id)] = (frozenset(b[0] for b in boxes), boxes)
    return out


def read_automl(into: Path, kind: str) -> Read:
    validator = jsonschema.Draft202012Validator(SCHEMAS[kind])
    out: Read = {}
    for part in ("train", "validation"):
        jsonl = into / part / f"{part}.jsonl"
        if not jsonl.exists():
            continue
        mltable = yaml.safe_load((into / part / "MLTable").read_text(encoding="utf-8"))
        assert mltable["paths"] == [{"file": f"./{part}.jsonl"}]
        for line in jsonl.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            validator.validate(record)
            label = record["label"]
            if kind == "detection":
                boxes = sorted(
                    (b["label"], b["topX"], b["topY"], b["bottomX"], b["bottomY"]) for b in label
                )
                labels = frozenset(b[0] for b in boxes)
            else:
                boxes, labels = [], frozenset([label] if isinstance(label, str) else label)
            out[_stem(record["image_url"])] = (labels, boxes)
    return out


READERS = {"coco": read_coco, "yolo": read_yolo, "voc": read_voc, "automl": read_automl}


@pytest.mark.parametrize("fmt", sorted(READERS))
@pytest.mark.parametrize("kind", ["multiclass", "multilabel", "detection"])
def test_each_format_reads_back_with_an_independent_reader(
    make_box: Callable[[str], tuple[Sandbox, LabelledProject | DetectionProject]],
    tmp_path: Path,
    kind: str,
    fmt: str,
) -> None:
    box, project = make_box(kind)
    into = tmp_path / f"out-{fmt}"
    pulled = _pull(box, into, "--format", fmt)
    assert pulled["exit_code"] == 0, pulled
    assert (pulled["format"], pulled["kind"]) == (fmt, kind)
    assert pulled["verify"]["differences"] == [], pulled["verify"]
    expected = _expected(kind, fmt, project)
    assert pulled["verify"]["images"] == len(expected)

    _close(READERS[fmt](into, kind), expected, _displayed_sizes(project))


def test_a_detection_project_under_a_classification_config_is_refused_naming_the_key(
    make_box: Callable[[str], tuple[Sandbox, LabelledProject | DetectionProject]],
    tmp_path: Path,
) -> None:
    box, _ = make_box("detection")  # the config has no annotations: a classification mirror
    into = tmp_path / "out"
    run = box.cli("pull", "--config", str(box.config_path), "--into", str(into))
    assert run.exit_code == 2, str(run)
    assert "object detection project" in run.stderr and "annotations.format: none" in run.stderr
    assert "Traceback" not in run.stderr
    assert not into.exists() or not any(into.rglob("*.jpg"))
    # --format folders cannot hold boxes either; an export format can.
    run = box.cli("pull", "--config", str(box.config_path), "--into", str(into), "-f", "x")
    assert run.exit_code == 2
    run = box.cli(
        "pull", "--config", str(box.config_path), "--into", str(into), "--format", "folders"
    )
    assert run.exit_code == 2 and "--format folders cannot hold boxes" in run.stderr, str(run)


def test_the_automl_split_is_seeded_and_urls_carry_the_prefix(
    make_box: Callable[[str], tuple[Sandbox, LabelledProject | DetectionProject]],
    tmp_path: Path,
) -> None:
    box, project = make_box("multilabel")
    prefix = "azureml://datastores/workspaceblobstore/paths/pets/"
    parts = {}
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        into = tmp_path / name
        pulled = _pull(
            box, into, "--format", "automl", "--split", "0.4", "--seed", seed,
            "--image-url-prefix", prefix,
        )  # fmt: skip
        assert pulled["exit_code"] == 0, pulled
        assert sum(pulled["split"].values()) == len(project.images)
        parts[name] = {
            part: sorted(
                json.loads(line)["image_url"]
                for line in (into / part / f"{part}.jsonl").read_text().splitlines()
            )
            for part in ("train", "validation")
        }
        urls = parts[name]["train"] + parts[name]["validation"]
        assert all(u.startswith(prefix + "images/") for u in urls)
        assert all((into / u.removeprefix(prefix)).is_file() for u in urls)
    assert parts["a"] == parts["b"]  # the same seed: the same split
    assert parts["a"] != parts["c"]
    assert parts["a"]["validation"] and parts["a"]["train"]

    run = box.cli("pull", "--config", str(box.config_path), "--format", "coco", "--split", "0.2")
    assert run.exit_code == 2 and "go with --format automl" in run.stderr, str(run)


def test_the_summary_says_what_the_format_leaves_out_and_how_it_was_verified(
    make_box: Callable[[str], tuple[Sandbox, LabelledProject | DetectionProject]],
    tmp_path: Path,
) -> None:
    box, _ = make_box("multiclass")
    into = tmp_path / "out"
    run = box.cli(
        "pull", "--config", str(box.config_path), "--into", str(into), "--format", "automl"
    )
    assert run.exit_code == 0, str(run)
    assert "format: automl (multiclass project); 2 annotation files; lines: train 11" in run.stdout
    assert "2 Negative images (AutoML multi-class has no 'none' class)" in run.stdout
    assert "2 untagged images (AutoML multi-class needs one label)" in run.stdout
    assert (
        "verified: read back with jsonschema (AutoML schema) + JSON lines: 11 images" in run.stdout
    )
    assert "not kept by automl: image metadata (none here); tag descriptions (none here)" in (
        run.stdout
    )
    assert "result: complete" in run.stdout


def test_the_summary_says_what_changed_in_the_project_during_the_pull(
    tmp_path: Path,
    spec_checker: SpecChecker,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While the images download, someone deletes one image and tags another in the portal."""
    monkeypatch.setenv("SYNCD_TRAINING_KEY", TEST_KEY)
    changed: list[str] = []
    servers: list[EmulatorServer] = []
    plan: dict[str, str] = {}

    def observe(method: str, path: str, status: int, headers: dict, body: bytes) -> None:
        spec_checker.observe(method, path, status, headers, body)
        if path.startswith("/emulator/blobs/") and status == 200 and not changed:
            changed.append(path)  # the first download: change the project behind the pull
            store = servers[0].store
            store.delete_images(plan["project"], [plan["deleted"]])
            store.add_image_tags(plan["project"], [(plan["retagged"], plan["tag"])])

    with EmulatorServer(training_key=TEST_KEY, response_observer=observe) as server:
        servers.append(server)
        with api_client(server.url) as api:
            box = new_sandbox(tmp_path, server.url, api, capsys)
            project = label_project(api, box.project_id, {("Dog",): 4, ("Cat",): 4})
            dogs = [i for i, names in project.images.items() if names == ("Dog",)]
            plan |= {"project": box.project_id, "deleted": dogs[0], "retagged": dogs[1]}
            plan["tag"] = project.tag_ids["Cat"]
            run = box.cli(
                "pull", "--config", str(box.config_path), "--into", str(tmp_path / "out"),
                "--format", "coco",
            )  # fmt: skip
    assert changed, "no download was observed"
    assert run.exit_code == 1, str(run)
    assert "changed in the project during the pull: 1 image deleted, 1 image retagged" in run.stdout
    assert "result: the project changed during the pull: pull again" in run.stdout


def test_the_read_back_finds_a_box_moved_by_more_than_a_pixel(
    make_box: Callable[[str], tuple[Sandbox, LabelledProject | DetectionProject]],
    tmp_path: Path,
) -> None:
    """pull's own check (syncd.exportcheck), given a VOC file edited after writing."""
    box, project = make_box("detection")
    assert isinstance(project, DetectionProject)
    into = tmp_path / "out"
    assert _pull(box, into, "--format", "voc")["exit_code"] == 0
    images = []
    sizes = _displayed_sizes(project)
    for image_id, boxes in project.boxes.items():
        shown = [(t, _displayed(b, project.orientation[image_id])) for t, b in boxes]
        regions = tuple(Region(t, Box(x0, y0, x1 - x0, y1 - y0)) for t, (x0, y0, x1, y1) in shown)
        images.append(
            ExportImage(
                image_id,
                f"images/{image_id}.jpg",
                ImageSize(*sizes[image_id]),
                negative=image_id in project.negative,
                regions=regions,
            )
        )
    args = (into, ExportFormat.VOC, ProjectKind.DETECTION, images, "Negative")
    assert check_export(*args).ok
    edited = next(i for i in images if i.regions)
    xml = into / f"images/{edited.image_id}.xml"
    text = xml.read_text()
    xmin = text.split("<xmin>")[1].split("</xmin>")[0]
    xml.write_text(text.replace(f"<xmin>{xmin}</xmin>", f"<xmin>{float(xmin) + 2}</xmin>", 1))
    result = check_export(*args)
    assert result.reader == "globox (Pascal VOC)"
    assert len(result.differences) == 2, result.differences  # the box missing, and the stray
    assert all(edited.image_id in d for d in result.differences)


@pytest.mark.parametrize("fmt", ["yolo", "voc"])
def test_a_tag_that_cannot_name_a_folder_or_file_is_skipped_never_a_path(
    make_box: Callable[[str], tuple[Sandbox, LabelledProject | DetectionProject]],
    tmp_path: Path,
    api: httpx.Client,
    fmt: str,
) -> None:
    """YOLO classification names folders after tags, VOC's lists name files: a tag from the
    service such as `../evil` or `a/b` must not become a path outside (or inside) the export."""
    box, _ = make_box("multilabel")
    r = api.post("/projects", params={"name": "odd", "classificationType": "Multilabel"})
    counts = {("../evil",): 1, ("a/b",): 1, ("Cat",): 1}
    project = label_project(api, r.json()["id"], counts)
    box.project_id = project.project_id
    box.write_config()
    into = tmp_path / "deep" / "out"
    pulled = _pull(box, into, "--format", fmt)
    assert pulled["exit_code"] == 1, pulled
    bad = {i for i, names in project.images.items() if names != ("Cat",)}
    assert {s["image_id"] for s in pulled["skipped"]} == bad
    assert all("names a folder or file after it" in s["reason"] for s in pulled["skipped"])
    assert not (tmp_path / "deep" / "evil").exists() and not (tmp_path / "evil").exists()
    assert not list(into.rglob("*evil*")) and not (into / "train" / "a").exists()
    assert not list((into / "ImageSets").rglob("a")) if fmt == "voc" else True
