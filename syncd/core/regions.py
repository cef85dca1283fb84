"""Bounding boxes as the service holds them, and the pure conversions from annotation formats.

Public names: Box, Region, ImageSize, AnnotationProblem, Converted, BOX_DECIMALS, BOX_TOLERANCE,
make_box, clip_box, same_box, unique_regions, to_stored_orientation, displayed_size,
yolo_class_names, yolo_boxes, voc_box, coco_box, RegionDiff, remote_box, diff_regions,
region_keys, to_displayed_orientation, iou.

A box is the service's `left, top, width, height`, each a fraction of the image's width or
height, in [0, 1] (docs/spec/DIGEST.md: Region). Every box syncd builds goes through `make_box`:
the coordinates are clipped to the image, then rounded to BOX_DECIMALS (4) decimal places. That
rounding is the box's identity: `Box.key` is the four rounded integers, syncd sends exactly the
rounded values, and the service's echo of them (even through float32, off by < 1e-7) rounds back
to the same key. So float noise never turns an unchanged box into a changed one. Two boxes from
different sources (a box drawn in the portal) are the same if every coordinate is within
BOX_TOLERANCE (`same_box`): 1e-4 is 0.1 px on a 1,000 px side and 1 px at the service's largest
side, 10,240 px.

Pixel conventions, exactly:
- YOLO: `class cx cy w h`, already fractions: left = cx - w/2, top = cy - h/2.
- Pascal VOC (devkit convention, 1-based, inclusive): xmin = 1 is the first pixel column and
  xmax = W the last, so left = (xmin - 1) / W, width = (xmax - xmin + 1) / W, and the same for y
  with H. A box covering the whole image is xmin=1, ymin=1, xmax=W, ymax=H.
- COCO: `bbox = [x, y, w, h]` in pixels from the image's top-left corner (0-based, continuous):
  left = x / W, width = w / W.

EXIF orientation: annotations are read on the image as it is displayed (EXIF orientation
applied), which is what annotation tools show; the service stores the uploaded bytes, so each box
is turned into the stored pixel grid's frame (`to_stored_orientation`) before it is sent. The
README's design notes ("EXIF orientation") give the reasons, and what is still to verify.

Everything here is pure: text and numbers in, boxes and problems out. Reading files, image sizes
and XML is the edge's job (syncd/annotations.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from syncd.core.mapping import tag_key, tag_name_problem
from syncd.core.model import RemoteRegion

BOX_DECIMALS = 4
_SCALE: int = 10**BOX_DECIMALS
BOX_TOLERANCE = 1e-4
# EXIF orientations (tag 0x0112) whose displayed image swaps width and height.
_TRANSPOSING = frozenset({5, 6, 7, 8})


@dataclass(frozen=True, order=True)
class Box:
    """A box as fractions of the image: left, top, width, height, each in [0, 1]."""

    left: float
    top: float
    width: float
    height: float

    @property
    def key(self) -> tuple[int, int, int, int]:
        """The canonical identity: each coordinate in units of 10^-BOX_DECIMALS."""
        return (
            round(self.left * _SCALE),
            round(self.top * _SCALE),
            round(self.width * _SCALE),
            round(self.height * _SCALE),
        )


@dataclass(frozen=True, order=True)
class Region:
    """One labelled box: the tag (the class name) and where it is."""

    tag: str
    box: Box

    @property
    def key(self) -> tuple[str, tuple[int, int, int, int]]:
        return (self.tag, self.box.key)


@dataclass(frozen=True)
class ImageSize:
    """An image's size in pixels."""

    width: int
    height: int

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"


@dataclass(frozen=True)
class AnnotationProblem:
    """Something wrong in an annotation: the file, where in it (line 3, object 2), and why."""

    file: str
    where: str
    reason: str

    def __str__(self) -> str:
        return (
            f"{self.file}: {self.where}: {self.reason}"
            if self.where
            else (f"{self.file}: {self.reason}")
        )


@dataclass(frozen=True)
class Converted:
    """The regions read from one annotation, and what was wrong in it (each reported once)."""

    regions: tuple[Region, ...] = ()
    problems: tuple[AnnotationProblem, ...] = field(default=())


def _quantize(value: float) -> float:
    return round(value * _SCALE) / _SCALE


def clip_box(left: float, top: float, right: float, bottom: float) -> Box | str:
    """The box (left, top)-(right, bottom), in fractions, clipped to the image and rounded; or the
    reason it cannot be one (degenerate, or wholly outside the image)."""
    if not all(math.isfinite(v) for v in (left, top, right, bottom)):
        return "a coordinate is not a finite number"
    if right <= left or bottom <= top:
        return "degenerate: zero or negative width or height"
    if right <= 0 or bottom <= 0 or left >= 1 or top >= 1:
        return "wholly outside the image"
    x0, y0 = _quantize(max(left, 0.0)), _quantize(max(top, 0.0))
    x1, y1 = _quantize(min(right, 1.0)), _quantize(min(bottom, 1.0))
    if x1 <= x0 or y1 <= y0:
        return f"smaller than {BOX_TOLERANCE:g} of the image once clipped and rounded"
    return Box(x0, y0, _quantize(x1 - x0), _quantize(y1 - y0))


def make_box(left: float, top: float, width: float, height: float) -> Box | str:
    """A normalized box from left, top, width, height (fractions), clipped and rounded."""
    return clip_box(left, top, left + width, top + height)


def same_box(a: Box, b: Box, tolerance: float = BOX_TOLERANCE) -> bool:
    """True if every coordinate of a and b is within `tolerance` (plus float noise)."""
    slack = tolerance + 1e-9
    return all(
        abs(x - y) <= slack
        for x, y in zip(
            (a.left, a.top, a.width, a.height), (b.left, b.top, b.width, b.height), strict=True
        )
    )


def unique_regions(
    found: Iterable[tuple[str, Region]], file: str
) -> tuple[tuple[Region, ...], tuple[AnnotationProblem, ...]]:
    """The regions (each with where it was found) with repeats dropped: a box of the same tag
    (tags compare as the service compares them, case-insensitively) within BOX_TOLERANCE of an
    earlier one is reported and kept once; the service would answer it as `duplicated`."""
    kept: dict[str, list[tuple[str, Region]]] = {}
    regions: list[Region] = []
    problems: list[AnnotationProblem] = []
    for where, region in found:
        same_tag = kept.setdefault(tag_key(region.tag), [])
        twin = next((w for w, r in same_tag if same_box(r.box, region.box)), None)
        if twin is not None:
            reason = f"the same {region.tag} box as {twin} (within {BOX_TOLERANCE:g}): kept once"
            problems.append(AnnotationProblem(file, where, reason))
            continue
        same_tag.append((where, region))
        regions.append(region)
    return tuple(regions), tuple(problems)


# --- EXIF orientation ---------------------------------------------------------------------------


def displayed_size(stored: ImageSize, orientation: int) -> ImageSize:
    """The size of the image as displayed (EXIF orientation applied)."""
    if orientation in _TRANSPOSING:
        return ImageSize(stored.height, stored.width)
    return stored


def _to_stored_point(u: float, v: float, orientation: int) -> tuple[float, float]:
    """A displayed point (fractions) in the stored pixel grid. The displayed image is the stored
    one transformed as EXIF says (Pillow's ImageOps.exif_transpose); this is its inverse."""
    if orientation == 2:  # mirrored left-right
        return 1 - u, v
    if orientation == 3:  # rotated 180
        return 1 - u, 1 - v
    if orientation == 4:  # mirrored top-bottom
        return u, 1 - v
    if orientation == 5:  # transposed (mirrored across the main diagonal)
        return v, u
    if orientation == 6:  # displayed turned 90° clockwise
        return v, 1 - u
    if orientation == 7:  # transversed (mirrored across the other diagonal)
        return 1 - v, 1 - u
    if orientation == 8:  # displayed turned 90° counter-clockwise
        return 1 - v, u
    return u, v  # 1, and values outside 1..8 (ignored, as viewers ignore them)


def to_stored_orientation(box: Box, orientation: int) -> Box:
    """A box drawn on the displayed image, in the frame of the stored pixels."""
    if orientation not in range(2, 9):
        return box
    corners = [
        _to_stored_point(box.left, box.top, orientation),
        _to_stored_point(box.left + box.width, box.top + box.height, orientation),
    ]
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    result = clip_box(min(xs), min(ys), max(xs), max(ys))
    return result if isinstance(result, Box) else box  # a valid box stays valid when turned


# --- YOLO ----------------------------------------------------------------------------------------


def _class_name_problem(name: str) -> str | None:
    reason = tag_name_problem(name)
    return f"class name {name!r}: {reason}" if reason else None


def yolo_class_names(
    names: object, file: str
) -> tuple[dict[int, str], tuple[AnnotationProblem, ...]]:
    """Class id -> name from classes.txt's lines (a list of str) or data.yaml's `names:` (a list,
    or a mapping of id to name)."""
    problems: list[AnnotationProblem] = []
    pairs: Iterable[tuple[object, object]]
    if isinstance(names, Mapping):
        pairs = names.items()
    elif isinstance(names, list | tuple):
        pairs = enumerate(names)
    else:
        return {}, (AnnotationProblem(file, "names", "expected a list or a mapping of names"),)
    result: dict[int, str] = {}
    for key, value in pairs:
        if isinstance(key, bool) or not isinstance(key, int) or key < 0:
            problems.append(AnnotationProblem(file, f"names[{key!r}]", "id is not an integer"))
            continue
        if not isinstance(value, str):
            problems.append(AnnotationProblem(file, f"names[{key}]", "name is not text"))
            continue
        reason = _class_name_problem(value)
        if reason:
            problems.append(AnnotationProblem(file, f"names[{key}]", reason))
            continue
        result[key] = value
    return result, tuple(problems)


def _yolo_lines(text: str, classes: Mapping[int, str], file: str) -> Converted:
    regions: list[tuple[str, Region]] = []
    problems: list[AnnotationProblem] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        where = f"line {number}"
        if len(fields) != 5:
            problems.append(
                AnnotationProblem(
                    file, where, f"expected 'class cx cy w h' (5 fields), got {len(fields)}"
                )
            )
            continue
        try:
            class_id = int(fields[0])
            cx, cy, w, h = (float(f) for f in fields[1:])
        except ValueError:
            problems.append(AnnotationProblem(file, where, "not numbers: " + line.strip()[:80]))
            continue
        if class_id not in classes:
            problems.append(AnnotationProblem(file, where, f"unknown class id {class_id}"))
            continue
        box = make_box(cx - w / 2, cy - h / 2, w, h)
        if isinstance(box, str):
            problems.append(AnnotationProblem(file, where, box))
            continue
        regions.append((where, Region(classes[class_id], box)))
    unique, repeats = unique_regions(regions, file)
    return Converted(unique, (*problems, *repeats))


def yolo_boxes(text: str, classes: Mapping[int, str], file: str, orientation: int = 1) -> Converted:
    """The regions of a YOLO label file's text (`class cx cy w h` per line, fractions of the
    displayed image), in the stored image's frame."""
    converted = _yolo_lines(text, classes, file)
    return _reorient(converted, orientation)


def _reorient(converted: Converted, orientation: int) -> Converted:
    if orientation not in range(2, 9):
        return converted
    regions = tuple(
        Region(r.tag, to_stored_orientation(r.box, orientation)) for r in converted.regions
    )
    return Converted(regions, converted.problems)


# --- Pascal VOC and COCO (pixels) ---------------------------------------------------------------


def voc_box(
    xmin: float, ymin: float, xmax: float, ymax: float, size: ImageSize, orientation: int = 1
) -> Box | str:
    """A VOC box (1-based, inclusive pixel bounds on the displayed image) as a stored-frame box."""
    shown = displayed_size(size, orientation)
    box = clip_box(
        (xmin - 1) / shown.width, (ymin - 1) / shown.height, xmax / shown.width, ymax / shown.height
    )
    return to_stored_orientation(box, orientation) if isinstance(box, Box) else box


def coco_box(bbox: Sequence[float], size: ImageSize, orientation: int = 1) -> Box | str:
    """A COCO bbox [x, y, w, h] (pixels on the displayed image) as a stored-frame box."""
    shown = displayed_size(size, orientation)
    x, y, w, h = bbox
    box = make_box(x / shown.width, y / shown.height, w / shown.width, h / shown.height)
    return to_stored_orientation(box, orientation) if isinstance(box, Box) else box


# --- the region diff (one image: the boxes its annotation wants vs the ones it has) ------------


@dataclass(frozen=True)
class RegionDiff:
    """What to do to one image's regions: the remote regions that stay (their ids kept), those
    to delete, and the boxes to create."""

    keep: tuple[RemoteRegion, ...] = ()
    delete: tuple[RemoteRegion, ...] = ()
    create: tuple[Region, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.delete and not self.create


def remote_box(region: RemoteRegion) -> Box:
    """A remote region's box as a Box (coordinates as the service echoed them)."""
    return Box(region.left, region.top, region.width, region.height)


def region_keys(regions: Iterable[Region]) -> frozenset[tuple[str, tuple[int, int, int, int]]]:
    """The regions' identities: (tag key, box key) each. Two annotations with the same set want
    the same boxes."""
    return frozenset((tag_key(r.tag), r.box.key) for r in regions)


def diff_regions(
    desired: Sequence[Region], current: Sequence[tuple[str | None, RemoteRegion]]
) -> RegionDiff:
    """The changes that turn an image's `current` regions ((tag key, region) each; None for a
    tag the project no longer has) into `desired`.

    A desired box is matched to a current region of the same tag (tag_key: case-insensitive, NFC)
    whose box has the same key (the 4-decimal rounding), else to one within BOX_TOLERANCE
    (`same_box`: a box drawn elsewhere, rounded otherwise); a matched region is kept with its id.
    The rest of `current` is deleted (a repeat of a kept box included), the rest of `desired`
    created. So an edited box costs one delete and one create, an unchanged one nothing.
    """
    left = list(current)
    keep: list[RemoteRegion] = []
    unmatched: list[Region] = []
    for region in desired:  # pass 1: exact keys
        key = (tag_key(region.tag), region.box.key)
        found = next((i for i, (t, r) in enumerate(left) if (t, remote_box(r).key) == key), None)
        if found is None:
            unmatched.append(region)
        else:
            keep.append(left.pop(found)[1])
    create: list[Region] = []
    for region in unmatched:  # pass 2: within the tolerance
        tag = tag_key(region.tag)
        found = next(
            (
                i
                for i, (t, r) in enumerate(left)
                if t == tag and same_box(remote_box(r), region.box)
            ),
            None,
        )
        if found is None:
            create.append(region)
        else:
            keep.append(left.pop(found)[1])
    return RegionDiff(tuple(keep), tuple(r for _, r in left), tuple(create))


# --- the other way: a stored box as it is displayed (for `syncd pull --format`) ----------------


def _to_displayed_point(s: float, t: float, orientation: int) -> tuple[float, float]:
    """The inverse of _to_stored_point: a stored point (fractions) on the displayed image."""
    if orientation == 6:
        return 1 - t, s
    if orientation == 8:
        return t, 1 - s
    # 2, 3, 4, 5 and 7 are their own inverses; 1 (and out-of-range values) change nothing.
    return _to_stored_point(s, t, orientation)


def to_displayed_orientation(box: Box, orientation: int) -> Box:
    """A box of the stored pixel grid (the service's frame) on the image as displayed: what an
    exported annotation holds, so that reading it back (to_stored_orientation) gives `box`."""
    if orientation not in range(2, 9):
        return box
    corners = [
        _to_displayed_point(box.left, box.top, orientation),
        _to_displayed_point(box.left + box.width, box.top + box.height, orientation),
    ]
    xs, ys = [c[0] for c in corners], [c[1] for c in corners]
    result = clip_box(min(xs), min(ys), max(xs), max(ys))
    return result if isinstance(result, Box) else box


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when they do not overlap)."""
    width = min(a.left + a.width, b.left + b.width) - max(a.left, b.left)
    height = min(a.top + a.height, b.top + b.height) - max(a.top, b.top)
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union > 0 else 0.0
