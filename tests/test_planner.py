"""The planner as a pure function: one table row per rule, then a convergence property.

Local snapshots, ledger views and remote snapshots are built directly (no disk, no service): the
planner does no I/O, so its inputs are plain values.
"""

from __future__ import annotations

import dataclasses
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.config import GuardConfig, MirrorConfig, TagConfig
from syncd.core.mapping import TagMapper, tag_key
from syncd.core.model import (
    ClassificationType,
    ImageOwner,
    LedgerImage,
    LedgerView,
    LocalFile,
    LocalSnapshot,
    MarkerState,
    Problem,
    ProblemKind,
    RemoteImage,
    RemoteSnapshot,
    RemoteTag,
    Skipped,
    TagType,
)
from syncd.core.planner import (
    AddTags,
    Adopt,
    ConflictKind,
    CreateTag,
    DeleteImage,
    DeleteReason,
    DeleteTag,
    GuardReason,
    KeepReason,
    Plan,
    RemoveTags,
    Upload,
    plan,
)
from syncd.core.policy import DeletePolicy

PID = "11111111-2222-3333-4444-555555555555"
LID = "0123456789abcdef0123456789abcdef"  # this ledger's random id
OTHER_LID = "fedcba9876543210fedcba9876543210"  # another install's ledger, same mirror name
MULTI = ClassificationType.MULTILABEL
DOG = RemoteTag("t-dog", "Dog")
CAT = RemoteTag("t-cat", "Cat")
NEG = RemoteTag("t-neg", "Negative", TagType.NEGATIVE)


def mirror(**changes: object) -> MirrorConfig:
    base = MirrorConfig(root=Path("/data"), project_id=PID, delete=DeletePolicy.MIRROR)
    return dataclasses.replace(base, **changes)


def lf(path: str, sha: str, *tags: str, negative: bool = False, problem: Problem | None = None):
    return LocalFile(path, 10, 1, 1, sha, tuple(tags), negative, problem, "jpeg", 10**12)


def local(*files: LocalFile, marker: MarkerState = MarkerState.PRESENT, **kw: object):
    return LocalSnapshot(root="/data", root_exists=True, marker=marker, files=files, **kw)


def img(image_id: str, sha: str | None, *tags: RemoteTag, meta: dict | None = None):
    return RemoteImage(image_id, frozenset(t.tag_id for t in tags), meta or {}, sha)


def remote(*images: RemoteImage, tags=(DOG, CAT, NEG), classification=MULTI, complete=True):
    return RemoteSnapshot(PID, classification, tuple(tags), images, complete)


def owned(*ids: str, owner: ImageOwner = ImageOwner.SYNCD) -> LedgerView:
    return LedgerView(images={i: LedgerImage(i, None, owner) for i in ids}, ledger_id=LID)


NO_LEDGER = LedgerView(ledger_id=LID)


# --- the table --------------------------------------------------------------------------------


def _case(name, local_, remote_, expected, ledger=NO_LEDGER, mirror_=None, **kw):
    return pytest.param(local_, remote_, ledger, mirror_ or mirror(), kw, expected, id=name)


def _upload(sha: str, paths: tuple[str, ...], *tags: str) -> Upload:
    return Upload(sha, paths, 10, tags, (("syncd", LID),))


CASES = [
    _case(
        "new file in a folder: upload with its tag",
        local(lf("Dog/a.jpg", "A", "Dog")),
        remote(),
        [_upload("A", ("Dog/a.jpg",), "Dog")],
    ),
    _case(
        "nothing changed: nothing to send",
        local(lf("Dog/a.jpg", "A", "Dog")),
        remote(img("i1", "A", DOG)),
        [],
        ledger=owned("i1"),
    ),
    _case(
        "untagged root file: uploaded without tags",
        local(lf("a.jpg", "A")),
        remote(),
        [
            _upload(
                "A",
                ("a.jpg",),
            )
        ],
    ),
    _case(
        "new folder: tag created before the upload that uses it",
        local(lf("Bird/b.jpg", "B", "Bird")),
        remote(),
        [CreateTag("Bird"), _upload("B", ("Bird/b.jpg",), "Bird")],
    ),
    _case(
        "moved Cat -> Dog: retag, never re-upload",
        local(lf("Dog/a.jpg", "A", "Dog")),
        remote(img("i1", "A", CAT)),
        [RemoveTags("i1", ("t-cat",), ("Cat",)), AddTags("i1", ("Dog",))],
        ledger=owned("i1"),
    ),
    _case(
        "renamed file in the same folder: nothing to send",
        local(lf("Dog/renamed.jpg", "A", "Dog")),
        remote(img("i1", "A", DOG)),
        [],
        ledger=owned("i1"),
    ),
    _case(
        "renamed folder Dog -> Hound: create tag, retag every image",
        local(lf("Hound/a.jpg", "A", "Hound"), lf("Hound/b.jpg", "B", "Hound")),
        remote(img("i1", "A", DOG), img("i2", "B", DOG)),
        [
            CreateTag("Hound"),
            RemoveTags("i1", ("t-dog",), ("Dog",)),
            RemoveTags("i2", ("t-dog",), ("Dog",)),
            AddTags("i1", ("Hound",)),
            AddTags("i2", ("Hound",)),
        ],
        ledger=owned("i1", "i2"),
    ),
    _case(
        "same bytes in two folders (multilabel): one image, both tags",
        local(lf("Cat/x.jpg", "A", "Cat"), lf("Dog/x.jpg", "A", "Dog")),
        remote(),
        [_upload("A", ("Cat/x.jpg", "Dog/x.jpg"), "Cat", "Dog")],
    ),
    _case(
        "same bytes in two folders, already one image with one tag: add the other",
        local(lf("Cat/x.jpg", "A", "Cat"), lf("Dog/x.jpg", "A", "Dog")),
        remote(img("i1", "A", DOG)),
        [AddTags("i1", ("Cat",))],
        ledger=owned("i1"),
    ),
    _case(
        "Dog/ and dog/ are one tag; the remote spelling wins",
        local(lf("dog/a.jpg", "A", "dog"), lf("Dog/b.jpg", "B", "Dog")),
        remote(img("i1", "A", DOG)),
        [_upload("B", ("Dog/b.jpg",), "Dog")],
        ledger=owned("i1"),
    ),
    _case(
        "tag names compare in NFC: a decomposed é is the existing tag",
        local(lf("Cafe\u0301/a.jpg", "A", "Caf\u00e9")),
        remote(
            img("i1", "A", RemoteTag("t-cafe", "CAF\u00c9")),
            tags=(RemoteTag("t-cafe", "CAF\u00c9"),),
        ),
        [],
        ledger=owned("i1"),
    ),
    _case(
        "content changed in place (mirror): new upload, old image deleted",
        local(lf("Dog/a.jpg", "A2", "Dog")),
        remote(img("i1", "A1", DOG)),
        [
            _upload("A2", ("Dog/a.jpg",), "Dog"),
            DeleteImage("i1", DeleteReason.NO_LOCAL_FILE, "A1"),
        ],
        ledger=owned("i1"),
    ),
    _case(
        "content changed in place (keep): new upload, old image kept",
        local(lf("Dog/a.jpg", "A2", "Dog")),
        remote(img("i1", "A1", DOG)),
        [_upload("A2", ("Dog/a.jpg",), "Dog")],
        ledger=owned("i1"),
        mirror_=mirror(delete=DeletePolicy.KEEP),
    ),
    _case(
        "file deleted (mirror): its image deleted",
        local(lf("Dog/a.jpg", "A", "Dog")),
        remote(img("i1", "A", DOG), img("i2", "B", DOG)),
        [DeleteImage("i2", DeleteReason.NO_LOCAL_FILE, "B")],
        ledger=owned("i1", "i2"),
    ),
    _case(
        "this ledger's id in the metadata marks an image as syncd's (an upload a crash left)",
        local(lf("Dog/a.jpg", "A", "Dog")),
        remote(img("i1", "A", DOG), img("i2", "B", DOG, meta={"syncd": LID})),
        [Adopt("i1", "A"), DeleteImage("i2", DeleteReason.NO_LOCAL_FILE, "B")],
    ),
    _case(
        "the mirror's name in the metadata proves nothing: another install's image is kept",
        local(lf("Dog/a.jpg", "A", "Dog")),
        remote(img("i1", "A", DOG), img("i2", "B", DOG, meta={"syncd": "default"})),
        [],
        ledger=owned("i1"),
    ),
    _case(
        "another ledger's id (same mirror name, or this ledger before it was lost): kept",
        local(lf("Dog/a.jpg", "A", "Dog")),
        remote(img("i1", "A", DOG), img("i2", "B", DOG, meta={"syncd": OTHER_LID})),
        [],
        ledger=owned("i1"),
    ),
    _case(
        "another ledger's image matching a local file: adopted, then this ledger's",
        local(lf("Dog/a.jpg", "A", "Dog")),
        remote(img("i1", "A", DOG, meta={"syncd": OTHER_LID})),
        [Adopt("i1", "A")],
    ),
    _case(
        "foreign image matching a local file: adopted, not uploaded again",
        local(lf("Dog/a.jpg", "A", "Dog")),
        remote(img("f1", "A")),
        [Adopt("f1", "A"), AddTags("f1", ("Dog",))],
    ),
    _case(
        "foreign image with no local file: never deleted by default",
        local(lf("Dog/a.jpg", "A", "Dog")),
        remote(img("i1", "A", DOG), img("f1", "F", CAT)),
        [],
        ledger=owned("i1"),
    ),
    _case(
        "foreign image with no local file, adopt_foreign_images: deleted under mirror",
        local(lf("Dog/a.jpg", "A", "Dog")),
        remote(img("i1", "A", DOG), img("f1", "F", CAT)),
        [DeleteImage("f1", DeleteReason.NO_LOCAL_FILE, "F")],
        ledger=owned("i1"),
        mirror_=mirror(adopt_foreign_images=True),
    ),
    _case(
        "drift: a tag removed in the portal is put back, a tag added there removed",
        local(lf("Dog/a.jpg", "A", "Dog")),
        remote(img("i1", "A", CAT)),
        [RemoveTags("i1", ("t-cat",), ("Cat",)), AddTags("i1", ("Dog",))],
        ledger=owned("i1"),
    ),
    _case(
        "drift: image deleted in the portal is uploaded again",
        local(lf("Dog/a.jpg", "A", "Dog")),
        remote(),
        [_upload("A", ("Dog/a.jpg",), "Dog")],
        ledger=owned("i1"),
    ),
    _case(
        "drift: tag deleted in the portal is created again and reapplied",
        local(lf("Dog/a.jpg", "A", "Dog")),
        remote(img("i1", "A", DOG), tags=(CAT,)),
        [CreateTag("Dog"), AddTags("i1", ("Dog",))],
        ledger=owned("i1"),
    ),
    _case(
        "negative folder: the project's Negative tag only",
        local(lf("_negative/n.jpg", "N", negative=True)),
        remote(),
        [_upload("N", ("_negative/n.jpg",), "Negative")],
    ),
    _case(
        "negative folder, project without a Negative tag: created with type Negative",
        local(lf("_negative/n.jpg", "N", negative=True)),
        remote(tags=(DOG,)),
        [CreateTag("Negative", TagType.NEGATIVE), _upload("N", ("_negative/n.jpg",), "Negative")],
    ),
    _case(
        "the project's Negative tag keeps its own name",
        local(lf("_negative/n.jpg", "N", negative=True)),
        remote(tags=(RemoteTag("t-bg", "Background", TagType.NEGATIVE),)),
        [_upload("N", ("_negative/n.jpg",), "Background")],
    ),
    _case(
        "moved Dog -> _negative: regular tag removed before Negative added",
        local(lf("_negative/a.jpg", "A", negative=True)),
        remote(img("i1", "A", DOG)),
        [RemoveTags("i1", ("t-dog",), ("Dog",)), AddTags("i1", ("Negative",))],
        ledger=owned("i1"),
    ),
    _case(
        "duplicate remote images of one content: the extra (syncd's) deleted",
        local(lf("Dog/a.jpg", "A", "Dog")),
        remote(img("i1", "A", DOG), img("i2", "A", DOG)),
        [DeleteImage("i2", DeleteReason.DUPLICATE_CONTENT, "A")],
        ledger=owned("i1", "i2"),
    ),
    _case(
        "empty folders and no files: nothing at all",
        local(),
        remote(tags=()),
        [],
    ),
    _case(
        "delete_empty_tags: a tag syncd created and nobody carries goes, after the images",
        local(lf("Dog/a.jpg", "A", "Dog")),
        remote(img("i1", "A", DOG), img("i2", "B", CAT)),
        [DeleteImage("i2", DeleteReason.NO_LOCAL_FILE, "B"), DeleteTag("t-cat", "Cat")],
        ledger=LedgerView(
            images={
                "i1": LedgerImage("i1", None, ImageOwner.SYNCD),
                "i2": LedgerImage("i2", None, ImageOwner.SYNCD),
            },
            created_tag_ids=frozenset({"t-cat", "t-dog"}),
        ),
        mirror_=mirror(tags=TagConfig(delete_empty_tags=True)),
    ),
    _case(
        "delete_empty_tags never removes a tag syncd did not create",
        local(lf("Dog/a.jpg", "A", "Dog")),
        remote(img("i1", "A", DOG)),
        [],
        ledger=owned("i1"),
        mirror_=mirror(tags=TagConfig(delete_empty_tags=True)),
    ),
    _case(
        "unknown content (not in ledger, not hashed): left alone",
        local(lf("Dog/a.jpg", "A", "Dog")),
        remote(img("i1", "A", DOG), img("u1", None, CAT, meta={"syncd": LID})),
        [],
        ledger=owned("i1"),
    ),
    _case(
        "file with a problem: its old image is protected, not deleted",
        local(lf("Dog/a.jpg", "A", problem=Problem(ProblemKind.BAD_TAG_NAME, "x"))),
        remote(img("i1", "A", DOG)),
        [],
        ledger=owned("i1"),
    ),
    _case(
        "cheap path (ledger's view of the project): foreign images are not deleted from it",
        local(lf("Dog/a.jpg", "A", "Dog")),
        remote(img("i1", "A", DOG), img("f1", "F"), complete=False),
        [],
        ledger=LedgerView(
            images={
                "i1": LedgerImage("i1", "A", ImageOwner.SYNCD),
                "f1": LedgerImage("f1", "F", ImageOwner.FOREIGN),
            },
            ledger_id=LID,
        ),
        mirror_=mirror(adopt_foreign_images=True),
    ),
]


@pytest.mark.parametrize(("local_", "remote_", "ledger", "mirror_", "kw", "expected"), CASES)
def test_plan_rules(local_, remote_, ledger, mirror_, kw, expected) -> None:
    result = plan(local_, ledger, remote_, mirror_, **kw)
    assert list(result.actions) == expected
    assert result.refused is None
    assert not [c for c in result.conflicts if c.kind.blocking]


def test_upload_metadata_is_batch_constant_and_names_the_ledger_not_the_mirror() -> None:
    result = plan(
        local(lf("Dog/a.jpg", "A", "Dog"), lf("Cat/b.jpg", "B", "Cat")),
        NO_LEDGER,
        remote(),
        mirror(name="photos"),
    )
    assert {u.metadata for u in result.uploads} == {(("syncd", LID),)}


# --- conflicts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "classification", "kind"),
    [
        (
            [lf("Cat/x.jpg", "A", "Cat"), lf("Dog/x.jpg", "A", "Dog")],
            ClassificationType.MULTICLASS,
            ConflictKind.MULTICLASS_TAGS,
        ),
        (
            [lf("_negative/x.jpg", "A", negative=True), lf("Dog/x.jpg", "A", "Dog")],
            MULTI,
            ConflictKind.NEGATIVE_AND_REGULAR,
        ),
        (
            [lf(f"t{i}/x.jpg", "A", f"t{i}") for i in range(101)],
            MULTI,
            ConflictKind.TOO_MANY_TAGS,
        ),
        ([lf("Negative/x.jpg", "A", "negative")], MULTI, ConflictKind.TAG_TYPE),
    ],
    ids=["multiclass-two-tags", "negative-and-regular", "101-tags", "folder-is-negative-tag"],
)
def test_conflicting_content_is_reported_and_left_alone(files, classification, kind) -> None:
    existing = img("i1", "A", DOG)
    result = plan(
        local(*files, lf("Dog/ok.jpg", "B", "Dog")),
        owned("i1"),
        remote(existing, classification=classification),
        mirror(),
    )
    (conflict,) = [c for c in result.conflicts if c.kind.blocking]
    assert conflict.kind is kind and conflict.sha256 == "A"
    assert conflict.paths == tuple(sorted(f.path for f in files))
    # the conflicted content is neither uploaded, retagged nor deleted; the rest proceeds
    assert [u.sha256 for u in result.uploads] == ["B"]
    assert not result.remove_tags and not result.add_tags and not result.delete_images
    assert result.kept[0].reason is KeepReason.LOCAL_PROBLEM


def test_multiclass_allows_one_tag_per_image() -> None:
    result = plan(
        local(lf("Cat/x.jpg", "A", "Cat")),
        NO_LEDGER,
        remote(classification=ClassificationType.MULTICLASS),
        mirror(),
    )
    assert [u.tag_names for u in result.uploads] == [("Cat",)]


def test_two_spellings_of_one_tag_are_noted_not_blocked() -> None:
    result = plan(
        local(lf("Dog/a.jpg", "A", "Dog"), lf("dog/b.jpg", "B", "dog")),
        NO_LEDGER,
        remote(tags=()),
        mirror(),
    )
    assert [c.kind for c in result.conflicts] == [ConflictKind.TAGS_MERGED]
    assert result.create_tags == (CreateTag("Dog"),)
    assert {u.tag_names for u in result.uploads} == {("Dog",)}


def test_tag_quota_is_reported() -> None:
    files = [lf(f"t{i}/x.jpg", f"S{i}", f"t{i}") for i in range(4)]
    result = plan(local(*files), NO_LEDGER, remote(tags=(DOG,)), mirror(max_tags_per_project=3))
    quota = [c for c in result.conflicts if c.kind is ConflictKind.TAG_QUOTA]
    assert len(quota) == 1 and "5 tags" in quota[0].detail
    assert len(result.uploads) == 4  # reported, not blocking: the service has the last word


def test_foreign_and_policy_kept_images_are_listed() -> None:
    result = plan(
        local(lf("Dog/a.jpg", "A", "Dog")),
        owned("i1", "i2"),
        remote(img("i1", "A", DOG), img("i2", "B"), img("f1", "F")),
        mirror(delete=DeletePolicy.KEEP),
    )
    assert {(k.image_id, k.reason) for k in result.kept} == {
        ("i2", KeepReason.POLICY_KEEP),
        ("f1", KeepReason.POLICY_KEEP),
    }
    result = plan(
        local(lf("Dog/a.jpg", "A", "Dog")),
        owned("i1"),
        remote(img("i1", "A", DOG), img("f1", "F")),
        mirror(),
    )
    assert [(k.image_id, k.reason) for k in result.kept] == [("f1", KeepReason.FOREIGN)]


def test_unidentified_images_are_listed() -> None:
    result = plan(local(), NO_LEDGER, remote(img("u1", None, DOG)), mirror())
    assert result.unidentified == ("u1",)
    assert result.is_empty


# --- the mass-delete guard --------------------------------------------------------------------


def _many(n: int, prefix: str = "i") -> tuple[RemoteImage, ...]:
    return tuple(img(f"{prefix}{k:03}", f"S{k}", DOG) for k in range(n))


@pytest.mark.parametrize(
    ("local_", "n_remote", "n_local", "reason", "overridable"),
    [
        (LocalSnapshot("/data", False, MarkerState.ABSENT), 10, 0, GuardReason.ROOT_MISSING, False),
        (local(), 10, 0, GuardReason.ROOT_EMPTY, False),
        (None, 10, 9, GuardReason.MARKER_MISSING, False),
        (None, 10, 9, GuardReason.MARKER_FOREIGN, False),
        (None, 10, 9, GuardReason.READ_ERRORS, False),
        (None, 200, 140, GuardReason.TOO_MANY, True),
        (None, 40, 28, GuardReason.TOO_LARGE_FRACTION, True),
    ],
    ids=lambda v: v.value if isinstance(v, GuardReason) else None,
)
def test_guard_refuses_every_delete_and_keeps_the_rest(
    local_, n_remote, n_local, reason, overridable
) -> None:
    images = _many(n_remote)
    files = [lf(f"Dog/{k}.jpg", f"S{k}", "Dog") for k in range(n_local)]
    files.append(lf("Cat/new.jpg", "NEW", "Cat"))
    if local_ is None:
        marker = {
            GuardReason.MARKER_MISSING: MarkerState.ABSENT,
            GuardReason.MARKER_FOREIGN: MarkerState.FOREIGN,
        }.get(reason, MarkerState.PRESENT)
        skipped = ()
        if reason is GuardReason.READ_ERRORS:
            skipped = (Skipped("Bird", Problem(ProblemKind.UNREADABLE, "Permission denied")),)
        local_ = local(*files, marker=marker, skipped=skipped)
    ledger = owned(*(i.image_id for i in images))
    result = plan(local_, ledger, remote(*images), mirror())
    assert result.delete_images == ()
    assert result.refused is not None
    assert reason in result.refused.reasons
    assert len(result.refused.images) == n_remote - n_local
    assert ("--allow-mass-delete" in result.refused.message) is overridable
    if local_.root_exists and n_local:
        assert [u.sha256 for u in result.uploads] == ["NEW"]  # the rest of the plan stands

    forced = plan(local_, ledger, remote(*images), mirror(), allow_mass_delete=True)
    if overridable:
        assert len(forced.delete_images) == n_remote - n_local and forced.refused is None
        assert reason in forced.overridden
    else:
        assert forced.delete_images == () and forced.refused is not None


@pytest.mark.parametrize(
    ("local_", "remedy"),
    [
        (LocalSnapshot("/data", False, MarkerState.ABSENT), "mount"),
        # an unmounted mount point: the folder is there, empty, without its marker
        (local(marker=MarkerState.ABSENT), "mount"),
        (local(lf("Dog/0.jpg", "S0", "Dog"), marker=MarkerState.ABSENT), f"{PID}"),
        (local(lf("Dog/0.jpg", "S0", "Dog"), marker=MarkerState.FOREIGN), "project_id"),
    ],
    ids=["root missing", "unmounted mount point", "marker missing", "marker foreign"],
)
def test_a_tree_that_is_not_what_it_seems_is_never_overridden(local_, remedy) -> None:
    images = _many(3)
    ledger = owned(*(i.image_id for i in images))

    result = plan(local_, ledger, remote(*images), mirror(), allow_mass_delete=True)

    assert result.delete_images == () and result.overridden == ()
    assert result.refused is not None and not result.refused.overridable
    assert "--allow-mass-delete" not in result.refused.message
    assert remedy in result.refused.message  # says what to check instead


def test_allow_mass_delete_overrides_only_the_size_guards() -> None:
    assert {r for r in GuardReason if r.overridable} == {
        GuardReason.TOO_MANY,
        GuardReason.TOO_LARGE_FRACTION,
    }


def test_guard_limits_come_from_config_and_small_deletes_pass() -> None:
    images = _many(10)
    keep_eight = local(*[lf(f"Dog/{k}.jpg", f"S{k}", "Dog") for k in range(8)])
    ledger = owned(*(i.image_id for i in images))
    # 2 of 10 (20 %) is under both default limits
    assert len(plan(keep_eight, ledger, remote(*images), mirror()).delete_images) == 2
    strict = mirror(guard=GuardConfig(max_delete=1, max_delete_fraction=0.25))
    refused = plan(keep_eight, ledger, remote(*images), strict).refused
    assert refused is not None and refused.reasons == (GuardReason.TOO_MANY,)
    # a small project may lose a few files even when that is a large share of it
    two = _many(2)
    result = plan(
        local(lf("Dog/0.jpg", "S0", "Dog")), owned("i000", "i001"), remote(*two), mirror()
    )
    assert [d.image_id for d in result.delete_images] == ["i001"]


def test_marker_missing_on_first_sync_does_not_refuse() -> None:
    result = plan(
        local(lf("Dog/a.jpg", "A", "Dog"), marker=MarkerState.ABSENT),
        NO_LEDGER,
        remote(img("f1", "F")),
        mirror(adopt_foreign_images=True),
    )
    assert [d.image_id for d in result.delete_images] == ["f1"]


# --- convergence: a property over random trees and random remote states ------------------------

FOLDERS = ["Dog", "dog", "Cat", "Caf\u00e9", "Cafe\u0301", "_negative", ""]
REMOTE_TAG_POOL = [
    RemoteTag("r-dog", "DOG"),
    RemoteTag("r-cat", "Cat"),
    RemoteTag("r-old", "Old"),
    RemoteTag("r-neg", "Negative", TagType.NEGATIVE),
]


def _local_tree(entries: list[tuple[int, int]]) -> LocalSnapshot:
    mapper = TagMapper(TagConfig())
    files = []
    for n, (folder_index, content) in enumerate(entries):
        folder = FOLDERS[folder_index]
        path = f"{folder}/f{n}.jpg" if folder else f"f{n}.jpg"
        tags = mapper.assign(path)
        files.append(lf(path, f"C{content}", *tags.tags, negative=tags.negative))
    return local(*files)


class _Project:
    """A dict model of a project that applies a Plan and checks each action is legal."""

    def __init__(self, snapshot: RemoteSnapshot, ledger: dict[str, LedgerImage]) -> None:
        self.ledger = dict(ledger)  # what the executor would record
        self.tags = {t.tag_id: t for t in snapshot.tags}
        self.images = {i.image_id: (i.sha256, set(i.tag_ids)) for i in snapshot.images}
        self.metadata = {i.image_id: dict(i.metadata) for i in snapshot.images}
        self.next_id = 0

    def _new_id(self, prefix: str) -> str:
        self.next_id += 1
        return f"{prefix}-new-{self.next_id}"

    def tag_id(self, name: str) -> str:
        (tag_id,) = [i for i, t in self.tags.items() if tag_key(t.name) == tag_key(name)]
        return tag_id

    def apply(self, result: Plan) -> None:
        for action in result.actions:
            match action:
                case CreateTag(name, type_):
                    assert all(tag_key(t.name) != tag_key(name) for t in self.tags.values())
                    new = self._new_id("t")
                    self.tags[new] = RemoteTag(new, name, type_)
                case Upload(sha, _, _, names, metadata):
                    assert all(s != sha for s, _ in self.images.values()), "re-upload"
                    new = self._new_id("i")
                    self.images[new] = (sha, {self.tag_id(n) for n in names})
                    self.metadata[new] = dict(metadata)
                    self.ledger[new] = LedgerImage(new, sha, ImageOwner.SYNCD)
                case Adopt(image_id, sha):
                    self.ledger[image_id] = LedgerImage(image_id, sha, ImageOwner.ADOPTED)
                case RemoveTags(image_id, tag_ids, _):
                    assert set(tag_ids) <= self.images[image_id][1]
                    self.images[image_id][1].difference_update(tag_ids)
                case AddTags(image_id, names):
                    self.images[image_id][1].update(self.tag_id(n) for n in names)
                case DeleteImage(image_id):
                    del self.images[image_id]
                case DeleteTag(tag_id):
                    del self.tags[tag_id]
            for _, tag_ids in self.images.values():
                types = {self.tags[t].type for t in tag_ids}
                assert not (TagType.NEGATIVE in types and TagType.REGULAR in types)

    def snapshot(self) -> RemoteSnapshot:
        images = tuple(
            RemoteImage(i, frozenset(t), self.metadata[i], s) for i, (s, t) in self.images.items()
        )
        return RemoteSnapshot(PID, MULTI, tuple(self.tags.values()), images, True)

    def by_content(self) -> dict[str, list[frozenset[str]]]:
        out: dict[str, list[frozenset[str]]] = {}
        for sha, tag_ids in self.images.values():
            keys = frozenset(tag_key(self.tags[t].name) for t in tag_ids)
            out.setdefault(sha, []).append(keys)
        return out


def _desired(tree: LocalSnapshot, negative_name: str) -> tuple[dict[str, frozenset], set[str]]:
    """The independent reading: content -> tag keys; and the contents in conflict."""
    wants: dict[str, set[str]] = {}
    negative: set[str] = set()
    for f in tree.files:
        wants.setdefault(f.sha256, set()).update(tag_key(t) for t in f.tags)
        if f.negative:
            negative.add(f.sha256)
    conflicts = {sha for sha in negative if wants[sha]}
    desired = {
        sha: frozenset({tag_key(negative_name)}) if sha in negative else frozenset(keys)
        for sha, keys in wants.items()
        if sha not in conflicts
    }
    return desired, conflicts


remote_images = st.lists(
    st.tuples(
        st.integers(0, 8),  # content: C0..C5 may be local, C6..C8 never are
        st.sets(st.sampled_from([t.tag_id for t in REMOTE_TAG_POOL]), max_size=3),
        st.sampled_from(["syncd", "adopted", "foreign", "metadata"]),
    ),
    max_size=8,
)

# (folder, content) of each local file. At least one file: an empty root refuses every delete,
# whatever allow_mass_delete says.
local_entries = st.lists(
    st.tuples(st.integers(0, len(FOLDERS) - 1), st.integers(0, 5)), min_size=1, max_size=12
)
tag_masks = st.lists(st.booleans(), min_size=4, max_size=4)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    entries=local_entries,
    remote_spec=remote_images,
    tag_mask=tag_masks,
)
def test_applying_the_plan_converges(entries, remote_spec, tag_mask) -> None:
    tree = _local_tree(entries)
    tags = tuple(t for t, on in zip(REMOTE_TAG_POOL, tag_mask, strict=True) if on)
    present = {t.tag_id for t in tags}
    images, ledger_images = [], {}
    for n, (content, tag_ids, owner) in enumerate(remote_spec):
        image_id = f"r{n}"
        meta = {"syncd": LID} if owner == "metadata" else {}
        if "r-neg" in tag_ids:  # the service never holds Negative beside a regular tag
            tag_ids = {"r-neg"}
        images.append(RemoteImage(image_id, frozenset(tag_ids & present), meta, f"C{content}"))
        if owner in ("syncd", "adopted", "foreign"):
            ledger_images[image_id] = LedgerImage(image_id, f"C{content}", ImageOwner(owner))
    before = RemoteSnapshot(PID, MULTI, tags, tuple(images), True)
    conflicted_before = {
        i.image_id: (i.sha256, i.tag_ids) for i in images if i.sha256 in _desired(tree, "x")[1]
    }
    config = mirror(adopt_foreign_images=True)

    view = LedgerView(images=ledger_images, ledger_id=LID)
    result = plan(tree, view, before, config, allow_mass_delete=True)
    project = _Project(before, ledger_images)
    project.apply(result)

    negative_name = next((t.name for t in tags if t.type is TagType.NEGATIVE), "Negative")
    desired, conflicts = _desired(tree, negative_name)
    held = project.by_content()
    for sha, keys in desired.items():
        assert held.get(sha) == [keys], f"{sha}: remote {held.get(sha)}, desired {keys}"
    for image_id, (_sha, tag_ids) in conflicted_before.items():
        assert project.images[image_id][1] == set(tag_ids)  # conflicts are left alone
    assert set(held) <= set(desired) | conflicts  # everything else is gone (mirror)

    # and once converged, the next plan is empty
    again = plan(tree, LedgerView(images=project.ledger, ledger_id=LID), project.snapshot(), config)
    assert again.is_empty, again.actions


def test_a_first_sync_plan_builds_no_table_of_every_content() -> None:
    """The plan of a first sync goes content by content: what it builds and drops on the way
    (sorted lists of the files) stays small beside what it keeps (the uploads). A table of every
    content, held until the uploads were made, was ~100 bytes a content (~10 MB at 100k)."""
    n = 20_000
    files = tuple(lf(f"f{i % 20}/{i:06}.jpg", f"{i:064x}", f"F{i % 20}") for i in range(n))
    snapshot = local(*files)
    view = LedgerView(ledger_id=LID)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        the_plan = plan(snapshot, view, remote(), mirror())
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(the_plan.uploads) == n and len(the_plan.create_tags) == 20
    dropped_per_content = (peak - after) / n
    kept_per_content = (after - before) / n
    print(f"dropped {dropped_per_content:.0f} B, kept {kept_per_content:.0f} B a content")
    assert dropped_per_content < 60


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    entries=local_entries,
    remote_spec=remote_images,
    tag_mask=tag_masks,
    uploaded=st.sets(st.sampled_from([f"C{n}" for n in range(9)])),
    delete_empty_tags=st.booleans(),
    classification=st.sampled_from([MULTI, ClassificationType.MULTICLASS]),
)
def test_contents_uploaded_already_change_nothing_but_their_uploads(
    entries, remote_spec, tag_mask, uploaded, delete_empty_tags, classification
) -> None:
    """A streamed first sync plans the whole tree with the contents it sent as `uploaded`: the
    plan is the plan without them, less their Uploads (tags created, deleted and merged,
    conflicts, deletes and the guard all count them as uploaded)."""
    tree = _local_tree(entries)
    tags = tuple(t for t, on in zip(REMOTE_TAG_POOL, tag_mask, strict=True) if on)
    present = {t.tag_id for t in tags}
    images, ledger_images = [], {}
    for n, (content, tag_ids, owner) in enumerate(remote_spec):
        image_id = f"r{n}"
        meta = {"syncd": LID} if owner == "metadata" else {}
        images.append(RemoteImage(image_id, frozenset(tag_ids & present), meta, f"C{content}"))
        if owner in ("syncd", "adopted", "foreign"):
            ledger_images[image_id] = LedgerImage(image_id, f"C{content}", ImageOwner(owner))
    project = RemoteSnapshot(PID, classification, tags, tuple(images), True)
    config = mirror(adopt_foreign_images=True, tags=TagConfig(delete_empty_tags=delete_empty_tags))
    view = LedgerView(images=ledger_images, ledger_id=LID, created_tag_ids=frozenset(present))

    whole = plan(tree, view, project, config)
    without = plan(tree, view, project, config, uploaded=uploaded)

    expected = tuple(u for u in whole.uploads if u.sha256 not in uploaded)
    assert without == dataclasses.replace(whole, uploads=expected)


def test_contents_uploaded_already_cost_the_plan_next_to_nothing() -> None:
    """At a streamed first sync's end, the whole tree is planned with every content sent: no
    Upload is built for them (100k Uploads and their path tuples, ~13 MB, were built only to be
    dropped, at the run's peak)."""
    n = 20_000
    files = tuple(lf(f"f{i % 20}/{i:06}.jpg", f"{i:064x}", f"F{i % 20}") for i in range(n))
    snapshot = local(*files)
    view = LedgerView(ledger_id=LID)
    sent = frozenset(f.sha256 for f in files if f.sha256)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        the_plan = plan(snapshot, view, remote(), mirror(), uploaded=sent)
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert the_plan.uploads == () and len(the_plan.create_tags) == 20
    kept_per_content = (after - before) / n
    peak_per_content = (peak - before) / n
    print(f"kept {kept_per_content:.0f} B, peak {peak_per_content:.0f} B a content")
    assert kept_per_content < 20  # an Upload and its paths were ~140 B
    assert peak_per_content < 60
