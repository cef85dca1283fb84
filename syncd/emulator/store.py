"""The emulator's state: projects, tags, images, metadata in SQLite; image bytes as blob files.

Public names: `Store`, `Quotas`, `DEFAULT_QUOTAS`, `ApiError`, `Project`, `Tag`, `Image`,
`ImageTag`, `Upload`, `CreateResult`, `TagPairs`, `MetadataResult`, `MetadataFilter`,
`parse_filter`, `check_metadata`, `DOMAINS`, `Domain`, `TAGGING_STATUSES`, `Iteration`,
`ImagePerformance`, `Prediction`, `DEFAULT_TRAINING_SECONDS`.

Durability: with a data dir the database is `emulator.sqlite3` in WAL mode with synchronous=FULL,
and every write is one transaction committed before the call returns (so before the response is
sent). Image bytes live in `blobs/<sha[:2]>/<sha256>`, content-addressed, written to a temp file,
fsynced and renamed into place *before* the row that names them is committed; a crash can leave an
orphan blob, never a row without its bytes. Blobs no longer referenced are deleted after the commit
that dropped their last row. Without a data dir (tests) the database is in memory and so are the
blobs: nothing survives `close()`.

Schema choices, each for the 100,000-images-per-project scale:
- `images.seq` (AUTOINCREMENT, never reused) is the insertion order: newest first is `seq DESC`,
  and it breaks ties between images created in the same instant, so paging is stable.
- `images.tagged` (0/1) mirrors `tag_count > 0`, indexed with (project_id, tagged, seq), so the
  tagged/untagged listings and counts never scan the join table.
- `image_tags` is indexed both ways (image -> tags for hydrating a page, tag -> images for filters).
- `image_metadata` rows (one per key) are indexed by (key, value), so `$filter` is a set of indexed
  sub-selects rather than a scan of JSON.
All methods are thread-safe (one connection behind a lock); the app calls them from worker threads.

Training is simulated (the emulator cannot learn): TrainProject snapshots the project's tagged
images into `iteration_images` with a prediction list computed from each image's sha256 and tags
(`simulated_predictions`), and the iteration reads as `Training` until `training_seconds` after
its creation, then `Completed`. `mark_mispredicted` is the test seam: a marked image's next
training ranks the chosen tag first and its own tags low.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from syncd.emulator.imageinfo import inspect_image
from syncd.emulator.quotas import DEFAULT_QUOTAS, DEFAULT_TRAINING_SECONDS, Quotas

SCHEMA_VERSION = 1
TAGGING_STATUSES = ("All", "Tagged", "Untagged")
METADATA_MAX_PAIRS = 50  # «Limited to 50 key-value pairs per image.»
METADATA_MAX_KEY = 256  # «The length of key is limited to 256.»
METADATA_MAX_VALUE = 512  # «The length of value is limited to 512.»


class ApiError(Exception):
    """A refusal the API reports as {code, message} with an HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def not_found_project() -> ApiError:
    return ApiError(404, "NotFoundProject", "Project not found.")


@dataclass(frozen=True)
class Domain:
    id: str
    name: str
    type: str
    exportable: bool


# Real domain ids, from the Custom Vision "select a domain" documentation page.
DOMAINS = (
    Domain("ee85a74c-405e-4adc-bb47-ffa8ca0c9f31", "General", "Classification", False),
    Domain("a8e3c40f-fb4a-466f-832a-5e457ae4a344", "General [A1]", "Classification", False),
    Domain("2e37d7fb-3a54-486a-b4d6-cfc369af0018", "General [A2]", "Classification", False),
    Domain("c151d5b5-dd07-472a-acc8-15d29dea8518", "Food", "Classification", False),
    Domain("ca455789-012d-4b50-9fec-5bb63841c793", "Landmarks", "Classification", False),
    Domain("b30a91ae-e3c1-4f73-a81e-c270bff27c39", "Retail", "Classification", False),
    Domain("0732100f-1a38-4e49-a514-c9b44c697ab5", "General (compact)", "Classification", True),
    Domain("da2e3a8a-40a5-4171-82f4-58522f70fbc1", "General", "ObjectDetection", False),
    Domain("1d8ffafe-ec40-4fb2-8f90-72b3b6cecea4", "Logo", "ObjectDetection", False),
    Domain("a27d5ca5-bb19-49d8-a70a-fec086c47f5b", "General (compact)", "ObjectDetection", True),
)
DEFAULT_DOMAIN = DOMAINS[0]  # «Defaults to General.»


@dataclass(frozen=True)
class Project:
    id: str
    name: str
    description: str | None
    domain_id: str
    classification_type: str | None
    export_platforms: tuple[str, ...]
    created: str
    last_modified: str


@dataclass(frozen=True)
class Tag:
    id: str
    name: str
    description: str | None
    type: str
    image_count: int


@dataclass(frozen=True)
class ImageTag:
    tag_id: str
    tag_name: str | None  # None in create results, as the service echoes them
    created: str


@dataclass(frozen=True)
class Image:
    id: str
    created: str
    width: int
    height: int
    token: str  # the unguessable part of the image's URIs
    tags: tuple[ImageTag, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Upload:
    """One image of a create batch: where it came from (sourceUrl), its bytes, its own tags."""

    source: str
    data: bytes
    tag_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class CreateResult:
    source: str
    status: str  # an ImageCreateStatus
    image: Image | None


@dataclass(frozen=True)
class TagPairs:
    created: list[tuple[str, str]]
    duplicated: list[tuple[str, str]]
    exceeded: list[tuple[str, str]]


@dataclass(frozen=True)
class MetadataResult:
    image_id: str
    status: str  # an ImageMetadataUpdateStatus
    metadata: dict[str, str] | None


@dataclass(frozen=True)
class Iteration:
    """A trained (or training) model of a project; status follows the simulated clock."""

    id: str
    project_id: str
    name: str
    status: str  # Training | Completed
    created: str
    last_modified: str
    trained_at: str | None
    training_type: str
    reserved_budget: int
    domain_id: str
    classification_type: str | None


@dataclass(frozen=True)
class Prediction:
    tag_id: str
    tag_name: str
    tag_type: str
    probability: float


@dataclass(frozen=True)
class ImagePerformance:
    """One training image of an iteration, with its tags then and the simulated predictions."""

    id: str
    created: str
    width: int
    height: int
    token: str
    tags: tuple[ImageTag, ...]
    predictions: tuple[Prediction, ...]


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


# --- $filter on metadata --------------------------------------------------------------------

# A parsed filter: ("cmp", op, key, value) | ("and" | "or", left, right).
MetadataFilter = tuple

_TOKEN = re.compile(r"\s*(?:(\()|(\))|'((?:[^']|'')*)'|([^\s()']+))")


def parse_filter(text: str) -> MetadataFilter:
    """Parse `key eq 'v' and (k2 ne 'w' or k3 eq 'x')`; raise ApiError 400 when malformed.

    Grammar (OData-like, as the spec's example reads): `and` binds tighter than `or`, operators
    are case-insensitive, string values are single-quoted with '' for a quote.
    """
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise _bad_filter(text)
        pos = match.end()
        if match.group(1):
            tokens.append(("(", "("))
        elif match.group(2):
            tokens.append((")", ")"))
        elif match.group(3) is not None:
            tokens.append(("str", match.group(3).replace("''", "'")))
        else:
            tokens.append(("word", match.group(4)))

    def expr(i: int) -> tuple[MetadataFilter, int]:
        left, i = term(i)
        while i < len(tokens) and _kw(tokens[i], "or"):
            right, i = term(i + 1)
            left = ("or", left, right)
        return left, i

    def term(i: int) -> tuple[MetadataFilter, int]:
        left, i = factor(i)
        while i < len(tokens) and _kw(tokens[i], "and"):
            right, i = factor(i + 1)
            left = ("and", left, right)
        return left, i

    def factor(i: int) -> tuple[MetadataFilter, int]:
        if i < len(tokens) and tokens[i][0] == "(":
            inner, i = expr(i + 1)
            if i >= len(tokens) or tokens[i][0] != ")":
                raise _bad_filter(text)
            return inner, i + 1
        if i + 2 < len(tokens) and tokens[i][0] == "word" and tokens[i + 2][0] == "str":
            op = tokens[i + 1][1].lower()
            if tokens[i + 1][0] == "word" and op in ("eq", "ne"):
                return ("cmp", op, tokens[i][1], tokens[i + 2][1]), i + 3
        raise _bad_filter(text)

    if not tokens:
        raise _bad_filter(text)
    tree, end = expr(0)
    if end != len(tokens):
        raise _bad_filter(text)
    return tree


def _kw(token: tuple[str, str], word: str) -> bool:
    return token[0] == "word" and token[1].lower() == word


def _bad_filter(text: str) -> ApiError:
    return ApiError(
        400,
        "BadRequestInvalid",
        "Invalid $filter: expected key eq 'value' / key ne 'value' joined by and/or.",
    )


def _filter_sql(tree: MetadataFilter, params: list[object]) -> str:
    if tree[0] == "cmp":
        _, op, key, value = tree
        params.extend((key, value))
        # `ne` matches images that have the key with another value, as OData compares values.
        cmp = "=" if op == "eq" else "<>"
        return f"i.seq IN (SELECT image_seq FROM image_metadata WHERE key = ? AND value {cmp} ?)"
    left = _filter_sql(tree[1], params)
    right = _filter_sql(tree[2], params)
    return f"({left} {tree[0].upper()} {right})"


# --- the store --------------------------------------------------------------------------------

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
-- Test seam (not an API): images whose next training predicts another tag.
CREATE TABLE IF NOT EXISTS mispredictions (
    image_id TEXT PRIMARY KEY,
    tag_id TEXT NOT NULL
);
"""


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Store:
    """Projects, tags and images of one emulated account, persisted under data_dir (or memory)."""

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
        self._lock = threading.RLock()
        # In memory mode blobs live in this dict (file creation would dominate big test setups).
        self._memory_blobs: dict[str, bytes] | None = None
        if data_dir is None:
            self._memory_blobs = {}
            self._blob_dir = Path()
            self._db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        else:
            data_dir.mkdir(parents=True, exist_ok=True)
            self._blob_dir = data_dir / "blobs"
            self._blob_dir.mkdir(exist_ok=True)
            self._db = sqlite3.connect(
                data_dir / "emulator.sqlite3", check_same_thread=False, isolation_level=None
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk before the response that acknowledges it is sent.
            self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=OFF")
        self._db.executescript(_DDL)
        with self._write() as db:
            db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
        last = self._db.execute("SELECT MAX(created) FROM images").fetchone()[0]
        self._last_created = last or ""
        self._closed = False

    def close(self) -> None:
        """Close the database (an in-memory store forgets everything)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._db.close()
            self._memory_blobs = None

    # --- plumbing -----------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
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
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._db

    def _created_stamp(self) -> str:
        """Return now, never earlier than the last image's stamp (newest-first = seq order)."""
        stamp = max(_stamp(_now()), self._last_created)
        self._last_created = stamp
        return stamp

    def _blob_path(self, sha: str) -> Path:
        return self._blob_dir / sha[:2] / sha

    def _write_blob(self, sha: str, data: bytes) -> None:
        """Store bytes under their hash: temp file, fsync, rename, fsync the directory."""
        if self._memory_blobs is not None:
            self._memory_blobs[sha] = data
            return
        path = self._blob_path(sha)
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _drop_unreferenced_blobs(self, shas: Iterable[str]) -> None:
        """Delete blob files no image row names any more (call after the commit)."""
        with self._read() as db:
            for sha in set(shas):
                if db.execute("SELECT 1 FROM images WHERE sha256 = ?", (sha,)).fetchone() is None:
                    if self._memory_blobs is not None:
                        self._memory_blobs.pop(sha, None)
                    else:
                        self._blob_path(sha).unlink(missing_ok=True)

    # --- domains and projects -----------------------------------------------------------------

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
        stamp = _stamp(_now())
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
        with self._write() as db:
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
        with self._read() as db:
            rows = db.execute(
                "SELECT id, name, description, domain_id, classification_type, export_platforms,"
                " created, last_modified FROM projects ORDER BY seq"
            ).fetchall()
        return [_project(row) for row in rows]

    def project(self, project_id: str) -> Project:
        """Return one project; raise ApiError 404 NotFoundProject when it does not exist."""
        with self._read() as db:
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
        with self._write() as db:
            self._require_project(db, project_id)
            db.execute(
                "UPDATE projects SET name = COALESCE(?, name), description = ?, last_modified = ?"
                " WHERE id = ?",
                (name, description or None, _stamp(_now()), project_id),
            )
        return self.project(project_id)

    def delete_project(self, project_id: str) -> None:
        """Delete a project with its tags and images."""
        with self._write() as db:
            self._require_project(db, project_id)
            shas = [
                r[0]
                for r in db.execute(
                    "SELECT DISTINCT sha256 FROM images WHERE project_id = ?", (project_id,)
                )
            ]
            self._delete_image_rows(db, "project_id = ?", (project_id,))
            self._delete_iterations(db, "project_id = ?", (project_id,))
            db.execute("DELETE FROM tags WHERE project_id = ?", (project_id,))
            db.execute("DELETE FROM projects WHERE id = ?", (project_id,))
        self._drop_unreferenced_blobs(shas)

    def _require_project(self, db: sqlite3.Connection, project_id: str) -> None:
        if db.execute("SELECT 1 FROM projects WHERE id = ?", (project_id,)).fetchone() is None:
            raise not_found_project()

    # --- tags -----------------------------------------------------------------------------------

    def tags(self, project_id: str) -> list[Tag]:
        """Return a project's tags (creation order) with their image counts."""
        with self._read() as db:
            self._require_project(db, project_id)
            rows = db.execute(
                "SELECT t.id, t.name, t.description, t.type,"
                " (SELECT COUNT(*) FROM image_tags it WHERE it.tag_id = t.id)"
                " FROM tags t WHERE t.project_id = ? ORDER BY t.seq",
                (project_id,),
            ).fetchall()
        return [Tag(*row) for row in rows]

    def tag(self, project_id: str, tag_id: str) -> Tag:
        """Return one tag; raise ApiError 404 NotFoundProject / NotFoundTag."""
        with self._read() as db:
            self._require_project(db, project_id)
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
        with self._write() as db:
            self._require_project(db, project_id)
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
        with self._write() as db:
            self.tag(project_id, tag_id)
            self._check_tag_fields(db, project_id, name, tag_type, tag_id)
            db.execute(
                "UPDATE tags SET name = ?, name_key = ?, description = ?, type = ? WHERE id = ?",
                (name, name.casefold(), description or None, tag_type, tag_id),
            )
        return self.tag(project_id, tag_id)

    def delete_tag(self, project_id: str, tag_id: str) -> None:
        """Delete a tag and untag its images."""
        with self._write() as db:
            self.tag(project_id, tag_id)
            db.execute(
                "UPDATE images SET tag_count = tag_count - 1, tagged = (tag_count - 1 > 0)"
                " WHERE seq IN (SELECT image_seq FROM image_tags WHERE tag_id = ?)",
                (tag_id,),
            )
            db.execute("DELETE FROM image_tags WHERE tag_id = ?", (tag_id,))
            db.execute("DELETE FROM tags WHERE id = ?", (tag_id,))

    def _tag_types(self, db: sqlite3.Connection, project_id: str) -> dict[str, str]:
        return dict(db.execute("SELECT id, type FROM tags WHERE project_id = ?", (project_id,)))

    # --- image reads ----------------------------------------------------------------------------

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
            clauses.append(_filter_sql(metadata_filter, params))
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
        with self._read() as db:
            self._require_project(db, project_id)
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
        with self._read() as db:
            self._require_project(db, project_id)
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
        with self._read() as db:
            self._require_project(db, project_id)
            rows = self._image_rows(db, project_id, image_ids)
            return self._hydrate(db, rows)

    def _image_rows(
        self, db: sqlite3.Connection, project_id: str, image_ids: Iterable[str]
    ) -> list[tuple]:
        ids = list(dict.fromkeys(image_ids))
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        return db.execute(
            "SELECT i.seq, i.id, i.created, i.width, i.height, i.token FROM images i"
            f" WHERE i.project_id = ? AND i.id IN ({marks}) ORDER BY i.seq",
            (project_id, *ids),
        ).fetchall()

    def _hydrate(self, db: sqlite3.Connection, rows: Sequence[tuple]) -> list[Image]:
        """Turn image rows into Images with their tags and metadata (two indexed queries)."""
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
        return [
            Image(
                id=image_id,
                created=created,
                width=width,
                height=height,
                token=token,
                tags=tuple(tags.get(seq, ())),
                metadata=metadata.get(seq, {}),
            )
            for seq, image_id, created, width, height, token in rows
        ]

    def blob(self, token: str) -> tuple[bytes, str] | None:
        """Return (bytes, format) of the image whose URI token this is, or None."""
        with self._read() as db:
            row = db.execute(
                "SELECT sha256, format FROM images WHERE token = ?", (token,)
            ).fetchone()
            if row is None:
                return None
            if self._memory_blobs is not None:
                data = self._memory_blobs.get(row[0])
                return None if data is None else (data, row[1])
        try:
            return self._blob_path(row[0]).read_bytes(), row[1]
        except FileNotFoundError:
            return None

    # --- image writes ---------------------------------------------------------------------------

    def create_images(
        self,
        project_id: str,
        uploads: Sequence[Upload],
        tag_ids: Sequence[str],
        metadata: dict[str, str] | None,
    ) -> list[CreateResult]:
        """Create a batch of images; return one result per upload, in order.

        Batch-wide refusals (unknown project or tag) raise ApiError before anything is written.
        Per image: ErrorImageSize, ErrorImageFormat, ErrorTagLimitExceed,
        ErrorNegativeAndRegularTagOnSameImage, ErrorLimitExceed (project full), OKDuplicate (same
        bytes already in the project: no new image; the requested tags are added to the existing
        image, metadata is left alone), or OK. Results echo images with `tagName` None.
        """
        batch_tags = list(dict.fromkeys(tag_ids))
        with self._write() as db:
            self._require_project(db, project_id)
            types = self._tag_types(db, project_id)
            for tag_id in [*batch_tags, *(t for u in uploads for t in u.tag_ids)]:
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
        if len(wanted) > self.quotas.max_tags_per_image:
            return "ErrorTagLimitExceed", None
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
            return "OKDuplicate", existing
        if _mixes_negative(wanted, types):
            return "ErrorNegativeAndRegularTagOnSameImage", None
        if count >= self.quotas.max_images_per_project:
            return "ErrorLimitExceed", None
        self._write_blob(sha, upload.data)
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
        seen[sha] = seq
        return "OK", seq

    def _add_tags(self, db: sqlite3.Connection, image_seq: int, tag_ids: Sequence[str]) -> None:
        if not tag_ids:
            return
        stamp = _stamp(_now())
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
        with self._write() as db:
            self._require_project(db, project_id)
            types = self._tag_types(db, project_id)
            for _, tag_id in pairs:
                if tag_id not in types:
                    raise ApiError(404, "NotFoundTag", "Tag not found.")
            rows = self._image_rows(db, project_id, (image_id for image_id, _ in pairs))
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
        with self._write() as db:
            self._require_project(db, project_id)
            rows = self._image_rows(db, project_id, image_ids)
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
        with self._write() as db:
            self._require_project(db, project_id)
            if image_ids is None:
                where, params = "project_id = ?", (project_id,)
            else:
                seqs = [row[0] for row in self._image_rows(db, project_id, image_ids)]
                if not seqs:
                    return
                where, params = f"seq IN ({','.join('?' * len(seqs))})", tuple(seqs)
            shas = [
                r[0]
                for r in db.execute(f"SELECT DISTINCT sha256 FROM images WHERE {where}", params)
            ]
            self._delete_image_rows(db, where, params)
        self._drop_unreferenced_blobs(shas)

    def _delete_image_rows(
        self, db: sqlite3.Connection, where: str, params: Sequence[object]
    ) -> None:
        sub = f"SELECT seq FROM images WHERE {where}"
        db.execute(f"DELETE FROM image_tags WHERE image_seq IN ({sub})", params)
        db.execute(f"DELETE FROM image_metadata WHERE image_seq IN ({sub})", params)
        db.execute(f"DELETE FROM images WHERE {where}", params)

    def update_metadata(
        self, project_id: str, image_ids: Sequence[str], metadata: dict[str, str]
    ) -> list[MetadataResult]:
        """Merge metadata into each listed image (keys given are set, others kept).

        Per image: ErrorImageNotFound, ErrorLimitExceed (the merged map would pass 50 pairs;
        nothing is written to that image), or OK with the image's whole metadata.
        """
        results: list[MetadataResult] = []
        with self._write() as db:
            self._require_project(db, project_id)
            seq_of = {row[1]: row[0] for row in self._image_rows(db, project_id, image_ids)}
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

    # --- training (simulated) -----------------------------------------------------------------

    def mark_mispredicted(self, project_id: str, image_id: str, tag_id: str) -> None:
        """Test seam: make the next trainings predict tag_id for image_id (its own tags low).

        Not part of the API; `POST /emulator/projects/{id}/mispredictions` calls it over HTTP.
        Raise ApiError 404 when the project, image or tag does not exist.
        """
        with self._write() as db:
            self._require_project(db, project_id)
            if not self._image_rows(db, project_id, [image_id]):
                raise ApiError(404, "NotFoundImage", "Image not found.")
            if tag_id not in self._tag_types(db, project_id):
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
        with self._write() as db:
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
                    _stamp(datetime.fromtimestamp(now, UTC)),
                    ready_at,
                    _stamp(datetime.fromtimestamp(ready_at, UTC)),
                    training_type,
                    reserved_budget,
                    project[3],
                    project[4],
                    fingerprint,
                ),
            )
            iteration_seq = cursor.lastrowid
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
        pairs = []
        for seq, image_rows in by_image.items():
            first = image_rows[0]
            own = [r[7] for r in image_rows]
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
                    json.dumps([[r[7], names[r[7]], r[8]] for r in image_rows]),
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
        with self._read() as db:
            self._require_project(db, project_id)
            rows = db.execute(
                f"SELECT {_ITERATION_COLUMNS} FROM iterations WHERE project_id = ? ORDER BY seq",
                (project_id,),
            ).fetchall()
        return [self._iteration(row) for row in rows]

    def iteration(self, project_id: str, iteration_id: str) -> Iteration:
        """Return one iteration; raise ApiError 404 NotFoundProject / NotFoundIteration."""
        with self._read() as db:
            return self._iteration(self._iteration_row(db, project_id, iteration_id)[:-1])

    def _iteration_row(self, db: sqlite3.Connection, project_id: str, iteration_id: str) -> tuple:
        self._require_project(db, project_id)
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
        with self._write() as db:
            seq = self._iteration_row(db, project_id, iteration_id)[-1]
            self._delete_iterations(db, "seq = ?", (seq,))

    def _delete_iterations(
        self, db: sqlite3.Connection, where: str, params: Sequence[object]
    ) -> None:
        sub = f"SELECT seq FROM iterations WHERE {where}"
        db.execute(f"DELETE FROM iteration_images WHERE iteration_seq IN ({sub})", params)
        db.execute(f"DELETE FROM iteration_image_tags WHERE iteration_seq IN ({sub})", params)
        db.execute(f"DELETE FROM iterations WHERE {where}", params)

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
        with self._read() as db:
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
        with self._read() as db:
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
        with self._read() as db:
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


_ITERATION_COLUMNS = (
    "id, project_id, name, created, ready_at, trained_at, training_type, reserved_budget,"
    " domain_id, classification_type"
)


def check_metadata(metadata: dict[str, str]) -> None:
    """Raise ApiError 400 unless every key and value is within the spec's lengths."""
    for key, value in metadata.items():
        if not key or len(key) > METADATA_MAX_KEY:
            raise ApiError(
                400,
                "BadRequestImageMetadataKey",
                f"Metadata keys must be 1 to {METADATA_MAX_KEY} characters.",
            )
        if len(value) > METADATA_MAX_VALUE:
            raise ApiError(
                400,
                "BadRequestImageMetadataValue",
                f"Metadata values are limited to {METADATA_MAX_VALUE} characters.",
            )


def _mixes_negative(tag_ids: Iterable[str], types: dict[str, str]) -> bool:
    kinds = {types[t] == "Negative" for t in tag_ids if t in types}
    return len(kinds) == 2


def _echo(image: Image) -> Image:
    """Return image as create results show it: tag names null [R DIGEST section 2]."""
    return Image(
        id=image.id,
        created=image.created,
        width=image.width,
        height=image.height,
        token=image.token,
        tags=tuple(ImageTag(t.tag_id, None, t.created) for t in image.tags),
        metadata=image.metadata,
    )


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
