"""Queries that more than one resource of the store needs, each on an open connection.

Public names: `require_project`, `is_detection`, `tag_types`, `image_rows`, `delete_image_rows`,
`delete_iterations`, `drop_unreferenced_blobs`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

from syncd.emulator.store.blobs import Blobs
from syncd.emulator.store.db import Database
from syncd.emulator.store.records import DETECTION, DOMAINS, not_found_project


def require_project(db: sqlite3.Connection, project_id: str) -> None:
    """Raise ApiError 404 NotFoundProject unless the project exists."""
    if db.execute("SELECT 1 FROM projects WHERE id = ?", (project_id,)).fetchone() is None:
        raise not_found_project()


def is_detection(db: sqlite3.Connection, project_id: str) -> bool:
    """True when the project's domain is an object detection one; raise 404 if no project."""
    row = db.execute("SELECT domain_id FROM projects WHERE id = ?", (project_id,)).fetchone()
    if row is None:
        raise not_found_project()
    return any(d.id == row[0] and d.type == DETECTION for d in DOMAINS)


def tag_types(db: sqlite3.Connection, project_id: str) -> dict[str, str]:
    """Return {tag id: tag type} of a project's tags."""
    return dict(db.execute("SELECT id, type FROM tags WHERE project_id = ?", (project_id,)))


def image_rows(db: sqlite3.Connection, project_id: str, image_ids: Iterable[str]) -> list[tuple]:
    """Return (seq, id, created, width, height, token) of the listed images that exist in the
    project, oldest first."""
    ids = list(dict.fromkeys(image_ids))
    if not ids:
        return []
    marks = ",".join("?" * len(ids))
    return db.execute(
        "SELECT i.seq, i.id, i.created, i.width, i.height, i.token FROM images i"
        f" WHERE i.project_id = ? AND i.id IN ({marks}) ORDER BY i.seq",
        (project_id, *ids),
    ).fetchall()


def delete_image_rows(db: sqlite3.Connection, where: str, params: Sequence[object]) -> None:
    """Delete the images matching where, with their tags, regions and metadata (not their
    blobs)."""
    sub = f"SELECT seq FROM images WHERE {where}"
    db.execute(f"DELETE FROM image_tags WHERE image_seq IN ({sub})", params)
    db.execute(f"DELETE FROM image_regions WHERE image_seq IN ({sub})", params)
    db.execute(f"DELETE FROM image_metadata WHERE image_seq IN ({sub})", params)
    db.execute(f"DELETE FROM images WHERE {where}", params)


def delete_iterations(db: sqlite3.Connection, where: str, params: Sequence[object]) -> None:
    """Delete the iterations matching where, with their training-set snapshots."""
    sub = f"SELECT seq FROM iterations WHERE {where}"
    db.execute(f"DELETE FROM iteration_images WHERE iteration_seq IN ({sub})", params)
    db.execute(f"DELETE FROM iteration_image_tags WHERE iteration_seq IN ({sub})", params)
    db.execute(f"DELETE FROM iteration_image_regions WHERE iteration_seq IN ({sub})", params)
    db.execute(f"DELETE FROM iterations WHERE {where}", params)


def drop_unreferenced_blobs(database: Database, blobs: Blobs, shas: Iterable[str]) -> None:
    """Delete the blobs no image row names any more (call after the commit that dropped rows)."""
    with database.read() as db:
        for sha in set(shas):
            if db.execute("SELECT 1 FROM images WHERE sha256 = ?", (sha,)).fetchone() is None:
                blobs.delete(sha)
