"""The store's projects: create (with the domain and project quota checks), list, get, update,
delete (with everything in them).

Public names: `ProjectsMixin` (a part of `Store`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from syncd.emulator.limits import Quotas
from syncd.emulator.store.blobs import Blobs
from syncd.emulator.store.db import Database, now_stamp
from syncd.emulator.store.records import (
    DEFAULT_DOMAIN,
    DOMAINS,
    ApiError,
    Project,
    not_found_project,
)
from syncd.emulator.store.rows import (
    delete_image_rows,
    delete_iterations,
    drop_unreferenced_blobs,
    require_project,
)


class ProjectsMixin:
    """Projects of the account (see `Store`)."""

    _db: Database
    _blobs: Blobs
    quotas: Quotas

    def create_project(
        self,
        name: str,
        description: str | None,
        domain_id: str | None,
        classification_type: str | None,
        export_platforms: Sequence[str],
        project_id: str | None = None,
    ) -> Project:
        """Create a project; raise ApiError when the name, domain or project quota says no.

        `project_id` is for the embedded emulator only (the API has no such parameter): it makes
        the project a config names, so the embedded default needs no setup step.
        """
        if not name.strip():
            raise ApiError(400, "BadRequestProjectName", "Project name must not be empty.")
        domain = DEFAULT_DOMAIN
        if domain_id is not None:
            domain = next((d for d in DOMAINS if d.id == domain_id.lower()), None)  # type: ignore[assignment]
            if domain is None:
                raise ApiError(400, "BadRequestProjectUnknownDomain", "Unknown domain id.")
        if classification_type is None and domain.type == "Classification":
            classification_type = "Multiclass"
        if domain.type == "ObjectDetection":
            classification_type = None
        stamp = now_stamp()
        project = Project(
            id=(project_id or str(uuid.uuid4())).lower(),
            name=name,
            description=description or None,
            domain_id=domain.id,
            classification_type=classification_type,
            export_platforms=tuple(export_platforms),
            created=stamp,
            last_modified=stamp,
        )
        with self._db.write() as db:
            (count,) = db.execute("SELECT COUNT(*) FROM projects").fetchone()
            if count >= self.quotas.max_projects:
                raise ApiError(
                    400,
                    "BadRequestExceedProjectLimit",
                    f"Project limit of {self.quotas.max_projects} reached.",
                )
            db.execute(
                "INSERT INTO projects (id, name, description, domain_id, classification_type,"
                " export_platforms, created, last_modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    project.id,
                    project.name,
                    project.description,
                    project.domain_id,
                    project.classification_type,
                    ",".join(project.export_platforms),
                    project.created,
                    project.last_modified,
                ),
            )
        return project

    def projects(self) -> list[Project]:
        """Return every project, oldest first."""
        with self._db.read() as db:
            rows = db.execute(
                "SELECT id, name, description, domain_id, classification_type, export_platforms,"
                " created, last_modified FROM projects ORDER BY seq"
            ).fetchall()
        return [_project(row) for row in rows]

    def project(self, project_id: str) -> Project:
        """Return one project; raise ApiError 404 NotFoundProject when it does not exist."""
        with self._db.read() as db:
            row = db.execute(
                "SELECT id, name, description, domain_id, classification_type, export_platforms,"
                " created, last_modified FROM projects WHERE id = ?",
                (project_id,),
            ).fetchone()
        if row is None:
            raise not_found_project()
        return _project(row)

    def update_project(self, project_id: str, name: str | None, description: str | None) -> Project:
        """Rename or redescribe a project (settings are kept); return it."""
        if name is not None and not name.strip():
            raise ApiError(400, "BadRequestProjectName", "Project name must not be empty.")
        with self._db.write() as db:
            require_project(db, project_id)
            db.execute(
                "UPDATE projects SET name = COALESCE(?, name), description = ?, last_modified = ?"
                " WHERE id = ?",
                (name, description or None, now_stamp(), project_id),
            )
        return self.project(project_id)

    def delete_project(self, project_id: str) -> None:
        """Delete a project with its tags and images."""
        with self._db.write() as db:
            require_project(db, project_id)
            shas = [
                r[0]
                for r in db.execute(
                    "SELECT DISTINCT sha256 FROM images WHERE project_id = ?", (project_id,)
                )
            ]
            delete_image_rows(db, "project_id = ?", (project_id,))
            delete_iterations(db, "project_id = ?", (project_id,))
            db.execute("DELETE FROM tags WHERE project_id = ?", (project_id,))
            db.execute("DELETE FROM detection_rates WHERE project_id = ?", (project_id,))
            db.execute("DELETE FROM projects WHERE id = ?", (project_id,))
        drop_unreferenced_blobs(self._db, self._blobs, shas)


def _project(row: tuple) -> Project:
    return Project(
        id=row[0],
        name=row[1],
        description=row[2],
        domain_id=row[3],
        classification_type=row[4],
        export_platforms=tuple(p for p in row[5].split(",") if p),
        created=row[6],
        last_modified=row[7],
    )
