"""The emulator's state: projects, tags, images, metadata and iterations in SQLite; image bytes as
blob files.

Public names: `Store` (the one object the routes call), `ApiError` (its refusals).

`Store` is one class made of one part per resource, each in its own module, sharing the database
and the blobs:
- `db`: the connection, the schema and its reasons, the write/read transactions;
- `blobs`: content-addressed image bytes (files fsynced before the row naming them commits);
- `records`: the values the store takes and returns, `ApiError`, the domain catalogue;
- `rows`: the queries several parts share;
- `projects`, `tags`, `images` (listings, uploads, tagging, metadata), `regions` (object
  detection boxes), `training` (simulated classification and detection);
- `filter`: the `$filter` parser for image metadata.
All methods are thread-safe (one connection behind a lock); the app calls them from worker threads.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from syncd.emulator.limits import DEFAULT_QUOTAS, DEFAULT_TRAINING_SECONDS, Quotas
from syncd.emulator.store.blobs import Blobs
from syncd.emulator.store.db import Database
from syncd.emulator.store.images import ImagesMixin
from syncd.emulator.store.projects import ProjectsMixin
from syncd.emulator.store.records import ApiError
from syncd.emulator.store.regions import RegionsMixin
from syncd.emulator.store.tags import TagsMixin
from syncd.emulator.store.training import TrainingMixin

__all__ = ["ApiError", "Store"]


class Store(ProjectsMixin, TagsMixin, ImagesMixin, RegionsMixin, TrainingMixin):
    """Projects, tags and images of one emulated account, persisted under data_dir (or memory):
    `emulator.sqlite3` and `blobs/`."""

    def __init__(
        self,
        data_dir: Path | None = None,
        quotas: Quotas = DEFAULT_QUOTAS,
        *,
        training_seconds: float = DEFAULT_TRAINING_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.quotas = quotas
        self.training_seconds = training_seconds
        self._clock = clock
        if data_dir is not None:
            data_dir.mkdir(parents=True, exist_ok=True)
        self._blobs = Blobs(None if data_dir is None else data_dir / "blobs")
        self._db = Database(None if data_dir is None else data_dir / "emulator.sqlite3")
        with self._db.read() as db:
            last = db.execute("SELECT MAX(created) FROM images").fetchone()[0]
        self._last_created = last or ""

    def close(self) -> None:
        """Close the database (an in-memory store forgets everything)."""
        self._db.close()
        self._blobs.close()
