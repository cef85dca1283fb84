"""`syncd review`: an iteration's per-image verdicts joined to local paths through the ledger.

Public names: review_iteration, Review, Verdict, BoxFinding, DetectionVerdict, detection_verdict,
pick_iteration, link_tree, ReviewError, LINK_ARROW, MATCH_IOU, OVERLAY_SUFFIX. Analysis only: the
table, CSV and JSON are rendered by syncd.cli.render; the overlays are drawn by syncd.overlay.

Object detection iterations (their predictions carry boxes) are read per box instead. For each
image, with `threshold` the probability a prediction needs to count:
- a box is **missed** when no prediction of its tag at or above the threshold overlaps it at
  IoU >= MATCH_IOU (0.5, the VOC and Custom Vision default);
- a missed box that a prediction of **another tag** overlaps (at or above the threshold, IoU >=
  0.5) is listed as labelled with that tag instead (a likely mislabel, or a look-alike);
- a prediction at or above the threshold that overlaps no box at IoU >= 0.5 is a **confident
  prediction with no box** (a box someone forgot to draw, or a false positive).
An image is listed when it has any of these, most findings first.

The service scores every training image of an iteration (GetImagePerformances, read count first,
then pages of 256). An image is listed when one of its own tags scores under the threshold, or
another tag scores higher than its own (a likely mislabel, or a hard case). Listed worst first:
by the margin of its own (lowest) tag over the best other tag, most negative first. Each image id
is joined to its local file(s) through the ledger (image -> content sha256 -> files as last
scanned), and a path no longer on disk is dropped; an image with none left is marked not local.
`link_tree` builds `<DIR>/<expected>→<predicted>/<file>` symlinks for a file browser: moving the
real file into the right folder is a retag at the next sync.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from syncd.api import ImagePerformance, Iteration, TrainingClient
from syncd.core.regions import Box, iou
from syncd.display import printable
from syncd.errors import ReviewError
from syncd.overlay import draw_overlay

LINK_ARROW = "→"
MATCH_IOU = 0.5
_IMAGE_SUFFIXES = frozenset({"jpg", "jpeg", "png", "bmp", "gif"})
OVERLAY_SUFFIX = ".overlay.jpg"
_EPOCH = datetime.fromtimestamp(0, UTC)


@dataclass(frozen=True)
class Verdict:
    """One listed image: what it is tagged, what the model says, where it is."""

    image_id: str
    expected: tuple[str, ...]  # its tags in the iteration
    expected_probability: float  # the lowest score among its own tags
    predicted: str  # the top-scoring tag
    predicted_probability: float
    margin: float  # own (lowest) minus the best other tag: negative = another tag wins
    paths: tuple[str, ...]  # local files, relative to the root; empty = not local
    reason: str  # "another tag wins" | "own tag under threshold"

    @property
    def local(self) -> bool:
        return bool(self.paths)

    def to_json(self) -> dict[str, Any]:
        return {
            "image_id": self.image_id,
            "paths": list(self.paths),
            "local": self.local,
            "expected": list(self.expected),
            "expected_probability": self.expected_probability,
            "predicted": self.predicted,
            "predicted_probability": self.predicted_probability,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class BoxFinding:
    """One box a detection review lists. kind: `missed` (the image's box, not found),
    `other tag` (the image's box, found as `predicted`), `no box` (a confident prediction
    where the image has no box)."""

    kind: str
    tag: str  # the box's tag (for `no box`: the predicted tag)
    box: Box  # fractions of the stored image
    predicted: str = ""  # `other tag`: the tag predicted there
    probability: float = 0.0  # the prediction's (0 for a box nothing found)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "tag": self.tag,
            "box": {
                "left": self.box.left,
                "top": self.box.top,
                "width": self.box.width,
                "height": self.box.height,
            },
            "predicted": self.predicted,
            "probability": self.probability,
        }


@dataclass(frozen=True)
class DetectionVerdict:
    """One listed detection image: its findings, expected boxes and confident predictions (for
    the overlay), and where it is."""

    image_id: str
    findings: tuple[BoxFinding, ...]
    expected: tuple[tuple[str, Box], ...]
    predicted: tuple[tuple[str, Box, float], ...]  # at or above the threshold
    paths: tuple[str, ...]

    @property
    def local(self) -> bool:
        return bool(self.paths)

    def to_json(self) -> dict[str, Any]:
        return {
            "image_id": self.image_id,
            "paths": list(self.paths),
            "local": self.local,
            "findings": [f.to_json() for f in self.findings],
        }


@dataclass(frozen=True)
class Review:
    iteration: Iteration
    threshold: float
    reviewed: int  # images the iteration scored
    listed: tuple[Verdict, ...]  # worst first
    detections: tuple[DetectionVerdict, ...] = ()  # detection iterations: most findings first
    detection: bool = False  # the iteration's predictions carry boxes


def _box(b: Any) -> Box:
    return Box(b.left, b.top, b.width, b.height)


def detection_verdict(
    perf: ImagePerformance, threshold: float, paths: tuple[str, ...]
) -> DetectionVerdict | None:
    """Return the image's DetectionVerdict if it has a finding, else None."""
    expected = [(r.tag_name, _box(r.box)) for r in perf.regions]
    confident = [
        (p.tag_name, _box(p.bounding_box), p.probability)
        for p in perf.predictions
        if p.bounding_box is not None and p.probability >= threshold
    ]
    findings: list[BoxFinding] = []
    for tag, box in expected:
        if any(t == tag and iou(box, b) >= MATCH_IOU for t, b, _ in confident):
            continue
        others = [(p, t) for t, b, p in confident if t != tag and iou(box, b) >= MATCH_IOU]
        if others:
            probability, predicted = max(others)
            findings.append(BoxFinding("other tag", tag, box, predicted, probability))
        else:
            findings.append(BoxFinding("missed", tag, box))
    for tag, box, probability in confident:
        if not any(iou(box, b) >= MATCH_IOU for _, b in expected):
            findings.append(BoxFinding("no box", tag, box, tag, probability))
    if not findings:
        return None
    return DetectionVerdict(str(perf.id), tuple(findings), tuple(expected), tuple(confident), paths)


def verdict(perf: ImagePerformance, threshold: float, paths: tuple[str, ...]) -> Verdict | None:
    """Return the image's Verdict if it is to be listed, else None."""
    if not perf.tag_ids or not perf.predictions:
        return None
    scores = {p.tag_id: p.probability for p in perf.predictions}
    own = min(scores.get(t, 0.0) for t in perf.tag_ids)
    others = [p for p in perf.predictions if p.tag_id not in perf.tag_ids]
    best_other = max((p.probability for p in others), default=0.0)
    top = perf.predictions[0]  # best first (parse_image_performance sorts)
    other_wins = top.tag_id not in perf.tag_ids
    if not other_wins and own >= threshold:
        return None
    return Verdict(
        image_id=str(perf.id),
        expected=tuple(sorted(perf.tag_names)),
        expected_probability=own,
        predicted=top.tag_name,
        predicted_probability=top.probability,
        margin=own - best_other,
        paths=paths,
        reason="another tag wins" if other_wins else "own tag under threshold",
    )


async def pick_iteration(client: TrainingClient, project_id: str, which: str) -> Iteration:
    """Return the iteration `which` names ("latest": the newest completed one); raise
    ReviewError when there is none or it has not finished training."""
    if which == "latest":
        done = [i for i in await client.list_iterations(project_id) if i.completed]
        if not done:
            raise ReviewError(
                f"project {project_id} has no trained iteration yet: run `syncd train --wait`"
            )
        return max(done, key=lambda i: (i.trained_at or i.created or _EPOCH, i.name))
    iteration = await client.get_iteration(project_id, which)
    if not iteration.completed:
        raise ReviewError(
            f"iteration {which} is {iteration.status}, not trained: nothing to review"
        )
    return iteration


async def review_iteration(
    client: TrainingClient,
    project_id: str,
    iteration: Iteration,
    paths_by_image: dict[str, tuple[str, ...]],
    root: Path,
    threshold: float,
) -> Review:
    """Score every image of the iteration and return those to list, worst first."""
    listed: list[Verdict] = []
    detections: list[DetectionVerdict] = []
    reviewed = 0
    detection = False
    named: dict[str, list[str]] | None = None
    async for perf in client.iter_image_performances(project_id, iteration.id):
        reviewed += 1
        image_id = str(perf.id).lower()
        paths = tuple(p for p in paths_by_image.get(image_id, ()) if (root / p).is_file())
        if not paths:  # not scanned since (a pull --format tree): files pull named by image id
            named = _files_named_by_id(root) if named is None else named
            paths = tuple(named.get(image_id, ()))
        if perf.regions or any(p.bounding_box is not None for p in perf.predictions):
            detection = True
            boxes = detection_verdict(perf, threshold, paths)
            if boxes is not None:
                detections.append(boxes)
            continue
        found = verdict(perf, threshold, paths)
        if found is not None:
            listed.append(found)
    listed.sort(key=lambda v: (v.margin, v.expected_probability, v.image_id))
    detections.sort(key=lambda v: (-len(v.findings), v.image_id))
    return Review(iteration, threshold, reviewed, tuple(listed), tuple(detections), detection)


def _files_named_by_id(root: Path) -> dict[str, list[str]]:
    """Image id -> files under root named `<image id>.<suffix>`, as `syncd pull` names them
    (overlays and hidden folders left out)."""
    found: dict[str, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            stem, _, suffix = name.partition(".")
            if suffix.lower() not in _IMAGE_SUFFIXES:
                continue
            try:
                image_id = str(uuid.UUID(stem))
            except ValueError:
                continue
            rel = Path(os.path.relpath(os.path.join(dirpath, name), root)).as_posix()
            found.setdefault(image_id, []).append(rel)
    return found


# --- the link tree -------------------------------------------------------------------------------


def _safe(name: str) -> str:
    return printable(name).replace("/", "_") or "_"


def link_tree(review: Review, root: Path, into: Path) -> int:
    """(Re)build `into` as symlinks `<expected>→<predicted>/<file name>` to the listed local
    files (detection: `<file name>` and its `<stem>.overlay.jpg` beside it); return how many links
    were made. Refuses a folder holding anything but symlinks, overlays and folders (it is a
    view, rebuilt each time)."""
    if into.exists():
        for dirpath, _dirnames, filenames in os.walk(into):
            for name in filenames:
                if name.endswith(OVERLAY_SUFFIX):  # an overlay an earlier review drew
                    continue
                if not (Path(dirpath) / name).is_symlink():
                    raise ReviewError(
                        f"{into} holds files that are not symlinks ({Path(dirpath) / name});"
                        " give --link-into an empty or earlier --link-into folder"
                    )
        _clear(into)
    into.mkdir(parents=True, exist_ok=True)
    made = 0
    for v in review.listed:
        group = into / _safe(f"{'+'.join(v.expected)}{LINK_ARROW}{v.predicted}")
        for rel in v.paths:
            group.mkdir(exist_ok=True)
            source = (root / rel).resolve()
            link = group / source.name
            if link.is_symlink():  # the same name from another folder: keep both
                link = group / f"{source.stem}-{v.image_id[:8]}{source.suffix}"
            link.symlink_to(source)
            made += 1
    for d in review.detections:
        for rel in d.paths:
            source = (root / rel).resolve()
            link = into / source.name
            if link.is_symlink():  # the same name from another folder: keep both
                link = into / f"{source.stem}-{d.image_id[:8]}{source.suffix}"
            link.symlink_to(source)
            made += 1
            try:
                draw_overlay(
                    source, link.with_name(link.stem + OVERLAY_SUFFIX), d.expected, d.predicted
                )
            except OSError as exc:  # an image Pillow cannot read: the link stays, no overlay
                raise ReviewError(f"cannot draw the overlay of {rel}: {exc}") from exc
    return made


def _clear(folder: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(folder, topdown=False):
        for name in filenames:
            (Path(dirpath) / name).unlink()
        for name in dirnames:
            path = Path(dirpath) / name
            if path.is_symlink():
                path.unlink()
            else:
                path.rmdir()
