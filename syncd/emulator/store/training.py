"""Simulated training: TrainProject, iterations, and their performance figures.

Public names: `TrainingMixin` (a part of `Store`), `simulated_predictions`.

The emulator cannot learn. TrainProject snapshots the project's tagged images into
`iteration_images` with a prediction list computed from each image's sha256 and tags
(`simulated_predictions`), and the iteration reads as `Training` until `training_seconds` after
its creation, then `Completed`. `mark_mispredicted` is the test seam: a marked image's next
training ranks the chosen tag first and its own tags low.
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
    ApiError,
    ImagePerformance,
    ImageTag,
    Iteration,
    Prediction,
    not_found_project,
)
from syncd.emulator.store.rows import delete_iterations, image_rows, require_project, tag_types

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
            self._check_trainable(tags, rows)
            fingerprint = hashlib.sha256(
                json.dumps([project[3], sorted(tag_ids), [(r[2], r[7]) for r in rows]]).encode()
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
            self._snapshot_training_set(db, iteration_seq, tags, rows)
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

    def _snapshot_training_set(
        self, db: sqlite3.Connection, iteration_seq: int, tags: Sequence[tuple], rows: list[tuple]
    ) -> None:
        names = {t[0]: t[1] for t in tags}
        wrong = dict(db.execute("SELECT image_id, tag_id FROM mispredictions").fetchall())
        by_image: dict[int, list[tuple]] = {}
        for row in rows:
            by_image.setdefault(row[0], []).append(row)
        entries = []
        pairs: list[tuple[int, str, int]] = []
        for seq, its_rows in by_image.items():
            first = its_rows[0]
            own = [r[7] for r in its_rows]
            mispredicted = wrong.get(first[1])
            predictions = simulated_predictions(
                first[2], own, tags, mispredicted if mispredicted in names else None
            )
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
                        [[p.tag_id, p.tag_name, p.tag_type, p.probability] for p in predictions]
                    ),
                )
            )
            pairs.extend((iteration_seq, tag_id, seq) for tag_id in own)
        db.executemany("INSERT INTO iteration_images VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", entries)
        db.executemany("INSERT INTO iteration_image_tags VALUES (?, ?, ?)", pairs)

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
                "SELECT image_id, created, width, height, token, tags, predictions"
                f" FROM iteration_images WHERE {where} ORDER BY image_seq {order}"
                " LIMIT ? OFFSET ?",
                (*params, take, skip),
            ).fetchall()
        return [
            ImagePerformance(
                id=row[0],
                created=row[1],
                width=row[2],
                height=row[3],
                token=row[4],
                tags=tuple(ImageTag(*t) for t in json.loads(row[5])),
                predictions=tuple(Prediction(*p) for p in json.loads(row[6])),
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
        self, project_id: str, iteration_id: str, threshold: float
    ) -> tuple[list[tuple[str, str, float, float]], float, float]:
        """Return ([(tag id, name, precision, recall)], precision, recall) at the threshold.

        Computed from the simulated predictions of the iteration's own training images (the
        service holds out a test split; the emulator has no model to test).
        """
        with self._db.read() as db:
            seq = self._trained_seq(db, project_id, iteration_id)
            rows = db.execute(
                "SELECT tags, predictions FROM iteration_images WHERE iteration_seq = ?", (seq,)
            ).fetchall()
        stats: dict[str, list] = {}  # tag id -> [name, true pos, false pos, false neg]
        for tags_json, predictions_json in rows:
            own = {t[0] for t in json.loads(tags_json)}
            for tag_id, name, _type, probability in json.loads(predictions_json):
                entry = stats.setdefault(tag_id, [name, 0, 0, 0])
                predicted = probability >= threshold
                if predicted and tag_id in own:
                    entry[1] += 1
                elif predicted:
                    entry[2] += 1
                elif tag_id in own:
                    entry[3] += 1

        def ratio(a: int, b: int) -> float:
            return a / b if b else 0.0

        per_tag = [
            (tag_id, name, ratio(tp, tp + fp), ratio(tp, tp + fn))
            for tag_id, (name, tp, fp, fn) in stats.items()
        ]
        tp = sum(e[1] for e in stats.values())
        fp = sum(e[2] for e in stats.values())
        fn = sum(e[3] for e in stats.values())
        return per_tag, ratio(tp, tp + fp), ratio(tp, tp + fn)
