"""A delete can be undone: under `delete: mirror` with `trash_dir`, each deleted image's original
is downloaded first into a dated folder laid out like the tree; moving the files back and syncing
restores them with their tags. A trash that cannot be written holds the deletes back."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from syncd.emulator.server import EmulatorServer
from tests.e2e.support import STANDARD_TREE, Sandbox, sha256
from tests.support.hostile import HostileServer, Reply, Request

GONE = ("Dog/d1.jpg", "Cat/c2.bmp")
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d{6}Z$")


def test_deleted_originals_land_in_the_trash_and_moving_them_back_restores_them(
    synced: Sandbox,
) -> None:
    trash = synced.tmp / "trash"
    synced.write_config(trash_dir=str(trash))
    kept_bytes = {rel: (synced.root / rel).read_bytes() for rel in GONE}
    full = synced.content()
    for rel in GONE:
        (synced.root / rel).unlink()

    run = synced.reconcile()

    assert run.exit_code == 0, str(run)
    assert run.mirror["done"]["delete_images"] == 2
    assert synced.content() == synced.expected()  # gone from the project
    (stamp,) = list(trash.iterdir())
    assert STAMP.match(stamp.name), stamp.name
    files = sorted(p.relative_to(stamp).as_posix() for p in stamp.rglob("*") if p.is_file())
    assert files == sorted(GONE)  # laid out like the tree
    for rel, data in kept_bytes.items():
        assert (stamp / rel).read_bytes() == data  # byte-identical originals

    for rel in GONE:
        shutil.move(stamp / rel, synced.root / rel)
    again = synced.reconcile()

    assert again.exit_code == 0, str(again)
    assert again.mirror["done"]["uploads"] == 2
    assert synced.content() == full  # back, with the same tags
    assert len(synced.images()) == len(STANDARD_TREE)


def test_an_image_in_two_folders_is_trashed_at_both_paths(synced: Sandbox) -> None:
    trash = synced.tmp / "trash"
    synced.write_config(trash_dir=str(trash))
    data = (synced.root / "Dog/d0.jpg").read_bytes()
    (synced.root / "Cat/d0-too.jpg").write_bytes(data)  # the same bytes: one image, two tags
    assert synced.reconcile().exit_code == 0
    before = synced.content()
    assert before[sha256(data)] == {"Dog", "Cat"}
    (synced.root / "Dog/d0.jpg").unlink()
    (synced.root / "Cat/d0-too.jpg").unlink()

    run = synced.reconcile()

    assert run.exit_code == 0, str(run)
    (stamp,) = list(trash.iterdir())
    for rel in ("Dog/d0.jpg", "Cat/d0-too.jpg"):
        assert (stamp / rel).read_bytes() == data
    for rel in ("Dog/d0.jpg", "Cat/d0-too.jpg"):
        shutil.move(stamp / rel, synced.root / rel)
    assert synced.reconcile().exit_code == 0
    assert synced.content() == before


def test_a_trash_that_cannot_be_written_holds_the_deletes_back(synced: Sandbox) -> None:
    trash: Path = synced.tmp / "trash"
    trash.write_text("not a folder\n")  # no folder can be made in it, not even by root
    synced.write_config(trash_dir=str(trash))
    before = synced.content()
    for rel in GONE:
        (synced.root / rel).unlink()

    run = synced.reconcile()

    assert run.exit_code == 1, str(run)
    assert run.mirror["done"]["delete_images"] == 0
    failed = run.mirror["failed"]
    assert [f["operation"] for f in failed] == ["trash", "trash"], failed
    assert all(str(trash) in f["message"] for f in failed), failed
    assert synced.content() == before  # nothing deleted
    text = synced.cli("reconcile", "--config", str(synced.config_path))
    assert text.exit_code == 1 and "trash" in text.stdout, text.stdout


def test_an_original_that_does_not_match_the_ledgers_hash_is_not_deleted(
    synced: Sandbox, emulator: EmulatorServer
) -> None:
    """A service (or a stand-in) that serves other bytes for an original: kept nowhere, and
    the image is not deleted, since what is in the trash would not restore it."""

    def other_bytes(request: Request) -> Reply | None:
        if request.path.endswith("/original"):
            return Reply(body=b"\xff\xd8\xff" + b"not the original" * 10)
        return None

    trash = synced.tmp / "trash"
    before = synced.content()
    (synced.root / "Dog/d1.jpg").unlink()
    with HostileServer(other_bytes, upstream=emulator.url) as bad:
        synced.endpoint = bad.url
        synced.write_config(trash_dir=str(trash))
        run = synced.reconcile()
        assert bad.requests_to("/original"), "the original was never asked for"

    assert run.exit_code == 1, str(run)
    (failure,) = run.mirror["failed"]
    assert failure["operation"] == "trash" and "differ" in failure["message"], failure
    assert synced.content() == before
    assert [p for p in trash.rglob("*") if p.is_file()] == []
