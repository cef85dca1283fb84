"""The invariant checker itself: silent on a synced tree, and it reports each kind of violation.

A checker that cannot fail proves nothing, so each test breaks one thing (in the tree, the
project over HTTP, or the ledger file with sqlite3) and expects that violation by kind and subject.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.support import Sandbox, sha256
from tests.support import TEST_KEY
from tests.support.images import image_bytes, write_image
from tests.support.invariants import (
    Kind,
    RemoteImage,
    RemoteView,
    Violation,
    check_invariants,
    check_mirror,
    expected_from_tree,
)

API = "/customvision/v3.3/training"


@pytest.fixture
def service(synced: Sandbox) -> Iterator[httpx.Client]:
    """A client on the endpoint (no path), as check_invariants takes it."""
    with httpx.Client(
        base_url=synced.endpoint, headers={"Training-Key": TEST_KEY}, timeout=30
    ) as client:
        yield client


def _check(box: Sandbox, service: httpx.Client, **kwargs: object) -> list[Violation]:
    return check_invariants(box.root, box.ledger, service, box.project_id, **kwargs)  # type: ignore[arg-type]


def _kinds(violations: list[Violation]) -> set[Kind]:
    return {v.kind for v in violations}


def _image_id(box: Sandbox, digest: str) -> str:
    return next(i.id for i in box.images() if i.sha256 == digest)


def test_a_synced_tree_has_no_violations(synced: Sandbox, service: httpx.Client) -> None:
    assert _check(synced, service) == []


def test_a_local_image_not_uploaded_is_missing_remotely(
    synced: Sandbox, service: httpx.Client
) -> None:
    data = write_image(synced.root / "Dog" / "new.jpg", 9001)

    violations = _check(synced, service)

    assert violations == [Violation(Kind.MISSING_REMOTELY, sha256(data), "local ['Dog/new.jpg']")]


def test_a_remote_image_whose_file_is_gone_is_reported_under_mirror_only(
    synced: Sandbox, service: httpx.Client
) -> None:
    gone = synced.root / "Cat" / "c0.jpg"
    digest = sha256(gone.read_bytes())
    gone.unlink()

    assert [(v.kind, v.subject) for v in _check(synced, service)] == [(Kind.NOT_LOCAL, digest)]
    assert _check(synced, service, delete_mirror=False) == []


def test_a_tag_removed_remotely_is_wrong_tags_and_a_stale_ledger(
    synced: Sandbox, service: httpx.Client
) -> None:
    digest = sha256((synced.root / "Dog" / "d0.jpg").read_bytes())
    image_id = _image_id(synced, digest)
    dog = synced.http.get(f"/projects/{synced.project_id}/tags").json()
    dog_id = next(t["id"] for t in dog if t["name"] == "Dog")
    r = synced.http.delete(
        f"/projects/{synced.project_id}/images/tags",
        params={"imageIds": image_id, "tagIds": dog_id},
    )
    assert r.status_code == 204, r.text

    violations = _check(synced, service)

    assert {(v.kind, v.subject) for v in violations} == {
        (Kind.WRONG_TAGS, digest),
        (Kind.LEDGER_WRONG_TAGS, image_id.lower()),
    }


def test_a_file_moved_without_a_sync_is_wrong_tags(synced: Sandbox, service: httpx.Client) -> None:
    os.rename(synced.root / "Bird" / "b0.jpg", synced.root / "Cat" / "b0.jpg")

    violations = _check(synced, service)

    assert [v.kind for v in violations] == [Kind.WRONG_TAGS]
    assert "['bird'], want ['cat']" in violations[0].detail


def test_an_image_deleted_remotely_is_missing_and_the_ledger_row_is_stale(
    synced: Sandbox, service: httpx.Client
) -> None:
    digest = sha256((synced.root / "Cat" / "c1.png").read_bytes())
    image_id = _image_id(synced, digest)
    r = synced.http.delete(f"/projects/{synced.project_id}/images", params={"imageIds": image_id})
    assert r.status_code == 204, r.text

    violations = _check(synced, service)

    assert {(v.kind, v.subject) for v in violations} == {
        (Kind.MISSING_REMOTELY, digest),
        (Kind.LEDGER_GONE_IMAGE, image_id.lower()),
    }


def test_an_image_uploaded_behind_syncds_back_is_unknown_to_the_ledger(
    synced: Sandbox, service: httpx.Client
) -> None:
    r = synced.http.post(
        f"/projects/{synced.project_id}/images",
        files={"imageData": ("x.jpg", image_bytes(9002), "image/jpeg")},
    )
    assert r.status_code == 200, r.text
    image_id = r.json()["images"][0]["image"]["id"].lower()

    violations = _check(synced, service)

    assert _kinds(violations) == {Kind.NOT_LOCAL, Kind.LEDGER_UNKNOWN_IMAGE}
    assert Violation(Kind.LEDGER_UNKNOWN_IMAGE, image_id, "no ledger row") in violations


def test_ledger_rows_that_lie_are_reported(synced: Sandbox, service: httpx.Client) -> None:
    digest = sha256((synced.root / "Dog" / "d1.jpg").read_bytes())
    image_id = _image_id(synced, digest).lower()
    with sqlite3.connect(synced.ledger) as db:
        db.execute("UPDATE images SET sha256 = ? WHERE image_id = ?", ["0" * 64, image_id])
        db.execute(
            "INSERT INTO pending_uploads (sha256, run_id, started_at) VALUES (?, 1, 'now')",
            ["f" * 64],
        )
    db.close()

    violations = _check(synced, service)

    assert {(v.kind, v.subject) for v in violations} == {
        (Kind.LEDGER_WRONG_HASH, image_id),
        (Kind.LEDGER_PENDING, "f" * 64),
    }


def test_an_unreadable_ledger_is_a_violation(synced: Sandbox, service: httpx.Client) -> None:
    for suffix in ("-wal", "-shm"):
        synced.ledger.with_name(synced.ledger.name + suffix).unlink(missing_ok=True)
    synced.ledger.write_bytes(b"this is not a database" * 100)

    assert [v.kind for v in _check(synced, service)] == [Kind.LEDGER_UNREADABLE]


def test_two_remote_images_with_the_same_bytes_are_a_duplicate(synced: Sandbox) -> None:
    # The emulator answers OKDuplicate for bytes it has, so the duplicate is built as a view.
    expected, where = expected_from_tree(synced.root)
    digest = sha256((synced.root / "Dog" / "d2.png").read_bytes())
    twins = tuple(
        RemoteImage(image_id, digest, frozenset({"Dog"}), frozenset({"t"}), {})
        for image_id in ("a", "b")
    )
    others = tuple(
        RemoteImage(f"i{n}", h, frozenset(tags), frozenset(), {})
        for n, (h, tags) in enumerate(expected.items())
        if h != digest
    )

    violations = check_mirror(expected, where, RemoteView(twins + others), delete_mirror=True)

    assert violations == [Violation(Kind.DUPLICATE, digest, "2 images: a, b")]


def test_the_negative_folder_and_root_files_follow_the_documented_rules(synced: Sandbox) -> None:
    root_file = write_image(synced.root / "top.jpg", 9003)
    expected, _ = expected_from_tree(synced.root)

    assert expected[sha256((synced.root / "_negative" / "n0.jpg").read_bytes())] == {"negative"}
    assert expected[sha256(root_file)] == frozenset()
