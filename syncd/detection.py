"""A detection mirror's boxes for one run: each good image's annotation read into regions.

Public names: Annotated, annotate, ANNOTATION_PROBLEM, annotation_problems, TOO_MANY_REGIONS_RULE.

The reading is syncd.annotations' (the formats) and syncd.core.regions' (the conversions); this
module decides what a run does with what was read:
- An image with no annotation file (or no COCO entry) wants no boxes: it is uploaded without any,
  and an image already in the project loses its boxes (a deleted label file removes them).
- An annotation that cannot be used at all (unreadable, not XML, the wrong image size, more boxes
  than the service takes on an image, the class names or the COCO file unreadable) makes its
  image a problem file (ProblemKind.BAD_ANNOTATION): it is not uploaded, and its regions in the
  project are left as they are until the annotation is fixed. "No boxes" is never guessed.
- A line or object that cannot be read (the wrong number of fields, not numbers, an unknown
  class or category, no <name>) makes the image's annotation unusable too: the box it meant is
  unknown, and reading the others as all the boxes would delete its region.
- A box the service could not take anyway (degenerate, wholly outside the image, smaller than
  the rounding once clipped) or a repeat of another is dropped and reported; the image's other
  boxes are synced. Every such problem is named by the annotation file and the line or object,
  so the run is not "in sync" until it is fixed.
- `tags.rename` maps a class name to the tag name, as it maps a folder name in a classification
  mirror (matched case-insensitively).

Every run reads every image's annotation again (a label file is small; a COCO file is parsed
once per run), but not every image: the pixel size and EXIF orientation the pixel formats need
are kept in memory by the image file's stat (`_FRAMES`), so in `syncd run` a change to one label,
or to one entry of a COCO file, opens no image file again. The planner's diff then sends region
calls for the images whose boxes changed, and for no other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syncd.config import MirrorConfig
from syncd.core.limits import MAX_REGIONS_PER_IMAGE
from syncd.core.mapping import normalise_tag_name, tag_key, tag_name_problem
from syncd.core.model import LocalFile, LocalSnapshot, Problem, ProblemKind
from syncd.core.policy import AnnotationFormat
from syncd.core.regions import AnnotationProblem, Region, displayed_size
from syncd.problems import FileProblem

if TYPE_CHECKING:
    from syncd.annotations import AnnotationReader as _Reader

# The kind of a problem found inside a usable annotation (by the annotation file's path).
ANNOTATION_PROBLEM = "annotation"
# The service's rule a file over the limit breaks (docs/spec/REGIONS.md, Limits).
TOO_MANY_REGIONS_RULE = (
    f"«Max regions per image (object detection): {MAX_REGIONS_PER_IMAGE}» (the service's limit)"
)
_ANNOTATION_ADVICE = "fix that line or object of the annotation file; its other boxes are synced"


@dataclass(frozen=True)
class Annotated:
    """One run's reading of the annotations: the snapshot with every image whose annotation
    cannot be used turned into a problem, each usable image's boxes by path, and the problems
    found inside usable annotations (and in the class names or COCO file)."""

    local: LocalSnapshot
    regions: dict[str, tuple[Region, ...]]
    problems: tuple[AnnotationProblem, ...] = ()


def _renamer(mirror: MirrorConfig) -> dict[str, str]:
    return {tag_key(k): normalise_tag_name(v) for k, v in mirror.tags.rename.items()}


def _setup_failed(reader: _Reader) -> str | None:
    """Why no image's annotation can be trusted this run (no class names, an unreadable COCO
    file), or None. Then every image is left as it is: reading "no boxes" would delete them."""
    if reader.format is AnnotationFormat.YOLO and not reader.classes:
        return "no usable YOLO class names (data.yaml `names:` or classes.txt at the root)"
    whole = [p for p in reader.setup_problems if not p.where]
    if reader.format is AnnotationFormat.COCO and whole:
        return f"the COCO file cannot be used: {whole[0]}"
    return None


# Image file stat (path, size, mtime_ns, inode) -> its frame (pixel size, EXIF orientation), as
# read from its header. Bounded: past the limit it starts again (100k images cost ~20 MB).
_FRAMES: dict[tuple[str, int, int, int], Any] = {}
FRAME_CACHE_LIMIT = 200_000


def _reader(root: Path, mirror: MirrorConfig, stats: dict[str, tuple[str, int, int, int]]) -> Any:
    """An AnnotationReader whose image frames come from `_FRAMES` when the file is unchanged."""
    from syncd.annotations import AnnotationReader  # Pillow, YAML, XML: only a detection mirror

    # files.prepare with `orient` sends every turned photo upright: the service then has the
    # pixels as displayed, so boxes stay in the frame they were drawn in (orientation 1).
    prepare = mirror.files.prepare
    sent_upright = prepare is not None and prepare.orient

    class CachedFrames(AnnotationReader):
        def _frame(self, image: str, source: str) -> Any:
            key = stats.get(image)
            found = _FRAMES.get(key) if key is not None else None
            if found is None:
                found = super()._frame(image, source)
                if key is not None and isinstance(found, tuple):
                    if len(_FRAMES) >= FRAME_CACHE_LIMIT:
                        _FRAMES.clear()
                    _FRAMES[key] = found
            if sent_upright and isinstance(found, tuple):
                size, orientation = found
                return displayed_size(size, orientation), 1
            return found

    return CachedFrames(root, mirror.annotations.format, mirror.annotations.coco_file)


def annotate(local: LocalSnapshot, mirror: MirrorConfig) -> Annotated:
    """Read the annotation of every good image of `local` (reads files: run it on a thread)."""
    root = Path(mirror.root)
    stats = {f.path: (str(root / f.path), f.size, f.mtime_ns, f.inode) for f in local.files}
    reader = _reader(root, mirror, stats)
    annotations = mirror.annotations
    rename = _renamer(mirror)
    failed = _setup_failed(reader)
    problems: list[AnnotationProblem] = [p for p in reader.setup_problems if p.where or not failed]
    regions: dict[str, tuple[Region, ...]] = {}
    files = []
    for f in local.files:
        if not f.ok:
            files.append(f)
            continue
        if failed:
            files.append(_bad(f, failed))
            continue
        read = reader.read(f.path)
        unread = [p for p in read.problems if not _droppable(p)]
        if annotations.format is AnnotationFormat.COCO and reader.has_unread_entries(f.path):
            unread.append(
                AnnotationProblem(
                    str(annotations.coco_file), "", "an entry for this image cannot be read"
                )
            )
        if not read.usable or unread:
            reasons = "; ".join(str(p) for p in (unread or read.problems)) or "cannot be read"
            files.append(_bad(f, reasons))
            continue
        boxes, renamed = _renamed(read.regions, rename, read.sources)
        if len(boxes) > MAX_REGIONS_PER_IMAGE:
            source = read.sources[0] if read.sources else f.path
            detail = f"{source}: {len(boxes)} boxes; {TOO_MANY_REGIONS_RULE}"
            files.append(_bad(f, detail))
            continue
        problems += read.problems
        problems += renamed
        regions[f.path] = boxes
        files.append(f)
    changed = dataclasses.replace(local, files=tuple(files))
    if any(f.problem is not None and f.problem.kind is ProblemKind.BAD_ANNOTATION for f in files):
        changed = dataclasses.replace(changed, digest=None)  # not clean: load it again next run
    return Annotated(changed, regions, _distinct(problems))


# What a problem says when the box it names is one the service could not take anyway (core.regions'
# clip_box and unique_regions), or when it is a note (two YOLO label files, the other one read):
# the image's other boxes can be synced without it.
_DROPPABLE = (
    "degenerate",
    "wholly outside the image",
    "smaller than",
    "not a finite number",
    "kept once",
    "which is the one read",
)


def _droppable(problem: AnnotationProblem) -> bool:
    return any(words in problem.reason for words in _DROPPABLE)


def _bad(f: LocalFile, detail: str) -> LocalFile:
    return dataclasses.replace(f, problem=Problem(ProblemKind.BAD_ANNOTATION, detail))


def _renamed(
    regions: Iterable[Region], rename: dict[str, str], sources: tuple[str, ...]
) -> tuple[tuple[Region, ...], list[AnnotationProblem]]:
    """The regions with `tags.rename` applied to their class names; a rename to a name that is
    no legal tag name is reported and its boxes dropped."""
    out: list[Region] = []
    problems: list[AnnotationProblem] = []
    for region in regions:
        name = rename.get(tag_key(region.tag), region.tag)
        if name != region.tag:
            reason = tag_name_problem(name)
            if reason is not None:
                where = sources[0] if sources else ""
                problems.append(
                    AnnotationProblem(
                        where, f"class {region.tag!r}", f"renamed to {name!r}: {reason}"
                    )
                )
                continue
            region = Region(name, region.box)
        out.append(region)
    return tuple(out), problems


def _distinct(problems: Iterable[AnnotationProblem]) -> tuple[AnnotationProblem, ...]:
    """Each problem once (a COCO file's problem is found once per run, not once per image)."""
    return tuple(dict.fromkeys(problems))


def annotation_problems(problems: Iterable[AnnotationProblem]) -> list[FileProblem]:
    """The problems found inside usable annotations, one per annotation file (each line or
    object named in its detail), by the file's path."""
    by_file: dict[str, list[str]] = {}
    for problem in problems:
        detail = f"{problem.where}: {problem.reason}" if problem.where else problem.reason
        by_file.setdefault(problem.file, []).append(detail)
    return [
        FileProblem(file, ANNOTATION_PROBLEM, "; ".join(details), _ANNOTATION_ADVICE)
        for file, details in sorted(by_file.items())
    ]
