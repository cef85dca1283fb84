"""Reading a detection mirror's annotation files into regions (the edge; the rules are core's).

Public names: AnnotationReader, ImageAnnotation, parse_voc, image_frame, yolo_label_paths,
annotated_image_stems, MAX_ANNOTATION_FILE_BYTES, MAX_COCO_FILE_BYTES.

Where each format's boxes are (config `annotations.format`):
- `yolo`: `<stem>.txt` beside the image, or, in the parallel layout, the same relative path with
  the last `images` folder on it replaced by `labels` (`images/train/a.jpg` ->
  `labels/train/a.txt`), as YOLO trainers look for it. Both present: reported, the `labels/` one
  is read. Class names: `data.yaml` `names:` (a list, or a mapping of id to name) at the root, else
  `classes.txt` at the root (one name per line, line 1 is id 0).
- `voc`: `<stem>.xml` beside the image (Pascal VOC), parsed by defusedxml (no DTD, no entities).
- `coco`: the one JSON file of `annotations.coco_file`; `file_name` is relative to the root.

An image with no annotation file (or no COCO entry) has no regions: it is uploaded without boxes.
Each problem names the file and the line or object; the rest of the file and of the tree goes on.
An annotation that cannot be used at all (unreadable, not XML, its size is not the image's)
gives `ImageAnnotation.usable = False`: the sync must then leave that image's regions as they
are rather than read "no boxes".

Pixel formats need the image's real size, read from the file's header with Pillow (the COCO and
VOC size fields are only checked against it), and its EXIF orientation (see syncd.core.regions).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException
from PIL import Image

from syncd.core.policy import YOLO_NAMES_FILES, AnnotationFormat
from syncd.core.regions import (
    AnnotationProblem,
    Box,
    ImageSize,
    Region,
    coco_box,
    displayed_size,
    unique_regions,
    voc_box,
    yolo_boxes,
    yolo_class_names,
)

# A YOLO label or VOC file of the service's 300 regions is ~15 KB; anything near this is not one.
MAX_ANNOTATION_FILE_BYTES = 1 << 20
# A COCO file describes the whole dataset (COCO 2017 train's is ~450 MB).
MAX_COCO_FILE_BYTES = 1 << 30
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class ImageAnnotation:
    """One image's regions (in the stored image's frame), the files they came from, and what was
    wrong. `usable` is False when the annotation could not be read at all."""

    regions: tuple[Region, ...] = ()
    sources: tuple[str, ...] = ()
    problems: tuple[AnnotationProblem, ...] = ()
    usable: bool = True


@dataclass
class _CocoIndex:
    by_file: dict[str, int] = field(default_factory=dict)
    sizes: dict[int, tuple[Any, Any]] = field(default_factory=dict)
    boxes: dict[int, list[tuple[str, str, Any]]] = field(default_factory=dict)  # where, tag, bbox
    # Images with an annotation entry that could not be read (its category or bbox): the sync
    # must not take the image's other boxes for all of them (see `has_unread_entries`).
    unread: set[Any] = field(default_factory=set)


def _read_text(path: Path, cap: int, shown: str) -> str | AnnotationProblem:
    try:
        with path.open("rb") as handle:
            data = handle.read(cap + 1)
    except OSError as exc:
        return AnnotationProblem(shown, "", f"cannot read it: {exc.strerror or exc}")
    if len(data) > cap:
        return AnnotationProblem(shown, "", f"larger than {cap // (1 << 20)} MiB: not read")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return AnnotationProblem(shown, "", "not UTF-8 text")


def image_frame(path: Path) -> tuple[ImageSize, int] | str:
    """The stored pixel size and EXIF orientation (1 if none) of an image file, from its header;
    or why they cannot be read."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning: we only read the header
            with Image.open(path) as image:
                width, height = image.size
                orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return f"cannot read the image's size: {exc}"
    if not isinstance(orientation, int) or not 1 <= orientation <= 8:
        orientation = 1
    return ImageSize(width, height), orientation


def yolo_label_paths(image: str) -> tuple[str, ...]:
    """Where an image's YOLO label file may be: the `labels/` twin first (if the path has an
    `images` folder), then beside the image."""
    path = PurePosixPath(image)
    beside = str(path.with_suffix(".txt"))
    parts = list(path.parts[:-1])
    if "images" in parts:
        index = len(parts) - 1 - parts[::-1].index("images")
        parts[index] = "labels"
        return (str(PurePosixPath(*parts, path.stem + ".txt")), beside)
    return (beside,)


def annotated_image_stems(annotation: str, fmt: AnnotationFormat) -> tuple[str, ...]:
    """The image paths without their extension (relative, '/'-separated) whose boxes a change to
    the annotation file at `annotation` may change: for the daemon, which turns an annotation
    file's event into its image's. Empty for a file that is no annotation in this format."""
    path = PurePosixPath(annotation)
    if fmt is AnnotationFormat.VOC and path.suffix.lower() == ".xml":
        return (str(path.with_suffix("")),)
    if fmt is not AnnotationFormat.YOLO or path.suffix.lower() != ".txt":
        return ()
    if len(path.parts) == 1 and path.name in ("classes.txt",):
        return ()  # the class names: every image's boxes, a full re-read
    stems = [str(path.with_suffix(""))]
    parts = list(path.parts[:-1])
    if "labels" in parts:
        index = len(parts) - 1 - parts[::-1].index("labels")
        parts[index] = "images"
        stems.insert(0, str(PurePosixPath(*parts, path.stem)))
    return tuple(stems)


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def parse_voc(
    text: str, file: str, size: ImageSize, orientation: int = 1
) -> tuple[tuple[Region, ...], tuple[AnnotationProblem, ...], bool]:
    """The regions of a Pascal VOC document on an image of `size` (stored) and `orientation`:
    (regions, problems, usable)."""
    try:
        root = SafeET.fromstring(text, forbid_dtd=True)
    except DefusedXmlException as exc:
        return (), (AnnotationProblem(file, "", f"refused: {type(exc).__name__}"),), False
    except SafeET.ParseError as exc:
        return (), (AnnotationProblem(file, "", f"not valid XML: {exc}"),), False
    shown = displayed_size(size, orientation)
    declared = (_number(root.findtext("size/width")), _number(root.findtext("size/height")))
    # Some tools write 0 x 0 when they could not read the image: that is no size, not a wrong one.
    stated = all(v is not None for v in declared) and declared != (0, 0)
    if stated and declared != (shown.width, shown.height):
        reason = f"<size> says {declared[0]:g}x{declared[1]:g}, the image is {shown}"
        if declared == (size.width, size.height) and size != shown:
            reason += " as displayed (its EXIF orientation turns it): annotate it as displayed"
        return (), (AnnotationProblem(file, "size", reason),), False
    regions: list[tuple[str, Region]] = []
    problems: list[AnnotationProblem] = []
    for number, obj in enumerate(root.iter("object"), start=1):
        where = f"object {number}"
        name = (obj.findtext("name") or "").strip()
        if not name:
            problems.append(AnnotationProblem(file, where, "no <name>"))
            continue
        where = f"object {number} ({name})"
        coords = [_number(obj.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]
        if any(c is None for c in coords):
            problems.append(
                AnnotationProblem(file, where, "<bndbox> needs numeric xmin, ymin, xmax, ymax")
            )
            continue
        xmin, ymin, xmax, ymax = (c for c in coords if c is not None)
        box = voc_box(xmin, ymin, xmax, ymax, size, orientation)
        if isinstance(box, str):
            problems.append(AnnotationProblem(file, where, box))
            continue
        regions.append((where, Region(name, box)))
    unique, repeats = unique_regions(regions, file)
    return unique, (*problems, *repeats), True


class AnnotationReader:
    """Reads the boxes of a mirror's images. Class names (YOLO) and the COCO file are read once,
    at construction; their problems are in `setup_problems`."""

    def __init__(self, root: Path, fmt: AnnotationFormat, coco_file: Path | None = None) -> None:
        self.root = root
        self.format = fmt
        self.coco_file = coco_file
        self.setup_problems: tuple[AnnotationProblem, ...] = ()
        self._classes: dict[int, str] = {}
        self._coco = _CocoIndex()
        if fmt is AnnotationFormat.YOLO:
            self._load_yolo_names()
        elif fmt is AnnotationFormat.COCO:
            self._load_coco()

    # --- setup ------------------------------------------------------------------------------

    def _load_yolo_names(self) -> None:
        problems: list[AnnotationProblem] = []
        found: dict[str, dict[int, str]] = {}
        for name in YOLO_NAMES_FILES:
            path = self.root / name
            if not path.is_file():
                continue
            text = _read_text(path, MAX_ANNOTATION_FILE_BYTES, name)
            if isinstance(text, AnnotationProblem):
                problems.append(text)
                continue
            if name == "classes.txt":
                names: object = [line.strip() for line in text.splitlines() if line.strip()]
            else:
                try:
                    document = yaml.safe_load(text)
                except (yaml.YAMLError, RecursionError) as exc:
                    problems.append(AnnotationProblem(name, "", f"not valid YAML: {exc}"))
                    continue
                if not isinstance(document, dict) or "names" not in document:
                    problems.append(AnnotationProblem(name, "", "no `names:` in it"))
                    continue
                names = document["names"]
            classes, bad = yolo_class_names(names, name)
            problems += bad
            found[name] = classes
        if (
            "data.yaml" in found
            and "classes.txt" in found
            and (found["data.yaml"] != found["classes.txt"])
        ):
            problems.append(
                AnnotationProblem(
                    "classes.txt", "", "disagrees with data.yaml's names: data.yaml's are used"
                )
            )
        self._classes = found.get("data.yaml", found.get("classes.txt", {}))
        if not found:
            problems.append(
                AnnotationProblem(
                    "data.yaml",
                    "",
                    "no class names: put data.yaml (names:) or classes.txt at the root",
                )
            )
        self.setup_problems = tuple(problems)

    def _load_coco(self) -> None:
        path = self.coco_file
        shown = str(path)
        if path is None:
            self.setup_problems = (AnnotationProblem("annotations.coco_file", "", "not given"),)
            return
        text = _read_text(path, MAX_COCO_FILE_BYTES, shown)
        if isinstance(text, AnnotationProblem):
            self.setup_problems = (text,)
            return
        try:
            document = json.loads(text)
        except (ValueError, RecursionError) as exc:
            self.setup_problems = (AnnotationProblem(shown, "", f"not valid JSON: {exc}"),)
            return
        self.setup_problems = tuple(self._index_coco(document, shown))

    def _index_coco(self, document: object, shown: str) -> list[AnnotationProblem]:
        problems: list[AnnotationProblem] = []
        if not isinstance(document, dict):
            return [
                AnnotationProblem(
                    shown, "", "expected a JSON object with images, annotations and categories"
                )
            ]

        def records(key: str) -> list[tuple[int, dict[str, Any]]]:
            items = document.get(key, [])
            if not isinstance(items, list):
                problems.append(AnnotationProblem(shown, key, "expected a list"))
                return []
            return [(i, item) for i, item in enumerate(items) if isinstance(item, dict)]

        categories: dict[object, str] = {}
        for i, cat in records("categories"):
            names, bad = yolo_class_names({0: cat.get("name")}, shown)
            if bad or not isinstance(cat.get("id"), int):
                problems.append(
                    AnnotationProblem(
                        shown, f"categories[{i}]", "needs an integer id and a valid name"
                    )
                )
                continue
            categories[cat["id"]] = names[0]
        index = self._coco
        for i, img in records("images"):
            name, image_id = img.get("file_name"), img.get("id")
            if not isinstance(name, str) or not isinstance(image_id, int | str):
                problems.append(
                    AnnotationProblem(shown, f"images[{i}]", "needs an id and a file_name")
                )
                continue
            key = str(PurePosixPath(name.replace("\\", "/")))
            if key in index.by_file:
                problems.append(
                    AnnotationProblem(shown, f"images[{i}]", f"{name!r} is listed twice")
                )
                continue
            index.by_file[key] = image_id  # type: ignore[assignment]
            index.sizes[image_id] = (img.get("width"), img.get("height"))  # type: ignore[index]
        known_images = set(index.by_file.values())
        for i, ann in records("annotations"):
            where = f"annotations[{i}]" + (f" (id {ann['id']})" if "id" in ann else "")
            image_id, category = ann.get("image_id"), ann.get("category_id")
            bbox = ann.get("bbox")
            if image_id not in known_images:
                problems.append(AnnotationProblem(shown, where, f"unknown image_id {image_id!r}"))
                continue
            if category not in categories:
                problems.append(
                    AnnotationProblem(shown, where, f"unknown category_id {category!r}")
                )
                index.unread.add(image_id)
                continue
            valid = (
                isinstance(bbox, list)
                and len(bbox) == 4
                and all(isinstance(v, int | float) and not isinstance(v, bool) for v in bbox)
            )
            if not valid:
                problems.append(
                    AnnotationProblem(shown, where, "bbox must be [x, y, width, height] numbers")
                )
                index.unread.add(image_id)
                continue
            index.boxes.setdefault(image_id, []).append((where, categories[category], bbox))
        return problems

    @property
    def classes(self) -> Mapping[int, str]:
        """The YOLO class id -> name map in use (empty for other formats)."""
        return dict(self._classes)

    def has_unread_entries(self, image: str) -> bool:
        """True if the COCO file has an entry for this image that could not be read (an unknown
        category_id, a bbox that is not four numbers): reported in `setup_problems`."""
        image_id = self._coco.by_file.get(str(PurePosixPath(image)))
        return image_id is not None and image_id in self._coco.unread

    # --- per image --------------------------------------------------------------------------

    def annotation_paths(self, image: str) -> tuple[str, ...]:
        """The files (relative to the root) whose change changes this image's boxes."""
        if self.format is AnnotationFormat.YOLO:
            return yolo_label_paths(image)
        if self.format is AnnotationFormat.VOC:
            return (str(PurePosixPath(image).with_suffix(".xml")),)
        return ()

    def read(self, image: str) -> ImageAnnotation:
        """The boxes of the image at `image` (a '/'-separated path relative to the root)."""
        if self.format is AnnotationFormat.YOLO:
            return self._read_yolo(image)
        if self.format is AnnotationFormat.VOC:
            return self._read_voc(image)
        if self.format is AnnotationFormat.COCO:
            return self._read_coco(image)
        return ImageAnnotation()

    def read_all(self, images: Iterable[str]) -> dict[str, ImageAnnotation]:
        return {image: self.read(image) for image in images}

    def _frame(self, image: str, source: str) -> tuple[ImageSize, int] | ImageAnnotation:
        frame = image_frame(self.root / image)
        if isinstance(frame, str):
            problem = AnnotationProblem(source, "", f"{image}: {frame}")
            return ImageAnnotation(sources=(source,), problems=(problem,), usable=False)
        return frame

    def _read_yolo(self, image: str) -> ImageAnnotation:
        present = [p for p in yolo_label_paths(image) if (self.root / p).is_file()]
        if not present:
            return ImageAnnotation()
        source = present[0]
        problems: list[AnnotationProblem] = []
        if len(present) > 1:
            problems.append(
                AnnotationProblem(
                    present[1], "", f"{image} also has {present[0]}, which is the one read"
                )
            )
        text = _read_text(self.root / source, MAX_ANNOTATION_FILE_BYTES, source)
        if isinstance(text, AnnotationProblem):
            return ImageAnnotation(sources=(source,), problems=(*problems, text), usable=False)
        frame = self._frame(image, source)
        if isinstance(frame, ImageAnnotation):
            return frame
        converted = yolo_boxes(text, self._classes, source, frame[1])
        return ImageAnnotation(converted.regions, (source,), (*problems, *converted.problems))

    def _read_voc(self, image: str) -> ImageAnnotation:
        (source,) = self.annotation_paths(image)
        if not (self.root / source).is_file():
            return ImageAnnotation()
        text = _read_text(self.root / source, MAX_ANNOTATION_FILE_BYTES, source)
        if isinstance(text, AnnotationProblem):
            return ImageAnnotation(sources=(source,), problems=(text,), usable=False)
        frame = self._frame(image, source)
        if isinstance(frame, ImageAnnotation):
            return frame
        regions, problems, usable = parse_voc(text, source, *frame)
        return ImageAnnotation(regions, (source,), problems, usable)

    def _read_coco(self, image: str) -> ImageAnnotation:
        index = self._coco
        image_id = index.by_file.get(str(PurePosixPath(image)))
        if image_id is None:
            return ImageAnnotation()
        shown = str(self.coco_file)
        frame = self._frame(image, shown)
        if isinstance(frame, ImageAnnotation):
            return frame
        size, orientation = frame
        real = displayed_size(size, orientation)
        declared = index.sizes.get(image_id, (None, None))
        if declared != (None, None) and declared != (real.width, real.height):
            reason = f"{image}: width/height say {declared[0]}x{declared[1]}, the image is {real}"
            if declared == (size.width, size.height):
                reason += " as displayed (its EXIF orientation turns it): annotate it as displayed"
            problem = AnnotationProblem(shown, f"image id {image_id}", reason)
            return ImageAnnotation(sources=(shown,), problems=(problem,), usable=False)
        regions: list[tuple[str, Region]] = []
        problems: list[AnnotationProblem] = []
        for where, tag, bbox in index.boxes.get(image_id, []):
            box = coco_box(bbox, size, orientation)
            if isinstance(box, Box):
                regions.append((where, Region(tag, box)))
            else:
                problems.append(AnnotationProblem(shown, where, f"{image}: {box}"))
        unique, repeats = unique_regions(regions, shown)
        return ImageAnnotation(unique, (shown,), (*problems, *repeats))
