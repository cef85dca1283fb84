"""The store's regions (object detection boxes): CreateImageRegions, DeleteImageRegions, the
regions given with an image at create, and the regions a listing shows.

Public names: `RegionsMixin` (a part of `Store`), `add_regions`, `regions_of`, `require_detection`.

How the emulator reads the spec and the service:
- A region is (tag, box) on an image; the box is normalized left/top/width/height (the routes
  check it lies in the image, see routes/regions.py). A second region with the same image, tag and
  box is a duplicate, not a new region: `duplicated` in CreateImageRegions, skipped at create.
- An image holds at most `MAX_REGIONS_PER_IMAGE` (300) regions; entries past that are `exceeded`
  (CreateImageRegions) or make that image `ErrorRegionLimitExceed` (create).
- A region's tag is among the image's tags, and deleting an image's last region of a tag removes
  that tag from the image: the service does both (.NET SDK recording RegionManipulation [R]).
- Regions need an object detection project: a classification project refuses them (400
  BadRequestImageRegions). The spec is silent; refusing keeps a client from a mistake the real
  service would at best ignore.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterable, Sequence

from syncd.emulator.limits import MAX_REGIONS_PER_IMAGE
from syncd.emulator.store.db import Database, now_stamp
from syncd.emulator.store.records import (
    ApiError,
    ImageRegion,
    Region,
    RegionEntry,
    RegionResults,
)
from syncd.emulator.store.rows import image_rows, is_detection, require_project, tag_types


def require_detection(db: sqlite3.Connection, project_id: str) -> None:
    """Raise 400 BadRequestImageRegions unless the project is an object detection one."""
    if not is_detection(db, project_id):
        raise ApiError(
            400,
            "BadRequestImageRegions",
            "Regions need an object detection project; this project is a classification one.",
        )


def regions_of(db: sqlite3.Connection, image_seqs: Sequence[int]) -> dict[int, list[ImageRegion]]:
    """Return the regions of the listed images, each image's in creation order."""
    if not image_seqs:
        return {}
    marks = ",".join("?" * len(image_seqs))
    out: dict[int, list[ImageRegion]] = {}
    for seq, region_id, tag_id, name, created, left, top, width, height in db.execute(
        "SELECT r.image_seq, r.id, r.tag_id, t.name, r.created, r.box_left, r.box_top,"
        " r.box_width, r.box_height FROM image_regions r JOIN tags t ON t.id = r.tag_id"
        f" WHERE r.image_seq IN ({marks}) ORDER BY r.image_seq, r.seq",
        list(image_seqs),
    ):
        out.setdefault(seq, []).append(
            ImageRegion(region_id, tag_id, name, created, (left, top, width, height))
        )
    return out


def add_regions(
    db: sqlite3.Connection, image_seq: int, regions: Iterable[Region]
) -> tuple[list[ImageRegion], list[Region], list[Region]]:
    """Add regions to an image; return (created, duplicated, exceeded).

    Each region's tag joins the image's tags if it is not there yet.
    """
    existing = {
        (tag_id, (left, top, width, height))
        for tag_id, left, top, width, height in db.execute(
            "SELECT tag_id, box_left, box_top, box_width, box_height FROM image_regions"
            " WHERE image_seq = ?",
            (image_seq,),
        )
    }
    names = dict(
        db.execute(
            "SELECT id, name FROM tags WHERE project_id ="
            " (SELECT project_id FROM images WHERE seq = ?)",
            (image_seq,),
        ).fetchall()
    )
    created: list[ImageRegion] = []
    duplicated: list[Region] = []
    exceeded: list[Region] = []
    stamp = now_stamp()
    for region in regions:
        key = (region.tag_id, region.box)
        if key in existing:
            duplicated.append(region)
            continue
        if len(existing) >= MAX_REGIONS_PER_IMAGE:
            exceeded.append(region)
            continue
        existing.add(key)
        made = ImageRegion(
            str(uuid.uuid4()), region.tag_id, names[region.tag_id], stamp, region.box
        )
        db.execute(
            "INSERT INTO image_regions (id, image_seq, tag_id, box_left, box_top, box_width,"
            " box_height, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (made.region_id, image_seq, made.tag_id, *made.box, stamp),
        )
        created.append(made)
    _ensure_tags(db, image_seq, [r.tag_id for r in created], stamp)
    return created, duplicated, exceeded


def _ensure_tags(
    db: sqlite3.Connection, image_seq: int, tag_ids: Iterable[str], stamp: str
) -> None:
    """Put each tag on the image unless it is there already."""
    have = {
        r[0] for r in db.execute("SELECT tag_id FROM image_tags WHERE image_seq = ?", (image_seq,))
    }
    new = [t for t in dict.fromkeys(tag_ids) if t not in have]
    if not new:
        return
    db.executemany(
        "INSERT INTO image_tags (image_seq, tag_id, created) VALUES (?, ?, ?)",
        [(image_seq, tag_id, stamp) for tag_id in new],
    )
    db.execute(
        "UPDATE images SET tag_count = tag_count + ?, tagged = 1 WHERE seq = ?",
        (len(new), image_seq),
    )


class RegionsMixin:
    """Regions of a project's images (see `Store`)."""

    _db: Database

    def add_image_regions(self, project_id: str, entries: Sequence[RegionEntry]) -> RegionResults:
        """CreateImageRegions: add each entry's region to its image, in order.

        An unknown image or tag refuses the whole batch (404 NotFoundImage / NotFoundTag), as
        CreateImageTags does; so does a classification project (400 BadRequestImageRegions).
        """
        with self._db.write() as db:
            require_project(db, project_id)
            require_detection(db, project_id)
            types = tag_types(db, project_id)
            if any(e.region.tag_id not in types for e in entries):
                raise ApiError(404, "NotFoundTag", "Tag not found.")
            seq_of = {
                row[1]: row[0] for row in image_rows(db, project_id, (e.image_id for e in entries))
            }
            if any(e.image_id not in seq_of for e in entries):
                raise ApiError(404, "NotFoundImage", "Image not found.")
            created: list[tuple[str, ImageRegion]] = []
            duplicated: list[RegionEntry] = []
            exceeded: list[RegionEntry] = []
            for entry in entries:  # one at a time, so each entry sees the ones before it
                made, dup, over = add_regions(db, seq_of[entry.image_id], [entry.region])
                created.extend((entry.image_id, r) for r in made)
                duplicated.extend(RegionEntry(entry.image_id, r) for r in dup)
                exceeded.extend(RegionEntry(entry.image_id, r) for r in over)
        return RegionResults(created, duplicated, exceeded)

    def remove_image_regions(self, project_id: str, region_ids: Sequence[str]) -> None:
        """DeleteImageRegions: delete the listed regions of the project's images; unknown ids are
        ignored (as DeleteImageTags ignores them). An image's last region of a tag takes the tag
        off the image."""
        ids = list(dict.fromkeys(region_ids))
        if not ids:
            return
        marks = ",".join("?" * len(ids))
        with self._db.write() as db:
            require_project(db, project_id)
            rows = db.execute(
                "SELECT r.seq, r.image_seq, r.tag_id FROM image_regions r"
                " JOIN images i ON i.seq = r.image_seq"
                f" WHERE i.project_id = ? AND r.id IN ({marks})",
                (project_id, *ids),
            ).fetchall()
            db.executemany("DELETE FROM image_regions WHERE seq = ?", [(r[0],) for r in rows])
            for image_seq, tag_id in {(r[1], r[2]) for r in rows}:
                left = db.execute(
                    "SELECT 1 FROM image_regions WHERE image_seq = ? AND tag_id = ? LIMIT 1",
                    (image_seq, tag_id),
                ).fetchone()
                if left is not None:
                    continue
                removed = db.execute(
                    "DELETE FROM image_tags WHERE image_seq = ? AND tag_id = ?", (image_seq, tag_id)
                ).rowcount
                if removed:
                    db.execute(
                        "UPDATE images SET tag_count = tag_count - 1, tagged = (tag_count - 1 > 0)"
                        " WHERE seq = ?",
                        (image_seq,),
                    )
