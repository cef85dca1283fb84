"""The store's tags: list and get (with image counts), create, update, delete (untagging).

Public names: `TagsMixin` (a part of `Store`).

Names are unique case-insensitively (`name_key` is the casefolded name), and a project has at most
one Negative and one GeneralProduct tag.
"""

from __future__ import annotations

import sqlite3
import uuid

from syncd.emulator.limits import Quotas
from syncd.emulator.store.db import Database
from syncd.emulator.store.records import ApiError, Tag
from syncd.emulator.store.rows import require_project


class TagsMixin:
    """Tags of a project (see `Store`)."""

    _db: Database
    quotas: Quotas

    def tags(self, project_id: str) -> list[Tag]:
        """Return a project's tags (creation order) with their image counts."""
        with self._db.read() as db:
            require_project(db, project_id)
            rows = db.execute(
                "SELECT t.id, t.name, t.description, t.type,"
                " (SELECT COUNT(*) FROM image_tags it WHERE it.tag_id = t.id)"
                " FROM tags t WHERE t.project_id = ? ORDER BY t.seq",
                (project_id,),
            ).fetchall()
        return [Tag(*row) for row in rows]

    def tag(self, project_id: str, tag_id: str) -> Tag:
        """Return one tag; raise ApiError 404 NotFoundProject / NotFoundTag."""
        with self._db.read() as db:
            require_project(db, project_id)
            row = db.execute(
                "SELECT t.id, t.name, t.description, t.type,"
                " (SELECT COUNT(*) FROM image_tags it WHERE it.tag_id = t.id)"
                " FROM tags t WHERE t.project_id = ? AND t.id = ?",
                (project_id, tag_id),
            ).fetchone()
        if row is None:
            raise ApiError(404, "NotFoundTag", "Tag not found.")
        return Tag(*row)

    def _check_tag_fields(
        self,
        db: sqlite3.Connection,
        project_id: str,
        name: str,
        tag_type: str,
        except_tag: str | None,
    ) -> None:
        if not name.strip():
            raise ApiError(400, "BadRequestTagName", "Tag name must not be empty.")
        clash = db.execute(
            "SELECT id FROM tags WHERE project_id = ? AND name_key = ?",
            (project_id, name.casefold()),
        ).fetchone()
        if clash is not None and clash[0] != except_tag:
            raise ApiError(400, "BadRequestTagNameNotUnique", "Tag name is already in use.")
        for kind, code in (
            ("Negative", "BadRequestMultipleNegativeTag"),
            ("GeneralProduct", "BadRequestMultipleGeneralProductTag"),
        ):
            if tag_type != kind:
                continue
            other = db.execute(
                "SELECT id FROM tags WHERE project_id = ? AND type = ?", (project_id, kind)
            ).fetchone()
            if other is not None and other[0] != except_tag:
                raise ApiError(400, code, f"A project can have only one {kind} tag.")

    def create_tag(self, project_id: str, name: str, description: str | None, tag_type: str) -> Tag:
        """Create a tag; raise ApiError on a name clash (case-insensitive) or a full project."""
        tag = Tag(str(uuid.uuid4()), name, description or None, tag_type, 0)
        with self._db.write() as db:
            require_project(db, project_id)
            self._check_tag_fields(db, project_id, name, tag_type, None)
            (count,) = db.execute(
                "SELECT COUNT(*) FROM tags WHERE project_id = ?", (project_id,)
            ).fetchone()
            if count >= self.quotas.max_tags_per_project:
                raise ApiError(
                    400,
                    "BadRequestExceedTagPerProjectLimit",
                    f"Tag limit of {self.quotas.max_tags_per_project} per project reached.",
                )
            db.execute(
                "INSERT INTO tags (id, project_id, name, name_key, description, type)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (tag.id, project_id, name, name.casefold(), tag.description, tag_type),
            )
        return tag

    def update_tag(
        self, project_id: str, tag_id: str, name: str, description: str | None, tag_type: str
    ) -> Tag:
        """Rename, redescribe or retype a tag; return it."""
        with self._db.write() as db:
            self.tag(project_id, tag_id)
            self._check_tag_fields(db, project_id, name, tag_type, tag_id)
            db.execute(
                "UPDATE tags SET name = ?, name_key = ?, description = ?, type = ? WHERE id = ?",
                (name, name.casefold(), description or None, tag_type, tag_id),
            )
        return self.tag(project_id, tag_id)

    def delete_tag(self, project_id: str, tag_id: str) -> None:
        """Delete a tag, untag its images and delete its regions."""
        with self._db.write() as db:
            self.tag(project_id, tag_id)
            db.execute("DELETE FROM image_regions WHERE tag_id = ?", (tag_id,))
            db.execute(
                "UPDATE images SET tag_count = tag_count - 1, tagged = (tag_count - 1 > 0)"
                " WHERE seq IN (SELECT image_seq FROM image_tags WHERE tag_id = ?)",
                (tag_id,),
            )
            db.execute("DELETE FROM image_tags WHERE tag_id = ?", (tag_id,))
            db.execute("DELETE FROM tags WHERE id = ?", (tag_id,))
