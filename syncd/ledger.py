"""The ledger: one mirror's memory in SQLite (sqlite-utils, WAL, mode 0600), behind a narrow API.

Public names: Ledger, LedgerLock, lock_path, connect_read_only, RunOutcome, RunRecord, ErrorRecord,
LedgerStatus, ProblemRecord, RemoteSummary, SettledMark, SCHEMA_VERSION.

The ledger is a cache of truth, not the truth: the folder tree and the project are. Deleting the
file costs one full listing and one hashing pass, never data. So a ledger that is corrupt, from a
newer syncd, or from another project is refused with a message saying so (LedgerRefusedError), and
never overwritten.

What it remembers: each local file's stat and hash (so unchanged files are not re-read), which
remote image holds which content and whose it is, each image's regions (object detection boxes,
by region id, schema 4), the project's tags, uploads in flight, runs and
per-item errors. Each per-item result is written as it arrives (`record_upload_result` etc.), so a
crash loses at most the calls in flight. All methods are thread-safe (one connection, one lock):
an executor may call them from its worker threads.

One writer per ledger: `Ledger.open` takes an exclusive advisory lock (flock) on `<ledger>.lock`
first and holds it until close; a second process gets LedgerBusyError (syncd.errors) naming the
holder's pid, which the holder writes into the lock file. A separate lock file, not SQLite's own
locks: those are taken per transaction, so two writers would interleave their runs, and a lock
on the database file itself would be dropped by SQLite closing any descriptor of it. The kernel
drops a flock when its process ends, however it ends. `Ledger.open_read_only` takes no lock and
never writes (for `status`, `review` and dry runs), even on a read-only file system.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import hashlib
import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from syncd.core.model import (
    SYNCD_METADATA_KEY,
    CachedFile,
    ClassificationType,
    ImageOwner,
    LedgerImage,
    LedgerView,
    LocalFile,
    LocalSnapshot,
    Problem,
    ProblemKind,
    RemoteImage,
    RemoteRegion,
    RemoteSnapshot,
    RemoteTag,
    TagType,
)
from syncd.errors import LedgerBusyError, LedgerOfAnotherProjectError, LedgerRefusedError
from syncd.localio import local_fault, sqlite_local_fault, writing
from syncd.optional import without_optional

# sqlite-utils imports numpy and pandas when they are installed, only to map their scalar types
# to column types, and the ledger stores none: numpy alone cost every run ~12 MB of memory and
# ~80 ms of its start (bench E, B). A later `import numpy` (the COCO export's) works as ever.
with without_optional("numpy", "pandas"):
    import sqlite_utils

LOCK_SUFFIX = ".lock"  # the writer lock lives next to the ledger: <ledger>.lock
_LOCK_POLL_SECONDS = 0.1  # how often a waiting writer tries the lock again


def lock_path(ledger: str | os.PathLike[str]) -> Path:
    """The lock file of `ledger`."""
    ledger = Path(ledger)
    return ledger.with_name(ledger.name + LOCK_SUFFIX)


# Locks this process holds: lock file path -> [descriptor, holders]. A flock belongs to an open
# file description, so a second open() in the same process would block on its own lock: the
# daemon holds each ledger's lock for its life and every reconcile takes it again, re-entrantly.
_held: dict[str, list[int]] = {}
_held_mutex = threading.Lock()


class LedgerLock:
    """This process's exclusive writer lock on one ledger. Take with `LedgerLock.acquire`."""

    def __init__(self, key: str) -> None:
        self._key: str | None = key

    @classmethod
    def acquire(
        cls,
        ledger: str | os.PathLike[str],
        *,
        wait_seconds: float = 0.0,
        command: str = "syncd",
    ) -> LedgerLock:
        """Lock `ledger` for writing, waiting up to `wait_seconds` for another process to let
        go; raise LedgerBusyError naming the ledger and the holder if it does not."""
        path = lock_path(ledger)
        key = os.path.abspath(path)
        with _held_mutex:
            if key in _held:
                _held[key][1] += 1
                return cls(key)
            with writing(path, "create the ledger's lock file"):
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            deadline = time.monotonic() + wait_seconds
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        holder = _read_holder(fd)
                        os.close(fd)
                        message = _busy_message(Path(ledger), holder, wait_seconds)
                        raise LedgerBusyError(message) from None
                    time.sleep(_LOCK_POLL_SECONDS)
            # The holder's pid only names it to a waiting writer: a full disk must not stop us.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()} {command}\n".encode(), 0)
            _held[key] = [fd, 1]
        return cls(key)

    def release(self) -> None:
        """Let go (the last holder in this process unlocks). Safe to call twice."""
        key, self._key = self._key, None
        if key is None:
            return
        with _held_mutex:
            entry = _held[key]
            entry[1] -= 1
            if entry[1] == 0:
                del _held[key]
                with contextlib.suppress(OSError):
                    os.ftruncate(entry[0], 0)  # no stale pid for the next reader
                os.close(entry[0])  # closing the last descriptor drops the flock

    def __enter__(self) -> LedgerLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        return ""
    pid, _, command = text.partition(" ")
    if not pid.isdigit():
        return "pid unknown"
    return f"pid {pid}, `{command}`" if command else f"pid {pid}"


def _busy_message(ledger: Path, holder: str, waited: float) -> str:
    waited_text = f" (waited {waited:g} s)" if waited > 0 else ""
    return (
        f"ledger {ledger} is in use by another syncd process ({holder or 'pid unknown'})"
        f"{waited_text}: only one may write it at a time. Wait for it to finish or stop it; "
        "while `syncd run` runs it keeps the mirror in step, and `syncd status` and "
        "`syncd reconcile --dry-run` work meanwhile"
    )


def connect_read_only(path: Path) -> sqlite3.Connection:
    """Open `path` for reading only: never create, migrate or write it or a side file.

    With a -wal file (a writer has it open, or one crashed), `mode=ro` reads through the WAL.
    Without one, `mode=ro` on a WAL-mode file would create -wal and -shm files and leave them
    behind, so the file is opened `immutable` instead: a writer that starts meanwhile only writes
    to its own new -wal until a checkpoint, so the main file stays whole for the few reads
    `status` makes. On a read-only file system where `mode=ro` cannot open the -shm, `immutable`
    reads what was checkpointed."""
    uri = path.resolve().as_uri()
    if Path(f"{path}-wal").exists():
        try:
            conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, check_same_thread=False, timeout=10)
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError:
            pass
    return sqlite3.connect(f"{uri}?immutable=1", uri=True, check_same_thread=False)


class RunOutcome(enum.StrEnum):
    RUNNING = "running"
    OK = "ok"  # everything planned was done
    PARTIAL = "partial"  # some items failed (recorded in `errors`)
    FAILED = "failed"  # the run stopped early
    INTERRUPTED = "interrupted"  # found still `running` when the next run began (a crash)


@dataclass(frozen=True)
class RunRecord:
    run_id: int
    started_at: str
    finished_at: str | None
    outcome: RunOutcome
    counts: Mapping[str, int] = field(default_factory=dict, hash=False)
    error: str | None = None


@dataclass(frozen=True)
class ErrorRecord:
    run_id: int | None
    at: str
    operation: str
    subject: str
    code: str | None
    message: str


@dataclass(frozen=True)
class ProblemRecord:
    """One path's current problem (`syncd status`): what, why, what to do, and since when."""

    path: str
    kind: str
    detail: str
    advice: str
    since: str  # ISO 8601, UTC: when a run first found this problem on this path


@dataclass(frozen=True)
class LedgerStatus:
    """Counts for `syncd status`."""

    files: int
    files_ok: int
    problems: Mapping[str, int] = field(hash=False)  # problem kind -> files
    images: Mapping[str, int] = field(hash=False)  # owner -> images
    pending_uploads: int
    tags: int
    last_run: RunRecord | None
    recent_errors: tuple[ErrorRecord, ...]  # the last run's item errors
    problem_files: tuple[ProblemRecord, ...] = ()  # every current problem, by path


@dataclass(frozen=True)
class RemoteSummary:
    """The project in counts, as the ledger last saw it."""

    classification: ClassificationType
    tags: frozenset[RemoteTag]
    images: int
    images_per_tag: Mapping[str, int] = field(hash=False)  # tag id -> images carrying it
    all_hashed: bool  # every image's content is known


@dataclass(frozen=True)
class SettledMark:
    """What a run that ended fully in sync left for the next one: its token, and the ledger's
    summary of the project then (nothing in the ledger has changed since: every run clears it)."""

    token: str
    summary: RemoteSummary | None
    kept: str | None = None  # the caller's account of what the run kept (JSON, opaque here)


def _summary_to_json(summary: RemoteSummary) -> str:
    return json.dumps(
        {
            "classification": str(summary.classification),
            "tags": sorted([t.tag_id, t.name, str(t.type)] for t in summary.tags),
            "images": summary.images,
            "images_per_tag": dict(summary.images_per_tag),
            "all_hashed": summary.all_hashed,
        }
    )


def _summary_from_json(text: str) -> RemoteSummary:
    data = json.loads(text)
    return RemoteSummary(
        ClassificationType(data["classification"]),
        frozenset(RemoteTag(i, name, TagType(kind)) for i, name, kind in data["tags"]),
        data["images"],
        data["images_per_tag"],
        data["all_hashed"],
    )


SCHEMA_VERSION = 5
# The ledger's random id (meta `ledger_id`): 128 bits, so no two ledgers ever share one.
LEDGER_ID_BYTES = 16

# Each migration turns schema version i into i + 1 (index i). Version 0 is an empty file.
_SCHEMA_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at TEXT NOT NULL,                 -- ISO 8601, UTC
    finished_at TEXT,
    outcome TEXT NOT NULL DEFAULT 'running',
    -- JSON object of counters: new counters need no migration, and nothing queries inside it.
    counts TEXT NOT NULL DEFAULT '{}',
    error TEXT
);

-- Keyed by the path as it is on disk (not NFC-normalised): that is how the file is reopened.
CREATE TABLE local_files (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    sha256 TEXT,                              -- NULL: not hashed (too large, unreadable)
    image_format TEXT,                        -- NULL with a sha256: hashed, not an image
    hashed_at_ns INTEGER,                     -- a hash taken in the mtime's clock tick is redone
    tags TEXT NOT NULL DEFAULT '[]',          -- JSON list of wanted names: only read back whole
    negative INTEGER NOT NULL DEFAULT 0,
    problem TEXT,
    problem_detail TEXT,
    last_seen_run INTEGER                     -- the run that last changed the row
);
CREATE INDEX local_files_sha256 ON local_files (sha256);

-- One row per remote image syncd knows of, its own and foreign ones seen in a listing.
-- Tags are stored as tag *ids*, not names: an id survives a rename in the portal, and the
-- `tags` table turns ids back into names.
CREATE TABLE images (
    image_id TEXT PRIMARY KEY,
    sha256 TEXT,                              -- NULL: foreign and never downloaded to hash
    owner TEXT NOT NULL CHECK (owner IN ('syncd', 'adopted', 'foreign')),
    tag_ids TEXT NOT NULL DEFAULT '[]',       -- JSON list
    metadata TEXT NOT NULL DEFAULT '{}',      -- JSON object, as last listed
    updated_run INTEGER
);
CREATE INDEX images_sha256 ON images (sha256);

-- Uploads sent and not yet answered. Kept apart from `images` because an upload has no image id
-- until the service answers; a row left here by a crash tells the next run that an image of
-- this content may exist unrecorded (its listing will show it with syncd's metadata).
CREATE TABLE pending_uploads (
    sha256 TEXT PRIMARY KEY,
    run_id INTEGER NOT NULL,
    started_at TEXT NOT NULL
);

CREATE TABLE tags (
    tag_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    created_by_syncd INTEGER NOT NULL DEFAULT 0   -- only these may be removed by DeleteTag
);

CREATE TABLE errors (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER,
    at TEXT NOT NULL,
    operation TEXT NOT NULL,                  -- e.g. upload, add_tags, delete_image
    subject TEXT NOT NULL,                    -- a path, a sha256 or an image id
    code TEXT,                                -- the service's code, e.g. ErrorImageFormat
    message TEXT NOT NULL
);
"""

# Version 2 (issue 15): the service's verdicts on content, and the mirror's current problems.
_SCHEMA_V2 = """
-- Bytes the service refused for what they are (ErrorImageFormat, ErrorImageSize): not sent again
-- while a file still holds them. A changed file has a new hash, so it is tried again.
CREATE TABLE rejected_content (
    sha256 TEXT PRIMARY KEY,
    code TEXT NOT NULL,
    message TEXT NOT NULL,
    at TEXT NOT NULL
);

-- Each path's current problem as the last run found it, with when a run first found it.
CREATE TABLE problems (
    path TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    advice TEXT NOT NULL,
    since TEXT NOT NULL                       -- ISO 8601, UTC: the first run that found it
);
"""

# Where content no file holds any more was last seen, so that a delete, or an image kept under
# `delete: keep`, is named by its file in later runs too (issue 15); rows go with the content's
# last image. An additive table created at open, like the ledger id's meta row, not a schema
# change: an older syncd ignores it, and `status` reads none of it.
_GONE_PATHS = """
CREATE TABLE IF NOT EXISTS gone_paths (
    sha256 TEXT NOT NULL,
    path TEXT NOT NULL,                       -- as it was on disk, relative to the root
    gone_run INTEGER,                         -- the run whose scan no longer found it there
    PRIMARY KEY (sha256, path)
);
"""

# Version 3 (issue 18): each file's content verdict from decoding it locally. 1: the file was read
# since syncd decodes images, and its verdict is `problem` when that is a decode's kind
# (ProblemKind.is_content_check); 0 (every row of an older ledger): read it once more.
_SCHEMA_V3 = """
ALTER TABLE local_files ADD COLUMN content_checked INTEGER NOT NULL DEFAULT 0;
"""

# Version 4 (issue 17): each image's regions (object detection boxes) by the service's region id,
# so that an unchanged box keeps its id and an edited one costs one delete and one create. The box
# is kept as the service echoed it (float32); syncd.core.regions compares it by its rounded key.
_SCHEMA_V4 = """
CREATE TABLE image_regions (
    region_id TEXT PRIMARY KEY,
    image_id TEXT NOT NULL,
    tag_id TEXT NOT NULL,
    box_left REAL NOT NULL,
    box_top REAL NOT NULL,
    box_width REAL NOT NULL,
    box_height REAL NOT NULL
);
CREATE INDEX image_regions_image ON image_regions (image_id);
"""


def _migrate_to_v4(db: sqlite_utils.Database) -> None:
    """Schema 3 -> 4: the regions table. A ledger of a classification mirror gains an empty table;
    a detection mirror's first run under schema 4 lists the project in full (its ledger knows no
    regions yet, so the counts path is not trusted: see Ledger.regions_unknown)."""
    db.executescript(_SCHEMA_V4)


# Version 5 (issue 18, files.prepare): a file's own sha256 when its `sha256` is the key of its
# prepared content (syncd.prepare.content_key), its decoded facts (syncd.prepare.ImageFacts; ""
# when it did not decode), and each prepared content: the local hash, the prepared bytes' hash.
_SCHEMA_V5 = """
ALTER TABLE local_files ADD COLUMN source_sha256 TEXT;
ALTER TABLE local_files ADD COLUMN facts TEXT;

CREATE TABLE prepared (
    sha256 TEXT PRIMARY KEY,                  -- the key: local_files.sha256, images.sha256
    source_sha256 TEXT NOT NULL,              -- the local file's own bytes
    recipe TEXT NOT NULL,                     -- what was done (syncd.prepare.judge)
    prepared_sha256 TEXT NOT NULL,            -- the bytes sent
    prepared_bytes INTEGER NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX prepared_by_content ON prepared (prepared_sha256);
"""

_MIGRATIONS: list[Callable[[sqlite_utils.Database], object]] = [
    lambda db: db.executescript(_SCHEMA_V1),
    lambda db: db.executescript(_SCHEMA_V2),
    lambda db: db.executescript(_SCHEMA_V3),
    _migrate_to_v4,
    lambda db: db.executescript(_SCHEMA_V5),
]


def _cached_file(row: tuple[Any, ...]) -> CachedFile:
    """A local_files row (path, size, mtime_ns, inode, sha256, image_format, hashed_at_ns,
    content_checked, problem, problem_detail, source_sha256, facts) as the scanner's cache
    entry."""
    size, mtime_ns, inode, sha256, fmt, hashed_at_ns, checked, kind, detail = row[1:10]
    source_sha256, facts = row[10:12]
    verdict = None
    if kind is not None and kind in _CONTENT_CHECK_KINDS:
        verdict = Problem(ProblemKind(kind), detail or "")
    return CachedFile(
        size,
        mtime_ns,
        inode,
        sha256,
        fmt,
        hashed_at_ns,
        bool(checked),
        verdict,
        source_sha256,
        facts,
    )


_CONTENT_CHECK_KINDS = frozenset(k.value for k in ProblemKind if k.is_content_check)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _schema_version(db: sqlite_utils.Database, where: str, fix: str) -> int:
    """Return the file's schema version (0: empty); raise LedgerRefusedError if it is not ours
    to use."""
    tables = set(db.table_names())
    if not tables:
        return 0
    if "meta" not in tables:
        raise LedgerRefusedError(f"{where} is an SQLite file but not a syncd ledger: {fix}")
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None or not str(row[0]).isdigit():
        raise LedgerRefusedError(f"{where} has no schema version: {fix}")
    version = int(row[0])
    if version > SCHEMA_VERSION:
        raise LedgerRefusedError(
            f"{where} was written by a newer syncd (schema {version}, this syncd knows up to "
            f"{SCHEMA_VERSION}): upgrade syncd, or {fix}"
        )
    return version


def _create_private(path: Path) -> None:
    """Create an empty file readable by its owner only (the WAL files inherit the mode)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)


class Ledger:
    """One mirror's ledger file. Open with `Ledger.open(path)`; close when done."""

    def __init__(
        self, db: sqlite_utils.Database, path: Path, writer: LedgerLock | None = None
    ) -> None:
        self._db = db
        self.path = path
        self._lock = threading.RLock()
        self._writer = writer  # None: opened read-only
        self.empty = False  # a read-only open of a file no run has initialised yet

    # --- opening ------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        project_id: str | None = None,
        wait_lock: float = 0.0,
    ) -> Ledger:
        """Return the ledger at `path` for writing, creating it if missing; raise
        LedgerRefusedError if unusable, LedgerBusyError if another process writes it (after
        waiting `wait_lock` s).

        With `project_id`, a ledger already bound to another project is refused; a new one is
        bound to it.
        """
        path = Path(path)
        writer = LedgerLock.acquire(path, wait_seconds=wait_lock)
        try:
            return cls._open_locked(path, project_id, writer)
        except BaseException:
            writer.release()
            raise

    @classmethod
    def _open_locked(cls, path: Path, project_id: str | None, writer: LedgerLock) -> Ledger:
        if not path.exists():
            with writing(path, "create the ledger"):
                _create_private(path)
        where = f"ledger {path}"
        fix = "move it away and syncd rebuilds it (the ledger is only a cache)"
        conn = None
        try:
            conn = sqlite3.connect(str(path), check_same_thread=False, timeout=10)
            # No sqlite-utils plugins: nothing installed beside syncd hooks into the ledger's
            # connection, and no scan of every package's entry points at each start.
            db = sqlite_utils.Database(conn, execute_plugins=False)
            version = _schema_version(db, where, fix)
            db.execute("PRAGMA busy_timeout = 10000")
            db.enable_wal()
            # NORMAL in WAL mode: a commit survives a crash of syncd, not a power cut; the ledger
            # is a cache that the next run repairs from the listing, and a sync per item (FULL)
            # was a quarter of a first sync's CPU.
            db.execute("PRAGMA synchronous = NORMAL")
            ledger = cls(db, path, writer)
            ledger._migrate(version)
            ledger._bind(project_id)
            ledger._ensure_ledger_id()
            ledger._ensure_gone_paths()
        except sqlite3.DatabaseError as exc:
            if conn is not None:
                conn.close()
            fault = sqlite_local_fault(path, "open the ledger", exc)  # the disk, not the file
            if fault is not None:
                raise fault from None
            raise LedgerRefusedError(
                f"{where} is not a readable SQLite file ({exc}): {fix}"
            ) from None
        except LedgerRefusedError:
            if conn is not None:
                conn.close()
            raise
        try:
            os.chmod(path, 0o600)
        except OSError as exc:
            ledger.close()
            raise local_fault(path, "open the ledger", exc) from None
        return ledger

    @classmethod
    def open_read_only(
        cls, path: str | os.PathLike[str], *, project_id: str | None = None
    ) -> Ledger:
        """Return the existing ledger at `path` for reading only: no lock, no write, no
        migration, also while another process writes it or on a read-only file system. Raise
        LedgerRefusedError if it is missing, unreadable, of another project or of a newer schema."""
        path = Path(path)
        where = f"ledger {path}"
        if not path.is_file():
            raise LedgerRefusedError(f"{where} does not exist")
        conn = None
        try:
            conn = connect_read_only(path)
            db = sqlite_utils.Database(conn, execute_plugins=False)
            version = _schema_version(db, where, "move it away and syncd rebuilds it")
            ledger = cls(db, path)
            if version == 0:
                ledger.empty = True
                return ledger
            # An older schema is read as it is (the next writing run upgrades it): the tables a
            # later version added read as empty (`_has_table`), so `status` works meanwhile.
            bound = ledger._meta("project_id")
            if project_id is not None and bound is not None and bound != project_id.lower():
                raise LedgerOfAnotherProjectError(
                    f"{where} belongs to project {bound}, not {project_id}"
                )
            return ledger
        except sqlite3.DatabaseError as exc:
            if conn is not None:
                conn.close()
            raise LedgerRefusedError(f"{where} is not a readable SQLite file ({exc})") from None
        except LedgerRefusedError:
            if conn is not None:
                conn.close()
            raise

    def _migrate(self, version: int) -> None:
        for target in range(version, SCHEMA_VERSION):
            with self.transaction():
                _MIGRATIONS[target](self._db)
                self._set_meta("schema_version", str(target + 1))

    def _bind(self, project_id: str | None) -> None:
        if project_id is None:
            return
        bound = self._meta("project_id")
        if bound is None:
            self._set_meta("project_id", project_id.lower())
        elif bound != project_id.lower():
            raise LedgerOfAnotherProjectError(
                f"ledger {self.path} belongs to project {bound}, not {project_id}: "
                "give this mirror its own `ledger:` path"
            )

    def _ensure_ledger_id(self) -> None:
        """Give the ledger its random id if it has none yet (new, or from before ids existed).

        A meta row, not a schema change: an older syncd reading the file ignores it."""
        if self._meta("ledger_id") is None:
            with self.transaction():
                self._set_meta("ledger_id", secrets.token_hex(LEDGER_ID_BYTES))

    def _ensure_gone_paths(self) -> None:
        with self.transaction():
            self._db.executescript(_GONE_PATHS)

    @property
    def read_only(self) -> bool:
        """True when opened with open_read_only (nothing may be written)."""
        return self._writer is None

    @property
    def ledger_id(self) -> str:
        """This ledger's random id: every upload carries it (metadata `syncd`), and only an image
        carrying it, or one the ledger recorded, is syncd's to delete. A rebuilt ledger gets a new
        id, so images marked by the lost one are foreign to it until adopted by content."""
        with self._lock:
            return self._meta("ledger_id") or ""

    def close(self) -> None:
        with self._lock:
            self._db.close()
        if self._writer is not None:
            self._writer.release()

    def unbind_if_never_synced(self) -> None:
        """Forget the bound project if no run ever finished against it (a mistyped project id
        that the service denied must not tie the ledger to it)."""
        with self.transaction():
            (finished,) = self._db.execute(
                "SELECT COUNT(*) FROM runs WHERE outcome IN (?, ?)",
                [RunOutcome.OK, RunOutcome.PARTIAL],
            ).fetchone()
            if finished == 0:
                self._db.execute("DELETE FROM meta WHERE key = 'project_id'")

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[Ledger]:
        """Group writes: all happen or none. Nests (inner blocks are savepoints)."""
        with self._lock, self._db.atomic():
            yield self

    # --- small helpers ------------------------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [key, value],
        )

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._db.query(sql, list(params)))

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._meta("schema_version") or 0)

    # --- runs ---------------------------------------------------------------------------------

    def settled(self) -> SettledMark | None:
        """The mark the last run left if it ended fully in sync (until the next run begins)."""
        with self._lock:
            token, summary = self._meta("settled"), self._meta("settled_summary")
            kept = self._meta("settled_kept")
        if token is None:
            return None
        return SettledMark(token, _summary_from_json(summary) if summary else None, kept)

    def mark_settled(
        self, token: str, summary: RemoteSummary | None = None, kept: str | None = None
    ) -> None:
        """Record that this run ended fully in sync, as `token` (the caller's identity of the
        settings and the tree). The project's summary is kept with it, so the next run reads it
        without a query over every image: `summary` if the caller has it, else it is counted.
        `kept` is the caller's account of the images the run kept, for a run that plans nothing."""
        summary = summary or self.remote_summary()
        with self.transaction():
            self._set_meta("settled", token)
            if summary is not None:
                self._set_meta("settled_summary", _summary_to_json(summary))
            if kept is not None:
                self._set_meta("settled_kept", kept)

    def begin_run(self) -> int:
        """Start a run and return its id; a run still `running` (a crash) becomes interrupted.

        The settled mark is cleared: a run cut short must not vouch for the next."""
        with self.transaction():
            self._db.execute(
                "DELETE FROM meta WHERE key IN ('settled', 'settled_summary', 'settled_kept')"
            )
            self._db.execute(
                "UPDATE runs SET outcome = ?, finished_at = ? WHERE outcome = ?",
                [RunOutcome.INTERRUPTED, _now(), RunOutcome.RUNNING],
            )
            cursor = self._db.execute("INSERT INTO runs (started_at) VALUES (?)", [_now()])
            return int(cursor.lastrowid or 0)

    def finish_run(
        self,
        run_id: int,
        outcome: RunOutcome,
        counts: Mapping[str, int] | None = None,
        error: str | None = None,
    ) -> None:
        """Close a run with its outcome, counters and (for a failed run) the error text."""
        with self.transaction():
            self._db.execute(
                "UPDATE runs SET finished_at = ?, outcome = ?, counts = ?, error = ? "
                "WHERE run_id = ?",
                [_now(), outcome, json.dumps(dict(counts or {}), sort_keys=True), error, run_id],
            )

    def record_error(
        self,
        run_id: int | None,
        operation: str,
        subject: str,
        message: str,
        code: str | None = None,
    ) -> None:
        """Record one item's failure (shown by `status`)."""
        with self.transaction():
            self._db.execute(
                "INSERT INTO errors (run_id, at, operation, subject, code, message) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [run_id, _now(), operation, subject, code, message],
            )

    # --- local files --------------------------------------------------------------------------

    def cached_files(self) -> dict[str, CachedFile]:
        """Return path -> the stat and hash last recorded, for the scanner's reuse."""
        with self._lock:
            # Plain tuples from the cursor: no dict per row on the way (100k files).
            cursor = self._db.execute(
                "SELECT path, size, mtime_ns, inode, sha256, image_format, hashed_at_ns, "
                "content_checked, problem, problem_detail, source_sha256, facts FROM local_files"
            )
            return {row[0]: _cached_file(row) for row in cursor}

    def record_scan(self, snapshot: LocalSnapshot, run_id: int) -> bool:
        """Make `local_files` exactly the snapshot's files (a missing root changes nothing);
        return True if any row changed, appeared or went.

        Only what differs is written: a no-op scan of 100k files writes nothing.
        """
        if not snapshot.root_exists:
            return False  # keep the hash cache for when the folder comes back (e.g. a remount)
        # The files whose row changes, not their rows: a first sync's 100k rows of 16 fields,
        # built all at once, held ~17 MB; each is built again, one at a time, as it is written.
        changed: list[LocalFile] = []
        gone: list[tuple[str]] = []
        left: list[tuple[str, str, int]] = []  # (sha256, path, run): content that left a path
        # One JSON text per tag set, made once (a first sync has 100k rows and a few sets).
        tags_text: dict[tuple[str, ...], str] = {}

        def row(f: LocalFile) -> tuple[Any, ...]:
            tags = tags_text.get(f.tags)
            if tags is None:
                tags = tags_text[f.tags] = json.dumps(list(f.tags), ensure_ascii=False)
            return (
                f.size,
                f.mtime_ns,
                f.inode,
                f.sha256,
                f.image_format,
                f.hashed_at_ns,
                tags,
                int(f.negative),
                f.problem.kind if f.problem else None,
                f.problem.detail if f.problem else None,
                int(f.content_checked),
                f.source_sha256,
                f.facts,
            )

        with self.transaction():
            # A merge of two path-ordered streams (the scan, and the table by its primary key):
            # nothing of the old rows is held in memory but the current one.
            old_rows = self._db.execute(
                "SELECT path, size, mtime_ns, inode, sha256, image_format, hashed_at_ns, tags,"
                " negative, problem, problem_detail, content_checked, source_sha256, facts"
                " FROM local_files ORDER BY path"
            )
            old = next(old_rows, None)
            for f in sorted(snapshot.files, key=lambda f: f.path):
                while old is not None and old[0] < f.path:
                    gone.append((old[0],))
                    if old[4] is not None:
                        left.append((old[4], old[0], run_id))
                    old = next(old_rows, None)
                matched = old is not None and old[0] == f.path
                if not (matched and old is not None and tuple(old[1:]) == row(f)):
                    changed.append(f)
                    if matched and old is not None and old[4] not in (None, f.sha256):
                        left.append((old[4], f.path, run_id))  # changed in place
                if matched:
                    old = next(old_rows, None)
            while old is not None:
                gone.append((old[0],))
                if old[4] is not None:
                    left.append((old[4], old[0], run_id))
                old = next(old_rows, None)
            self._db.conn.executemany(
                """INSERT INTO local_files (path, size, mtime_ns, inode, sha256, image_format,
                    hashed_at_ns, tags, negative, problem, problem_detail, content_checked,
                    source_sha256, facts, last_seen_run)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (path) DO UPDATE SET size = excluded.size,
                    mtime_ns = excluded.mtime_ns, inode = excluded.inode,
                    sha256 = excluded.sha256, image_format = excluded.image_format,
                    hashed_at_ns = excluded.hashed_at_ns, tags = excluded.tags,
                    negative = excluded.negative, problem = excluded.problem,
                    problem_detail = excluded.problem_detail,
                    content_checked = excluded.content_checked,
                    source_sha256 = excluded.source_sha256, facts = excluded.facts,
                    last_seen_run = excluded.last_seen_run""",
                ((f.path, *row(f), run_id) for f in changed),
            )
            self._db.conn.executemany("DELETE FROM local_files WHERE path = ?", gone)
            if changed or gone:
                self._record_gone_paths(left, changed)
        return bool(changed or gone)

    def _record_gone_paths(
        self, left: list[tuple[str, str, int]], present: Sequence[LocalFile]
    ) -> None:
        """Remember where content no file holds any more was last seen: the paths it left this
        run (`left`: sha256, path, run), in place of older ones. Content found in a file again
        (`present`: the files written this run) or held elsewhere still needs no such note; nor
        does content no image holds. Call after local_files is updated, in the same transaction."""
        if self._db.execute("SELECT 1 FROM gone_paths LIMIT 1").fetchone():  # else: nothing to drop
            # A row at a time, not a set first: a first sync's 100k contents are 4 MB at its peak.
            self._db.conn.executemany(
                "DELETE FROM gone_paths WHERE sha256 = ?",
                ((f.sha256,) for f in present if f.sha256),
            )
        for sha, path, run in left:
            if self._db.execute("SELECT 1 FROM local_files WHERE sha256 = ?", [sha]).fetchone():
                continue  # moved, or a copy remains: that file names it
            self._db.execute("DELETE FROM gone_paths WHERE sha256 = ? AND gone_run < ?", [sha, run])
            self._db.execute(
                "INSERT OR REPLACE INTO gone_paths (sha256, path, gone_run) VALUES (?, ?, ?)",
                [sha, path, run],
            )
        self._db.execute(
            "DELETE FROM gone_paths WHERE NOT EXISTS"
            " (SELECT 1 FROM images i WHERE i.sha256 = gone_paths.sha256)"
        )

    # --- tags ---------------------------------------------------------------------------------

    def record_tag(self, tag: RemoteTag, *, created_by_syncd: bool = False) -> None:
        """Remember a tag (e.g. just created by the executor)."""
        with self.transaction():
            self._db.execute(
                """INSERT INTO tags (tag_id, name, type, created_by_syncd) VALUES (?, ?, ?, ?)
                ON CONFLICT (tag_id) DO UPDATE SET name = excluded.name, type = excluded.type,
                    created_by_syncd = MAX(created_by_syncd, excluded.created_by_syncd)""",
                [tag.tag_id.lower(), tag.name, tag.type, int(created_by_syncd)],
            )

    def record_tag_deleted(self, tag_id: str) -> None:
        """Forget a tag and remove it from every image's recorded tags."""
        tag_id = tag_id.lower()
        with self.transaction():
            self._db.execute("DELETE FROM tags WHERE tag_id = ?", [tag_id])
            for row in self._rows("SELECT image_id, tag_ids FROM images"):
                ids = json.loads(row["tag_ids"])
                if tag_id in ids:
                    ids.remove(tag_id)
                    self._set_image_tags(row["image_id"], ids)

    # --- remote images ------------------------------------------------------------------------

    def record_remote_snapshot(self, remote: RemoteSnapshot, run_id: int) -> None:
        """Remember a listing: tags and images as listed, hashes and owners kept.

        A complete listing also forgets images and tags no longer in the project. A new image
        whose metadata carries this ledger's id is syncd's own (an upload whose answer was lost);
        any other new image is foreign, whatever name its metadata carries.
        """
        ledger_id = self.ledger_id
        with self.transaction():
            self._set_meta("classification", remote.classification)
            if remote.complete:
                listed_tags = [t.tag_id.lower() for t in remote.tags]
                self._delete_missing("tags", "tag_id", listed_tags)
            for tag in remote.tags:
                self.record_tag(tag)
            if remote.complete:
                self._delete_missing(
                    "images", "image_id", [i.image_id.lower() for i in remote.images]
                )
                self._forget_orphan_regions()
            regions_known = self._has_table("image_regions")
            for image in remote.images:
                if regions_known:
                    self._set_image_regions(image.image_id, image.regions)
                ours = bool(ledger_id) and image.metadata.get(SYNCD_METADATA_KEY) == ledger_id
                owner = ImageOwner.SYNCD if ours else ImageOwner.FOREIGN
                self._db.execute(
                    """INSERT INTO images (image_id, sha256, owner, tag_ids, metadata, updated_run)
                    VALUES (?, ?, ?, ?, ?, ?)
                    ON CONFLICT (image_id) DO UPDATE SET
                        sha256 = COALESCE(excluded.sha256, images.sha256),
                        tag_ids = excluded.tag_ids, metadata = excluded.metadata,
                        updated_run = excluded.updated_run""",
                    [
                        image.image_id.lower(),
                        image.sha256,
                        owner,
                        json.dumps(sorted(t.lower() for t in image.tag_ids)),
                        json.dumps(dict(image.metadata), sort_keys=True, ensure_ascii=False),
                        run_id,
                    ],
                )

    # --- regions (object detection) ------------------------------------------------------------

    def _set_image_regions(self, image_id: str, regions: Iterable[RemoteRegion]) -> None:
        """Make the image's recorded regions exactly `regions` (in a transaction)."""
        image_id = image_id.lower()
        rows = [
            (r.region_id.lower(), image_id, r.tag_id.lower(), r.left, r.top, r.width, r.height)
            for r in regions
        ]
        if (
            rows
            or self._db.execute(
                "SELECT 1 FROM image_regions WHERE image_id = ? LIMIT 1", [image_id]
            ).fetchone()
        ):
            self._db.execute("DELETE FROM image_regions WHERE image_id = ?", [image_id])
            self._insert_regions(rows)

    def _insert_regions(self, rows: list[tuple[Any, ...]]) -> None:
        self._db.conn.executemany(
            "INSERT OR REPLACE INTO image_regions (region_id, image_id, tag_id, box_left,"
            " box_top, box_width, box_height) VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    def _forget_orphan_regions(self) -> None:
        if self._has_table("image_regions"):
            self._db.execute(
                "DELETE FROM image_regions WHERE image_id NOT IN (SELECT image_id FROM images)"
            )

    def _region_tags(self, image_id: str) -> None:
        """An image's tags are its regions' tags (the service keeps them so: a region's tag is
        on its image, and the last region of a tag takes the tag with it [R]); kept in step, so
        the project's per-tag counts still agree with the ledger's after region changes."""
        tag_ids = {
            r[0]
            for r in self._db.execute(
                "SELECT tag_id FROM image_regions WHERE image_id = ?", [image_id]
            )
        }
        self._set_image_tags(image_id, tag_ids)

    def record_image_regions(self, image_id: str, regions: Iterable[RemoteRegion]) -> None:
        """Record an image's regions as the service showed them (an upload's answer, a lookup):
        they replace whatever was recorded, and its tags become their tags."""
        with self.transaction():
            self._set_image_regions(image_id, regions)
            self._region_tags(image_id.lower())

    def record_regions_added(self, image_id: str, regions: Iterable[RemoteRegion]) -> None:
        """Record regions CreateImageRegions created on an image."""
        image_id = image_id.lower()
        rows = [
            (r.region_id.lower(), image_id, r.tag_id.lower(), r.left, r.top, r.width, r.height)
            for r in regions
        ]
        with self.transaction():
            self._insert_regions(rows)
            self._region_tags(image_id)

    def record_regions_deleted(self, region_ids: Iterable[str]) -> None:
        """Forget regions DeleteImageRegions removed (their images' tags follow)."""
        ids = [i.lower() for i in region_ids]
        with self.transaction():
            images = set()
            for region_id in ids:
                row = self._db.execute(
                    "SELECT image_id FROM image_regions WHERE region_id = ?", [region_id]
                ).fetchone()
                if row is not None:
                    images.add(row[0])
                    self._db.execute("DELETE FROM image_regions WHERE region_id = ?", [region_id])
            for image_id in images:
                self._region_tags(image_id)

    def _image_regions(self) -> dict[str, list[RemoteRegion]]:
        if not self._has_table("image_regions"):
            return {}
        out: dict[str, list[RemoteRegion]] = {}
        for row in self._db.execute(
            "SELECT image_id, region_id, tag_id, box_left, box_top, box_width, box_height"
            " FROM image_regions ORDER BY image_id, region_id"
        ):
            out.setdefault(row[0], []).append(RemoteRegion(*row[1:]))
        return out

    def set_regions_pending(self, pending: bool) -> None:
        """Mark region calls as sent and not all answered (True, just before them), or all
        answered (False). A mark left by a crash sends the next run down the full listing, where
        the project's real regions are seen: what a lost answer created or deleted is found."""
        with self.transaction():
            if pending:
                self._set_meta("regions_pending", "1")
            else:
                self._db.execute("DELETE FROM meta WHERE key = 'regions_pending'")

    def regions_unknown(self) -> bool:
        """True if the ledger cannot vouch for the project's regions: region calls a crash left
        unanswered, or a ledger from before regions were kept (schema 4) that never listed
        them since (a detection mirror then lists the project in full once)."""
        with self._lock:
            return self._meta("regions_pending") is not None or self._meta("regions_listed") is None

    def mark_regions_listed(self) -> None:
        """Record that a full listing recorded every image's regions (see regions_unknown)."""
        with self.transaction():
            self._set_meta("regions_listed", "1")

    def domain_type(self, domain_id: str) -> str | None:
        """The type (Classification, ObjectDetection) of a domain as the service named it, if
        this ledger asked before: a domain's type never changes, so it is asked once."""
        with self._lock:
            known = json.loads(self._meta("domain_types") or "{}")
        value = known.get(domain_id.lower())
        return str(value) if value is not None else None

    def record_domain_type(self, domain_id: str, domain_type: str) -> None:
        with self.transaction():
            known = json.loads(self._meta("domain_types") or "{}")
            known[domain_id.lower()] = domain_type
            self._set_meta("domain_types", json.dumps(known, sort_keys=True))

    def _only_contents(self, contents: Collection[str] | None) -> str:
        """A WHERE clause keeping the images of `contents` (held in a temporary table), or ""."""
        if contents is None:
            return ""
        with self.transaction():
            self._db.execute("CREATE TEMP TABLE IF NOT EXISTS only_contents (sha TEXT PRIMARY KEY)")
            self._db.execute("DELETE FROM only_contents")
            rows = [(sha,) for sha in contents]
            self._db.conn.executemany("INSERT OR IGNORE INTO only_contents VALUES (?)", rows)
        return " WHERE sha256 IN (SELECT sha FROM only_contents)"

    def _delete_missing(self, table: str, column: str, keep: list[str]) -> None:
        self._db.execute("CREATE TEMP TABLE IF NOT EXISTS keep_ids (id TEXT PRIMARY KEY)")
        self._db.execute("DELETE FROM keep_ids")
        self._db.conn.executemany("INSERT OR IGNORE INTO keep_ids VALUES (?)", [(k,) for k in keep])
        self._db.execute(f"DELETE FROM {table} WHERE {column} NOT IN (SELECT id FROM keep_ids)")

    def record_upload_started(self, sha256s: Iterable[str], run_id: int) -> None:
        """Mark uploads as sent (call just before the create call)."""
        with self.transaction():
            now = _now()
            for sha256 in sha256s:
                self._db.execute(
                    "INSERT OR REPLACE INTO pending_uploads (sha256, run_id, started_at) "
                    "VALUES (?, ?, ?)",
                    [sha256, run_id, now],
                )

    def forget_pending_uploads(self, *, before_run: int) -> None:
        """Drop pending rows of earlier runs (a complete, fully hashed listing settled them)."""
        with self.transaction():
            self._db.execute("DELETE FROM pending_uploads WHERE run_id < ?", [before_run])

    def record_upload_result(
        self,
        sha256: str,
        run_id: int,
        *,
        image_id: str | None = None,
        tag_ids: Iterable[str] = (),
        error: str | None = None,
        code: str | None = None,
    ) -> None:
        """Record one upload's answer: the image id and tags applied, or (no image id) that it
        was answered, so it is no longer pending. The caller records an error by the file's path
        (`record_error`): an error by hash named the same file a second time.

        An answer naming an image the ledger knew as foreign (the service's OKDuplicate) makes it
        adopted: syncd did not upload those bytes, but the image now mirrors a local file.
        """
        with self.transaction():
            self._db.execute("DELETE FROM pending_uploads WHERE sha256 = ?", [sha256])
            if image_id is None:
                return
            self._db.execute(
                """INSERT INTO images (image_id, sha256, owner, tag_ids, updated_run)
                VALUES (?, ?, 'syncd', ?, ?)
                ON CONFLICT (image_id) DO UPDATE SET sha256 = excluded.sha256,
                    owner = CASE images.owner WHEN 'foreign' THEN 'adopted' ELSE images.owner END,
                    tag_ids = excluded.tag_ids, updated_run = excluded.updated_run""",
                [image_id.lower(), sha256, json.dumps(sorted(t.lower() for t in tag_ids)), run_id],
            )

    def record_adopted(self, image_id: str, sha256: str, run_id: int) -> None:
        """Record that an image found in the project now mirrors local content `sha256`."""
        with self.transaction():
            self._db.execute(
                """INSERT INTO images (image_id, sha256, owner, updated_run)
                VALUES (?, ?, 'adopted', ?)
                ON CONFLICT (image_id) DO UPDATE SET sha256 = excluded.sha256,
                    owner = CASE images.owner WHEN 'syncd' THEN 'syncd' ELSE 'adopted' END,
                    updated_run = excluded.updated_run""",
                [image_id.lower(), sha256, run_id],
            )

    def record_image_tags(
        self, image_id: str, *, added: Iterable[str] = (), removed: Iterable[str] = ()
    ) -> None:
        """Record tags added to / removed from an image (after AddTags / RemoveTags succeed)."""
        image_id = image_id.lower()
        with self.transaction():
            row = self._db.execute(
                "SELECT tag_ids FROM images WHERE image_id = ?", [image_id]
            ).fetchone()
            if row is None:
                return
            ids = set(json.loads(row[0])) | {t.lower() for t in added}
            self._set_image_tags(image_id, ids - {t.lower() for t in removed})

    def _set_image_tags(self, image_id: str, tag_ids: Iterable[str]) -> None:
        self._db.execute(
            "UPDATE images SET tag_ids = ? WHERE image_id = ?",
            [json.dumps(sorted(tag_ids)), image_id],
        )

    def record_image_deleted(self, image_id: str) -> None:
        """Forget an image the executor deleted (or found already gone), and its regions."""
        with self.transaction():
            self._db.execute("DELETE FROM images WHERE image_id = ?", [image_id.lower()])
            if self._has_table("image_regions"):
                self._db.execute("DELETE FROM image_regions WHERE image_id = ?", [image_id.lower()])
            self._db.execute(
                "DELETE FROM gone_paths WHERE NOT EXISTS"
                " (SELECT 1 FROM images i WHERE i.sha256 = gone_paths.sha256)"
            )

    # --- queries ------------------------------------------------------------------------------

    def view(self, contents: Collection[str] | None = None) -> LedgerView:
        """Return what the planner needs: every known image's hash and owner, syncd's tags.
        With `contents`, only the images holding one of those sha256s."""
        where = self._only_contents(contents)
        images = {
            r["image_id"]: LedgerImage(
                r["image_id"],
                r["sha256"],
                ImageOwner(r["owner"]),
                frozenset(json.loads(r["tag_ids"])),
            )
            for r in self._rows(f"SELECT image_id, sha256, owner, tag_ids FROM images{where}")
        }
        created = self._rows("SELECT tag_id FROM tags WHERE created_by_syncd = 1")
        return LedgerView(
            images=images,
            created_tag_ids=frozenset(r["tag_id"] for r in created),
            ledger_id=self.ledger_id,
        )

    def cached_remote(self, contents: Collection[str] | None = None) -> RemoteSnapshot | None:
        """Return the project as the ledger last saw it (complete=False), or None if never listed.
        With `contents`, its images are only those holding one of those sha256s.

        This is the planner's input on the cheap path: when the service's counts agree with the
        ledger and no local file changed, no listing is needed.
        """
        with self._lock:
            classification = self._meta("classification")
            project_id = self._meta("project_id") or ""
        if classification is None:
            return None
        tags = tuple(
            RemoteTag(r["tag_id"], r["name"], TagType(r["type"]))
            for r in self._rows("SELECT tag_id, name, type FROM tags ORDER BY tag_id")
        )
        with self._lock:
            regions = self._image_regions()
        images = tuple(
            RemoteImage(
                r["image_id"],
                frozenset(json.loads(r["tag_ids"])),
                json.loads(r["metadata"]),
                r["sha256"],
                tuple(regions.get(r["image_id"], ())),
            )
            for r in self._rows(
                "SELECT image_id, tag_ids, metadata, sha256 FROM images"
                f"{self._only_contents(contents)} ORDER BY image_id"
            )
        )
        return RemoteSnapshot(
            project_id=project_id,
            classification=ClassificationType(classification),
            tags=tags,
            images=images,
            complete=False,
        )

    def local_paths_by_image(self) -> dict[str, tuple[str, ...]]:
        """Return image id -> the local files (relative paths, as last scanned) holding its
        content; images with no local file are left out."""
        rows = self._rows(
            "SELECT i.image_id, f.path FROM images i JOIN local_files f ON f.sha256 = i.sha256"
            " ORDER BY i.image_id, f.path"
        )
        out: dict[str, list[str]] = {}
        for r in rows:
            out.setdefault(r["image_id"], []).append(r["path"])
        return {image_id: tuple(paths) for image_id, paths in out.items()}

    def gone_paths(self) -> dict[str, tuple[str, ...]]:
        """Return sha256 -> the paths where that content was last seen, for content that left
        them (moved, deleted, changed in place) while an image held it; for messages only."""
        out: dict[str, list[str]] = {}
        for r in self._rows("SELECT sha256, path FROM gone_paths ORDER BY sha256, path"):
            out.setdefault(r["sha256"], []).append(r["path"])
        return {sha: tuple(paths) for sha, paths in out.items()}

    def never_listed(self) -> bool:
        """True until a listing of the project is recorded (a first sync, or a lost ledger's)."""
        with self._lock:
            return self._meta("classification") is None

    def remote_summary(self) -> RemoteSummary | None:
        """The ledger's account of the project in counts (what the cheap path compares with the
        service), without loading every image; None if the project was never listed."""
        with self._lock:
            classification = self._meta("classification")
        if classification is None:
            return None
        tags = frozenset(
            RemoteTag(r["tag_id"], r["name"], TagType(r["type"]))
            for r in self._rows("SELECT tag_id, name, type FROM tags")
        )
        per_tag = {
            r["tag_id"]: r["n"]
            for r in self._rows(
                "SELECT j.value AS tag_id, COUNT(*) AS n FROM images, json_each(images.tag_ids) j"
                " GROUP BY j.value"
            )
        }
        totals = self._rows(
            "SELECT COUNT(*) AS n, COALESCE(SUM(sha256 IS NULL), 0) AS unknown FROM images"
        )[0]
        return RemoteSummary(
            ClassificationType(classification), tags, totals["n"], per_tag, totals["unknown"] == 0
        )

    def pending_uploads(self) -> tuple[str, ...]:
        """Return the sha256 of uploads sent but never answered (a crash mid-upload)."""
        return tuple(r["sha256"] for r in self._rows("SELECT sha256 FROM pending_uploads"))

    def last_run(self) -> RunRecord | None:
        rows = self._rows("SELECT * FROM runs ORDER BY run_id DESC LIMIT 1")
        return _run(rows[0]) if rows else None

    def errors(self, limit: int = 20, run_id: int | None = None) -> tuple[ErrorRecord, ...]:
        """Return the newest item errors (of one run, if given), newest first."""
        where, params = ("WHERE run_id = ?", [run_id]) if run_id is not None else ("", [])
        rows = self._rows(
            f"SELECT * FROM errors {where} ORDER BY id DESC LIMIT ?", [*params, limit]
        )
        return tuple(
            ErrorRecord(r["run_id"], r["at"], r["operation"], r["subject"], r["code"], r["message"])
            for r in rows
        )

    # --- the service's verdicts and the current problems --------------------------------------

    def _has_table(self, name: str) -> bool:
        """False for a table of a later schema than a read-only ledger's (it is not migrated)."""
        with self._lock:
            return name in self._db.table_names()

    def rejected_content(self) -> dict[str, tuple[str, str]]:
        """Return sha256 -> (code, message) of the bytes the service refused for what they are."""
        if not self._has_table("rejected_content"):
            return {}
        rows = self._rows("SELECT sha256, code, message FROM rejected_content")
        return {r["sha256"]: (r["code"], r["message"]) for r in rows}

    def record_rejected_content(self, sha256: str, code: str, message: str) -> None:
        """Remember that the service refused these bytes (e.g. ErrorImageFormat)."""
        with self.transaction():
            self._db.execute(
                "INSERT INTO rejected_content (sha256, code, message, at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (sha256) DO UPDATE SET code = excluded.code, "
                "message = excluded.message, at = excluded.at",
                [sha256, code, message, _now()],
            )

    # --- prepared content (files.prepare) ------------------------------------------------------

    def record_prepared(
        self, sha256: str, source_sha256: str, recipe: str, prepared: bytes
    ) -> None:
        """Remember what the content keyed `sha256` was prepared into (the executor, as sent)."""
        digest = hashlib.sha256(prepared).hexdigest()
        self.record_prepared_hash(sha256, source_sha256, recipe, digest, len(prepared))

    def record_prepared_hash(
        self, sha256: str, source_sha256: str, recipe: str, prepared_sha256: str, size: int = 0
    ) -> None:
        """Remember the prepared content's sha256 for the key `sha256` (size 0: not known)."""
        with self.transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO prepared (sha256, source_sha256, recipe,"
                " prepared_sha256, prepared_bytes, at) VALUES (?, ?, ?, ?, ?, ?)",
                [sha256, source_sha256, recipe, prepared_sha256, size, _now()],
            )

    def forget_prepared_not_held(self) -> None:
        """Forget prepared content neither a file (its key in local_files) nor an image holds:
        an old recipe's, once its image is gone (call after `record_scan`)."""
        with self.transaction():
            self._db.execute(
                "DELETE FROM prepared WHERE"
                " NOT EXISTS (SELECT 1 FROM local_files f WHERE f.sha256 = prepared.sha256)"
                " AND NOT EXISTS (SELECT 1 FROM images i WHERE i.sha256 = prepared.sha256)"
            )

    def prepared(self) -> dict[str, tuple[str, str]]:
        """Return key -> (the local file's sha256, the prepared bytes' sha256)."""
        if not self._has_table("prepared"):
            return {}
        rows = self._rows("SELECT sha256, source_sha256, prepared_sha256 FROM prepared")
        return {r["sha256"]: (r["source_sha256"], r["prepared_sha256"]) for r in rows}

    def forget_rejected_content_not_in_tree(self) -> None:
        """Forget verdicts on bytes no file holds any more (call after `record_scan`)."""
        with self.transaction():
            if self._db.execute("SELECT 1 FROM rejected_content LIMIT 1").fetchone() is None:
                return  # the usual case: nothing to forget, and no pass over 100k files
            self._db.execute(
                "DELETE FROM rejected_content WHERE sha256 NOT IN "
                "(SELECT sha256 FROM local_files WHERE sha256 IS NOT NULL)"
            )

    def record_problems(self, problems: Iterable[tuple[str, str, str, str]]) -> dict[str, str]:
        """Make the current problems exactly `problems` ((path, kind, detail, advice) each);
        return path -> since. A path whose problem is of the same kind as before keeps its
        `since`; a new one (or one of another kind) starts now."""
        now = _now()
        with self.transaction():
            before = {
                r["path"]: (r["path"], r["kind"], r["detail"], r["advice"], r["since"])
                for r in self._rows("SELECT path, kind, detail, advice, since FROM problems")
            }
            rows = []
            for path, kind, detail, advice in problems:
                old = before.get(path)
                since = old[4] if old is not None and old[1] == kind else now
                rows.append((path, kind, detail, advice, since))
            if sorted(rows) == sorted(before.values()):
                return {row[0]: row[4] for row in rows}  # unchanged: a no-op run writes nothing
            self._db.execute("DELETE FROM problems")
            self._db.conn.executemany(
                "INSERT OR REPLACE INTO problems (path, kind, detail, advice, since) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )
        return {path: since for path, _, _, _, since in rows}

    def problems(self) -> tuple[ProblemRecord, ...]:
        """Return the current problems, by path."""
        if not self._has_table("problems"):
            return ()
        rows = self._rows("SELECT path, kind, detail, advice, since FROM problems ORDER BY path")
        return tuple(
            ProblemRecord(r["path"], r["kind"], r["detail"], r["advice"], r["since"]) for r in rows
        )

    def status(self) -> LedgerStatus:
        """Return the counts `syncd status` prints."""
        files = self._rows(
            "SELECT problem, COUNT(*) AS n FROM local_files GROUP BY problem ORDER BY problem"
        )
        owners = self._rows("SELECT owner, COUNT(*) AS n FROM images GROUP BY owner ORDER BY owner")
        last = self.last_run()
        # Only the last run's item errors: an older run's may be long fixed (the file excluded,
        # deleted or changed), and one still there failed again in the last run.
        errors = self.errors(limit=10, run_id=last.run_id) if last is not None else ()
        return LedgerStatus(
            files=sum(r["n"] for r in files),
            files_ok=sum(r["n"] for r in files if r["problem"] is None),
            problems={r["problem"]: r["n"] for r in files if r["problem"] is not None},
            images={r["owner"]: r["n"] for r in owners},
            pending_uploads=len(self.pending_uploads()),
            tags=self._rows("SELECT COUNT(*) AS n FROM tags")[0]["n"],
            last_run=last,
            recent_errors=errors,
            problem_files=self.problems(),
        )


def _run(row: Mapping[str, Any]) -> RunRecord:
    return RunRecord(
        run_id=row["run_id"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        outcome=RunOutcome(row["outcome"]),
        counts=json.loads(row["counts"]),
        error=row["error"],
    )
