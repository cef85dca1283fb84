"""`syncd pull --format`: a pulled project's labels written in another tool's format.

Public names: ExportFormat, ProjectKind, ExportImage, ExportResult, write_export, layout_folder,
data_yaml, coco_pixels, voc_pixels, yolo_line, automl_line, split_of, MLTABLE, IMAGES_FOLDER.

The images are downloaded by syncd.pull (resumable, hashed); this module writes the annotation
files beside them, from the listing the pull made, and says what the format leaves out. The
rules, per format (README "Leaving Custom Vision" has them as a table):

- `folders`: the pull's tree (syncd.pull, docs/roundtrip.md); classification only.
- `coco`: `annotations.json` at the root; `file_name` is the image's path from the root
  (`images/<id>.<ext>`); category ids are 1.. in tag-name order. Detection: one annotation per
  box, `bbox` = `[x, y, w, h]` in pixels of the image as displayed (EXIF orientation applied),
  `area` = w*h. Classification: one annotation per (image, tag), with `category_id` and no
  `bbox`; the Negative tag is a category like any other; an untagged image has no annotation.
- `yolo`: detection: `images/<id>.<ext>`, `labels/<id>.txt` (`class cx cy w h`, fractions; an
  empty file for an image without boxes, YOLO's background image) and `data.yaml` (`names`).
  Classification: Ultralytics' classification layout `train/<tag>/<id>.<ext>` (an image with
  several tags is in each tag's folder, hard-linked); untagged and Negative images are left out.
- `voc`: detection: `images/<id>.xml` beside each image, in the VOC devkit's 1-based inclusive
  pixel convention (xmin = left + 1, xmax = right), to 2 decimals where a box edge is not on a
  whole pixel (so the round trip is exact). Classification: the devkit's
  classification lists, `ImageSets/Main/<tag>_trainval.txt`, one line `<id>  1` or `<id> -1`
  per image and tag (the Negative tag has its own list; an untagged image is -1 everywhere).
- `automl`: Azure ML AutoML for images JSONL (docs/spec/automl-images.md), one line per image,
  in `train/train.jsonl` (and `validation/validation.jsonl` with a split), each with an
  `MLTable` beside it naming it. `image_url` = `--image-url-prefix` + the image's path from the
  root. Multi-class: `label` is the tag; untagged and Negative images are left out (AutoML
  multi-class has no "none"), and so is an image with several tags. Multi-label: `label` is the
  list of tags, `[]` for an untagged or Negative image. Detection: `label` is the list of boxes,
  `topX, topY, bottomX, bottomY` fractions of the displayed image, `isCrowd` 0.

Every format leaves out image metadata and tag descriptions, and a detection project's Negative
tag (an image with no boxes); the pull's summary says so with how many images have them. Images
a format leaves out by the rules above are counted in ExportResult.left_out.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import yaml

from syncd.core.mapping import folder_name_problem
from syncd.core.regions import Box, ImageSize, Region
from syncd.localio import writing

IMAGES_FOLDER = "images"
COCO_FILE = "annotations.json"
YOLO_LABELS = "labels"
YOLO_CLASSIFY_TRAIN = "train"
VOC_LISTS = "ImageSets/Main"
MLTABLE = "MLTable"
# Digits written for fractions (YOLO, AutoML): 1e-6 of a side is well under a pixel at 10,240 px.
FRACTION_DIGITS = 6
PIXEL_DIGITS = 2  # COCO's pixel boxes


class ExportFormat(enum.StrEnum):
    """`syncd pull --format`."""

    FOLDERS = "folders"
    COCO = "coco"
    YOLO = "yolo"
    VOC = "voc"
    AUTOML = "automl"


class ProjectKind(enum.StrEnum):
    MULTICLASS = "multiclass"
    MULTILABEL = "multilabel"
    DETECTION = "detection"


@dataclass(frozen=True)
class ExportImage:
    """One pulled image as the export writes it: its file (relative to the root), its size as
    displayed, its regular tags, whether it has the Negative tag, its boxes (displayed frame)."""

    image_id: str
    path: str
    size: ImageSize
    tags: tuple[str, ...] = ()
    negative: bool = False
    regions: tuple[Region, ...] = ()

    @property
    def stem(self) -> str:
        return Path(self.path).stem

    @property
    def suffix(self) -> str:
        return Path(self.path).suffix.lstrip(".").lower()


@dataclass
class ExportResult:
    """What the export wrote and what the format could not hold."""

    files: list[str] = field(default_factory=list)  # annotation files, relative to the root
    left_out: dict[str, int] = field(default_factory=dict)  # why -> images
    split: dict[str, int] = field(default_factory=dict)  # AutoML: part -> lines

    def leave_out(self, why: str) -> None:
        self.left_out[why] = self.left_out.get(why, 0) + 1


def layout_folder(fmt: ExportFormat, kind: ProjectKind, tags: Sequence[str]) -> tuple[str, ...]:
    """The folders an image's file goes into (formats other than `folders`): `images/`, or for
    YOLO classification `train/<tag>/` per tag (none: the image is left out)."""
    if fmt is ExportFormat.YOLO and kind is not ProjectKind.DETECTION:
        return tuple(f"{YOLO_CLASSIFY_TRAIN}/{tag}" for tag in sorted(tags))
    return (IMAGES_FOLDER,)


# --- conversions (pure) --------------------------------------------------------------------------


def coco_pixels(box: Box, size: ImageSize) -> list[float]:
    """COCO's [x, y, w, h] in pixels."""
    return [
        round(box.left * size.width, PIXEL_DIGITS),
        round(box.top * size.height, PIXEL_DIGITS),
        round(box.width * size.width, PIXEL_DIGITS),
        round(box.height * size.height, PIXEL_DIGITS),
    ]


def voc_pixels(box: Box, size: ImageSize) -> tuple[float, float, float, float]:
    """VOC's (xmin, ymin, xmax, ymax) in the devkit's 1-based inclusive convention: a box over the
    whole image is (1, 1, W, H). Kept to PIXEL_DIGITS decimals rather than rounded to whole
    pixels, so that reading the file back gives the project's box (to 1e-4) and not one up to
    half a pixel off; the readers we know of (globox, CVAT, Ultralytics' converter) take them."""
    return (
        round(box.left * size.width + 1, PIXEL_DIGITS),
        round(box.top * size.height + 1, PIXEL_DIGITS),
        round((box.left + box.width) * size.width, PIXEL_DIGITS),
        round((box.top + box.height) * size.height, PIXEL_DIGITS),
    )


def _number(value: float) -> str:
    """A pixel coordinate as VOC files show it: `12` for a whole pixel, else `12.34`."""
    return f"{value:.{PIXEL_DIGITS}f}".rstrip("0").rstrip(".")


def yolo_line(class_id: int, box: Box) -> str:
    cx, cy = box.left + box.width / 2, box.top + box.height / 2
    numbers = (cx, cy, box.width, box.height)
    return f"{class_id} " + " ".join(f"{v:.{FRACTION_DIGITS}f}" for v in numbers)


def split_of(image_id: str, seed: int, validation: float) -> str:
    """`train` or `validation`, from a hash of (seed, image id): the same seed gives the same
    split on every run and machine, and adding images never moves the others."""
    digest = hashlib.sha256(f"{seed}:{image_id}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return "validation" if fraction < validation else "train"


def automl_line(
    image: ExportImage, kind: ProjectKind, prefix: str
) -> tuple[dict[str, object] | None, str | None]:
    """One AutoML JSONL record, or (None, why it is left out)."""
    record: dict[str, object] = {
        "image_url": prefix + image.path,
        "image_details": {
            "format": image.suffix,
            "width": image.size.width,
            "height": image.size.height,
        },
    }
    if kind is ProjectKind.DETECTION:
        record["label"] = [
            {
                "label": r.tag,
                "topX": round(r.box.left, FRACTION_DIGITS),
                "topY": round(r.box.top, FRACTION_DIGITS),
                "bottomX": round(min(r.box.left + r.box.width, 1.0), FRACTION_DIGITS),
                "bottomY": round(min(r.box.top + r.box.height, 1.0), FRACTION_DIGITS),
                "isCrowd": 0,
            }
            for r in image.regions
        ]
    elif kind is ProjectKind.MULTILABEL:
        record["label"] = sorted(image.tags)
    else:
        if image.negative:
            return None, "Negative images (AutoML multi-class has no 'none' class)"
        if not image.tags:
            return None, "untagged images (AutoML multi-class needs one label)"
        if len(image.tags) > 1:
            return None, "images with several tags (AutoML multi-class takes one label)"
        record["label"] = image.tags[0]
    return record, None


def mltable_text(jsonl_name: str) -> str:
    """The MLTable beside a JSONL file, as AutoML for images reads it (image_url as a stream)."""
    return (
        "paths:\n"
        f"  - file: ./{jsonl_name}\n"
        "transformations:\n"
        "  - read_json_lines:\n"
        "      encoding: utf8\n"
        "      invalid_lines: error\n"
        "      include_path_column: false\n"
        "  - convert_column_types:\n"
        "      - columns: image_url\n"
        "        column_type: stream_info\n"
    )


def data_yaml(names: Sequence[str], kind: ProjectKind) -> str:
    """YOLO's data.yaml: the root, the image folders and the class names by id."""
    train = IMAGES_FOLDER if kind is ProjectKind.DETECTION else YOLO_CLASSIFY_TRAIN
    document = {"path": ".", "train": train, "val": train, "names": dict(enumerate(names))}
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def voc_xml(image: ExportImage) -> str:
    """A Pascal VOC annotation for one image (boxes only: detection)."""
    lines = [
        "<annotation>",
        f"  <folder>{IMAGES_FOLDER}</folder>",
        f"  <filename>{escape(Path(image.path).name)}</filename>",
        f"  <size><width>{image.size.width}</width><height>{image.size.height}</height>"
        "<depth>3</depth></size>",
        "  <segmented>0</segmented>",
    ]
    for region in image.regions:
        xmin, ymin, xmax, ymax = voc_pixels(region.box, image.size)
        lines += [
            "  <object>",
            f"    <name>{escape(region.tag)}</name>",
            "    <pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>",
            f"    <bndbox><xmin>{_number(xmin)}</xmin><ymin>{_number(ymin)}</ymin>"
            f"<xmax>{_number(xmax)}</xmax><ymax>{_number(ymax)}</ymax></bndbox>",
            "  </object>",
        ]
    lines.append("</annotation>")
    return "\n".join(lines) + "\n"


# --- writing (the edge) --------------------------------------------------------------------------


def _write(root: Path, rel: str, text: str, result: ExportResult) -> None:
    path = root / rel
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)  # a killed pull never leaves half an annotation file
    result.files.append(rel)


def class_names(kind: ProjectKind, images: Iterable[ExportImage], tags: Iterable[str]) -> list[str]:
    """The classes, by name: every regular tag of the project (a tag with no image still is one)
    and, for detection, any tag a box has."""
    names = set(tags)
    if kind is ProjectKind.DETECTION:
        names |= {r.tag for i in images for r in i.regions}
    return sorted(names)


def write_export(
    root: Path,
    fmt: ExportFormat,
    kind: ProjectKind,
    images: Sequence[ExportImage],
    tags: Sequence[str],
    negative_tag: str | None,
    *,
    image_url_prefix: str = "",
    validation: float = 0.0,
    seed: int = 0,
    coco_file: Path | None = None,
) -> ExportResult:
    """Write the annotation files of `fmt` for `images` (already under `root`); the COCO file
    goes to `coco_file` if given (a mirror's annotations.coco_file), else to
    `<root>/annotations.json`."""
    result = ExportResult()
    names = class_names(kind, images, tags)
    if fmt is ExportFormat.COCO:
        _write_coco(root, kind, images, names, negative_tag, result, coco_file)
    elif fmt is ExportFormat.YOLO:
        _write_yolo(root, kind, images, names, result)
    elif fmt is ExportFormat.VOC:
        _write_voc(root, kind, images, names, negative_tag, result)
    elif fmt is ExportFormat.AUTOML:
        _write_automl(root, kind, images, image_url_prefix, validation, seed, result)
    return result


def _write_coco(
    root: Path,
    kind: ProjectKind,
    images: Sequence[ExportImage],
    names: list[str],
    negative_tag: str | None,
    result: ExportResult,
    coco_file: Path | None = None,
) -> None:
    categories = list(names)
    if kind is not ProjectKind.DETECTION and negative_tag and any(i.negative for i in images):
        categories.append(negative_tag)
    category_id = {name: number for number, name in enumerate(categories, start=1)}
    document: dict[str, list[dict[str, object]]] = {
        "images": [],
        "annotations": [],
        "categories": [
            {"id": number, "name": name, "supercategory": "none"}
            for name, number in category_id.items()
        ],
    }
    for number, image in enumerate(images, start=1):
        document["images"].append(
            {
                "id": number,
                "file_name": image.path,
                "width": image.size.width,
                "height": image.size.height,
            }
        )

        def annotation(number: int = number, **fields: object) -> dict[str, object]:
            return {"id": len(document["annotations"]) + 1, "image_id": number, **fields}

        if kind is ProjectKind.DETECTION:
            for region in image.regions:
                x, y, w, h = coco_pixels(region.box, image.size)
                document["annotations"].append(
                    annotation(
                        category_id=category_id[region.tag],
                        bbox=[x, y, w, h],
                        area=round(w * h, PIXEL_DIGITS),
                        iscrowd=0,
                    )
                )
        else:
            labels = [*image.tags, *([negative_tag] if image.negative and negative_tag else [])]
            for tag in labels:
                document["annotations"].append(annotation(category_id=category_id[tag], iscrowd=0))
    text = json.dumps(document, indent=1, ensure_ascii=False) + "\n"
    if coco_file is None:
        _write(root, COCO_FILE, text, result)
    else:
        _write(coco_file.parent, coco_file.name, text, result)


def _write_yolo(
    root: Path,
    kind: ProjectKind,
    images: Sequence[ExportImage],
    names: list[str],
    result: ExportResult,
) -> None:
    _write(root, "data.yaml", data_yaml(names, kind), result)
    if kind is not ProjectKind.DETECTION:
        for image in images:
            if image.negative:
                result.leave_out("Negative images (YOLO classification has no negative class)")
            elif not image.tags:
                result.leave_out("untagged images (YOLO classification needs a class folder)")
        return
    class_id = {name: number for number, name in enumerate(names)}
    for image in images:
        text = "".join(yolo_line(class_id[r.tag], r.box) + "\n" for r in image.regions)
        _write(root, f"{YOLO_LABELS}/{image.stem}.txt", text, result)


def _write_voc(
    root: Path,
    kind: ProjectKind,
    images: Sequence[ExportImage],
    names: list[str],
    negative_tag: str | None,
    result: ExportResult,
) -> None:
    if kind is ProjectKind.DETECTION:
        for image in images:
            _write(
                root, str(Path(image.path).with_suffix(".xml").as_posix()), voc_xml(image), result
            )
        return
    lists = [name for name in names if folder_name_problem(name) is None]  # the rest: skipped
    if negative_tag and any(i.negative for i in images):
        lists.append(negative_tag)
    for tag in lists:
        lines = []
        for image in images:
            has = image.negative if tag == negative_tag else tag in image.tags
            lines.append(f"{image.stem} {' 1' if has else '-1'}\n")
        _write(root, f"{VOC_LISTS}/{tag}_trainval.txt", "".join(lines), result)


def _write_automl(
    root: Path,
    kind: ProjectKind,
    images: Sequence[ExportImage],
    prefix: str,
    validation: float,
    seed: int,
    result: ExportResult,
) -> None:
    parts: dict[str, list[str]] = {"train": []}
    if validation > 0:
        parts["validation"] = []
    for image in images:
        record, why = automl_line(image, kind, prefix)
        if record is None:
            result.leave_out(why or "left out")
            continue
        part = split_of(image.image_id, seed, validation) if validation > 0 else "train"
        parts[part].append(json.dumps(record, ensure_ascii=False) + "\n")
    for part, lines in parts.items():
        _write(root, f"{part}/{part}.jsonl", "".join(lines), result)
        _write(root, f"{part}/{MLTABLE}", mltable_text(f"{part}.jsonl"), result)
        result.split[part] = len(lines)
