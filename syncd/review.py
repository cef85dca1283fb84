"""`syncd review`: an iteration's per-image verdicts joined to local paths through the ledger.

Public names: review_iteration, Review, Verdict, pick_iteration, link_tree, ReviewError,
LINK_ARROW. Analysis only: the table, CSV and JSON are rendered by syncd.cli.render.

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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from syncd.api import ImagePerformance, Iteration, TrainingClient
from syncd.display import printable
from syncd.errors import ReviewError

LINK_ARROW = "→"
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
class Review:
    iteration: Iteration
    threshold: float
    reviewed: int  # images the iteration scored
    listed: tuple[Verdict, ...]  # worst first


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
    reviewed = 0
    async for perf in client.iter_image_performances(project_id, iteration.id):
        reviewed += 1
        image_id = str(perf.id).lower()
        paths = tuple(p for p in paths_by_image.get(image_id, ()) if (root / p).is_file())
        found = verdict(perf, threshold, paths)
        if found is not None:
            listed.append(found)
    listed.sort(key=lambda v: (v.margin, v.expected_probability, v.image_id))
    return Review(iteration, threshold, reviewed, tuple(listed))


# --- the link tree -------------------------------------------------------------------------------


def _safe(name: str) -> str:
    return printable(name).replace("/", "_") or "_"


def link_tree(review: Review, root: Path, into: Path) -> int:
    """(Re)build `into` as symlinks `<expected>→<predicted>/<file name>` to the listed local
    files; return how many links were made. Refuses a folder holding anything but symlinks and
    folders (it is a view, rebuilt each time)."""
    if into.exists():
        for dirpath, _dirnames, filenames in os.walk(into):
            for name in filenames:
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
