"""The store's images: listings and counts (tag, tagging-status and metadata filters, paged),
lookups by id, the bytes behind an image URI, create batches (duplicates, per-image statuses),
tagging and untagging, deletion, metadata updates.

Public names: `ImagesMixin` (a part of `Store`).

Create batches are content-addressed: the same bytes (sha256) already in the project, or earlier
in the batch, are `OKDuplicate`, and the duplicate gets the batch's tags and the entry's regions
(not its metadata). Regions at create follow store/regions.py.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import uuid
from collections.abc import Iterable, Sequence

from syncd.emulator.imageinfo import inspect_image
from syncd.emulator.limits import (
    MAX_ASPECT_RATIO,
    MAX_IMAGE_SIDE_PX,
    MAX_REGIONS_PER_IMAGE,
    METADATA_MAX_PAIRS,
    Quotas,
)
from syncd.emulator.store.blobs import Blobs
from syncd.emulator.store.db import Database, now_stamp
from syncd.emulator.store.filter import MetadataFilter, filter_sql
from syncd.emulator.store.records import (
    ApiError,
    CreateResult,
    Image,
    ImageTag,
    MetadataResult,
    TagPairs,
    Upload,
)
from syncd.emulator.store.regions import add_regions, regions_of, require_detection
from syncd.emulator.store.rows import (
    delete_image_rows,
    drop_unreferenced_blobs,
    image_rows,
    require_project,
    tag_types,
)


class ImagesMixin:
    """Images of a project (see `Store`)."""

    _db: Database
    _blobs: Blobs
    quotas: Quotas
    _last_created: str  # the newest image's `created` stamp

    # --- image reads ------------------------------------------------------------------------------

    def _created_stamp(self) -> str:
        """Return now, never earlier than the last image's stamp (newest-first = seq order)."""
        stamp = max(now_stamp(), self._last_created)
        self._last_created = stamp
        return stamp

    def _where(
        self,
        project_id: str,
        tag_ids: Sequence[str],
        tagging_status: str,
        metadata_filter: MetadataFilter | None,
    ) -> tuple[str, list[object]]:
        clauses = ["i.project_id = ?"]
        params: list[object] = [project_id]
        if tagging_status == "Tagged":
            clauses.append("i.tagged = 1")
        elif tagging_status == "Untagged":
            clauses.append("i.tagged = 0")
        if tag_ids:
            marks = ",".join("?" * len(tag_ids))
            clauses.append(f"i.seq IN (SELECT image_seq FROM image_tags WHERE tag_id IN ({marks}))")
            params.extend(tag_ids)
        if metadata_filter is not None:
            clauses.append(filter_sql(metadata_filter, params))
        return " AND ".join(clauses), params

    def images(
        self,
        project_id: str,
        *,
        tag_ids: Sequence[str] = (),
        tagging_status: str = "All",
        metadata_filter: MetadataFilter | None = None,
        newest_first: bool = True,
        take: int = 50,
        skip: int = 0,
    ) -> list[Image]:
        """Return one page of a project's images in insertion order (newest first by default)."""
        order = "DESC" if newest_first else "ASC"
        with self._db.read() as db:
            require_project(db, project_id)
            by_tag = self._tag_driven(db, project_id, tag_ids, tagging_status, metadata_filter)
            if by_tag is not None:
                if not by_tag:
                    return []
                # Walk the (tag_id, image_seq) index in order: no sort, however deep the page.
                marks = ",".join("?" * len(by_tag))
                distinct = "DISTINCT " if len(by_tag) > 1 else ""
                seqs = [
                    r[0]
                    for r in db.execute(
                        f"SELECT {distinct}image_seq FROM image_tags WHERE tag_id IN ({marks})"
                        f" ORDER BY image_seq {order} LIMIT ? OFFSET ?",
                        (*by_tag, take, skip),
                    )
                ]
                where, params = f"i.seq IN ({','.join('?' * len(seqs))})", list(seqs)
                limit: tuple[int, ...] = ()
            else:
                where, params = self._where(project_id, tag_ids, tagging_status, metadata_filter)
                limit = (take, skip)
            if not params and by_tag is not None:
                return []
            rows = db.execute(
                "SELECT i.seq, i.id, i.created, i.width, i.height, i.token FROM images i"
                f" WHERE {where} ORDER BY i.seq {order}" + (" LIMIT ? OFFSET ?" if limit else ""),
                (*params, *limit),
            ).fetchall()
            return self._hydrate(db, rows)

    def _tag_driven(
        self,
        db: sqlite3.Connection,
        project_id: str,
        tag_ids: Sequence[str],
        tagging_status: str,
        metadata_filter: MetadataFilter | None,
    ) -> list[str] | None:
        """Return the project's own tags among tag_ids when a tag filter can be answered from
        image_tags alone (no metadata filter), else None. An image with a tag is tagged, so
        `Untagged` with tags matches nothing (an empty list)."""
        if not tag_ids or metadata_filter is not None:
            return None
        if tagging_status == "Untagged":
            return []
        marks = ",".join("?" * len(tag_ids))
        return [
            r[0]
            for r in db.execute(
                f"SELECT id FROM tags WHERE project_id = ? AND id IN ({marks})",
                (project_id, *tag_ids),
            )
        ]

    def count_images(
        self,
        project_id: str,
        *,
        tag_ids: Sequence[str] = (),
        tagging_status: str = "All",
        metadata_filter: MetadataFilter | None = None,
    ) -> int:
        """Return how many of a project's images match the filters."""
        with self._db.read() as db:
            require_project(db, project_id)
            by_tag = self._tag_driven(db, project_id, tag_ids, tagging_status, metadata_filter)
            if by_tag is not None:
                if not by_tag:
                    return 0
                marks = ",".join("?" * len(by_tag))
                what = "COUNT(DISTINCT image_seq)" if len(by_tag) > 1 else "COUNT(*)"
                sql = f"SELECT {what} FROM image_tags WHERE tag_id IN ({marks})"
                return db.execute(sql, by_tag).fetchone()[0]
            where, params = self._where(project_id, tag_ids, tagging_status, metadata_filter)
            (count,) = db.execute(f"SELECT COUNT(*) FROM images i WHERE {where}", params).fetchone()
        return count

    def images_by_ids(self, project_id: str, image_ids: Sequence[str]) -> list[Image]:
        """Return the listed images that exist, oldest first (as the service answered [R])."""
        with self._db.read() as db:
            require_project(db, project_id)
            rows = image_rows(db, project_id, image_ids)
            return self._hydrate(db, rows)

    def _hydrate(self, db: sqlite3.Connection, rows: Sequence[tuple]) -> list[Image]:
        """Turn image rows into Images with their tags, metadata and regions (three indexed
        queries)."""
        if not rows:
            return []
        seqs = [row[0] for row in rows]
        marks = ",".join("?" * len(seqs))
        tags: dict[int, list[ImageTag]] = {}
        for seq, tag_id, name, created in db.execute(
            "SELECT it.image_seq, it.tag_id, t.name, it.created FROM image_tags it"
            f" JOIN tags t ON t.id = it.tag_id WHERE it.image_seq IN ({marks})"
            " ORDER BY it.image_seq, it.created, t.seq",
            seqs,
        ):
            tags.setdefault(seq, []).append(ImageTag(tag_id, name, created))
        metadata: dict[int, dict[str, str]] = {}
        for seq, key, value in db.execute(
            f"SELECT image_seq, key, value FROM image_metadata WHERE image_seq IN ({marks})"
            " ORDER BY image_seq, key",
            seqs,
        ):
            metadata.setdefault(seq, {})[key] = value
        regions = regions_of(db, seqs)
        return [
            Image(
                id=image_id,
                created=created,
                width=width,
                height=height,
                token=token,
                tags=tuple(tags.get(seq, ())),
                metadata=metadata.get(seq, {}),
                regions=tuple(regions.get(seq, ())),
            )
            for seq, image_id, created, width, height, token in rows
        ]

    def blob(self, token: str) -> tuple[bytes, str] | None:
        """Return (bytes, format) of the image whose URI token this is, or None."""
        with self._db.read() as db:
            row = db.execute(
                "SELECT sha256, format FROM images WHERE token = ?", (token,)
            ).fetchone()
            if row is None:
                return None
        data = self._blobs.read(row[0])
        return None if data is None else (data, row[1])

    # --- image writes ---------------------------------------------------------------------------

    def create_images(
        self,
        project_id: str,
        uploads: Sequence[Upload],
        tag_ids: Sequence[str],
        metadata: dict[str, str] | None,
    ) -> list[CreateResult]:
        """Create a batch of images; return one result per upload, in order.

        Batch-wide refusals (unknown project or tag, regions in a classification project) raise
        ApiError before anything is written. Per image: ErrorImageSize, ErrorImageFormat,
        ErrorTagLimitExceed, ErrorRegionLimitExceed (more than 300 distinct regions),
        ErrorNegativeAndRegularTagOnSameImage, ErrorLimitExceed (project full), OKDuplicate (same
        bytes already in the project: no new image; the requested tags and regions are added to
        the existing image, metadata is left alone), or OK. Results echo images with `tagName`
        None.
        """
        batch_tags = list(dict.fromkeys(tag_ids))
        with self._db.write() as db:
            require_project(db, project_id)
            if any(u.regions for u in uploads):
                require_detection(db, project_id)
            types = tag_types(db, project_id)
            region_tags = (r.tag_id for u in uploads for r in u.regions)
            for tag_id in [*batch_tags, *(t for u in uploads for t in u.tag_ids), *region_tags]:
                if tag_id not in types:
                    raise ApiError(404, "NotFoundTag", "Tag not found.")
            (count,) = db.execute(
                "SELECT COUNT(*) FROM images WHERE project_id = ?", (project_id,)
            ).fetchone()
            outcomes: list[tuple[str, str, int | None]] = []  # (source, status, image seq)
            seen: dict[str, int] = {}  # sha -> image seq, including this batch's
            for upload in uploads:
                wanted = list(dict.fromkeys([*batch_tags, *upload.tag_ids]))
                status, seq = self._create_one(db, project_id, upload, wanted, types, count, seen)
                if status == "OK" and seq is not None:
                    count += 1
                    if metadata:
                        db.executemany(
                            "INSERT INTO image_metadata (image_seq, key, value) VALUES (?, ?, ?)",
                            [(seq, k, v) for k, v in metadata.items()],
                        )
                outcomes.append((upload.source, status, seq))
            # Hydrate after all writes so duplicates show the tags this batch added.
            seqs = sorted({seq for _, _, seq in outcomes if seq is not None})
            images: dict[int, Image] = {}
            if seqs:
                marks = ",".join("?" * len(seqs))
                rows = db.execute(
                    "SELECT seq, id, created, width, height, token FROM images"
                    f" WHERE seq IN ({marks}) ORDER BY seq",
                    seqs,
                ).fetchall()
                images = dict(zip(seqs, self._hydrate(db, rows), strict=True))
        return [
            CreateResult(source, status, None if seq is None else _echo(images[seq]))
            for source, status, seq in outcomes
        ]

    def _create_one(
        self,
        db: sqlite3.Connection,
        project_id: str,
        upload: Upload,
        wanted: list[str],
        types: dict[str, str],
        count: int,
        seen: dict[str, int],
    ) -> tuple[str, int | None]:
        if len(upload.data) > self.quotas.max_image_bytes:
            return "ErrorImageSize", None
        info = inspect_image(upload.data)
        if info is None:
            return "ErrorImageFormat", None
        long_side, short_side = max(info.width, info.height), min(info.width, info.height)
        if long_side > MAX_IMAGE_SIDE_PX or long_side > MAX_ASPECT_RATIO * short_side:
            return "ErrorImageSize", None
        if len(wanted) > self.quotas.max_tags_per_image:
            return "ErrorTagLimitExceed", None
        if len(set(upload.regions)) > MAX_REGIONS_PER_IMAGE:
            return "ErrorRegionLimitExceed", None
        sha = hashlib.sha256(upload.data).hexdigest()
        existing = seen.get(sha)
        if existing is None:
            row = db.execute(
                "SELECT seq FROM images WHERE project_id = ? AND sha256 = ?", (project_id, sha)
            ).fetchone()
            existing = None if row is None else row[0]
        if existing is not None:
            current = [
                r[0]
                for r in db.execute(
                    "SELECT tag_id FROM image_tags WHERE image_seq = ?", (existing,)
                )
            ]
            merged = list(dict.fromkeys([*current, *wanted]))
            if not _mixes_negative(merged, types):
                room = self.quotas.max_tags_per_image - len(current)
                new = [t for t in merged if t not in current][: max(room, 0)]
                self._add_tags(db, existing, new)
                add_regions(db, existing, upload.regions)  # those past 300 are dropped
            return "OKDuplicate", existing
        if _mixes_negative(wanted, types):
            return "ErrorNegativeAndRegularTagOnSameImage", None
        if count >= self.quotas.max_images_per_project:
            return "ErrorLimitExceed", None
        self._blobs.write(sha, upload.data)
        cursor = db.execute(
            "INSERT INTO images (id, project_id, sha256, format, width, height, created, token)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                str(uuid.uuid4()),
                project_id,
                sha,
                info.format,
                info.width,
                info.height,
                self._created_stamp(),
                secrets.token_urlsafe(24),
            ),
        )
        seq = cursor.lastrowid
        if seq is None:  # pragma: no cover - sqlite always sets it for an INSERT
            raise ApiError(500, "ErrorUnknown", "Insert failed.")
        self._add_tags(db, seq, wanted)
        add_regions(db, seq, upload.regions)
        seen[sha] = seq
        return "OK", seq

    def _add_tags(self, db: sqlite3.Connection, image_seq: int, tag_ids: Sequence[str]) -> None:
        if not tag_ids:
            return
        stamp = now_stamp()
        db.executemany(
            "INSERT INTO image_tags (image_seq, tag_id, created) VALUES (?, ?, ?)",
            [(image_seq, tag_id, stamp) for tag_id in tag_ids],
        )
        db.execute(
            "UPDATE images SET tag_count = tag_count + ?, tagged = 1 WHERE seq = ?",
            (len(tag_ids), image_seq),
        )

    def add_image_tags(self, project_id: str, pairs: Sequence[tuple[str, str]]) -> TagPairs:
        """Tag images (CreateImageTags): split the pairs into created / duplicated / exceeded.

        An unknown image or tag refuses the whole batch (404 NotFoundImage / NotFoundTag), and so
        does a pair that would put a Negative and a Regular tag on one image (400).
        """
        created: list[tuple[str, str]] = []
        duplicated: list[tuple[str, str]] = []
        exceeded: list[tuple[str, str]] = []
        with self._db.write() as db:
            require_project(db, project_id)
            types = tag_types(db, project_id)
            for _, tag_id in pairs:
                if tag_id not in types:
                    raise ApiError(404, "NotFoundTag", "Tag not found.")
            rows = image_rows(db, project_id, (image_id for image_id, _ in pairs))
            seq_of = {row[1]: row[0] for row in rows}
            for image_id, _ in pairs:
                if image_id not in seq_of:
                    raise ApiError(404, "NotFoundImage", "Image not found.")
            current: dict[str, list[str]] = {image_id: [] for image_id in seq_of}
            for image_id, seq in seq_of.items():
                current[image_id] = [
                    r[0]
                    for r in db.execute("SELECT tag_id FROM image_tags WHERE image_seq = ?", (seq,))
                ]
            for image_id, tag_ids in current.items():
                wanted = [t for i, t in pairs if i == image_id]
                if _mixes_negative([*tag_ids, *wanted], types):
                    raise ApiError(
                        400,
                        "BadRequestNegativeAndRegularTagOnSameImage",
                        "An image cannot have a Negative tag and a Regular tag.",
                    )
            for image_id, tag_id in pairs:
                tags = current[image_id]
                if tag_id in tags:
                    duplicated.append((image_id, tag_id))
                elif len(tags) >= self.quotas.max_tags_per_image:
                    exceeded.append((image_id, tag_id))
                else:
                    self._add_tags(db, seq_of[image_id], [tag_id])
                    tags.append(tag_id)
                    created.append((image_id, tag_id))
        return TagPairs(created, duplicated, exceeded)

    def remove_image_tags(
        self, project_id: str, image_ids: Sequence[str], tag_ids: Sequence[str]
    ) -> None:
        """Remove every listed tag from every listed image; unknown ids are ignored."""
        with self._db.write() as db:
            require_project(db, project_id)
            rows = image_rows(db, project_id, image_ids)
            tags = list(dict.fromkeys(tag_ids))
            if not rows or not tags:
                return
            marks = ",".join("?" * len(tags))
            for row in rows:
                removed = db.execute(
                    f"DELETE FROM image_tags WHERE image_seq = ? AND tag_id IN ({marks})",
                    (row[0], *tags),
                ).rowcount
                if removed:
                    db.execute(
                        "UPDATE images SET tag_count = tag_count - ?, tagged = (tag_count - ? > 0)"
                        " WHERE seq = ?",
                        (removed, removed, row[0]),
                    )

    def delete_images(self, project_id: str, image_ids: Sequence[str] | None) -> None:
        """Delete the listed images (None = all of the project's); unknown ids are ignored."""
        with self._db.write() as db:
            require_project(db, project_id)
            if image_ids is None:
                where, params = "project_id = ?", (project_id,)
            else:
                seqs = [row[0] for row in image_rows(db, project_id, image_ids)]
                if not seqs:
                    return
                where, params = f"seq IN ({','.join('?' * len(seqs))})", tuple(seqs)
            shas = [
                r[0]
                for r in db.execute(f"SELECT DISTINCT sha256 FROM images WHERE {where}", params)
            ]
            delete_image_rows(db, where, params)
        drop_unreferenced_blobs(self._db, self._blobs, shas)

    def update_metadata(
        self, project_id: str, image_ids: Sequence[str], metadata: dict[str, str]
    ) -> list[MetadataResult]:
        """Merge metadata into each listed image (keys given are set, others kept).

        Per image: ErrorImageNotFound, ErrorLimitExceed (the merged map would pass 50 pairs;
        nothing is written to that image), or OK with the image's whole metadata.
        """
        results: list[MetadataResult] = []
        with self._db.write() as db:
            require_project(db, project_id)
            seq_of = {row[1]: row[0] for row in image_rows(db, project_id, image_ids)}
            for image_id in dict.fromkeys(image_ids):
                seq = seq_of.get(image_id)
                if seq is None:
                    results.append(MetadataResult(image_id, "ErrorImageNotFound", None))
                    continue
                current = dict(
                    db.execute(
                        "SELECT key, value FROM image_metadata WHERE image_seq = ?", (seq,)
                    ).fetchall()
                )
                merged = {**current, **metadata}
                if len(merged) > METADATA_MAX_PAIRS:
                    results.append(MetadataResult(image_id, "ErrorLimitExceed", None))
                    continue
                db.executemany(
                    "INSERT INTO image_metadata (image_seq, key, value) VALUES (?, ?, ?)"
                    " ON CONFLICT (image_seq, key) DO UPDATE SET value = excluded.value",
                    [(seq, k, v) for k, v in metadata.items()],
                )
                results.append(MetadataResult(image_id, "OK", dict(sorted(merged.items()))))
        return results


def _mixes_negative(tag_ids: Iterable[str], types: dict[str, str]) -> bool:
    kinds = {types[t] == "Negative" for t in tag_ids if t in types}
    return len(kinds) == 2


def _echo(image: Image) -> Image:
    """Return image as create results show it: tag names null [R docs/spec/DIGEST.md §2]."""
    return Image(
        id=image.id,
        created=image.created,
        width=image.width,
        height=image.height,
        token=image.token,
        tags=tuple(ImageTag(t.tag_id, None, t.created) for t in image.tags),
        metadata=image.metadata,
        regions=image.regions,
    )
