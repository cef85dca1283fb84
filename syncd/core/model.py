"""The shared, frozen nouns of the local half: what the scanner saw, what the remote holds.

Public names: TagType, ClassificationType, ProblemKind, Problem, MarkerState, LocalFile, CachedFile,
Skipped, LocalSnapshot, RemoteTag, RemoteRegion, RemoteImage, RemoteSnapshot, LedgerImage,
ImageOwner, LedgerView, SYNCD_METADATA_KEY.

Everything here is a plain value: no I/O, no behaviour beyond small derived properties. The
scanner makes a `LocalSnapshot`; `syncd.remote` (or the ledger, on the cheap path) makes a
`RemoteSnapshot`, converting the client's records into these; the ledger makes a `LedgerView`;
`syncd.core.planner.plan` takes all three.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

# Every image syncd uploads carries {SYNCD_METADATA_KEY: <the ledger's id>}: a random id made
# when the ledger was created (Ledger.ledger_id), never the mirror's name, which two installs may
# share. Metadata is per create batch, never per image (docs/spec/DIGEST.md §2), so the value is
# batch-constant by design.
SYNCD_METADATA_KEY = "syncd"


class TagType(enum.StrEnum):
    """Tag.type [S enum]: core's own copy; syncd.remote converts the client's at the boundary."""

    REGULAR = "Regular"
    NEGATIVE = "Negative"
    GENERAL_PRODUCT = "GeneralProduct"


class ClassificationType(enum.StrEnum):
    """ProjectSettings.classificationType: a Multiclass image carries at most one regular tag."""

    MULTILABEL = "Multilabel"
    MULTICLASS = "Multiclass"


class ProblemKind(enum.StrEnum):
    """Why a file (or folder) under the root is not mirrored; shown in the run summary."""

    SYMLINK = "symlink"  # a symlink, and following them is off
    SYMLINK_LOOP = "symlink_loop"  # following is on, and this one leads back up the tree
    SYMLINK_OUTSIDE_ROOT = "symlink_outside_root"  # following is on, and it leads out of the root
    NON_UTF8_NAME = "non_utf8_name"  # paths become tags and ledger keys, so they must be text
    UNREADABLE = "unreadable"  # an OS error reading the file or listing a folder
    CHANGED_WHILE_READING = "changed_while_reading"  # stat differed before and after hashing
    EMPTY = "empty"
    TOO_LARGE = "too_large"  # over the 6 MB training upload limit
    NOT_AN_IMAGE = "not_an_image"  # magic bytes are not JPEG, PNG, BMP or GIF
    BAD_TAG_NAME = "bad_tag_name"  # a folder on the path is not a legal tag name
    NEGATIVE_AND_REGULAR = "negative_and_regular"  # one path asks for both (tag mode `all`)
    ROOT_FILE_SKIPPED = "root_file_skipped"  # directly under the root, and root_files: skip
    # The service refused these bytes for what they are (ErrorImageFormat...): the verdict is
    # remembered by hash, so they are not sent again until the file changes (syncd.problems).
    REJECTED_BY_SERVICE = "rejected_by_service"
    # Found locally by decoding the file with Pillow (syncd.decode), before any upload: the
    # service would refuse these too (docs/spec/DIGEST.md §6).
    NOT_DECODABLE = "not_decodable"  # the header says JPEG/PNG/BMP/GIF, the body does not decode
    TOO_MANY_PIXELS = "too_many_pixels"  # a side over 10,240 px
    ASPECT_RATIO = "aspect_ratio"  # longer than 25:1
    # A detection mirror's annotation for this image cannot be used (unreadable, not XML, the
    # wrong image size, more boxes than an image takes): the image is not uploaded and its
    # regions in the project are left as they are until the annotation is fixed.
    BAD_ANNOTATION = "bad_annotation"

    @property
    def is_content_check(self) -> bool:
        """True for a verdict of the local decode (remembered with the file's stat and hash)."""
        return self in (
            ProblemKind.NOT_DECODABLE,
            ProblemKind.TOO_MANY_PIXELS,
            ProblemKind.ASPECT_RATIO,
        )

    @property
    def is_read_error(self) -> bool:
        """True when the file's content is unknown this run (so no delete may rely on it)."""
        return self in (ProblemKind.UNREADABLE, ProblemKind.CHANGED_WHILE_READING)


@dataclass(frozen=True)
class Problem:
    """A reason not to mirror one file, with a human detail (never a secret)."""

    kind: ProblemKind
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}" if self.detail else str(self.kind)


class MarkerState(enum.StrEnum):
    """The root marker file (`.syncd-root`), like Syncthing's `.stfolder`."""

    PRESENT = "present"  # holds this mirror's project id
    ABSENT = "absent"
    FOREIGN = "foreign"  # exists but names another project (or is unreadable)


@dataclass(frozen=True, slots=True)
class LocalFile:
    """One regular file under the root that passed the name filters.

    `path` is the posix path relative to the root exactly as on disk (not normalised: it is how the
    executor reopens the file). `tags` are the wanted regular tag names (NFC, deduplicated
    case-insensitively, sorted); `negative` means the file belongs to the project's Negative tag
    (then `tags` is empty). `sha256` is None when the file was not hashed (too large, unreadable).
    A file with a `problem` is never uploaded.
    """

    path: str
    size: int
    mtime_ns: int
    inode: int
    sha256: str | None
    tags: tuple[str, ...] = ()
    negative: bool = False
    problem: Problem | None = None
    image_format: str | None = None  # "jpeg", "png", "bmp", "gif" (from magic bytes)
    hashed_at_ns: int | None = None  # clock when sha256 was computed (racy-mtime guard)
    # The content's verdict is known: read since syncd decodes images (an image was decoded,
    # anything else found not to be one). Remembered with the stat, so a no-op never decodes.
    content_checked: bool = False
    # `files.prepare` (syncd.prepare): with a recipe, `sha256` is the prepared content's key
    # (the local sha256 and the recipe, hashed), `source_sha256` the file's own sha256; `facts`
    # are what the decode learnt (ImageFacts as text), kept so a no-op decodes nothing.
    source_sha256: str | None = None
    recipe: str | None = None
    facts: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None and self.sha256 is not None

    @property
    def file_sha256(self) -> str | None:
        """The sha256 of the file's own bytes (not the key of its prepared content)."""
        return self.source_sha256 or self.sha256


@dataclass(frozen=True, slots=True)
class CachedFile:
    """The ledger's memory of one file: if its stat still matches, its hash is reused."""

    size: int
    mtime_ns: int
    inode: int
    sha256: str | None
    image_format: str | None
    hashed_at_ns: int | None
    content_checked: bool = False  # False: read before syncd decoded images; read it again
    content_problem: Problem | None = None  # the decode's verdict (a ProblemKind.is_content_check)
    source_sha256: str | None = None  # the file's own sha256 when `sha256` is a prepared key
    facts: str | None = None  # syncd.prepare.ImageFacts as text: decoded under files.prepare

    @property
    def file_sha256(self) -> str | None:
        """The sha256 of the file's own bytes (not the key of its prepared content)."""
        return self.source_sha256 or self.sha256


@dataclass(frozen=True)
class Skipped:
    """An entry that is not a regular file syncd can stat: a symlink, a bad name, an unreadable dir.

    `path` is printable: a non-UTF-8 name is shown with its bad bytes escaped (`\\xff`).
    """

    path: str
    problem: Problem


@dataclass(frozen=True)
class LocalSnapshot:
    """The whole tree under one root, as scanned once.

    `files` holds every candidate file (with or without a problem), sorted by path; `skipped` the
    entries that never became candidates. `hashed` counts files whose bytes were read this scan
    (the rest reused the ledger's hash because their stat had not changed).

    `digest` identifies the tree's names and stat data (syncd.scan.Walked.digest); it is None
    unless the snapshot is clean: nothing skipped, no problem, every hash trusted. A run that ends
    in sync keeps it, and the next run whose walk has the same digest can skip loading the files.
    Such a snapshot has `unchanged_files` set instead of `files`: that many files, all ok and all
    as the ledger has them.

    `unaccepted` counts the image files left out for their suffix, a format the service does not
    accept (WEBP, TIFF, ...): (suffix, count), most first. Not problems: they are not asked for.
    """

    root: str
    root_exists: bool
    marker: MarkerState
    files: tuple[LocalFile, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    hashed: int = 0
    decoded: int = 0  # images decoded this run (Pillow): new or changed content only
    digest: str | None = None
    unchanged_files: int = 0
    unaccepted: tuple[tuple[str, int], ...] = ()

    @property
    def file_count(self) -> int:
        return len(self.files) + self.unchanged_files

    @property
    def ok_count(self) -> int:
        return len(self.good_files) + self.unchanged_files

    @property
    def good_files(self) -> tuple[LocalFile, ...]:
        return tuple(f for f in self.files if f.ok)

    @property
    def problem_files(self) -> tuple[LocalFile, ...]:
        return tuple(f for f in self.files if f.problem is not None)

    @property
    def has_read_errors(self) -> bool:
        """True if some content under the root could not be read this run (deletes unsafe)."""
        return any(f.problem and f.problem.kind.is_read_error for f in self.files) or any(
            s.problem.kind.is_read_error for s in self.skipped
        )


@dataclass(frozen=True, slots=True)
class RemoteTag:
    """A tag in the project (GetTags)."""

    tag_id: str
    name: str
    type: TagType = TagType.REGULAR


@dataclass(frozen=True, slots=True)
class RemoteRegion:
    """One region (object detection box) of a remote image: its id, its tag's id, and its box as
    fractions of the stored image (left, top, width, height), as the service echoed them."""

    region_id: str
    tag_id: str
    left: float
    top: float
    width: float
    height: float


def _frozen_map(value: Mapping[str, str] | None) -> Mapping[str, str]:
    return MappingProxyType(dict(value or {}))


@dataclass(frozen=True, slots=True)
class RemoteImage:
    """An image in the project: its id, tag ids, metadata, and its sha256 if known.

    `sha256` comes from the ledger (syncd uploaded or adopted it) or from hashing the downloaded
    original; None means unknown, and the planner then neither pairs, retags nor deletes it.
    """

    image_id: str
    tag_ids: frozenset[str] = frozenset()
    metadata: Mapping[str, str] = field(default_factory=dict, hash=False)
    sha256: str | None = None
    regions: tuple[RemoteRegion, ...] = ()  # object detection boxes (none in classification)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tag_ids", frozenset(self.tag_ids))
        object.__setattr__(self, "metadata", _frozen_map(self.metadata))
        object.__setattr__(self, "regions", tuple(self.regions))


@dataclass(frozen=True)
class RemoteSnapshot:
    """What the project holds, as far as this run knows.

    `complete` is True when `images` is a full listing made this run; False when it is the
    ledger's account of the project (the cheap path, used when the counts agreed and nothing
    changed locally). Foreign images are only adopted or deleted from a complete snapshot.
    """

    project_id: str
    classification: ClassificationType
    tags: tuple[RemoteTag, ...] = ()
    images: tuple[RemoteImage, ...] = ()
    complete: bool = True


class ImageOwner(enum.StrEnum):
    """Whose an image is, as the ledger records it."""

    SYNCD = "syncd"  # syncd uploaded it
    ADOPTED = "adopted"  # found in the project, matched to a local file by content
    FOREIGN = "foreign"  # seen in a listing; syncd neither uploaded nor adopted it


@dataclass(frozen=True, slots=True)
class LedgerImage:
    """The ledger's record of one remote image."""

    image_id: str
    sha256: str | None
    owner: ImageOwner
    tag_ids: frozenset[str] = frozenset()


@dataclass(frozen=True)
class LedgerView:
    """What the planner needs from the ledger: image ownership and hashes, and history.

    `knows_files` is True when an earlier run mirrored files from this root (the ledger holds
    images syncd uploaded or adopted); with it, a missing root marker refuses deletes.
    `created_tag_ids` are the tags syncd itself created (the only ones DeleteTag may remove).
    Keys of `images` are lower-case image ids (the planner looks remote ids up lower-cased).
    `ledger_id` is this ledger's random id: uploads carry it as metadata, and an image carrying it
    is this ledger's even before its upload's answer was recorded. Empty: no id (nothing matches).
    """

    images: Mapping[str, LedgerImage] = field(default_factory=dict, hash=False)
    created_tag_ids: frozenset[str] = frozenset()
    ledger_id: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "images", MappingProxyType(dict(self.images)))

    @property
    def knows_files(self) -> bool:
        return any(i.owner is not ImageOwner.FOREIGN for i in self.images.values())
