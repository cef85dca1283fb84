"""The mass-delete guard: a missing or emptied root, or too many deletes, deletes nothing."""

from __future__ import annotations

import shutil

import pytest

from tests.e2e.support import STANDARD_TREE, Sandbox, sha256
from tests.support.images import write_image


def _empty_the_root(box: Sandbox) -> None:
    """What `rm -r dataset/*` does: every folder and file goes, the hidden marker stays."""
    for child in box.root.iterdir():
        if not child.name.startswith("."):
            shutil.rmtree(child) if child.is_dir() else child.unlink()


def test_missing_root_deletes_nothing(synced: Sandbox) -> None:
    before = synced.content()
    shutil.rmtree(synced.root)

    run = synced.reconcile()

    assert run.exit_code == 1, str(run)
    assert run.mirror["refused"] is not None
    assert run.mirror["done"]["delete_images"] == 0
    assert synced.content() == before


def test_missing_root_is_not_overridden_by_allow_mass_delete(synced: Sandbox) -> None:
    before = synced.content()
    shutil.rmtree(synced.root)

    run = synced.reconcile("--allow-mass-delete")

    assert run.exit_code == 1, str(run)
    assert run.mirror["refused"] is not None
    assert synced.content() == before


def test_emptied_root_deletes_nothing(synced: Sandbox) -> None:
    before = synced.content()
    _empty_the_root(synced)

    run = synced.reconcile()

    assert run.exit_code == 1, str(run)
    refused = run.mirror["refused"]
    assert refused is not None
    assert refused["images"] == len(STANDARD_TREE)
    assert "--allow-mass-delete" not in refused["message"]
    assert "mount it" in refused["message"]  # what to check instead
    assert synced.content() == before


def test_emptied_root_is_not_overridden_by_allow_mass_delete(synced: Sandbox) -> None:
    before = synced.content()
    _empty_the_root(synced)

    run = synced.reconcile("--allow-mass-delete")

    assert run.exit_code == 1, str(run)
    assert run.mirror["refused"] is not None and not run.mirror["refused"]["overridable"]
    assert run.mirror["done"]["delete_images"] == 0
    assert synced.content() == before


def test_unmounted_mount_point_deletes_nothing_even_when_forced(synced: Sandbox) -> None:
    """The root is there but is an empty mount point: no files, no marker."""
    before = synced.content()
    shutil.rmtree(synced.root)
    synced.root.mkdir()

    run = synced.reconcile("--allow-mass-delete")

    assert run.exit_code == 1, str(run)
    message = run.mirror["refused"]["message"]
    assert "holds no files" in message and ".syncd-root is missing" in message, message
    assert "--allow-mass-delete" not in message
    assert synced.content() == before


def test_too_many_deletes_are_refused(synced: Sandbox) -> None:
    before = synced.content()
    for rel in ("Dog/d0.jpg", "Dog/d1.jpg", "Dog/d2.png", "Dog/d3.jpg", "Cat/c0.jpg", "Cat/c1.png"):
        (synced.root / rel).unlink()  # 6 of 12: over 5 and over a quarter

    run = synced.reconcile()

    assert run.exit_code == 1, str(run)
    assert run.mirror["refused"]["images"] == 6
    assert run.mirror["planned"]["refused_deletes"] == 6
    assert synced.content() == before


def test_too_many_deletes_go_ahead_with_allow_mass_delete(synced: Sandbox) -> None:
    for rel in ("Dog/d0.jpg", "Dog/d1.jpg", "Dog/d2.png", "Dog/d3.jpg", "Cat/c0.jpg", "Cat/c1.png"):
        (synced.root / rel).unlink()

    run = synced.reconcile("--allow-mass-delete")

    assert run.exit_code == 0, str(run)
    assert run.mirror["done"]["delete_images"] == 6
    assert synced.content() == synced.expected()


def test_refused_deletes_do_not_stop_the_rest_of_the_plan(synced: Sandbox) -> None:
    for rel in ("Dog/d0.jpg", "Dog/d1.jpg", "Dog/d2.png", "Dog/d3.jpg", "Cat/c0.jpg", "Cat/c1.png"):
        (synced.root / rel).unlink()
    new = write_image(synced.root / "Bird/b9.jpg", 399)

    run = synced.reconcile()

    assert run.exit_code == 1, str(run)
    assert run.mirror["done"]["uploads"] == 1
    images = synced.images()
    assert len(images) == len(STANDARD_TREE) + 1
    assert any(i.tags == {"Bird"} and i.sha256 == sha256(new) for i in images)


def test_missing_marker_deletes_nothing(synced: Sandbox) -> None:
    before = synced.content()
    (synced.root / ".syncd-root").unlink()
    (synced.root / "Cat/c1.png").unlink()

    run = synced.reconcile()

    assert run.exit_code == 1, str(run)
    assert run.mirror["refused"] is not None
    assert synced.content() == before


def test_missing_marker_is_not_overridden_by_allow_mass_delete(synced: Sandbox) -> None:
    before = synced.content()
    (synced.root / ".syncd-root").unlink()
    (synced.root / "Cat/c1.png").unlink()

    run = synced.reconcile("--allow-mass-delete")

    assert run.exit_code == 1, str(run)
    message = run.mirror["refused"]["message"]
    assert f"echo {synced.project_id} > {synced.root}/.syncd-root" in message, message
    assert synced.content() == before


@pytest.mark.parametrize("policy", ["keep", "mirror"])
def test_missing_root_is_an_error_under_every_delete_policy(synced: Sandbox, policy: str) -> None:
    synced.write_config(delete=policy)
    shutil.rmtree(synced.root)

    run = synced.reconcile()
    text = synced.cli("reconcile", "--config", str(synced.config_path))

    assert run.exit_code == 1, str(run)
    assert run.mirror["root_missing"] is True
    assert any(f"{synced.root} does not exist" in w for w in run.mirror["warnings"]), str(run)
    assert text.exit_code == 1
    assert "does not exist" in text.stdout and "in sync" not in text.stdout, text.stdout
