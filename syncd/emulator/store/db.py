"""The emulator's database: one SQLite connection, its schema, and its transactions.

Public names: `Database`, `SCHEMA_VERSION`, `now_stamp`, `stamp`.

Durability: with a file the database is in WAL mode with synchronous=FULL, and every write is one
`write()` transaction committed before the caller returns (so before the response is sent).
Without a file (tests) it lives in memory and nothing survives `close()`.

Schema choices, each for the 100,000-images-per-project scale:
- `images.seq` (AUTOINCREMENT, never reused) is the insertion order: newest first is `seq DESC`,
  and it breaks ties between images created in the same instant, so paging is stable.
- `images.tagged` (0/1) mirrors `tag_count > 0`, indexed with (project_id, tagged, seq), so the
  tagged/untagged listings and counts never scan the join table.
- `image_tags` is indexed both ways (image -> tags for hydrating a page, tag -> images for filters).
- `image_metadata` rows (one per key) are indexed by (key, value), so `$filter` is a set of indexed
  sub-selects rather than a scan of JSON.
- `image_regions` (object detection boxes) are indexed by image, so a page hydrates its regions
  with one query, and by tag (deleting a tag deletes its regions). A region also keeps its
  `(image, tag)` row in `image_tags`, as the service lists a region's tag among the image's tags.
  Regions and their iteration snapshots are tables of their own, so a data dir made before them
  gains them by `CREATE TABLE IF NOT EXISTS` (no migration).
One connection behind a reentrant lock: every method of the store is thread-safe, and a write
transaction may call reads of its own.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

SCHEMA_VERSION = 1

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS projects (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    description TEXT,
    domain_id TEXT NOT NULL,
    classification_type TEXT,
    export_platforms TEXT NOT NULL,  -- comma-separated
    created TEXT NOT NULL,
    last_modified TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tags (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    project_id TEXT NOT NULL,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,  -- casefolded: names are unique case-insensitively, like the service
    description TEXT,
    type TEXT NOT NULL,
    UNIQUE (project_id, name_key)
);
CREATE TABLE IF NOT EXISTS images (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    project_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    format TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    created TEXT NOT NULL,
    token TEXT NOT NULL UNIQUE,
    tag_count INTEGER NOT NULL DEFAULT 0,
    tagged INTEGER NOT NULL DEFAULT 0,  -- tag_count > 0, kept in an index for the listings
    UNIQUE (project_id, sha256)
);
CREATE INDEX IF NOT EXISTS images_by_project ON images (project_id, seq);
CREATE INDEX IF NOT EXISTS images_by_tagged ON images (project_id, tagged, seq);
CREATE INDEX IF NOT EXISTS images_by_sha ON images (sha256);
CREATE TABLE IF NOT EXISTS image_tags (
    image_seq INTEGER NOT NULL,
    tag_id TEXT NOT NULL,
    created TEXT NOT NULL,
    PRIMARY KEY (image_seq, tag_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS image_tags_by_tag ON image_tags (tag_id, image_seq);
CREATE TABLE IF NOT EXISTS image_metadata (
    image_seq INTEGER NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (image_seq, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS image_metadata_by_value ON image_metadata (key, value, image_seq);
CREATE TABLE IF NOT EXISTS iterations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    project_id TEXT NOT NULL,
    name TEXT NOT NULL,
    created TEXT NOT NULL,
    ready_at REAL NOT NULL,  -- clock() value at which the simulated training completes
    trained_at TEXT NOT NULL,  -- the stamp of ready_at, shown once completed
    training_type TEXT NOT NULL,
    reserved_budget INTEGER NOT NULL,
    domain_id TEXT NOT NULL,
    classification_type TEXT,
    fingerprint TEXT NOT NULL  -- sha256 of the training set: what "nothing changed" compares
);
CREATE INDEX IF NOT EXISTS iterations_by_project ON iterations (project_id, seq);
-- The training set as it was when the iteration was trained: later edits do not change it.
CREATE TABLE IF NOT EXISTS iteration_images (
    iteration_seq INTEGER NOT NULL,
    image_seq INTEGER NOT NULL,  -- the image's insertion order (newest first = DESC)
    image_id TEXT NOT NULL,
    created TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    token TEXT NOT NULL,
    tags TEXT NOT NULL,  -- JSON [[tag_id, tag_name, created], ...]
    predictions TEXT NOT NULL,  -- JSON [[tag_id, tag_name, tag_type, probability], ...]
    PRIMARY KEY (iteration_seq, image_seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS iteration_image_tags (
    iteration_seq INTEGER NOT NULL,
    tag_id TEXT NOT NULL,
    image_seq INTEGER NOT NULL,
    PRIMARY KEY (iteration_seq, tag_id, image_seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS image_regions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- creation order: the order a listing shows
    id TEXT NOT NULL UNIQUE,
    image_seq INTEGER NOT NULL,
    tag_id TEXT NOT NULL,
    box_left REAL NOT NULL,  -- normalized to the image, float32-rounded as the service keeps it
    box_top REAL NOT NULL,
    box_width REAL NOT NULL,
    box_height REAL NOT NULL,
    created TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS image_regions_by_image ON image_regions (image_seq, seq);
CREATE INDEX IF NOT EXISTS image_regions_by_tag ON image_regions (tag_id);
-- The regions of an iteration's images as they were when it was trained.
CREATE TABLE IF NOT EXISTS iteration_image_regions (
    iteration_seq INTEGER NOT NULL,
    image_seq INTEGER NOT NULL,
    regions TEXT NOT NULL,  -- JSON [[region_id, tag_id, tag_name, created, [l, t, w, h]], ...]
    PRIMARY KEY (iteration_seq, image_seq)
) WITHOUT ROWID;
-- Test seams (not an API) for object detection: regions the next trainings miss, and a
-- project's own miss and false-positive rates in place of the defaults.
CREATE TABLE IF NOT EXISTS missed_regions (region_id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS detection_rates (
    project_id TEXT PRIMARY KEY,
    miss_rate REAL NOT NULL,
    false_positive_rate REAL NOT NULL
);
-- Test seam (not an API): images whose next training predicts another tag.
CREATE TABLE IF NOT EXISTS mispredictions (
    image_id TEXT PRIMARY KEY,
    tag_id TEXT NOT NULL
);
"""


def stamp(moment: datetime) -> str:
    """Format moment as the API's timestamps read (UTC, microseconds, `Z`)."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_stamp() -> str:
    return stamp(datetime.now(UTC))


class Database:
    """The SQLite database at path (None = in memory), schema created if missing."""

    def __init__(self, path: Path | None) -> None:
        self._lock = threading.RLock()
        if path is None:
            self._db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        else:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk before the response that acknowledges it is sent.
            self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=OFF")
        self._db.executescript(_DDL)
        with self.write() as db:
            db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
        self._closed = False

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed before the caller answers."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """The connection, held for a consistent read."""
        with self._lock:
            yield self._db

    def close(self) -> None:
        """Close the connection (an in-memory database forgets everything); idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()
