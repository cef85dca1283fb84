"""Reading a `syncd pull --format` export back with independent readers, and comparing it with
the project.

Public names: check_export, expected_labels, VerifyResult, MissingReader, BOX_TOLERANCE_PX.

The writer (syncd.export) and these readers share no code: COCO is loaded by pycocotools, YOLO
and VOC detection files are parsed by globox, every AutoML JSONL line is validated against the
JSON schema written from Microsoft's page (syncd.automl_schema) and its labels read back. The
layouts no library reads (`folders`, YOLO's classification folders, VOC's classification lists)
are read here from the disk. Then, image by image: is it there (the count), does it have the
project's tags (by the format's documented rules: `expected_labels`), and is every box within
BOX_TOLERANCE_PX pixels of the project's on each side.

pycocotools, globox and jsonschema are the `export` extra (`pip install 'syncd[export]'`); a
missing one raises MissingReader, and the pull says the export is not verified.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from syncd.annotations import image_frame
from syncd.core.regions import ImageSize, displayed_size
from syncd.export import (
    COCO_FILE,
    IMAGES_FOLDER,
    VOC_LISTS,
    YOLO_CLASSIFY_TRAIN,
    YOLO_LABELS,
    ExportFormat,
    ExportImage,
    ProjectKind,
)

BOX_TOLERANCE_PX = 1.0
# Differences listed one by one at most; the rest are counted.
MAX_DIFFERENCES = 50

PixelBox = tuple[float, float, float, float]  # left, top, right, bottom in pixels
Labelled = tuple[str, PixelBox]


class MissingReader(Exception):
    """An independent reader (pycocotools, globox, jsonschema) is not installed."""


@dataclass
class ReadBack:
    """What a reader found for one image: its labels, and its boxes (detection)."""

    labels: set[str] = field(default_factory=set)
    boxes: list[Labelled] = field(default_factory=list)


@dataclass
class VerifyResult:
    reader: str = ""
    images: int = 0  # images the reader found
    expected: int = 0  # images the export should hold
    boxes: int = 0  # boxes compared
    differences: list[str] = field(default_factory=list)
    more_differences: int = 0

    @property
    def ok(self) -> bool:
        return not self.differences

    def differ(self, text: str) -> None:
        if len(self.differences) < MAX_DIFFERENCES:
            self.differences.append(text)
        else:
            self.more_differences += 1


def expected_labels(
    fmt: ExportFormat, kind: ProjectKind, image: ExportImage, negative_tag: str | None
) -> frozenset[str] | None:
    """The labels the format holds for the image by its documented rules, or None if it leaves
    the image out (syncd.export's module docstring has the rules)."""
    tags = frozenset(image.tags)
    with_negative = tags | ({negative_tag} if image.negative and negative_tag else set())
    if kind is ProjectKind.DETECTION:
        return frozenset(r.tag for r in image.regions)
    if fmt is ExportFormat.YOLO:
        return tags or None
    if fmt is ExportFormat.AUTOML:
        if kind is ProjectKind.MULTILABEL:
            return tags
        return tags if len(tags) == 1 and not image.negative else None
    return with_negative  # folders, coco, voc: the Negative tag is a label like any other


def _pixels(left: float, top: float, width: float, height: float, size: ImageSize) -> PixelBox:
    return (
        left * size.width,
        top * size.height,
        (left + width) * size.width,
        (top + height) * size.height,
    )


def _expected_boxes(image: ExportImage) -> list[Labelled]:
    return [
        (r.tag, _pixels(r.box.left, r.box.top, r.box.width, r.box.height, image.size))
        for r in image.regions
    ]


def check_export(
    root: Path,
    fmt: ExportFormat,
    kind: ProjectKind,
    images: Sequence[ExportImage],
    negative_tag: str | None,
    folders: Mapping[str, tuple[str, ...]] | None = None,
    coco_file: Path | None = None,
) -> VerifyResult:
    """Read the export under `root` back and compare it with `images` (the project's). `folders`
    (format `folders` only): image id -> the folders it was placed in."""
    result = VerifyResult()
    if fmt is ExportFormat.FOLDERS:
        result.reader = "the folder tree"
        want = {i: set(f) for i, f in (folders or {}).items()}
        # Pull never deletes: files of earlier pulls may lawfully be there, so only the images
        # of this pull are compared.
        placed = {i: ReadBack(f) for i, f in _read_folders(root).items() if i in want}
        _compare_sets(result, placed, want)
        return result
    found, reader = _read(root, fmt, kind, images, coco_file)
    result.reader = reader
    want_labels: dict[str, set[str]] = {}
    for image in images:
        labels = expected_labels(fmt, kind, image, negative_tag)
        if labels is not None:
            want_labels[image.image_id] = set(labels)
    _compare_sets(result, found, want_labels)
    if kind is ProjectKind.DETECTION:
        by_id = {i.image_id: i for i in images}
        for image_id, read in found.items():
            if image_id in by_id:
                _compare_boxes(result, by_id[image_id], read.boxes)
    return result


def _compare_sets(
    result: VerifyResult, found: Mapping[str, ReadBack], want: Mapping[str, set[str]]
) -> None:
    result.images, result.expected = len(found), len(want)
    for image_id in sorted(want.keys() - found.keys()):
        result.differ(f"image {image_id}: in the project, not in the export")
    for image_id in sorted(found.keys() - want.keys()):
        result.differ(f"image {image_id}: in the export, not expected there")
    for image_id in sorted(want.keys() & found.keys()):
        if found[image_id].labels != want[image_id]:
            result.differ(
                f"image {image_id}: labels {sorted(found[image_id].labels)} read back, "
                f"{sorted(want[image_id])} in the project"
            )


def _compare_boxes(result: VerifyResult, image: ExportImage, read: list[Labelled]) -> None:
    unmatched = list(read)
    for tag, want in _expected_boxes(image):
        result.boxes += 1
        match = next(
            (
                n
                for n, (t, box) in enumerate(unmatched)
                if t == tag
                and all(
                    abs(a - b) <= BOX_TOLERANCE_PX + 1e-6 for a, b in zip(box, want, strict=True)
                )
            ),
            None,
        )
        if match is None:
            shown = ", ".join(f"{v:.1f}" for v in want)
            result.differ(
                f"image {image.image_id}: {tag} box ({shown}) px not read back within 1 px"
            )
        else:
            unmatched.pop(match)
    for tag, box in unmatched:
        shown = ", ".join(f"{v:.1f}" for v in box)
        result.differ(f"image {image.image_id}: a {tag} box ({shown}) px not in the project")


# --- the readers ---------------------------------------------------------------------------------


def _stem_id(name: str) -> str:
    return Path(name).stem.lower()


def _read(
    root: Path,
    fmt: ExportFormat,
    kind: ProjectKind,
    images: Sequence[ExportImage],
    coco_file: Path | None,
) -> tuple[dict[str, ReadBack], str]:
    if fmt is ExportFormat.COCO:
        return _read_coco(coco_file or root / COCO_FILE), "pycocotools"
    if fmt is ExportFormat.AUTOML:
        return _read_automl(root, kind), "jsonschema (AutoML schema) + JSON lines"
    if kind is not ProjectKind.DETECTION:
        if fmt is ExportFormat.YOLO:
            return _read_yolo_classes(root / YOLO_CLASSIFY_TRAIN), "the class folders"
        return _read_voc_lists(root / VOC_LISTS), "the VOC ImageSets lists"
    if fmt is ExportFormat.YOLO:
        return _read_yolo(root, images), "globox (YOLO v5)"
    return _read_voc(root / IMAGES_FOLDER), "globox (Pascal VOC)"


def _read_coco(path: Path) -> dict[str, ReadBack]:
    try:
        from pycocotools.coco import COCO  # type: ignore[import-untyped]
    except ImportError as exc:
        raise MissingReader("pycocotools") from exc
    with contextlib.redirect_stdout(io.StringIO()):  # it prints its progress
        coco = COCO(str(path))
    found: dict[str, ReadBack] = {}
    for number, record in coco.imgs.items():
        read = found.setdefault(_stem_id(record["file_name"]), ReadBack())
        for annotation in coco.imgToAnns.get(number, []):
            name = coco.cats[annotation["category_id"]]["name"]
            read.labels.add(name)
            if "bbox" in annotation:
                x, y, w, h = (float(v) for v in annotation["bbox"])
                read.boxes.append((name, (x, y, x + w, y + h)))
    return found


def _globox() -> Any:
    try:
        import globox  # type: ignore[import-untyped]
    except ImportError as exc:
        raise MissingReader("globox") from exc
    return globox


def _read_yolo(root: Path, images: Sequence[ExportImage]) -> dict[str, ReadBack]:
    globox = _globox()
    document = yaml.safe_load((root / "data.yaml").read_text(encoding="utf-8"))
    names = {str(k): str(v) for k, v in (document.get("names") or {}).items()}
    labels = root / YOLO_LABELS
    by_stem = {i.stem: i for i in images}
    found: dict[str, ReadBack] = {}
    for path in sorted(labels.glob("*.txt")) if labels.is_dir() else []:
        image = by_stem.get(path.stem)
        frame = image_frame(root / image.path) if image is not None else "no image"
        if isinstance(frame, str):  # no image file to take the size from: no boxes to read
            found[path.stem.lower()] = ReadBack()
            continue
        size = displayed_size(*frame)  # the real size, from the image file as displayed
        annotation = globox.Annotation.from_yolo_v5(path, image_size=(size.width, size.height))
        read = found.setdefault(path.stem.lower(), ReadBack())
        for box in annotation.boxes:
            name = names.get(str(box.label), str(box.label))
            read.labels.add(name)
            xmin, ymin, xmax, ymax = (float(v) for v in box.ltrb)
            read.boxes.append((name, (xmin, ymin, xmax, ymax)))
    return found


def _read_voc(folder: Path) -> dict[str, ReadBack]:
    globox = _globox()
    found: dict[str, ReadBack] = {}
    for path in sorted(folder.glob("*.xml")) if folder.is_dir() else []:
        annotation = globox.Annotation.from_pascal_voc(path)
        read = found.setdefault(_stem_id(annotation.image_id), ReadBack())
        for box in annotation.boxes:  # 1-based inclusive: the left pixel column is xmin - 1
            read.labels.add(str(box.label))
            read.boxes.append(
                (str(box.label), (box.xmin - 1.0, box.ymin - 1.0, float(box.xmax), float(box.ymax)))
            )
    return found


def _read_automl(root: Path, kind: ProjectKind) -> dict[str, ReadBack]:
    try:
        import jsonschema  # type: ignore[import-untyped]
    except ImportError as exc:
        raise MissingReader("jsonschema") from exc
    from syncd.automl_schema import automl_schema

    validator = jsonschema.Draft202012Validator(automl_schema(kind.value))
    found: dict[str, ReadBack] = {}
    for path in sorted(root.glob("*/*.jsonl")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            record = json.loads(line)
            errors = sorted(validator.iter_errors(record), key=lambda e: list(e.path))
            if errors:
                rel = path.relative_to(root).as_posix()
                raise ValueError(f"{rel} line {number}: {errors[0].message}")
            read = found.setdefault(_stem_id(record["image_url"]), ReadBack())
            label = record["label"]
            if isinstance(label, str):
                read.labels.add(label)
            elif kind is ProjectKind.MULTILABEL:
                read.labels.update(label)
            else:
                details = record.get("image_details") or {}
                size = ImageSize(int(details["width"]), int(details["height"]))
                for box in label:
                    read.labels.add(box["label"])
                    pixels = (
                        box["topX"] * size.width,
                        box["topY"] * size.height,
                        box["bottomX"] * size.width,
                        box["bottomY"] * size.height,
                    )
                    read.boxes.append((box["label"], pixels))
    return found


def _read_yolo_classes(folder: Path) -> dict[str, ReadBack]:
    found: dict[str, ReadBack] = {}
    for class_dir in sorted(folder.iterdir()) if folder.is_dir() else []:
        for path in class_dir.iterdir():
            found.setdefault(_stem_id(path.name), ReadBack()).labels.add(class_dir.name)
    return found


def _read_voc_lists(folder: Path) -> dict[str, ReadBack]:
    found: dict[str, ReadBack] = {}
    suffix = "_trainval.txt"
    for path in sorted(folder.glob(f"*{suffix}")) if folder.is_dir() else []:
        tag = path.name[: -len(suffix)]
        for line in path.read_text(encoding="utf-8").splitlines():
            stem, _, flag = line.rpartition(" ")
            read = found.setdefault(stem.strip().lower(), ReadBack())
            if flag.strip() == "1":
                read.labels.add(tag)
    return found


def _read_folders(root: Path) -> dict[str, set[str]]:
    """Image id -> the folders holding a file named <id>.<suffix> (hidden folders left out)."""
    found: dict[str, set[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        folder = Path(os.path.relpath(dirpath, root)).as_posix()
        for name in filenames:
            if name.startswith("."):
                continue
            found.setdefault(_stem_id(name), set()).add("" if folder == "." else folder)
    return found
