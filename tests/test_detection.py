"""syncd.detection on real files: what a run makes of a detection mirror's annotations."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from syncd.config import AnnotationConfig, MirrorConfig
from syncd.core.model import LocalFile, LocalSnapshot, MarkerState, ProblemKind
from syncd.core.policy import AnnotationFormat
from syncd.core.regions import Box, Region
from syncd.detection import annotate
from tests.support.detection import DATASET, write_dataset

PID = "11111111-2222-3333-4444-555555555555"


def _snapshot(root: Path) -> LocalSnapshot:
    files = []
    for item in DATASET:
        st = (root / item.path).stat()
        files.append(
            LocalFile(item.path, st.st_size, st.st_mtime_ns, st.st_ino, "x" + item.path, (), False)
        )
    return LocalSnapshot(str(root), True, MarkerState.PRESENT, tuple(files))


def _mirror(root: Path, fmt: AnnotationFormat, coco: Path | None = None) -> MirrorConfig:
    return MirrorConfig(root=root, project_id=PID, annotations=AnnotationConfig(fmt, coco))


def test_an_unchanged_image_is_not_opened_again_for_its_size(tmp_path: Path) -> None:
    """In `syncd run` a label change re-reads labels, not images: the frame is kept by stat."""
    write_dataset(tmp_path, "voc")
    mirror = _mirror(tmp_path, AnnotationFormat.VOC)
    first = annotate(_snapshot(tmp_path), mirror)
    item = DATASET[0]
    assert first.regions[item.path][0] == Region("fork", Box(0.1, 0.1, 0.2, 0.2))
    # The same stat, other bytes: a reader that opened the image again would fail on it.
    image = tmp_path / item.path
    st = image.stat()
    with image.open("r+b") as f:
        f.write(b"\0" * st.st_size)
    os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = annotate(_snapshot(tmp_path), mirror)
    assert again.regions == first.regions
    assert all(f.problem is None for f in again.local.files)


def test_unreadable_class_names_leave_every_image_alone(tmp_path: Path) -> None:
    """No class names: every label's lines would read as unknown classes, and an image read as
    "no boxes" would lose its boxes. Every image is a problem instead, naming why."""
    write_dataset(tmp_path, "yolo")
    (tmp_path / "data.yaml").unlink()
    result = annotate(_snapshot(tmp_path), _mirror(tmp_path, AnnotationFormat.YOLO))
    assert result.regions == {}
    kinds = {f.problem.kind if f.problem else None for f in result.local.files}
    assert kinds == {ProblemKind.BAD_ANNOTATION}
    assert "no usable YOLO class names" in str(result.local.files[0].problem)


def test_a_renamed_class_and_a_box_the_service_cannot_take_is_reported_by_label_file(
    tmp_path: Path,
) -> None:
    write_dataset(tmp_path, "yolo")
    label = tmp_path / "labels/kitchen/a.txt"
    label.write_text(label.read_text() + "0 0.5 0.5 0.0 0.1\n", encoding="utf-8")  # degenerate
    base = MirrorConfig(root=tmp_path, project_id=PID)
    mirror = dataclasses.replace(
        _mirror(tmp_path, AnnotationFormat.YOLO),
        tags=dataclasses.replace(base.tags, rename={"KNIFE": "blade"}),
    )
    result = annotate(_snapshot(tmp_path), mirror)
    assert [r.tag for r in result.regions["images/kitchen/a.jpg"]] == ["fork", "blade"]
    [problem] = result.problems
    assert (problem.file, problem.where) == ("labels/kitchen/a.txt", "line 3")
    assert problem.reason.startswith("degenerate")


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("9 0.5 0.5 0.1 0.1", "line 3: unknown class id 9"),
        ("0 0.5 0.5 0.1", "line 3: expected 'class cx cy w h' (5 fields), got 4"),
    ],
)
def test_a_line_that_cannot_be_read_leaves_the_images_boxes_alone(
    tmp_path: Path, line: str, why: str
) -> None:
    """The box that line meant is unknown: the image's other boxes are not all of them, and
    syncing them would delete its region. The image is a problem naming the line instead."""
    write_dataset(tmp_path, "yolo")
    label = tmp_path / "labels/kitchen/a.txt"
    label.write_text(label.read_text() + line + "\n", encoding="utf-8")
    result = annotate(_snapshot(tmp_path), _mirror(tmp_path, AnnotationFormat.YOLO))
    assert "images/kitchen/a.jpg" not in result.regions
    [bad] = [f for f in result.local.files if f.problem is not None]
    assert bad.path == "images/kitchen/a.jpg" and bad.problem is not None
    assert bad.problem.kind is ProblemKind.BAD_ANNOTATION
    assert bad.problem.detail == f"labels/kitchen/a.txt: {why}"


def test_a_coco_entry_that_cannot_be_read_leaves_its_images_boxes_alone(tmp_path: Path) -> None:
    coco = tmp_path / "coco.json"
    write_dataset(tmp_path, "coco", coco_file=coco)
    document = json.loads(coco.read_text(encoding="utf-8"))
    document["annotations"][0]["category_id"] = 99  # a.jpg's fork
    coco.write_text(json.dumps(document), encoding="utf-8")
    result = annotate(_snapshot(tmp_path), _mirror(tmp_path, AnnotationFormat.COCO, coco))
    assert "images/kitchen/a.jpg" not in result.regions
    assert "images/kitchen/b.png" in result.regions
    [bad] = [f for f in result.local.files if f.problem is not None]
    assert bad.path == "images/kitchen/a.jpg"
    assert "unknown category_id 99" in str(result.problems[0])
