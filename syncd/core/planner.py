"""The planner: what must change in the project so it mirrors the tree. A pure function, no I/O.

Public names: plan, Plan, CreateTag, Upload, Adopt, RemoveTags, AddTags, EditRegions, DeleteImage,
DeleteTag, Action, Conflict, ConflictKind, Kept, KeepReason, DeleteReason, GuardReason,
RefusedDeletes, FRACTION_GUARD_FLOOR.

`plan(local, ledger, remote, mirror, allow_mass_delete=False)` first pairs local files and remote
images by content (sha256) into three buckets, like rclone's matchListings:
- only local  -> Upload (one image per distinct content, carrying every folder's tag);
- both        -> Adopt if the image is not syncd's yet, then RemoveTags / AddTags toward the tree
                 (a moved or renamed file, or a renamed folder, is a retag, never a re-upload);
- only remote -> DeleteImage under `delete: mirror`, if the image is this ledger's (it uploaded or
                 adopted it, or the image carries this ledger's random id) or
                 `adopt_foreign_images` is on; otherwise kept (FOREIGN). The mirror's name
                 proves nothing: two installs may share it.
Policy comes second and works on those buckets. Rules, each with its test in tests/test_planner.py:
- The same bytes in two folders: one image with both tags (Multilabel); a Conflict (Multiclass,
  where an image carries one tag), and that content is neither uploaded, retagged nor deleted.
- The Negative tag stands alone (ErrorNegativeAndRegularTagOnSameImage): the same bytes in the
  negative folder and a regular one is a Conflict.
- Over 100 tags on one image ([D] «Max tags per image (classification) 100») is a Conflict.
- Tag names compare case-insensitively and in NFC: `Dog/` and `dog/` are one tag; an existing
  remote spelling wins, else the first local one (by path); a TAGS_MERGED note says so.
- A remote image whose sha256 is unknown (not in the ledger, not hashed) is never paired, retagged
  or deleted: it is listed in `Plan.unidentified` (hash its original to resolve it).
- A content that changed in place is a new upload; the old image is only-remote (deleted under
  mirror). Remote drift (tags changed or removed in the portal, an image or tag deleted) shows up
  in these buckets and is repaired toward the tree.
- Tags are created before use; more tags than `max_tags_per_project` is reported (TAG_QUOTA).
- DeleteTag (only with `tags.delete_empty_tags` under mirror, from a complete listing) removes a
  regular tag syncd created that no image would carry after the plan.

Object detection (`regions` given: a detection mirror, syncd.detection read the annotations):
- Folders carry no tags; each file wants the tags of its boxes' classes (created if missing), and
  its boxes. A new content is uploaded with its boxes in the create call (`Upload.regions`).
- An image already there is never retagged: its regions are diffed (core.regions.diff_regions)
  into EditRegions (deletes, then creates); an unchanged box keeps its region id, an edited one is
  one delete and one create, and the image is never uploaded again.
- A file with no annotation wants no boxes. A path missing from `regions` while others are there
  is no different; a file whose annotation cannot be used is a problem file (never here).
- The same bytes in two files whose annotations want different boxes is a Conflict
  (REGIONS_DIFFER): that content is neither uploaded nor edited.

The mass-delete guard is decided here, where deletes are decided: see GuardReason. When it trips,
no image or tag is deleted, the rest of the plan stands, and `Plan.refused` says why and how to
override (`--allow-mass-delete`, this function's `allow_mass_delete`). Only the size guards
(max_delete, max_delete_fraction) can be overridden; the reasons that mean "the tree is not what
it seems" (root missing or empty, marker missing or of another project, read errors) cannot, and
the message says what to check instead.

Execution order is `Plan.actions`: CreateTag, Adopt, Upload, RemoveTags, AddTags, DeleteImage,
DeleteTag. RemoveTags comes before AddTags so a move between the negative folder and a regular one
(or between classes of a Multiclass project) never holds both tags at once. Deletes come last; the
executor skips them if anything earlier failed.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Container, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from itertools import groupby

from syncd.core.limits import MAX_TAGS_PER_IMAGE
from syncd.core.mapping import tag_key
from syncd.core.model import (
    SYNCD_METADATA_KEY,
    ClassificationType,
    ImageOwner,
    LedgerView,
    LocalFile,
    LocalSnapshot,
    MarkerState,
    RemoteImage,
    RemoteRegion,
    RemoteSnapshot,
    RemoteTag,
    TagType,
)
from syncd.core.policy import DeletePolicy, MirrorPolicy
from syncd.core.regions import Region, diff_regions, region_keys, remote_box

# The fraction rule of the guard only counts when more than this many images would go, so a
# small project can still lose a file or two (the root-empty rule covers "all of them").
FRACTION_GUARD_FLOOR = 5


# --- actions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreateTag:
    """Create a tag (names are unique case-insensitively; the executor resolves names to ids)."""

    name: str
    type: TagType = TagType.REGULAR


@dataclass(frozen=True, slots=True)  # one per new content: 100k on a first sync
class Upload:
    """Upload one content. `paths` are every local file with these bytes (read any one);
    `tag_names` may name tags created by this plan; `metadata` is batch-constant (syncd's mark).
    """

    sha256: str
    paths: tuple[str, ...]
    size: int
    tag_names: tuple[str, ...]
    metadata: tuple[tuple[str, str], ...]
    regions: tuple[Region, ...] = ()  # object detection: the boxes sent in the create call


@dataclass(frozen=True)
class Adopt:
    """Take an image found in the project as this mirror's: it holds local content `sha256`.

    The ledger records it; the executor may also stamp syncd's metadata on it.
    """

    image_id: str
    sha256: str


@dataclass(frozen=True)
class RemoveTags:
    image_id: str
    tag_ids: tuple[str, ...]
    tag_names: tuple[str, ...]  # for messages only


@dataclass(frozen=True)
class AddTags:
    image_id: str
    tag_names: tuple[str, ...]  # may name tags created by this plan


@dataclass(frozen=True)
class EditRegions:
    """Change one image's boxes: delete `delete` (by region id; `deleted` is each as a tag name
    and box, for messages), then create `create`. `paths` are the files the boxes are read for."""

    image_id: str
    paths: tuple[str, ...]
    delete: tuple[RemoteRegion, ...]
    deleted: tuple[Region, ...]
    create: tuple[Region, ...]


class DeleteReason(enum.StrEnum):
    NO_LOCAL_FILE = "no_local_file"  # no file under the root has these bytes any more
    DUPLICATE_CONTENT = "duplicate_content"  # a second image of bytes another image holds


@dataclass(frozen=True)
class DeleteImage:
    image_id: str
    reason: DeleteReason
    sha256: str


@dataclass(frozen=True)
class DeleteTag:
    tag_id: str
    name: str


Action = CreateTag | Adopt | Upload | EditRegions | RemoveTags | AddTags | DeleteImage | DeleteTag


# --- what the plan reports --------------------------------------------------------------------


class ConflictKind(enum.StrEnum):
    """Why some content is not mirrored as asked, or a note about how it is (`blocking`)."""

    MULTICLASS_TAGS = "multiclass_tags"
    NEGATIVE_AND_REGULAR = "negative_and_regular"
    TOO_MANY_TAGS = "too_many_tags"
    TAG_TYPE = "tag_type"  # a wanted regular tag is a Negative/GeneralProduct tag remotely
    TAG_QUOTA = "tag_quota"  # note: the project would hold more tags than allowed
    TAGS_MERGED = "tags_merged"  # note: two spellings, one tag
    REGIONS_DIFFER = "regions_differ"  # the same bytes, annotated with different boxes

    @property
    def blocking(self) -> bool:
        """True when the content involved is left alone (not uploaded, retagged or deleted)."""
        return self not in (ConflictKind.TAG_QUOTA, ConflictKind.TAGS_MERGED)


@dataclass(frozen=True)
class Conflict:
    kind: ConflictKind
    detail: str
    paths: tuple[str, ...] = ()
    sha256: str | None = None


class KeepReason(enum.StrEnum):
    POLICY_KEEP = "policy_keep"  # delete: keep
    FOREIGN = "foreign"  # not syncd's, and adopt_foreign_images is off
    LOCAL_PROBLEM = "local_problem"  # the bytes are still under the root, in a file with a problem
    NOT_LISTED = "not_listed"  # a foreign image known only from the ledger, not a fresh listing


@dataclass(frozen=True)
class Kept:
    """A remote image with no wanted local counterpart that the plan leaves in place."""

    image_id: str
    reason: KeepReason


class GuardReason(enum.StrEnum):
    ROOT_MISSING = "root_missing"
    ROOT_EMPTY = "root_empty"
    MARKER_MISSING = "marker_missing"
    MARKER_FOREIGN = "marker_foreign"
    READ_ERRORS = "read_errors"
    TOO_MANY = "too_many"
    TOO_LARGE_FRACTION = "too_large_fraction"

    @property
    def overridable(self) -> bool:
        """True only for the size guards. The others say the tree is not what it seems (not
        mounted, moved, unreadable): no flag may turn that into deletes, the user fixes the tree.
        """
        return self in (GuardReason.TOO_MANY, GuardReason.TOO_LARGE_FRACTION)


# What each reason means and what to check instead; {root} and {project_id} are the mirror's.
_GUARD_TEXT = {
    GuardReason.ROOT_MISSING: "the root folder {root} does not exist (mount it, or fix `root` in "
    "the config)",
    GuardReason.ROOT_EMPTY: "the root folder {root} holds no files (is it an unmounted mount "
    "point? mount it; to empty the project on purpose, delete its images in the Custom Vision "
    "portal)",
    GuardReason.MARKER_MISSING: "the root marker {root}/.syncd-root is missing, yet this mirror "
    "synced before (is the root mounted, and is it the right folder? if it is, restore the "
    "marker: `echo {project_id} > {root}/.syncd-root`)",
    GuardReason.MARKER_FOREIGN: "the root marker {root}/.syncd-root names another project (check "
    "`root` and `project_id`; delete the marker if the folder really moved projects)",
    GuardReason.READ_ERRORS: "some files or folders could not be read this run (fix the read "
    "errors listed, then run again)",
    GuardReason.TOO_MANY: "more images than guard.max_delete",
    GuardReason.TOO_LARGE_FRACTION: "a larger share of the project than guard.max_delete_fraction",
}


@dataclass(frozen=True)
class RefusedDeletes:
    """Deletes the guard held back, why, and how to go ahead anyway."""

    reasons: tuple[GuardReason, ...]
    images: tuple[DeleteImage, ...]
    tags: tuple[DeleteTag, ...]
    message: str

    @property
    def overridable(self) -> bool:
        return all(r.overridable for r in self.reasons)


@dataclass(frozen=True)
class Plan:
    """Frozen action records plus what was refused, kept or in conflict."""

    create_tags: tuple[CreateTag, ...] = ()
    adopts: tuple[Adopt, ...] = ()
    uploads: tuple[Upload, ...] = ()
    edit_regions: tuple[EditRegions, ...] = ()
    remove_tags: tuple[RemoveTags, ...] = ()
    add_tags: tuple[AddTags, ...] = ()
    delete_images: tuple[DeleteImage, ...] = ()
    delete_tags: tuple[DeleteTag, ...] = ()
    refused: RefusedDeletes | None = None
    overridden: tuple[GuardReason, ...] = ()  # guard reasons set aside by allow_mass_delete
    conflicts: tuple[Conflict, ...] = ()
    kept: tuple[Kept, ...] = ()
    unidentified: tuple[str, ...] = ()  # remote image ids whose content is unknown

    @property
    def actions(self) -> tuple[Action, ...]:
        """Every action, in execution order (deletes last)."""
        return (
            *self.create_tags,
            *self.adopts,
            *self.uploads,
            *self.edit_regions,
            *self.remove_tags,
            *self.add_tags,
            *self.delete_images,
            *self.delete_tags,
        )

    @property
    def is_empty(self) -> bool:
        """True when there is nothing to send (refused deletes aside)."""
        return not self.actions

    def counts(self) -> dict[str, int]:
        """Return the number of each kind of action and report, for summaries."""
        return {
            "create_tags": len(self.create_tags),
            "adopts": len(self.adopts),
            "uploads": len(self.uploads),
            "edit_regions": len(self.edit_regions),
            "regions_created": sum(len(e.create) for e in self.edit_regions),
            "regions_deleted": sum(len(e.delete) for e in self.edit_regions),
            "remove_tags": len(self.remove_tags),
            "add_tags": len(self.add_tags),
            "delete_images": len(self.delete_images),
            "delete_tags": len(self.delete_tags),
            "refused_deletes": len(self.refused.images) if self.refused else 0,
            "conflicts": sum(1 for c in self.conflicts if c.kind.blocking),
            "kept": len(self.kept),
            "unidentified": len(self.unidentified),
        }


# --- the planner ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)  # one per local content: 100k on a first sync
class _Wanted:
    """One distinct local content and the tags (by key) its files ask for."""

    sha256: str
    paths: tuple[str, ...]
    size: int
    keys: frozenset[str]


@dataclass(frozen=True)
class _Held:
    """One remote image with known content."""

    image: RemoteImage
    sha256: str
    owned: bool


class _Tags:
    """The project's tags by key and id, and the display name for every key."""

    def __init__(self, remote: RemoteSnapshot, mirror: MirrorPolicy) -> None:
        self.by_key = {tag_key(t.name): t for t in sorted(remote.tags, key=lambda t: t.tag_id)}
        self.by_id = {t.tag_id.lower(): t for t in remote.tags}
        negatives = sorted(
            (t for t in remote.tags if t.type is TagType.NEGATIVE), key=lambda t: t.tag_id
        )
        self.negative: RemoteTag | None = negatives[0] if negatives else None
        self.negative_name = self.negative.name if self.negative else mirror.tags.negative_tag_name
        self.negative_key = tag_key(self.negative_name)
        self.names = {key: tag.name for key, tag in self.by_key.items()}

    def keys_of(self, image: RemoteImage) -> dict[str, str]:
        """Return key -> tag id for the image's tags that exist in the project."""
        out = {}
        for tag_id in image.tag_ids:
            tag = self.by_id.get(tag_id.lower())
            if tag is not None:
                out[tag_key(tag.name)] = tag.tag_id
        return out

    def display(self, keys: Iterable[str]) -> tuple[str, ...]:
        return tuple(sorted((self.names[k] for k in keys), key=tag_key))


def _wanted(
    local: LocalSnapshot, remote: RemoteSnapshot, tags: _Tags, conflicts: list[Conflict]
) -> Iterator[_Wanted]:
    """Group good local files by content; yield what each content wants, in content order,
    conflicts aside (appended to `conflicts` as they are found). One content at a time: a
    first sync's 100k _Wanted and their table, held at once, were ~10 MB at its peak."""
    by_path = sorted(local.good_files, key=lambda f: f.path)
    spellings: dict[str, dict[str, list[str]]] = defaultdict(dict)
    for f in by_path:
        for name in f.tags:
            spellings[tag_key(name)].setdefault(name, []).append(f.path)
    for key, names in sorted(spellings.items()):
        tags.names.setdefault(key, next(iter(names)))
        if len(names) > 1:
            # A path of each spelling first: a message that names only the first few shows them all.
            firsts = [ps[0] for ps in names.values()]
            paths = (*firsts, *(p for ps in names.values() for p in ps[1:]))
            detail = f"{sorted(names)} are one tag, named {tags.names[key]!r}"
            conflicts.append(Conflict(ConflictKind.TAGS_MERGED, detail, paths))
    tags.names.setdefault(tags.negative_key, tags.negative_name)

    # A tree has a few tag sets and many files: each content shares its set's one frozenset
    # (100k contents in 100 folders held 100k equal sets, ~20 MB, at a first sync's peak).
    shared_keys: dict[frozenset[str], frozenset[str]] = {}
    # By content, each content's files in path order (the sort is stable): one group at a time,
    # not a list per content held for all (100k lists, ~13 MB at a first sync's peak).
    for sha, group in groupby(sorted(by_path, key=_content), key=_content):
        files = list(group)
        paths = tuple(f.path for f in files)
        negative = any(f.negative for f in files)
        keys = frozenset(tag_key(name) for f in files for name in f.tags)
        keys = shared_keys.setdefault(keys, keys)
        problem = _content_problem(negative, keys, remote.classification, tags)
        if problem is not None:
            kind, detail = problem
            conflicts.append(Conflict(kind, detail, paths, sha))
            continue
        wanted_keys = frozenset({tags.negative_key}) if negative else keys
        wanted_keys = shared_keys.setdefault(wanted_keys, wanted_keys)
        yield _Wanted(sha, paths, files[0].size, wanted_keys)


def _content(f: LocalFile) -> str:
    return f.sha256 or ""


def _content_problem(
    negative: bool, keys: frozenset[str], classification: ClassificationType, tags: _Tags
) -> tuple[ConflictKind, str] | None:
    names = sorted(tags.names[k] for k in keys)
    if negative and keys:
        return ConflictKind.NEGATIVE_AND_REGULAR, f"the same bytes are negative and tagged {names}"
    if classification is ClassificationType.MULTICLASS and len(keys) > 1:
        return (
            ConflictKind.MULTICLASS_TAGS,
            f"a Multiclass image takes one tag, these bytes want {names}",
        )
    if len(keys) > MAX_TAGS_PER_IMAGE:
        return ConflictKind.TOO_MANY_TAGS, f"{len(keys)} tags, an image takes {MAX_TAGS_PER_IMAGE}"
    for key in sorted(keys):
        remote_tag = tags.by_key.get(key)
        if remote_tag is not None and remote_tag.type is not TagType.REGULAR:
            return ConflictKind.TAG_TYPE, f"{remote_tag.name!r} is a {remote_tag.type} tag"
    if negative and tags.negative is None:
        taken = tags.by_key.get(tags.negative_key)
        if taken is not None:
            detail = f"the Negative tag's name {taken.name!r} is taken by a {taken.type} tag"
            return ConflictKind.TAG_TYPE, detail
    return None


def _held(remote: RemoteSnapshot, ledger: LedgerView) -> tuple[dict[str, list[_Held]], list[str]]:
    """Group remote images by known content (owned first); list the ones of unknown content."""
    by_sha: dict[str, list[_Held]] = defaultdict(list)
    unidentified = []
    for image in sorted(remote.images, key=lambda i: i.image_id):
        known = ledger.images.get(image.image_id.lower())
        sha = image.sha256 or (known.sha256 if known else None)
        # Ownership is proven by this ledger: its record, or its own random id in the metadata
        # (an upload whose answer a crash lost). Never by the mirror's name: two installs may
        # share it, and a rebuilt ledger has a new id, so it deletes nothing it did not record.
        marked = (
            bool(ledger.ledger_id) and image.metadata.get(SYNCD_METADATA_KEY) == ledger.ledger_id
        )
        owned = (known is not None and known.owner is not ImageOwner.FOREIGN) or marked
        if sha is None:
            unidentified.append(image.image_id)
        else:
            by_sha[sha].append(_Held(image, sha, owned))
    for held in by_sha.values():
        held.sort(key=lambda h: (not h.owned, h.image.image_id))
    return by_sha, unidentified


def plan(
    local: LocalSnapshot,
    ledger: LedgerView,
    remote: RemoteSnapshot,
    mirror: MirrorPolicy,
    *,
    allow_mass_delete: bool = False,
    regions: Mapping[str, tuple[Region, ...]] | None = None,
    uploaded: Container[str] = frozenset(),
) -> Plan:
    """Return the Plan that makes `remote` mirror `local` under `mirror`'s policy.

    `regions` (path -> its annotation's boxes) makes it a detection mirror's plan: see the
    module's notes. None: a classification mirror.
    `uploaded`: contents the project does not hold for which no Upload is to be made (a streamed
    first sync's, tried already this run); the rest of the plan counts them as it counts any
    upload (their tags are wanted and kept). 100k Uploads at a first sync, built only to be
    dropped, were its peak (~13 MB)."""
    conflicts: list[Conflict] = []
    tags = _Tags(remote, mirror)
    if regions is not None:
        local = _with_region_tags(local, regions)
    held, unidentified = _held(remote, ledger)
    # Bytes in a file with a problem: protected from deletes unless a good file wants them too.
    # (Bytes in conflict are added after the loop; the set never holds the wanted: 100k
    # contents at a first sync.)
    protected = {f.sha256 for f in local.files if f.sha256 and not f.ok}
    wanted_held: set[str] = set()  # wanted contents the project holds (their extras go)
    wanted_keys: set[frozenset[str]] = set()  # the tag sets wanted (shared: a few)
    region_conflicts: list[Conflict] = []  # after the others, as the boxes are checked last

    adopts, uploads, removes, adds = [], [], [], []
    metadata = ((SYNCD_METADATA_KEY, ledger.ledger_id),) if ledger.ledger_id else ()
    after: list[frozenset[str]] = []  # tag keys each surviving image will carry
    edits: list[EditRegions] = []
    # One tuple of tag names per tag set, shared by its uploads (the sets are shared already:
    # 100k uploads held 100k equal tuples, ~5 MB at a first sync's peak).
    upload_names: dict[frozenset[str], tuple[str, ...]] = {}
    for want in _wanted(local, remote, tags, conflicts):
        sha = want.sha256
        boxes: tuple[Region, ...] = ()
        if regions is not None:
            found = _wanted_boxes(want, regions, region_conflicts)
            if found is None:
                continue
            boxes = found
        protected.discard(sha)
        wanted_keys.add(want.keys)
        if sha not in held:
            after.append(want.keys)
            if sha in uploaded:
                continue
            names = upload_names.get(want.keys)
            if names is None:
                names = upload_names[want.keys] = tags.display(want.keys)
            uploads.append(Upload(sha, want.paths, want.size, names, metadata, boxes))
            continue
        wanted_held.add(sha)
        keeper = held[sha][0]
        image_id = keeper.image.image_id
        if not keeper.owned:
            adopts.append(Adopt(image_id, sha))
        if regions is not None:
            edit = _edit_regions(keeper.image, want.paths, boxes, tags)
            if edit is not None:
                edits.append(edit)
            after.append(want.keys)
            continue
        current = tags.keys_of(keeper.image)
        gone = sorted(set(current) - want.keys)
        if gone:
            ids = tuple(current[k] for k in gone)
            removes.append(RemoveTags(image_id, ids, tags.display(gone)))
        if want.keys - current.keys():
            adds.append(AddTags(image_id, tags.display(want.keys - current.keys())))
        after.append(want.keys)

    conflicts += region_conflicts
    protected.update(c.sha256 for c in conflicts if c.sha256 is not None)

    deletes, kept = [], []
    for sha, images in sorted(held.items()):
        is_wanted = sha in wanted_held
        extras = images[1:] if is_wanted else images
        reason = DeleteReason.DUPLICATE_CONTENT if is_wanted else DeleteReason.NO_LOCAL_FILE
        for h in extras:
            keep = _keep_reason(h, sha in protected, remote, mirror)
            if keep is None:
                deletes.append(DeleteImage(h.image.image_id, reason, sha))
            else:
                kept.append(Kept(h.image.image_id, keep))
                after.append(frozenset(tags.keys_of(h.image)))
    unknown = set(unidentified)
    after += [frozenset(tags.keys_of(i)) for i in remote.images if i.image_id in unknown]

    creates = _creates(wanted_keys, tags)
    if len(remote.tags) + len(creates) > mirror.max_tags_per_project:
        detail = (
            f"the project would hold {len(remote.tags) + len(creates)} tags, "
            f"max_tags_per_project is {mirror.max_tags_per_project}"
        )
        conflicts.append(Conflict(ConflictKind.TAG_QUOTA, detail))
    delete_tags = _empty_tags(after, ledger, remote, mirror, tags)

    refused: RefusedDeletes | None = None
    overridden: tuple[GuardReason, ...] = ()
    if deletes or delete_tags:
        reasons = _guard(local, ledger, remote, mirror, len(deletes))
        if reasons and allow_mass_delete and all(r.overridable for r in reasons):
            overridden = reasons
        elif reasons:
            refused = _refusal(reasons, deletes, delete_tags, mirror)
            deletes, delete_tags = [], []

    return Plan(
        create_tags=creates,
        adopts=tuple(adopts),
        uploads=tuple(uploads),
        edit_regions=tuple(edits),
        remove_tags=tuple(removes),
        add_tags=tuple(adds),
        delete_images=tuple(deletes),
        delete_tags=tuple(delete_tags),
        refused=refused,
        overridden=overridden,
        conflicts=tuple(conflicts),
        kept=tuple(kept),
        unidentified=tuple(unidentified),
    )


def _with_region_tags(
    local: LocalSnapshot, regions: Mapping[str, tuple[Region, ...]]
) -> LocalSnapshot:
    """The snapshot with each good file wanting its boxes' tags (a detection mirror's folders
    carry none): one name per tag key, the first spelling by box order."""
    files = []
    for f in local.files:
        names: dict[str, str] = {}
        for region in regions.get(f.path, ()):
            names.setdefault(tag_key(region.tag), region.tag)
        files.append(
            replace(f, tags=tuple(names[k] for k in sorted(names)), negative=False) if f.ok else f
        )
    return replace(local, files=tuple(files))


def _wanted_boxes(
    want: _Wanted, regions: Mapping[str, tuple[Region, ...]], conflicts: list[Conflict]
) -> tuple[Region, ...] | None:
    """The boxes a content's files want; None (and a Conflict) when files of the same bytes
    want different boxes: that content is then neither uploaded nor edited."""
    first = regions.get(want.paths[0], ())
    if any(region_keys(regions.get(p, ())) != region_keys(first) for p in want.paths[1:]):
        detail = "the same bytes are annotated with different boxes"
        conflicts.append(Conflict(ConflictKind.REGIONS_DIFFER, detail, want.paths, want.sha256))
        return None
    return first


def _edit_regions(
    image: RemoteImage, paths: tuple[str, ...], desired: tuple[Region, ...], tags: _Tags
) -> EditRegions | None:
    """The region changes that give `image` the boxes `desired`, or None if it has them."""
    current = []
    for region in image.regions:
        tag = tags.by_id.get(region.tag_id.lower())
        current.append((tag_key(tag.name) if tag else None, region))
    diff = diff_regions(desired, current)
    if diff.empty:
        return None
    deleted = tuple(Region(_tag_name(r, tags), remote_box(r)) for r in diff.delete)
    return EditRegions(image.image_id, paths, diff.delete, deleted, diff.create)


def _tag_name(region: RemoteRegion, tags: _Tags) -> str:
    tag = tags.by_id.get(region.tag_id.lower())
    return tag.name if tag is not None else region.tag_id


def _keep_reason(
    held: _Held, protected: bool, remote: RemoteSnapshot, mirror: MirrorPolicy
) -> KeepReason | None:
    """Return why an only-remote image stays, or None when it is to be deleted."""
    if protected:
        return KeepReason.LOCAL_PROBLEM
    if mirror.delete is not DeletePolicy.MIRROR:
        return KeepReason.POLICY_KEEP
    if held.owned:
        return None
    if not mirror.adopt_foreign_images:
        return KeepReason.FOREIGN
    return None if remote.complete else KeepReason.NOT_LISTED


def _creates(wanted_keys: Iterable[frozenset[str]], tags: _Tags) -> tuple[CreateTag, ...]:
    keys: set[str] = set().union(*wanted_keys)
    creates = []
    if tags.negative_key in keys and tags.negative is None:
        keys.discard(tags.negative_key)
        creates.append(CreateTag(tags.negative_name, TagType.NEGATIVE))
    missing = sorted(k for k in keys if k not in tags.by_key)
    creates += [CreateTag(tags.names[k], TagType.REGULAR) for k in missing]
    return tuple(creates)


def _empty_tags(
    after: list[frozenset[str]],
    ledger: LedgerView,
    remote: RemoteSnapshot,
    mirror: MirrorPolicy,
    tags: _Tags,
) -> list[DeleteTag]:
    """Return the tags syncd created that no image would carry after the plan (if enabled)."""
    if not (
        mirror.tags.delete_empty_tags and mirror.delete is DeletePolicy.MIRROR and remote.complete
    ):
        return []
    used = set().union(*after) if after else set()
    created = {t.lower() for t in ledger.created_tag_ids}
    return [
        DeleteTag(tag.tag_id, tag.name)
        for key, tag in sorted(tags.by_key.items())
        if tag.type is TagType.REGULAR and tag.tag_id.lower() in created and key not in used
    ]


def _guard(
    local: LocalSnapshot,
    ledger: LedgerView,
    remote: RemoteSnapshot,
    mirror: MirrorPolicy,
    deleting: int,
) -> tuple[GuardReason, ...]:
    reasons = []
    if not local.root_exists:
        reasons.append(GuardReason.ROOT_MISSING)
    elif not local.files:
        reasons.append(GuardReason.ROOT_EMPTY)
    if local.marker is MarkerState.FOREIGN:
        reasons.append(GuardReason.MARKER_FOREIGN)
    elif local.root_exists and local.marker is MarkerState.ABSENT and ledger.knows_files:
        reasons.append(GuardReason.MARKER_MISSING)
    if local.has_read_errors:
        reasons.append(GuardReason.READ_ERRORS)
    if deleting > mirror.guard.max_delete:
        reasons.append(GuardReason.TOO_MANY)
    total = len(remote.images)
    if (
        deleting > FRACTION_GUARD_FLOOR
        and total
        and deleting / total > mirror.guard.max_delete_fraction
    ):
        reasons.append(GuardReason.TOO_LARGE_FRACTION)
    return tuple(reasons)


def _refusal(
    reasons: tuple[GuardReason, ...],
    deletes: list[DeleteImage],
    delete_tags: list[DeleteTag],
    mirror: MirrorPolicy,
) -> RefusedDeletes:
    root = str(mirror.root).rstrip("/") or "/"
    why = "; ".join(_GUARD_TEXT[r].format(root=root, project_id=mirror.project_id) for r in reasons)
    what = f"{len(deletes)} image(s)" + (f" and {len(delete_tags)} tag(s)" if delete_tags else "")
    message = f"refused to delete {what}: {why}."
    if all(r.overridable for r in reasons):
        message += " If that is what you want, run again with --allow-mass-delete."
    return RefusedDeletes(reasons, tuple(deletes), tuple(delete_tags), message)
