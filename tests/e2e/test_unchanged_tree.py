"""A tree unchanged since a run that ended in sync is counted, not loaded; any change is still seen.

The shortcut (the tree's stat digest, kept by the ledger when a run ends in sync) spares a
100k-file no-op its file-by-file work. These tests hold that it never hides a change that the
file-by-file path would act on: an edit, an addition, a delete, a move, new settings, a missing
marker, or drift in the project.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.support import STANDARD_TREE, Sandbox, age, ledger_snapshot, write_tree
from tests.support.images import write_image


@pytest.fixture
def settled(sandbox: Sandbox) -> Sandbox:
    write_tree(sandbox.root, STANDARD_TREE)
    age(sandbox.root)
    first = sandbox.reconcile()
    assert first.exit_code == 0, str(first)
    assert first.mirror["local"]["hashed"] == len(STANDARD_TREE)
    return sandbox


def test_an_unchanged_tree_costs_three_calls_and_no_file_work(settled: Sandbox) -> None:
    run = settled.reconcile()

    assert run.exit_code == 0, str(run)
    local = run.mirror["local"]
    assert local["unchanged"] is True
    assert local["files"] == local["ok"] == len(STANDARD_TREE)
    assert local["hashed"] == 0
    assert run.mirror["api_calls"] == 3
    assert run.mirror["planned"] == dict.fromkeys(run.mirror["planned"], 0)
    # It stays that way run after run: the shortcut leaves the mark for the next one.
    assert settled.reconcile().mirror["local"]["unchanged"] is True
    summary = settled.cli("reconcile", "--config", str(settled.config_path))
    assert "unchanged since the last run in sync" in summary.stdout, summary.stdout


def test_a_tree_synced_seconds_after_it_was_written_is_checked_again(synced: Sandbox) -> None:
    # Hashes taken within 2 s of a write are not trusted, so nothing vouches for this tree yet.
    run = synced.reconcile()
    assert run.mirror["local"]["unchanged"] is False

    age(synced.root)  # new mtimes: every file is read again, and now its hash is trusted
    again = synced.reconcile()
    assert again.mirror["local"]["unchanged"] is False
    assert again.mirror["local"]["hashed"] == len(STANDARD_TREE)
    assert again.mirror["done"]["uploads"] == 0

    assert synced.reconcile().mirror["local"]["unchanged"] is True


def _edit(root: Path) -> None:
    write_image(root / "Dog/d0.jpg", 9100)
    _age_file(root / "Dog/d0.jpg")


def _add(root: Path) -> None:
    write_image(root / "Cat/new.jpg", 9200)
    _age_file(root / "Cat/new.jpg")


def _age_file(path: Path) -> None:
    then = time.time() - 60  # not as old as the rest: a new mtime, and a hash to trust
    os.utime(path, (then, then))


def _delete(root: Path) -> None:
    (root / "Bird/b0.jpg").unlink()


def _move(root: Path) -> None:
    (root / "Dog/d1.jpg").rename(root / "Cat/d1.jpg")


def _touch(root: Path) -> None:
    _age_file(root / "Cat/c0.jpg")


@pytest.mark.parametrize(
    ("change", "sent", "deleted", "retagged", "hashed"),
    [
        (_edit, 1, 1, 0, 1),
        (_add, 1, 0, 0, 1),
        (_delete, 0, 1, 0, 0),
        (_move, 0, 0, 1, 0),
        (_touch, 0, 0, 0, 1),
    ],
    ids=["edit", "add", "delete", "move", "touch"],
)
def test_a_change_to_the_tree_is_seen(
    settled: Sandbox,
    change: Callable[[Path], None],
    sent: int,
    deleted: int,
    retagged: int,
    hashed: int,
) -> None:
    change(settled.root)

    run = settled.reconcile()

    assert run.exit_code == 0, str(run)
    assert run.mirror["local"]["unchanged"] is False
    assert run.mirror["local"]["hashed"] == hashed
    done = run.mirror["done"]
    assert done["uploads"] == sent
    assert done["delete_images"] == deleted
    assert done["add_tags"] == retagged
    assert settled.content() == settled.expected()


def test_new_tag_settings_are_applied_to_an_unchanged_tree(settled: Sandbox) -> None:
    settled.write_config(tags={"rename": {"Dog": "Canine"}})

    run = settled.reconcile()

    assert run.exit_code == 0, str(run)
    assert run.mirror["local"]["unchanged"] is False
    dogs = sum(1 for rel in STANDARD_TREE if rel.startswith("Dog/"))
    assert run.mirror["done"]["add_tags"] == dogs
    tags_by_name = {
        t["name"] for t in settled.http.get(f"/projects/{settled.project_id}/tags").json()
    }
    assert "Canine" in tags_by_name


def test_a_missing_marker_is_not_covered_by_the_shortcut(settled: Sandbox) -> None:
    (settled.root / ".syncd-root").unlink()

    run = settled.reconcile()

    assert run.mirror["local"]["unchanged"] is False


def test_drift_in_the_project_is_repaired_with_the_counts_read_once(settled: Sandbox) -> None:
    victim = settled.images()[0]
    r = settled.http.delete(
        f"/projects/{settled.project_id}/images", params={"imageIds": victim.id}
    )
    assert r.status_code == 204, r.text

    run = settled.reconcile()

    assert run.exit_code == 0, str(run)
    assert run.mirror["done"]["uploads"] == 1
    assert settled.content() == settled.expected()
    # GetProject, GetTags, GetImageCount (which disagrees), one listing page, one upload: the
    # three counts are not asked a second time when the tree has to be loaded after all.
    assert run.mirror["remote"]["listing"] == "full"
    assert run.mirror["api_calls"] == 5


def test_full_reads_the_whole_project_even_when_nothing_changed(settled: Sandbox) -> None:
    run = settled.reconcile("--full")

    assert run.exit_code == 0, str(run)
    assert run.mirror["local"]["unchanged"] is False
    assert run.mirror["remote"]["listing"] == "full"


def test_a_dry_run_of_an_unchanged_tree_writes_nothing_and_keeps_the_mark(settled: Sandbox) -> None:
    before = ledger_snapshot(settled.ledger)[1]

    run = settled.reconcile("--dry-run")

    assert run.exit_code == 0, str(run)
    assert run.mirror["local"]["unchanged"] is True
    assert ledger_snapshot(settled.ledger)[1] == before
    # The real ledger still vouches for the tree: the next real run takes the short way too.
    assert settled.reconcile().mirror["local"]["unchanged"] is True
