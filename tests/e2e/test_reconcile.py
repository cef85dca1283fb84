"""`syncd reconcile` end to end: a real tree, a real ledger, the emulator over HTTP.

Each test is one thing a user does to their folder (or to the project) and what they then see in
the project and in the command's exit code and JSON summary.
"""

from __future__ import annotations

import shutil

from tests.e2e.support import MIRROR_NAME, STANDARD_TREE, Sandbox, ledger_meta, write_tree
from tests.support.images import write_image


def test_first_sync_uploads_every_image_with_its_folder_tag(sandbox: Sandbox) -> None:
    write_tree(sandbox.root, STANDARD_TREE)

    run = sandbox.reconcile()

    assert run.exit_code == 0, str(run)
    assert sandbox.content() == sandbox.expected()
    assert run.mirror["done"]["uploads"] == len(STANDARD_TREE)
    assert run.mirror["problems"] == [] and run.mirror["failed"] == []


def test_uploaded_images_are_marked_with_the_ledgers_random_id(synced: Sandbox) -> None:
    images = synced.images()
    ledger_id = ledger_meta(synced.ledger, "ledger_id")

    assert len(images) == len(STANDARD_TREE)
    assert ledger_id and ledger_id != MIRROR_NAME
    assert all(image.metadata.get("syncd") == ledger_id for image in images)


def test_first_sync_writes_the_root_marker(synced: Sandbox) -> None:
    marker = synced.root / ".syncd-root"

    assert marker.is_file()
    assert synced.project_id in marker.read_text(encoding="utf-8")


def test_second_sync_without_changes_sends_nothing(synced: Sandbox) -> None:
    ids_before = {i.id for i in synced.images()}

    run = synced.reconcile()

    assert run.exit_code == 0, str(run)
    assert run.mirror["planned"]["uploads"] == 0
    assert run.mirror["done"]["uploads"] == 0
    assert run.mirror["remote"]["listing"] == "counts"
    assert run.mirror["api_calls"] <= 3
    assert {i.id for i in synced.images()} == ids_before


def test_moved_file_is_retagged_not_uploaded(synced: Sandbox) -> None:
    ids_before = {i.id for i in synced.images()}
    (synced.root / "Dog/d0.jpg").rename(synced.root / "Cat/d0.jpg")

    run = synced.reconcile()

    assert run.exit_code == 0, str(run)
    assert run.mirror["done"]["uploads"] == 0
    assert synced.content() == synced.expected()
    assert {i.id for i in synced.images()} == ids_before


def test_renamed_folder_is_retagged_not_uploaded(synced: Sandbox) -> None:
    ids_before = {i.id for i in synced.images()}
    (synced.root / "Bird").rename(synced.root / "Birds")

    run = synced.reconcile()

    assert run.exit_code == 0, str(run)
    assert run.mirror["done"]["uploads"] == 0
    assert run.mirror["done"]["delete_images"] == 0
    assert synced.content() == synced.expected()
    assert {i.id for i in synced.images()} == ids_before


def test_deleted_file_is_deleted_remotely_under_mirror(synced: Sandbox) -> None:
    (synced.root / "Cat/c1.png").unlink()

    run = synced.reconcile()

    assert run.exit_code == 0, str(run)
    assert run.mirror["done"]["delete_images"] == 1
    assert synced.content() == synced.expected()
    assert len(synced.images()) == len(STANDARD_TREE) - 1


def test_deleted_file_is_kept_remotely_under_keep(synced: Sandbox) -> None:
    synced.write_config(delete="keep")
    before = synced.content()
    (synced.root / "Cat/c1.png").unlink()

    run = synced.reconcile()

    assert run.exit_code == 0, str(run)
    assert run.mirror["done"]["delete_images"] == 0
    assert synced.content() == before


def test_same_bytes_in_two_folders_is_one_image_with_both_tags(sandbox: Sandbox) -> None:
    write_tree(sandbox.root, STANDARD_TREE)
    data = (sandbox.root / "Dog/d1.jpg").read_bytes()
    (sandbox.root / "Cat/also-d1.jpg").write_bytes(data)

    run = sandbox.reconcile()

    assert run.exit_code == 0, str(run)
    content = sandbox.content()  # fails on a second copy of the same bytes
    assert len(content) == len(STANDARD_TREE)
    assert [tags for tags in content.values() if len(tags) == 2] == [frozenset({"Dog", "Cat"})]
    assert content == sandbox.expected()


def test_negative_folder_gets_the_negative_tag(synced: Sandbox) -> None:
    r = synced.http.get(f"/projects/{synced.project_id}/tags")
    negative = [t for t in r.json() if t["type"] == "Negative"]

    assert len(negative) == 1
    assert negative[0]["imageCount"] == 2
    negatives = [i for i in synced.images() if negative[0]["name"] in i.tags]
    assert len(negatives) == 2
    assert all(len(i.tags) == 1 for i in negatives)


def test_excluded_files_are_not_uploaded(sandbox: Sandbox) -> None:
    write_tree(sandbox.root, STANDARD_TREE)
    write_image(sandbox.root / "Dog/draft-1.jpg", 900)
    write_image(sandbox.root / "Cat/rejects/r0.jpg", 901)
    sandbox.write_config(files={"exclude": ["**/draft-*", "Cat/rejects/**"]})

    run = sandbox.reconcile()

    assert run.exit_code == 0, str(run)
    assert run.mirror["done"]["uploads"] == len(STANDARD_TREE)
    skip = frozenset({"Dog/draft-1.jpg", "Cat/rejects/r0.jpg"})
    assert sandbox.content() == sandbox.expected(skip=skip)


def test_deleted_ledger_is_rebuilt_without_uploads(synced: Sandbox) -> None:
    ids_before = {i.id for i in synced.images()}
    for path in synced.state_dir.glob(f"{synced.ledger.name}*"):
        path.unlink()

    run = synced.reconcile()

    assert run.exit_code == 0, str(run)
    assert run.mirror["done"]["uploads"] == 0
    assert run.mirror["remote"]["downloads_hashed"] > 0
    assert {i.id for i in synced.images()} == ids_before
    assert synced.content() == synced.expected()


def test_sync_after_rebuild_sends_nothing(synced: Sandbox) -> None:
    for path in synced.state_dir.glob(f"{synced.ledger.name}*"):
        path.unlink()
    rebuilt = synced.reconcile()
    assert rebuilt.exit_code == 0, str(rebuilt)

    run = synced.reconcile()

    assert run.exit_code == 0, str(run)
    assert run.mirror["remote"]["downloads_hashed"] == 0
    assert run.mirror["done"]["uploads"] == 0
    assert run.mirror["api_calls"] <= 3


def test_new_file_is_uploaded_with_its_tag(synced: Sandbox) -> None:
    write_image(synced.root / "Bird/b9.jpg", 399)

    run = synced.reconcile()

    assert run.exit_code == 0, str(run)
    assert run.mirror["done"]["uploads"] == 1
    assert synced.content() == synced.expected()


def test_emptied_folder_leaves_the_other_tags_alone(synced: Sandbox) -> None:
    shutil.rmtree(synced.root / "Bird")

    run = synced.reconcile()

    assert run.exit_code == 0, str(run)
    assert run.mirror["done"]["delete_images"] == 3
    assert synced.content() == synced.expected()
