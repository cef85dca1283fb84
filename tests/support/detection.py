"""A small annotated dataset written in each format syncd reads (YOLO, Pascal VOC, COCO), and the
project's boxes as the official SDK reads them back.

Public names: GENERAL_DETECTION, Box, Item, DATASET, CLASSES, write_dataset, write_label,
detection_project, sdk_boxes, RegionView.

Boxes are in pixels (x, y, w, h: 0-based, continuous), on images whose sides make every fraction
exact to 4 decimals, so the three formats must give the very same normalized boxes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from msrest.authentication import ApiKeyCredentials

from tests.support import TEST_KEY
from tests.support.images import image_bytes
from tests.support.project_view import sha256

# The General object detection domain (the "select a domain" docs page).
GENERAL_DETECTION = "da2e3a8a-40a5-4171-82f4-58522f70fbc1"

Box = tuple[int, int, int, int]  # x, y, w, h in pixels


@dataclass(frozen=True)
class Item:
    path: str
    seed: int
    size: tuple[int, int]
    boxes: tuple[tuple[str, Box], ...]


CLASSES = ("fork", "knife", "spoon")
DATASET: tuple[Item, ...] = (
    Item(
        "images/kitchen/a.jpg",
        1,
        (100, 80),
        (("fork", (10, 8, 20, 16)), ("knife", (50, 40, 30, 24))),
    ),
    Item("images/kitchen/b.png", 2, (200, 50), (("spoon", (0, 0, 200, 50)),)),
    Item(
        "images/table/c.jpg", 3, (100, 80), (("fork", (60, 0, 40, 40)), ("fork", (0, 40, 40, 40)))
    ),
    Item("images/table/d.jpg", 4, (100, 80), ()),  # an image with an empty annotation
)


def write_images(root: Path, dataset: Sequence[Item] = DATASET) -> dict[str, str]:
    """Write the images; return path -> sha256."""
    out = {}
    for item in dataset:
        fmt = "png" if item.path.endswith(".png") else "jpeg"
        data = image_bytes(item.seed, fmt, item.size)
        path = root / item.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        out[item.path] = sha256(data)
    return out


def _yolo(item: Item) -> str:
    width, height = item.size
    lines = []
    for name, (x, y, w, h) in item.boxes:
        cx, cy = (x + w / 2) / width, (y + h / 2) / height
        lines.append(f"{CLASSES.index(name)} {cx:.6f} {cy:.6f} {w / width:.6f} {h / height:.6f}")
    return "".join(line + "\n" for line in lines)


def _voc(item: Item) -> str:
    width, height = item.size
    objects = "".join(
        f"<object><name>{name}</name><bndbox><xmin>{x + 1}</xmin><ymin>{y + 1}</ymin>"
        f"<xmax>{x + w}</xmax><ymax>{y + h}</ymax></bndbox></object>"
        for name, (x, y, w, h) in item.boxes
    )
    return (
        f"<annotation><filename>{Path(item.path).name}</filename><size><width>{width}</width>"
        f"<height>{height}</height><depth>3</depth></size>{objects}</annotation>"
    )


# COCO category ids on purpose not 0.. or 1..: 7, 3, 42.
COCO_IDS = {"fork": 7, "knife": 3, "spoon": 42}


def _coco(dataset: Sequence[Item]) -> dict[str, object]:
    images, annotations = [], []
    for number, item in enumerate(dataset, start=100):
        images.append(
            {"id": number, "file_name": item.path, "width": item.size[0], "height": item.size[1]}
        )
        for name, box in item.boxes:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": number,
                    "category_id": COCO_IDS[name],
                    "bbox": list(box),
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i, "name": n} for n, i in COCO_IDS.items()]
    return {"images": images, "annotations": annotations, "categories": categories}


def write_label(root: Path, fmt: str, item: Item) -> Path:
    """Write one item's YOLO label (in labels/, the parallel layout) or VOC file; return it."""
    if fmt == "yolo":
        path = root / item.path.replace("images/", "labels/", 1)
        path = path.with_suffix(".txt")
        text = _yolo(item)
    else:
        path = (root / item.path).with_suffix(".xml")
        text = _voc(item)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_dataset(
    root: Path, fmt: str, dataset: Sequence[Item] = DATASET, coco_file: Path | None = None
) -> dict[str, str]:
    """Write images and their annotations in `fmt` (yolo: labels/ + data.yaml; voc: .xml
    beside; coco: `coco_file`); return path -> sha256."""
    hashes = write_images(root, dataset)
    if fmt == "coco":
        assert coco_file is not None
        coco_file.write_text(json.dumps(_coco(dataset)), encoding="utf-8")
        return hashes
    if fmt == "yolo":
        names = "".join(f"  - {n}\n" for n in CLASSES)
        (root / "data.yaml").write_text(f"names:\n{names}", encoding="utf-8")
    for item in dataset:
        write_label(root, fmt, item)
    return hashes


def detection_project(http: httpx.Client, name: str = "od") -> str:
    r = http.post("/projects", params={"name": name, "domainId": GENERAL_DETECTION})
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


@dataclass(frozen=True)
class RegionView:
    region_id: str
    tag: str
    box: tuple[float, float, float, float]


def sdk_boxes(endpoint: str, project_id: str) -> dict[str, tuple[RegionView, ...]]:
    """sha256 of each image's original -> its regions (sorted), read by the official SDK."""
    trainer = CustomVisionTrainingClient(
        endpoint, ApiKeyCredentials(in_headers={"Training-key": TEST_KEY})
    )
    try:
        images = trainer.get_images(project_id, take=256)
        out: dict[str, tuple[RegionView, ...]] = {}
        with httpx.Client() as http:
            for image in images:
                data = http.get(image.original_image_uri).content
                regions = sorted(
                    (
                        RegionView(
                            r.region_id,
                            r.tag_name,
                            (
                                round(r.left, 4),
                                round(r.top, 4),
                                round(r.width, 4),
                                round(r.height, 4),
                            ),
                        )
                        for r in image.regions or ()
                    ),
                    key=lambda v: (v.tag, v.box),
                )
                assert sha256(data) not in out, "the same bytes uploaded twice"
                out[sha256(data)] = tuple(regions)
        return out
    finally:
        trainer.close()


def expected_boxes(
    hashes: Mapping[str, str], dataset: Sequence[Item] = DATASET
) -> dict[str, tuple[tuple[str, tuple[float, float, float, float]], ...]]:
    """sha256 -> the (tag, box) the dataset wants, normalized and rounded to 4 decimals."""
    out = {}
    for item in dataset:
        width, height = item.size
        out[hashes[item.path]] = tuple(
            sorted(
                (
                    name,
                    (
                        round(x / width, 4),
                        round(y / height, 4),
                        round(w / width, 4),
                        round(h / height, 4),
                    ),
                )
                for name, (x, y, w, h) in item.boxes
            )
        )
    return out


def without_ids(
    boxes: Mapping[str, tuple[RegionView, ...]],
) -> dict[str, tuple[tuple[str, tuple[float, float, float, float]], ...]]:
    return {sha: tuple((v.tag, v.box) for v in views) for sha, views in boxes.items()}
