"""Helpers for the round-trip tests: a project labelled "in the portal" (images uploaded over
plain HTTP, never by syncd), and readers of what `syncd pull` wrote.

Public names: LabelledProject, label_project, tree_files, KIND_COUNTS, DetectionProject,
label_detection_project, jpeg_with_orientation, GENERAL_DETECTION.
"""

from __future__ import annotations

import base64
import hashlib
import io
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from PIL import Image

from tests.support.images import image_bytes

# Images per label set: several tags, the Negative tag, untagged, and multi-tag images.
KIND_COUNTS: Mapping[tuple[str, ...], int] = {
    ("Dog",): 90,
    ("Cat",): 80,
    ("Bird",): 60,
    ("Fish",): 40,
    ("Negative",): 20,
    (): 10,
    ("Cat", "Dog"): 12,
    ("Bird", "Fish"): 8,
}


@dataclass(frozen=True)
class LabelledProject:
    project_id: str
    tag_ids: Mapping[str, str]  # name -> id
    images: Mapping[str, tuple[str, ...]]  # image id -> tag names
    sha256: Mapping[str, str]  # image id -> sha256 of its bytes


def label_project(
    http: httpx.Client, project_id: str, counts: Mapping[tuple[str, ...], int] = KIND_COUNTS
) -> LabelledProject:
    """Create the tags and upload seeded images for each label set (64 per call)."""
    tag_ids: dict[str, str] = {}
    for name in sorted({n for names in counts for n in names}):
        params = {"name": name, **({"type": "Negative"} if name == "Negative" else {})}
        r = http.post(f"/projects/{project_id}/tags", params=params)
        assert r.status_code == 200, r.text
        tag_ids[name] = r.json()["id"]
    images: dict[str, tuple[str, ...]] = {}
    hashes: dict[str, str] = {}
    seed = 10_000
    for names, count in counts.items():
        batch: list[tuple[str, bytes]] = []
        for _ in range(count):
            seed += 1
            batch.append((f"img{seed}.png", image_bytes(seed, "png")))
        for start in range(0, count, 64):
            chunk = batch[start : start + 64]
            ids = _upload(http, project_id, chunk, [tag_ids[n] for n in names])
            for image_id, (_, data) in zip(ids, chunk, strict=True):
                images[image_id] = names
                hashes[image_id] = hashlib.sha256(data).hexdigest()
    return LabelledProject(project_id, tag_ids, images, hashes)


def _upload(
    http: httpx.Client, project_id: str, batch: Sequence[tuple[str, bytes]], tag_ids: list[str]
) -> list[str]:
    files = [("imageData", (name, data, "application/octet-stream")) for name, data in batch]
    params = {"tagIds": ",".join(tag_ids)} if tag_ids else {}
    r = http.post(f"/projects/{project_id}/images", params=params, files=files)
    assert r.status_code == 200, r.text
    return [result["image"]["id"] for result in r.json()["images"]]


def tree_files(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every regular file under root, hidden ones left out."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not any(part.startswith(".") for part in rel.split("/")):
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


# --- object detection ----------------------------------------------------------------------------

GENERAL_DETECTION = "da2e3a8a-40a5-4171-82f4-58522f70fbc1"  # the General (detection) domain
EXIF_ORIENTATION = 0x0112
BoxTuple = tuple[float, float, float, float]  # left, top, width, height: fractions, stored frame


@dataclass(frozen=True)
class DetectionProject:
    project_id: str
    tag_ids: Mapping[str, str]  # name -> id
    boxes: Mapping[str, tuple[tuple[str, BoxTuple], ...]]  # image id -> (tag name, box) ...
    sizes: Mapping[str, tuple[int, int]]  # image id -> stored width, height
    orientation: Mapping[str, int]  # image id -> EXIF orientation (1: none)
    negative: frozenset[str]  # image ids with the Negative tag (and no boxes)
    region_ids: Mapping[str, tuple[str, ...]]  # image id -> its region ids, as in boxes


def jpeg_with_orientation(seed: int, size: tuple[int, int], orientation: int = 1) -> bytes:
    """A seeded grey JPEG of `size` (stored pixels) whose EXIF orientation is `orientation` (grey,
    so that an overlay's green and magenta can only come from the boxes drawn on it)."""
    rng = random.Random(seed)
    grey = rng.randrange(60, 200)
    img = Image.new("RGB", size, (grey, grey, grey))
    for _ in range(16):
        shade = rng.randrange(256)
        img.putpixel((rng.randrange(size[0]), rng.randrange(size[1])), (shade, shade, shade))
    exif = Image.Exif()
    if orientation != 1:
        exif[EXIF_ORIENTATION] = orientation
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes())
    return buf.getvalue()


def _random_box(rng: random.Random, quadrant: int) -> BoxTuple:
    """A seeded box inside one quadrant of the image: an image's boxes never overlap, so a
    review's matches (IoU >= 0.5) are never ambiguous."""
    width, height = rng.uniform(0.05, 0.45), rng.uniform(0.05, 0.45)
    left = (quadrant % 2) * 0.5 + rng.uniform(0, 0.5 - width)
    top = (quadrant // 2) * 0.5 + rng.uniform(0, 0.5 - height)
    return tuple(round(v, 4) for v in (left, top, width, height))  # type: ignore[return-value]


def label_detection_project(
    http: httpx.Client,
    *,
    images: int = 24,
    names: Sequence[str] = ("fork", "scissors", "cup"),
    negatives: int = 2,
    seed: int = 7,
) -> DetectionProject:
    """A detection project filled "in the portal": seeded JPEGs of a few sizes (one turned by its
    EXIF orientation), 1-4 seeded boxes each, plus `negatives` images with the Negative tag."""
    r = http.post("/projects", params={"name": "od", "domainId": GENERAL_DETECTION})
    assert r.status_code == 200, r.text
    project_id = r.json()["id"]
    tag_ids: dict[str, str] = {}
    for name in (*names, "Negative"):
        params = {"name": name, **({"type": "Negative"} if name == "Negative" else {})}
        r = http.post(f"/projects/{project_id}/tags", params=params)
        assert r.status_code == 200, r.text
        tag_ids[name] = r.json()["id"]
    rng = random.Random(seed)
    sizes_by_kind = [(320, 240), (200, 300), (640, 480)]
    entries, planned = [], []
    for n in range(images):
        size = sizes_by_kind[n % len(sizes_by_kind)]
        orientation = 6 if n == 1 else 1  # one image shown turned 90 degrees clockwise
        quadrants = rng.sample(range(4), rng.randint(1, 4))
        boxes = tuple((rng.choice(list(names)), _random_box(rng, q)) for q in quadrants)
        data = jpeg_with_orientation(seed * 1000 + n, size, orientation)
        regions = [
            {"tagId": tag_ids[t], "left": b[0], "top": b[1], "width": b[2], "height": b[3]}
            for t, b in boxes
        ]
        entries.append(
            {"name": f"od{n}.jpg", "contents": base64.b64encode(data).decode(), "regions": regions}
        )
        planned.append((boxes, size, orientation))
    r = http.post(f"/projects/{project_id}/images/files", json={"images": entries})
    assert r.status_code == 200 and r.json()["isBatchSuccessful"], r.text
    boxes_by_id, sizes, orientation_by_id, region_ids = {}, {}, {}, {}
    for result, (boxes, size, orientation) in zip(r.json()["images"], planned, strict=True):
        image = result["image"]
        image_id = image["id"]
        boxes_by_id[image_id] = boxes
        sizes[image_id] = size
        orientation_by_id[image_id] = orientation
        by_box = {
            (reg["tagId"], round(reg["left"], 4), round(reg["top"], 4)): reg["regionId"]
            for reg in image["regions"]
        }
        region_ids[image_id] = tuple(
            by_box[(tag_ids[t], round(b[0], 4), round(b[1], 4))] for t, b in boxes
        )
    negative_ids = set()
    for n in range(negatives):
        data = jpeg_with_orientation(seed * 1000 + 500 + n, (240, 240))
        ids = _upload(http, project_id, [(f"neg{n}.jpg", data)], [tag_ids["Negative"]])
        negative_ids.update(ids)
        for image_id in ids:
            boxes_by_id[image_id] = ()
            sizes[image_id] = (240, 240)
            orientation_by_id[image_id] = 1
            region_ids[image_id] = ()
    return DetectionProject(
        project_id,
        tag_ids,
        boxes_by_id,
        sizes,
        orientation_by_id,
        frozenset(negative_ids),
        region_ids,
    )
