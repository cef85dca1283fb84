"""The region diff and the detection planner as pure functions: one table row per rule.

Boxes are compared by their 4-decimal key, then within BOX_TOLERANCE; unchanged boxes keep their
region ids; an edited box is one delete and one create; an image is never uploaded again for its
boxes; folders carry no tags in a detection mirror.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from syncd.config import MirrorConfig
from syncd.core.model import (
    ClassificationType,
    ImageOwner,
    LedgerImage,
    LedgerView,
    LocalFile,
    LocalSnapshot,
    MarkerState,
    RemoteImage,
    RemoteRegion,
    RemoteSnapshot,
    RemoteTag,
)
from syncd.core.planner import ConflictKind, CreateTag, DeleteTag, EditRegions, Upload, plan
from syncd.core.policy import DeletePolicy
from syncd.core.regions import Box, Region, RegionDiff, diff_regions

PID = "11111111-2222-3333-4444-555555555555"
LID = "0123456789abcdef0123456789abcdef"
FORK = RemoteTag("t-fork", "fork")
KNIFE = RemoteTag("t-knife", "knife")

A = Box(0.1, 0.1, 0.2, 0.2)
B = Box(0.5, 0.5, 0.25, 0.25)
C = Box(0.3, 0.3, 0.1, 0.1)
# B as the service echoes it through float32 (within 1e-7): the same key.
B_ECHO = Box(0.500000012, 0.49999997, 0.250000003, 0.2499999)
# B drawn elsewhere, 0.6e-4 off on one side: another key, within the tolerance.
B_NEAR = Box(0.50006, 0.5, 0.25, 0.25)
# B moved by 2e-4: a changed box.
B_MOVED = Box(0.5002, 0.5, 0.25, 0.25)


def rr(region_id: str, tag: RemoteTag, box: Box) -> RemoteRegion:
    return RemoteRegion(region_id, tag.tag_id, box.left, box.top, box.width, box.height)


def cur(*regions: tuple[str, RemoteTag, Box]) -> list[tuple[str | None, RemoteRegion]]:
    return [(tag.name.casefold(), rr(i, tag, box)) for i, tag, box in regions]


DIFF_CASES = [
    pytest.param([], [], RegionDiff(), id="nothing-wanted-nothing-there"),
    pytest.param(
        [Region("fork", A)], [], RegionDiff(create=(Region("fork", A),)), id="new-box-created"
    ),
    pytest.param(
        [],
        cur(("r1", FORK, A)),
        RegionDiff(delete=(rr("r1", FORK, A),)),
        id="box-gone-deleted",
    ),
    pytest.param(
        [Region("fork", A), Region("knife", B)],
        cur(("r1", FORK, A), ("r2", KNIFE, B_ECHO)),
        RegionDiff(keep=(rr("r1", FORK, A), rr("r2", KNIFE, B_ECHO))),
        id="unchanged-keeps-ids-through-float32-echo",
    ),
    pytest.param(
        [Region("Knife", B_NEAR)],
        cur(("r2", KNIFE, B)),
        RegionDiff(keep=(rr("r2", KNIFE, B),)),
        id="within-tolerance-and-tag-case-is-the-same-box",
    ),
    pytest.param(
        [Region("fork", A), Region("knife", B_MOVED)],
        cur(("r1", FORK, A), ("r2", KNIFE, B)),
        RegionDiff(
            keep=(rr("r1", FORK, A),),
            delete=(rr("r2", KNIFE, B),),
            create=(Region("knife", B_MOVED),),
        ),
        id="one-edited-box-one-delete-one-create",
    ),
    pytest.param(
        [Region("knife", A)],
        cur(("r1", FORK, A)),
        RegionDiff(delete=(rr("r1", FORK, A),), create=(Region("knife", A),)),
        id="relabelled-box-is-replaced",
    ),
    pytest.param(
        [Region("fork", A)],
        cur(("r1", FORK, A), ("r9", FORK, A)),
        RegionDiff(keep=(rr("r1", FORK, A),), delete=(rr("r9", FORK, A),)),
        id="a-repeat-of-a-kept-box-goes",
    ),
    pytest.param(
        [Region("fork", A)],
        [(None, rr("r1", FORK, A))],
        RegionDiff(delete=(rr("r1", FORK, A),), create=(Region("fork", A),)),
        id="region-of-an-unknown-tag-is-replaced",
    ),
    pytest.param(
        [Region("fork", B_NEAR), Region("fork", B)],
        cur(("r1", FORK, B)),
        RegionDiff(keep=(rr("r1", FORK, B),), create=(Region("fork", B_NEAR),)),
        id="exact-match-first-then-tolerance",
    ),
]


@pytest.mark.parametrize(("desired", "current", "expected"), DIFF_CASES)
def test_region_diff(
    desired: list[Region], current: list[tuple[str | None, RemoteRegion]], expected: RegionDiff
) -> None:
    assert diff_regions(desired, current) == expected


# --- the planner in a detection mirror ---------------------------------------------------------


def mirror(**changes: object) -> MirrorConfig:
    base = MirrorConfig(root=Path("/data"), project_id=PID, delete=DeletePolicy.MIRROR)
    return dataclasses.replace(base, **changes)


def lf(path: str, sha: str) -> LocalFile:
    return LocalFile(path, 10, 1, 1, sha, (), False, None, "jpeg", 10**12)


def local(*files: LocalFile) -> LocalSnapshot:
    return LocalSnapshot("/data", True, MarkerState.PRESENT, files)


def remote(*images: RemoteImage, tags: tuple[RemoteTag, ...] = (FORK, KNIFE)) -> RemoteSnapshot:
    return RemoteSnapshot(PID, ClassificationType.MULTILABEL, tags, images, True)


def owned(*images: RemoteImage) -> LedgerView:
    return LedgerView(
        {i.image_id: LedgerImage(i.image_id, i.sha256, ImageOwner.SYNCD) for i in images},
        ledger_id=LID,
    )


def image(image_id: str, sha: str, *regions: RemoteRegion) -> RemoteImage:
    tag_ids = frozenset(r.tag_id for r in regions)
    return RemoteImage(image_id, tag_ids, {}, sha, regions)


def test_a_new_image_is_uploaded_with_its_boxes_and_their_tags_are_created() -> None:
    boxes = {"a.jpg": (Region("fork", A), Region("spoon", B)), "b.jpg": ()}
    result = plan(
        local(lf("a.jpg", "SA"), lf("b.jpg", "SB")), owned(), remote(), mirror(), regions=boxes
    )
    assert result.create_tags == (CreateTag("spoon"),)
    by_sha = {u.sha256: u for u in result.uploads}
    assert by_sha["SA"].regions == boxes["a.jpg"]
    assert by_sha["SA"].tag_names == ("fork", "spoon")
    # An image with no annotation is uploaded without boxes (and without tags).
    assert by_sha["SB"] == Upload("SB", ("b.jpg",), 10, (), ((("syncd", LID),)), ())
    assert result.edit_regions == () and result.add_tags == () and result.remove_tags == ()


def test_an_edited_box_is_one_delete_and_one_create_and_never_an_upload() -> None:
    there = image("img", "SA", rr("r1", FORK, A), rr("r2", KNIFE, B))
    boxes = {"a.jpg": (Region("fork", A), Region("knife", B_MOVED))}
    result = plan(local(lf("a.jpg", "SA")), owned(there), remote(there), mirror(), regions=boxes)
    assert result.uploads == () and result.add_tags == () and result.remove_tags == ()
    assert result.edit_regions == (
        EditRegions(
            "img",
            ("a.jpg",),
            (rr("r2", KNIFE, B),),
            (Region("knife", B),),
            (Region("knife", B_MOVED),),
        ),
    )
    counts = result.counts()
    assert (counts["edit_regions"], counts["regions_created"], counts["regions_deleted"]) == (
        1,
        1,
        1,
    )


def test_unchanged_boxes_plan_nothing_and_a_moved_file_with_its_label_is_no_upload() -> None:
    there = image("img", "SA", rr("r1", FORK, A))
    # The file moved to another folder with its label: same bytes, same boxes.
    boxes = {"new/place/a.jpg": (Region("fork", A),)}
    result = plan(
        local(lf("new/place/a.jpg", "SA")), owned(there), remote(there), mirror(), regions=boxes
    )
    assert result.is_empty


def test_a_deleted_label_removes_the_boxes_and_an_emptied_tag_syncd_made() -> None:
    there = image("img", "SA", rr("r1", FORK, A))
    view = dataclasses.replace(owned(there), created_tag_ids=frozenset({"t-fork"}))
    tags = dataclasses.replace(mirror().tags, delete_empty_tags=True)
    result = plan(local(lf("a.jpg", "SA")), view, remote(there), mirror(tags=tags), regions={})
    [edit] = result.edit_regions
    assert edit.delete == (rr("r1", FORK, A),) and edit.create == ()
    assert result.delete_tags == (DeleteTag("t-fork", "fork"),)


def test_the_same_bytes_with_different_boxes_is_a_conflict() -> None:
    boxes = {"a.jpg": (Region("fork", A),), "copy/a.jpg": (Region("fork", B),)}
    result = plan(
        local(lf("a.jpg", "SA"), lf("copy/a.jpg", "SA")), owned(), remote(), mirror(), regions=boxes
    )
    assert result.uploads == ()
    [conflict] = result.conflicts
    assert conflict.kind is ConflictKind.REGIONS_DIFFER and conflict.kind.blocking
    assert conflict.paths == ("a.jpg", "copy/a.jpg")


def test_folders_carry_no_tags_and_an_adopted_image_gets_its_boxes() -> None:
    foreign = image("img", "SA")
    boxes = {"Dog/a.jpg": (Region("fork", A),)}
    result = plan(
        local(lf("Dog/a.jpg", "SA")),
        LedgerView(ledger_id=LID),
        remote(foreign),
        mirror(),
        regions=boxes,
    )
    assert [a.image_id for a in result.adopts] == ["img"]
    [edit] = result.edit_regions
    assert edit.create == (Region("fork", A),) and edit.delete == ()
    assert result.create_tags == () and result.add_tags == ()
