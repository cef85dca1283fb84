"""A first sync into an empty project uploads files while the rest of the tree is checked.

syncd.firstsync: the uploads of a first sync no longer wait until every file is hashed and
decoded (bench A and G: the quota, or the line, idle all that time). These tests hold the check
of the tree's last file until an upload has been answered (a run that waits for the whole check
never gets there), and check that what streaming sends is exactly what the whole tree's plan
would: one image per content with every folder's tag, and in a Multiclass project no image for
bytes whose copies ask for two tags (a conflict the whole tree's plan reports).
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from syncd.config import load_config
from syncd.errors import ProjectMissingError
from syncd.reconcile import MirrorReport, open_client, reconcile_mirror
from tests.e2e.support import (
    Sandbox,
    expected_content,
    remote_content,
    sha256,
    write_tree,
)
from tests.support.images import write_image

FILES = 70  # more than one upload window of 64 images (max_concurrency 1)


def _reconcile_holding_the_last_check(
    box: Sandbox, hold: bool = True, then: Callable[[], None] | None = None
) -> tuple[MirrorReport, bool]:
    """Reconcile in this process, one upload call at a time; with `hold`, the check of the
    tree's last file waits (up to 30 s) until an upload has been answered, then calls `then`.
    Returns the report and whether an upload was answered in time."""
    config = yaml.safe_load(box.config_path.read_text(encoding="utf-8"))
    config["service"]["max_concurrency"] = 1
    box.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    loaded = load_config(box.config_path)
    mirror = loaded.mirrors[0]
    files = sum(1 for p in box.root.rglob("*") if p.is_file())
    uploaded = threading.Event()
    seen_in_time: list[bool] = []
    checked = 0

    def progress(kind: str, n: int) -> None:
        nonlocal checked
        if kind == "uploads":
            uploaded.set()
        elif kind == "checked":  # the check's thread
            checked += n
            if hold and checked == files - 1:
                seen_in_time.append(uploaded.wait(timeout=30))
                if then is not None:
                    then()

    async def run() -> MirrorReport:
        async with open_client(loaded.service) as client:
            return await reconcile_mirror(loaded, mirror, client, progress=progress)

    report = asyncio.run(run())
    return report, seen_in_time == [True]


def _tree(root: Path) -> None:
    write_tree(root, {f"Dog/d{n:03}.jpg": 5000 + n for n in range(FILES)})


def test_a_first_sync_uploads_before_its_tree_is_checked(sandbox: Sandbox) -> None:
    _tree(sandbox.root)
    report, uploaded_during_check = _reconcile_holding_the_last_check(sandbox)
    assert uploaded_during_check, "no upload was answered before the last file was checked"
    assert report.in_sync, report.to_json()
    assert report.planned()["uploads"] == FILES
    assert report.execution is not None and report.execution.done["uploads"] == FILES
    assert remote_content(sandbox.http, sandbox.project_id) == expected_content(sandbox.root)
    again = sandbox.reconcile()
    assert again.exit_code == 0, str(again)
    assert again.document is not None
    (mirror,) = again.document["mirrors"]
    assert mirror["api_calls"] == 3  # in sync: the three count reads
    assert sum(mirror["planned"].values()) == 0


def test_a_copy_found_after_its_bytes_were_sent_adds_its_tag(sandbox: Sandbox) -> None:
    _tree(sandbox.root)
    (sandbox.root / "Zebra").mkdir()
    shutil.copy(sandbox.root / "Dog/d000.jpg", sandbox.root / "Zebra/copy.jpg")
    report, uploaded_during_check = _reconcile_holding_the_last_check(sandbox)
    assert uploaded_during_check
    assert report.in_sync, report.to_json()
    remote = remote_content(sandbox.http, sandbox.project_id)  # fails on a duplicate image
    assert remote == expected_content(sandbox.root)
    assert remote[sha256((sandbox.root / "Dog/d000.jpg").read_bytes())] == {"Dog", "Zebra"}
    assert len(remote) == FILES


def test_in_a_multiclass_project_bytes_in_two_folders_are_never_uploaded(
    sandbox: Sandbox,
) -> None:
    r = sandbox.http.post("/projects", params={"name": "mc", "classificationType": "Multiclass"})
    assert r.status_code == 200, r.text
    box = Sandbox(sandbox.tmp, sandbox.endpoint, r.json()["id"], sandbox.http, sandbox.capsys)
    box.write_config()
    _tree(box.root)
    (box.root / "Zebra").mkdir()
    shutil.copy(box.root / "Dog/d000.jpg", box.root / "Zebra/copy.jpg")
    report, _ = _reconcile_holding_the_last_check(box, hold=False)
    conflicts: list[dict[str, Any]] = report.to_json()["conflicts"]
    assert [c["paths"] for c in conflicts] == [["Dog/d000.jpg", "Zebra/copy.jpg"]]
    remote = remote_content(box.http, box.project_id)
    assert sha256((box.root / "Dog/d000.jpg").read_bytes()) not in remote
    wanted = expected_content(box.root, skip=frozenset({"Dog/d000.jpg", "Zebra/copy.jpg"}))
    assert remote == wanted


def test_a_file_that_changes_before_it_is_sent_fails_once_and_is_sent_next_run(
    sandbox: Sandbox,
) -> None:
    _tree(sandbox.root)
    changed = sandbox.root / "Dog/d066.jpg"  # checked, in the second upload window, not read yet

    def change() -> None:
        write_image(changed, 9066)

    report, uploaded_during_check = _reconcile_holding_the_last_check(sandbox, then=change)
    assert uploaded_during_check
    failed = [f for f in report.failures if f["subject"] == "Dog/d066.jpg"]
    assert len(failed) == 1, report.failures  # tried once this run, not again by its plan
    assert "changed since it was scanned" in str(failed[0]), failed
    assert not report.in_sync
    assert len(remote_content(sandbox.http, sandbox.project_id)) == FILES - 1
    again = sandbox.reconcile()
    assert again.exit_code == 0, str(again)
    assert remote_content(sandbox.http, sandbox.project_id) == expected_content(sandbox.root)


def test_a_project_deleted_during_a_first_sync_stops_it_with_its_error(sandbox: Sandbox) -> None:
    _tree(sandbox.root)

    def delete_project() -> None:
        r = sandbox.http.delete(f"/projects/{sandbox.project_id}")
        assert r.status_code == 204, r.text

    with pytest.raises(ProjectMissingError):
        _reconcile_holding_the_last_check(sandbox, then=delete_project)
