"""`syncd reconcile --dry-run`: prints what it would do, changes nothing remote or local."""

from __future__ import annotations

from tests.e2e.support import STANDARD_TREE, Sandbox, ledger_snapshot, remote_images, write_tree
from tests.support.images import write_image


def test_dry_run_changes_neither_project_nor_ledger(synced: Sandbox) -> None:
    write_image(synced.root / "Dog/new.jpg", 190)  # an upload
    (synced.root / "Dog/d0.jpg").rename(synced.root / "Cat/d0.jpg")  # a retag
    (synced.root / "Bird/b0.jpg").unlink()  # a delete
    remote_before = sorted(synced.images(), key=lambda i: i.id)
    ledger_before = ledger_snapshot(synced.ledger)

    run = synced.reconcile("--dry-run")

    assert run.exit_code in (0, 1), str(run)
    assert sorted(synced.images(), key=lambda i: i.id) == remote_before
    assert ledger_snapshot(synced.ledger) == ledger_before


def test_dry_run_reports_the_planned_counts(synced: Sandbox) -> None:
    write_image(synced.root / "Dog/new.jpg", 190)
    (synced.root / "Dog/d0.jpg").rename(synced.root / "Cat/d0.jpg")
    (synced.root / "Bird/b0.jpg").unlink()

    run = synced.reconcile("--dry-run")

    mirror = run.mirror
    assert mirror["dry_run"] is True
    assert mirror["planned"]["uploads"] == 1
    assert mirror["planned"]["delete_images"] == 1
    assert mirror["planned"]["add_tags"] == 1
    assert mirror["planned"]["remove_tags"] == 1
    assert all(count == 0 for count in mirror["done"].values()), mirror["done"]


def test_dry_run_before_the_first_sync_uploads_nothing(sandbox: Sandbox) -> None:
    write_tree(sandbox.root, STANDARD_TREE)

    run = sandbox.reconcile("--dry-run")

    assert run.mirror["planned"]["uploads"] == len(STANDARD_TREE)
    assert remote_images(sandbox.http, sandbox.project_id) == []
    assert sandbox.http.get(f"/projects/{sandbox.project_id}/tags").json() == []


def test_dry_run_prints_the_plan_for_humans(synced: Sandbox) -> None:
    for seed in range(7):
        write_image(synced.root / f"Cat/new{seed}.jpg", 250 + seed)

    run = synced.cli("reconcile", "--config", str(synced.config_path), "--dry-run")

    assert run.exit_code in (0, 1), str(run)
    assert "7" in run.stdout
    assert "upload" in run.stdout.lower()
    assert "Traceback" not in run.stdout + run.stderr
