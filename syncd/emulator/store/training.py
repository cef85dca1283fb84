"""Simulated training: TrainProject, iterations, and their performance figures.

Public names: `TrainingMixin` (a part of `Store`), `simulated_predictions`,
`simulated_detections`, `iou`, `DETECTION_MISS_RATE`, `DETECTION_FALSE_POSITIVE_RATE`,
`DETECTION_JITTER`, `DEFAULT_OVERLAP_THRESHOLD`, `MISSED_OFFSET`.

The emulator cannot learn. TrainProject snapshots the project's tagged images into
`iteration_images` with a prediction list computed from each image's sha256 and tags
(`simulated_predictions`), and the iteration reads as `Training` until `training_seconds` after
its creation, then `Completed`. `mark_mispredicted` is the test seam: a marked image's next
training ranks the chosen tag first and its own tags low.

Object detection projects train on the images that have regions (each region's tag among the
selected tags); each tag needs regions on `min_images_per_detection_tag` images (15) or the call
is 400 BadRequestDetectionTrainingValidationFailed. The predictions (`simulated_detections`) are
derived from each image's sha256 and its regions (tag names and boxes), so the same bytes and boxes
always give the same list, in any project, and every prediction carries a `boundingBox`:
- each region is found (probability 0.70-0.99, its own tag) at its box moved and resized by up to
  `DETECTION_JITTER` (5 %) of the box's size, so its IoU with the region stays above 0.8;
- but a seeded `DETECTION_MISS_RATE` (10 %) of the regions are missed: the model only sees them at
  0.02-0.20, below any sensible threshold, and off target (moved by `MISSED_OFFSET`, 60 % of the
  box's size, so IoU < 0.5), so a review has real misses to find and the mAP shows them;
- a seeded `DETECTION_FALSE_POSITIVE_RATE` (5 %) of the images get one confident (0.55-0.85) box
  of a project tag where no region was drawn;
- `mark_mispredicted` makes every box of the image found with the chosen tag instead.
Two more test seams make the misses exact: `mark_missed` plants a miss on a region, and
`set_detection_rates` sets a project's miss and false-positive rates (0 turns them off).
The iteration performance is computed from those predictions on the training images themselves:
per tag, predictions are matched (most probable first) to the tag's unmatched regions at IoU of at
least `overlapThreshold` (default `DEFAULT_OVERLAP_THRESHOLD`, 0.5); precision and recall count
the predictions at or above `threshold`; `averagePrecision` is the area under the tag's
precision/recall curve (all points, as Pascal VOC), and the iteration's `averagePrecision` is
their mean, the mAP the portal shows. Classification iterations leave `averagePrecision` null.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

from syncd.emulator.limits import Quotas
from syncd.emulator.store.db import Database, stamp
from syncd.emulator.store.records import (
    DETECTION,
    DOMAINS,
    ApiError,
    Box,
    ImagePerformance,
    ImageRegion,
    ImageTag,
    Iteration,
    IterationPerformance,
    Prediction,
    TagPerformance,
    not_found_project,
)
from syncd.emulator.store.regions import regions_of
from syncd.emulator.store.rows import delete_iterations, image_rows, require_project, tag_types

DETECTION_MISS_RATE = 0.10  # the share of regions the simulated detector misses
DETECTION_FALSE_POSITIVE_RATE = 0.05  # the share of images with one confident box of nothing
DETECTION_JITTER = 0.05  # how far a found box is off its region, as a share of the box's size
DEFAULT_OVERLAP_THRESHOLD = 0.5  # IoU a prediction needs to count as finding a region
MISSED_OFFSET = 0.6  # how far a missed region's faint box is off it, as a share of its size

_ITERATION_COLUMNS = (
    "id, project_id, name, created, ready_at, trained_at, training_type, reserved_budget,"
    " domain_id, classification_type"
)


def _unit(*parts: str) -> float:
    """A number in [0, 1) fixed by the parts (sha256 of their join)."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def simulated_predictions(
    sha256: str,
    own_tag_ids: Iterable[str],
    tags: Sequence[tuple[str, str, str]],
    mispredicted_as: str | None = None,
) -> list[Prediction]:
    """Return an image's simulated predictions over `tags` ((id, name, type)), best first.

    Not a model: the image's own tags score 0.80-0.99 and every other tag 0.00-0.20, each value
    derived from the image's sha256 and the tag id, so the same bytes and tags always give the
    same list. `mispredicted_as` (a tag id) scores 0.90-0.99 and the image's own tags 0.00-0.10.
    """
    own = set(own_tag_ids)
    out = []
    for tag_id, name, tag_type in tags:
        u = _unit(sha256, tag_id)
        if mispredicted_as is not None and tag_id == mispredicted_as:
            p = 0.90 + 0.09 * u
        elif tag_id in own:
            p = 0.10 * u if mispredicted_as is not None else 0.80 + 0.19 * u
        else:
            p = 0.20 * u
        out.append(Prediction(tag_id, name, tag_type, round(p, 6)))
    out.sort(key=lambda pr: (-pr.probability, pr.tag_id))
    return out


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (left, top, width, height) boxes."""
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(0.0, width) * max(0.0, height)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def _clip(box: Box) -> Box:
    left, top = min(max(box[0], 0.0), 1.0), min(max(box[1], 0.0), 1.0)
    width = min(box[0] + box[2], 1.0) - left
    height = min(box[1] + box[3], 1.0) - top
    return (round(left, 6), round(top, 6), round(max(width, 0.0), 6), round(max(height, 0.0), 6))


def simulated_detections(
    sha256: str,
    regions: Sequence[tuple[str, Box]],
    tags: Sequence[tuple[str, str, str]],
    mispredicted_as: str | None = None,
    *,
    missed: frozenset[int] = frozenset(),
    miss_rate: float = DETECTION_MISS_RATE,
    false_positive_rate: float = DETECTION_FALSE_POSITIVE_RATE,
) -> list[Prediction]:
    """Return an image's simulated detections (see the module docstring), most probable first.

    `regions` are the image's (tag id, box); `tags` the trained (id, name, type); `missed` the
    indexes of regions planted as missed.
    """
    names = {t[0]: (t[1], t[2]) for t in tags}
    out = []
    for index, (tag_id, box) in enumerate(regions):
        # Seeded by the tag's name, not its id: the same dataset gets the same simulation in any
        # project (ids are new in each), so a test's outcome does not vary from run to run.
        seed = (sha256, names[tag_id][0], repr(box), str(index))
        left, top, width, height = box
        moved = (
            left + (_unit(*seed, "dx") - 0.5) * 2 * DETECTION_JITTER * width,
            top + (_unit(*seed, "dy") - 0.5) * 2 * DETECTION_JITTER * height,
            width * (1 + (_unit(*seed, "dw") - 0.5) * 2 * DETECTION_JITTER),
            height * (1 + (_unit(*seed, "dh") - 0.5) * 2 * DETECTION_JITTER),
        )
        found_as = mispredicted_as if mispredicted_as is not None else tag_id
        if index in missed or (mispredicted_as is None and _unit(*seed, "miss") < miss_rate):
            probability = 0.02 + 0.18 * _unit(*seed, "p")
            step_x = MISSED_OFFSET * width if left + width * (1 + MISSED_OFFSET) <= 1 else 0.0
            step_y = MISSED_OFFSET * height if step_x == 0.0 else 0.0
            moved = (left + step_x, top + step_y, width, height)  # off target, not clipped away
        else:
            probability = 0.70 + 0.29 * _unit(*seed, "p")
        name, tag_type = names[found_as]
        out.append(Prediction(found_as, name, tag_type, round(probability, 6), _clip(moved)))
    regular = [t for t in tags if t[2] != "Negative"]
    if regular and _unit(sha256, "false positive") < false_positive_rate:
        tag_id, name, tag_type = regular[int(_unit(sha256, "fp tag") * len(regular))]
        width, height = 0.10 + 0.10 * _unit(sha256, "fp w"), 0.10 + 0.10 * _unit(sha256, "fp h")
        left = (1 - width) * _unit(sha256, "fp x")
        top = (1 - height) * _unit(sha256, "fp y")
        probability = 0.55 + 0.30 * _unit(sha256, "fp p")
        box = _clip((left, top, width, height))
        out.append(Prediction(tag_id, name, tag_type, round(probability, 6), box))
    out.sort(key=lambda pr: (-pr.probability, pr.tag_id, pr.bounding_box))
    return out


def _average_precision(hits: Sequence[bool], truths: int) -> float:
    """Area under the precision/recall curve of predictions sorted most probable first (hits:
    whether each found a region), interpolated at every point as Pascal VOC does."""
    if truths == 0:
        return 0.0
    points = []
    found = 0
    for rank, hit in enumerate(hits, start=1):
        found += hit
        points.append((found / truths, found / rank))
    best_after = [0.0] * (len(points) + 1)  # the best precision at this rank or later
    for i in range(len(points) - 1, -1, -1):
        best_after[i] = max(points[i][1], best_after[i + 1])
    area, last_recall = 0.0, 0.0
    for i, (recall, _) in enumerate(points):
        area += (recall - last_recall) * best_after[i]
        last_recall = recall
    return area


def _training_regions(
    db: sqlite3.Connection, image_seqs: Sequence[int], tag_ids: set[str]
) -> dict[int, list[ImageRegion]]:
    """Return the regions of the trained tags on the listed images (images with none left out),
    read in chunks (SQLite caps the parameters of one statement)."""
    out: dict[int, list[ImageRegion]] = {}
    for start in range(0, len(image_seqs), _CHUNK):
        for seq, its in regions_of(db, image_seqs[start : start + _CHUNK]).items():
            kept = [r for r in its if r.tag_id in tag_ids]
            if kept:
                out[seq] = kept
    return out


def _region_row(region: ImageRegion) -> list[object]:
    return [region.region_id, region.tag_id, region.tag_name, region.created, list(region.box)]


def _prediction(row: list) -> Prediction:
    box = row[4] if len(row) > 4 else None  # iterations trained before detection have 4 fields
    return Prediction(row[0], row[1], row[2], row[3], None if box is None else tuple(box))


_CHUNK = 5000


class TrainingMixin:
    """Training and iterations of a project (see `Store`)."""

    _db: Database
    quotas: Quotas
    training_seconds: float
    _clock: Callable[[], float]

    def mark_mispredicted(self, project_id: str, image_id: str, tag_id: str) -> None:
        """Test seam: make the next trainings predict tag_id for image_id (its own tags low).

        Not part of the API; `POST /emulator/projects/{id}/mispredictions` calls it over HTTP.
        Raise ApiError 404 when the project, image or tag does not exist.
        """
        with self._db.write() as db:
            require_project(db, project_id)
            if not image_rows(db, project_id, [image_id]):
                raise ApiError(404, "NotFoundImage", "Image not found.")
            if tag_id not in tag_types(db, project_id):
                raise ApiError(404, "NotFoundTag", "Tag not found.")
            db.execute(
                "INSERT INTO mispredictions (image_id, tag_id) VALUES (?, ?)"
                " ON CONFLICT (image_id) DO UPDATE SET tag_id = excluded.tag_id",
                (image_id, tag_id),
            )

    def mark_missed(self, project_id: str, region_id: str) -> None:
        """Test seam: make the next trainings miss this region (see the module docstring).

        Not part of the API; `POST /emulator/projects/{id}/missed-regions` calls it over HTTP.
        Raise ApiError 404 when the project or the region (in that project) does not exist.
        """
        with self._db.write() as db:
            require_project(db, project_id)
            found = db.execute(
                "SELECT 1 FROM image_regions r JOIN images i ON i.seq = r.image_seq"
                " WHERE r.id = ? AND i.project_id = ?",
                (region_id, project_id),
            ).fetchone()
            if found is None:
                raise ApiError(404, "NotFound", "Region not found.")
            db.execute("INSERT OR IGNORE INTO missed_regions (region_id) VALUES (?)", (region_id,))

    def set_detection_rates(
        self, project_id: str, miss_rate: float, false_positive_rate: float
    ) -> None:
        """Test seam: the project's next trainings miss this share of regions and add a false
        positive to this share of images, in place of the defaults.

        Not part of the API; `POST /emulator/projects/{id}/detection-rates` calls it over HTTP.
        """
        with self._db.write() as db:
            require_project(db, project_id)
            db.execute(
                "INSERT INTO detection_rates (project_id, miss_rate, false_positive_rate)"
                " VALUES (?, ?, ?) ON CONFLICT (project_id) DO UPDATE SET"
                " miss_rate = excluded.miss_rate,"
                " false_positive_rate = excluded.false_positive_rate",
                (project_id, miss_rate, false_positive_rate),
            )

    def train(
        self,
        project_id: str,
        *,
        training_type: str = "Regular",
        reserved_budget: int = 0,
        force: bool = False,
        selected_tags: Sequence[str] | None = None,
    ) -> Iteration:
        """Start training: snapshot the tagged images into a new iteration; return it.

        Refusals (400): BadRequestTrainingAlreadyInProgress (an iteration is still training),
        BadRequestTrainingNotNeeded (the training set equals the last iteration's, unless
        `force`), BadRequestTrainingValidationFailed (fewer than 2 regular tags, or a tag with
        fewer than `min_images_per_tag` images), BadRequestExceedIterationPerProjectLimit.
        """
        with self._db.write() as db:
            project = self._project_row(db, project_id)
            now = self._clock()
            running = db.execute(
                "SELECT 1 FROM iterations WHERE project_id = ? AND ready_at > ?",
                (project_id, now),
            ).fetchone()
            if running is not None:
                raise ApiError(
                    400, "BadRequestTrainingAlreadyInProgress", "Training is already in progress."
                )
            tags = db.execute(
                "SELECT id, name, type FROM tags WHERE project_id = ? ORDER BY seq", (project_id,)
            ).fetchall()
            if selected_tags:
                known = {t[0] for t in tags}
                if any(t not in known for t in selected_tags):
                    raise ApiError(404, "NotFoundTag", "Tag not found.")
                tags = [t for t in tags if t[0] in set(selected_tags)]
            tag_ids = [t[0] for t in tags]
            marks = ",".join("?" * len(tag_ids)) or "NULL"
            rows = db.execute(
                "SELECT i.seq, i.id, i.sha256, i.created, i.width, i.height, i.token,"
                " it.tag_id, it.created FROM images i JOIN image_tags it ON it.image_seq = i.seq"
                f" WHERE i.project_id = ? AND it.tag_id IN ({marks}) ORDER BY i.seq, it.tag_id",
                (project_id, *tag_ids),
            ).fetchall()
            detection = any(d.id == project[3] and d.type == DETECTION for d in DOMAINS)
            regions: dict[int, list[ImageRegion]] = {}
            if detection:
                regions = _training_regions(db, sorted({r[0] for r in rows}), set(tag_ids))
                rows = [r for r in rows if r[7] in {x.tag_id for x in regions.get(r[0], ())}]
                self._check_detection_trainable(tags, regions)
            else:
                self._check_trainable(tags, rows)
            boxes = sorted((seq, r.tag_id, r.box) for seq, rs in regions.items() for r in rs)
            fingerprint = hashlib.sha256(
                json.dumps(
                    [project[3], sorted(tag_ids), [(r[2], r[7]) for r in rows], boxes]
                ).encode()
            ).hexdigest()
            last = db.execute(
                "SELECT fingerprint FROM iterations WHERE project_id = ? ORDER BY seq DESC LIMIT 1",
                (project_id,),
            ).fetchone()
            if last is not None and last[0] == fingerprint and not force:
                raise ApiError(
                    400,
                    "BadRequestTrainingNotNeeded",
                    "Nothing changed since the last training (forceTrain=true trains anyway).",
                )
            (count,) = db.execute(
                "SELECT COUNT(*) FROM iterations WHERE project_id = ?", (project_id,)
            ).fetchone()
            if count >= self.quotas.max_iterations_per_project:
                raise ApiError(
                    400,
                    "BadRequestExceedIterationPerProjectLimit",
                    f"Iteration limit of {self.quotas.max_iterations_per_project} reached;"
                    " delete an iteration first.",
                )
            ready_at = now + self.training_seconds
            cursor = db.execute(
                "INSERT INTO iterations (id, project_id, name, created, ready_at, trained_at,"
                " training_type, reserved_budget, domain_id, classification_type, fingerprint)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    str(uuid.uuid4()),
                    project_id,
                    f"Iteration {count + 1}",
                    stamp(datetime.fromtimestamp(now, UTC)),
                    ready_at,
                    stamp(datetime.fromtimestamp(ready_at, UTC)),
                    training_type,
                    reserved_budget,
                    project[3],
                    project[4],
                    fingerprint,
                ),
            )
            iteration_seq = cursor.lastrowid
            if iteration_seq is None:  # pragma: no cover - sqlite always sets it for an INSERT
                raise ApiError(500, "ErrorUnknown", "Insert failed.")
            self._snapshot_training_set(db, iteration_seq, tags, rows, regions)
            row = db.execute(
                f"SELECT {_ITERATION_COLUMNS} FROM iterations WHERE seq = ?", (iteration_seq,)
            ).fetchone()
        return self._iteration(row)

    def _project_row(self, db: sqlite3.Connection, project_id: str) -> tuple:
        row = db.execute(
            "SELECT id, name, description, domain_id, classification_type FROM projects"
            " WHERE id = ?",
            (project_id,),
        ).fetchone()
        if row is None:
            raise not_found_project()
        return row

    def _check_trainable(self, tags: Sequence[tuple], rows: Sequence[tuple]) -> None:
        per_tag: dict[str, int] = {}
        for row in rows:
            per_tag[row[7]] = per_tag.get(row[7], 0) + 1
        regular = [t for t in tags if t[2] != "Negative" and per_tag.get(t[0])]
        if len(regular) < 2:
            raise ApiError(
                400,
                "BadRequestTrainingValidationFailed",
                "Not enough tags for training: at least 2 tags with images are needed.",
            )
        low = [t[1] for t in regular if per_tag[t[0]] < self.quotas.min_images_per_tag]
        if low:
            raise ApiError(
                400,
                "BadRequestTrainingValidationFailed",
                f"Not enough images for training: each tag needs at least"
                f" {self.quotas.min_images_per_tag} images ({', '.join(sorted(low))}).",
            )

    def _check_detection_trainable(
        self, tags: Sequence[tuple], regions: dict[int, list[ImageRegion]]
    ) -> None:
        per_tag: dict[str, int] = {}
        for its_regions in regions.values():
            for tag_id in {r.tag_id for r in its_regions}:
                per_tag[tag_id] = per_tag.get(tag_id, 0) + 1
        least = self.quotas.min_images_per_detection_tag
        if not per_tag:
            raise ApiError(
                400,
                "BadRequestDetectionTrainingValidationFailed",
                "Not enough images for training: no image has a region of the tags trained.",
            )
        low = [t[1] for t in tags if 0 < per_tag.get(t[0], 0) < least]
        if low:
            raise ApiError(
                400,
                "BadRequestDetectionTrainingValidationFailed",
                f"Not enough images for training: each tag needs regions on at least {least}"
                f" images ({', '.join(sorted(low))}).",
            )

    def _snapshot_training_set(
        self,
        db: sqlite3.Connection,
        iteration_seq: int,
        tags: Sequence[tuple],
        rows: list[tuple],
        regions: dict[int, list[ImageRegion]],
    ) -> None:
        names = {t[0]: t[1] for t in tags}
        wrong = dict(db.execute("SELECT image_id, tag_id FROM mispredictions").fetchall())
        rates: dict[str, float] = {}
        if regions:
            project_id = db.execute(
                "SELECT project_id FROM iterations WHERE seq = ?", (iteration_seq,)
            ).fetchone()[0]
            row = db.execute(
                "SELECT miss_rate, false_positive_rate FROM detection_rates WHERE project_id = ?",
                (project_id,),
            ).fetchone()
            if row is not None:
                rates = {"miss_rate": row[0], "false_positive_rate": row[1]}
            planted = {r[0] for r in db.execute("SELECT region_id FROM missed_regions")}
        by_image: dict[int, list[tuple]] = {}
        for row in rows:
            by_image.setdefault(row[0], []).append(row)
        entries = []
        region_entries: list[tuple[int, int, str]] = []
        pairs: list[tuple[int, str, int]] = []
        for seq, its_rows in by_image.items():
            first = its_rows[0]
            own = [r[7] for r in its_rows]
            mispredicted = wrong.get(first[1])
            wrong_tag = mispredicted if mispredicted in names else None
            if regions:
                boxes = [(r.tag_id, r.box) for r in regions[seq]]
                missed = frozenset(i for i, r in enumerate(regions[seq]) if r.region_id in planted)
                predictions = simulated_detections(
                    first[2], boxes, tags, wrong_tag, missed=missed, **rates
                )
                region_entries.append(
                    (iteration_seq, seq, json.dumps([_region_row(r) for r in regions[seq]]))
                )
            else:
                predictions = simulated_predictions(first[2], own, tags, wrong_tag)
            entries.append(
                (
                    iteration_seq,
                    seq,
                    first[1],
                    first[3],
                    first[4],
                    first[5],
                    first[6],
                    json.dumps([[r[7], names[r[7]], r[8]] for r in its_rows]),
                    json.dumps(
                        [
                            [p.tag_id, p.tag_name, p.tag_type, p.probability, p.bounding_box]
                            for p in predictions
                        ]
                    ),
                )
            )
            pairs.extend((iteration_seq, tag_id, seq) for tag_id in own)
        db.executemany("INSERT INTO iteration_images VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", entries)
        db.executemany("INSERT INTO iteration_image_tags VALUES (?, ?, ?)", pairs)
        db.executemany("INSERT INTO iteration_image_regions VALUES (?, ?, ?)", region_entries)

    def _iteration(self, row: tuple) -> Iteration:
        (iteration_id, project_id, name, created, ready_at, trained_at, training_type,
         budget, domain_id, classification) = row  # fmt: skip
        done = self._clock() >= ready_at
        return Iteration(
            id=iteration_id,
            project_id=project_id,
            name=name,
            status="Completed" if done else "Training",
            created=created,
            last_modified=trained_at if done else created,
            trained_at=trained_at if done else None,
            training_type=training_type,
            reserved_budget=budget,
            domain_id=domain_id,
            classification_type=classification,
        )

    def iterations(self, project_id: str) -> list[Iteration]:
        """Return a project's iterations, oldest first."""
        with self._db.read() as db:
            require_project(db, project_id)
            rows = db.execute(
                f"SELECT {_ITERATION_COLUMNS} FROM iterations WHERE project_id = ? ORDER BY seq",
                (project_id,),
            ).fetchall()
        return [self._iteration(row) for row in rows]

    def iteration(self, project_id: str, iteration_id: str) -> Iteration:
        """Return one iteration; raise ApiError 404 NotFoundProject / NotFoundIteration."""
        with self._db.read() as db:
            return self._iteration(self._iteration_row(db, project_id, iteration_id)[:-1])

    def _iteration_row(self, db: sqlite3.Connection, project_id: str, iteration_id: str) -> tuple:
        require_project(db, project_id)
        row = db.execute(
            f"SELECT {_ITERATION_COLUMNS}, seq FROM iterations WHERE project_id = ? AND id = ?",
            (project_id, iteration_id),
        ).fetchone()
        if row is None:
            raise ApiError(404, "NotFoundIteration", "Iteration not found.")
        return row

    def _trained_seq(self, db: sqlite3.Connection, project_id: str, iteration_id: str) -> int:
        row = self._iteration_row(db, project_id, iteration_id)
        if self._iteration(row[:-1]).status != "Completed":
            raise ApiError(
                400, "BadRequestIterationIsNotTrained", "The iteration has not finished training."
            )
        return row[-1]

    def delete_iteration(self, project_id: str, iteration_id: str) -> None:
        """Delete an iteration and its snapshot."""
        with self._db.write() as db:
            seq = self._iteration_row(db, project_id, iteration_id)[-1]
            delete_iterations(db, "seq = ?", (seq,))

    def image_performances(
        self,
        project_id: str,
        iteration_id: str,
        *,
        tag_ids: Sequence[str] = (),
        newest_first: bool = True,
        take: int = 50,
        skip: int = 0,
    ) -> list[ImagePerformance]:
        """Return one page of a trained iteration's images with their predictions."""
        order = "DESC" if newest_first else "ASC"
        with self._db.read() as db:
            seq = self._trained_seq(db, project_id, iteration_id)
            where, params = self._performance_where(seq, tag_ids)
            rows = db.execute(
                "SELECT image_id, created, width, height, token, tags, predictions, image_seq"
                f" FROM iteration_images WHERE {where} ORDER BY image_seq {order}"
                " LIMIT ? OFFSET ?",
                (*params, take, skip),
            ).fetchall()
            image_seqs = [row[7] for row in rows]
            marks = ",".join("?" * len(image_seqs)) or "NULL"
            regions = dict(
                db.execute(
                    "SELECT image_seq, regions FROM iteration_image_regions"
                    f" WHERE iteration_seq = ? AND image_seq IN ({marks})",
                    (seq, *image_seqs),
                ).fetchall()
            )
        return [
            ImagePerformance(
                id=row[0],
                created=row[1],
                width=row[2],
                height=row[3],
                token=row[4],
                tags=tuple(ImageTag(*t) for t in json.loads(row[5])),
                predictions=tuple(_prediction(p) for p in json.loads(row[6])),
                regions=tuple(
                    ImageRegion(r[0], r[1], r[2], r[3], tuple(r[4]))
                    for r in json.loads(regions.get(row[7], "[]"))
                ),
            )
            for row in rows
        ]

    def count_image_performances(
        self, project_id: str, iteration_id: str, *, tag_ids: Sequence[str] = ()
    ) -> int:
        """Return how many images image_performances would list in all."""
        with self._db.read() as db:
            seq = self._trained_seq(db, project_id, iteration_id)
            where, params = self._performance_where(seq, tag_ids)
            (count,) = db.execute(
                f"SELECT COUNT(*) FROM iteration_images WHERE {where}", params
            ).fetchone()
        return count

    def _performance_where(self, seq: int, tag_ids: Sequence[str]) -> tuple[str, list[object]]:
        if not tag_ids:
            return "iteration_seq = ?", [seq]
        marks = ",".join("?" * len(tag_ids))
        return (
            "iteration_seq = ? AND image_seq IN (SELECT image_seq FROM iteration_image_tags"
            f" WHERE iteration_seq = ? AND tag_id IN ({marks}))",
            [seq, seq, *tag_ids],
        )

    def iteration_performance(
        self,
        project_id: str,
        iteration_id: str,
        threshold: float,
        overlap_threshold: float = DEFAULT_OVERLAP_THRESHOLD,
    ) -> IterationPerformance:
        """Return the per-tag and overall precision and recall at the threshold (and, for a
        detection iteration, the average precisions at the overlap threshold).

        Computed from the simulated predictions of the iteration's own training images (the
        service holds out a test split; the emulator has no model to test).
        """
        with self._db.read() as db:
            seq = self._trained_seq(db, project_id, iteration_id)
            rows = db.execute(
                "SELECT ii.tags, ii.predictions, iir.regions FROM iteration_images ii"
                " LEFT JOIN iteration_image_regions iir ON iir.iteration_seq = ii.iteration_seq"
                " AND iir.image_seq = ii.image_seq WHERE ii.iteration_seq = ?",
                (seq,),
            ).fetchall()
        if any(regions is not None for _, _, regions in rows):
            return _detection_performance(rows, threshold, overlap_threshold)
        stats: dict[str, list] = {}  # tag id -> [name, true pos, false pos, false neg]
        for tags_json, predictions_json, _ in rows:
            own = {t[0] for t in json.loads(tags_json)}
            for tag_id, name, _type, probability, *_ in json.loads(predictions_json):
                entry = stats.setdefault(tag_id, [name, 0, 0, 0])
                predicted = probability >= threshold
                if predicted and tag_id in own:
                    entry[1] += 1
                elif predicted:
                    entry[2] += 1
                elif tag_id in own:
                    entry[3] += 1
        per_tag = [
            TagPerformance(tag_id, name, _ratio(tp, tp + fp), _ratio(tp, tp + fn), None)
            for tag_id, (name, tp, fp, fn) in stats.items()
        ]
        tp = sum(e[1] for e in stats.values())
        fp = sum(e[2] for e in stats.values())
        fn = sum(e[3] for e in stats.values())
        return IterationPerformance(per_tag, _ratio(tp, tp + fp), _ratio(tp, tp + fn), None)


def _ratio(a: int, b: int) -> float:
    return a / b if b else 0.0


def _detection_performance(
    rows: Sequence[tuple[str, str, str | None]], threshold: float, overlap: float
) -> IterationPerformance:
    """Match each tag's predictions, most probable first, to its regions (see the module
    docstring); return the precision and recall at threshold and the average precisions."""
    names: dict[str, str] = {}
    truths: dict[str, int] = {}  # tag id -> regions of it
    ranked: dict[str, list[tuple[float, int, Box]]] = {}  # tag id -> (probability, image, box)
    boxes: dict[tuple[int, str], list[Box]] = {}  # (image, tag id) -> its regions' boxes
    for image, (_, predictions_json, regions_json) in enumerate(rows):
        for _, tag_id, name, _, box in json.loads(regions_json or "[]"):
            names.setdefault(tag_id, name)
            truths[tag_id] = truths.get(tag_id, 0) + 1
            boxes.setdefault((image, tag_id), []).append(tuple(box))
        for tag_id, name, _, probability, box in json.loads(predictions_json):
            names.setdefault(tag_id, name)
            ranked.setdefault(tag_id, []).append((probability, image, tuple(box)))
    per_tag = []
    totals = [0, 0, 0]  # true pos, false pos, false neg at the threshold
    for tag_id, name in names.items():
        hits = []
        confident_hits = confident = 0
        taken: set[tuple[int, int]] = set()  # (image, region index) already found
        for probability, image, box in sorted(ranked.get(tag_id, []), key=lambda p: -p[0]):
            candidates = [
                (iou(box, truth), index)
                for index, truth in enumerate(boxes.get((image, tag_id), []))
                if (image, index) not in taken
            ]
            best = max(candidates, default=(0.0, -1))
            hit = best[0] >= overlap
            if hit:
                taken.add((image, best[1]))
            hits.append(hit)
            if probability >= threshold:
                confident += 1
                confident_hits += hit
        count = truths.get(tag_id, 0)
        totals[0] += confident_hits
        totals[1] += confident - confident_hits
        totals[2] += count - confident_hits
        per_tag.append(
            TagPerformance(
                tag_id,
                name,
                _ratio(confident_hits, confident),
                _ratio(confident_hits, count),
                _average_precision(hits, count),
            )
        )
    scored = [
        t.average_precision for t in per_tag if truths.get(t.id) and t.average_precision is not None
    ]
    mean_ap = sum(scored) / len(scored) if scored else 0.0
    tp, fp, fn = totals
    return IterationPerformance(per_tag, _ratio(tp, tp + fp), _ratio(tp, tp + fn), mean_ap)
