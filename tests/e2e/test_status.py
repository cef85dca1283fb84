"""`syncd status`: what the ledger knows after a sync, and with --remote what the service says.

The contract names the command and its flags but not the shape of `status --json`; these tests
read the keys the implementation prints (files, images_total, tags, last_run, remote,
remote_agrees) and check them against the tree and the project over HTTP.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

from tests.e2e.support import REPO, STANDARD_TREE, Sandbox
from tests.support.images import write_image


def _count(box: Sandbox, path: str) -> int:
    r = box.http.get(f"/projects/{box.project_id}/{path}")
    assert r.status_code == 200, r.text
    return r.json()


def test_status_after_a_sync_shows_the_counts_and_the_last_run(synced: Sandbox) -> None:
    run = synced.status("--json")

    assert run.exit_code == 0, str(run)
    entry = run.document["mirrors"][0]
    assert entry["files"] == len(STANDARD_TREE)
    assert entry["images_total"] == len(STANDARD_TREE)
    assert entry["tags"] == 4  # Dog, Cat, Bird, Negative
    assert entry["last_run"]["outcome"] == "ok"
    assert entry["last_run"]["finished_at"]


def test_status_after_a_run_with_problems_shows_them(synced: Sandbox) -> None:
    (synced.root / "Dog/notes.jpg").write_text("not an image", encoding="utf-8")
    assert synced.reconcile().exit_code == 1

    entry = synced.status("--json").document["mirrors"][0]

    assert entry["problems"] == {"not_an_image": 1}
    assert entry["files_ok"] == len(STANDARD_TREE)


def test_status_remote_agrees_with_the_service(synced: Sandbox) -> None:
    run = synced.status("--json", "--remote")

    assert run.exit_code == 0, str(run)
    entry = run.document["mirrors"][0]
    assert entry["remote"]["images"] == _count(synced, "images/count") == len(STANDARD_TREE)
    tags = synced.http.get(f"/projects/{synced.project_id}/tags").json()
    assert entry["remote"]["tags"] == len(tags)
    assert entry["remote_agrees"] is True


def test_status_remote_shows_an_image_deleted_in_the_portal(synced: Sandbox) -> None:
    victim = synced.images()[0]
    synced.http.delete(f"/projects/{synced.project_id}/images", params={"imageIds": victim.id})

    entry = synced.status("--json", "--remote").document["mirrors"][0]

    assert entry["remote"]["images"] == len(STANDARD_TREE) - 1
    assert entry["remote_agrees"] is False


def test_status_does_not_touch_the_service_without_remote(synced: Sandbox) -> None:
    write_image(synced.root / "Dog/new.jpg", 190)
    images_before = _count(synced, "images/count")

    run = synced.status("--json")

    assert run.exit_code == 0, str(run)
    assert "remote" not in run.document["mirrors"][0]
    assert _count(synced, "images/count") == images_before


def test_status_before_any_sync_says_so(sandbox: Sandbox) -> None:
    run = sandbox.status()

    assert run.exit_code == 0, str(run)
    assert "never synced" in run.stdout


def test_status_for_humans_shows_the_image_count_and_last_run(synced: Sandbox) -> None:
    run = synced.status("--remote")

    assert run.exit_code == 0, str(run)
    assert f"images: {len(STANDARD_TREE)}" in run.stdout
    assert "last run" in run.stdout
    assert "agrees" in run.stdout


def _ledger_files(box: Sandbox) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of the ledger and every SQLite side file next to it."""
    out = {}
    for path in box.state_dir.iterdir():
        if path.name.startswith(box.ledger.name) and not path.name.endswith(".lock"):
            st = path.stat()
            out[path.name] = (st.st_size, st.st_mtime_ns)
    return out


def test_status_opens_the_ledger_read_only_and_writes_nothing(synced: Sandbox) -> None:
    before = _ledger_files(synced)
    assert set(before) == {synced.ledger.name}  # closed cleanly: no -wal, no -shm

    run = synced.status("--json")

    assert run.exit_code == 0, str(run)
    assert run.document["mirrors"][0]["files"] == len(STANDARD_TREE)
    assert _ledger_files(synced) == before  # not even an empty -wal or -shm


def _read_only_mount_works() -> bool:
    probe = subprocess.run(
        ["unshare", "--mount", "sh", "-c", "mount --bind / /mnt && umount /mnt"],
        capture_output=True,
    )
    return probe.returncode == 0


def test_status_works_on_a_read_only_file_system(synced: Sandbox) -> None:
    # Tests run as root, and root ignores a 0444 mode: a read-only bind mount of the state
    # folder (in a private mount namespace) is what refuses root's writes too.
    if shutil.which("unshare") is None or not _read_only_mount_works():
        pytest.skip(
            "needs `unshare --mount` (root in a namespace) to mount the state dir read-only"
        )
    synced.ledger.chmod(0o444)
    before = _ledger_files(synced)
    script = (
        'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && '
        'exec "$2" -m syncd status --json --config "$3"'
    )
    state, config = str(synced.state_dir), str(synced.config_path)
    run = subprocess.run(
        ["unshare", "--mount", "sh", "-c", script, "sh", state, sys.executable, config],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert run.returncode == 0, run.stderr
    entry = json.loads(run.stdout)["mirrors"][0]
    assert entry["files"] == len(STANDARD_TREE)
    assert entry["last_run"]["outcome"] == "ok"
    assert _ledger_files(synced) == before


def _last_run_line(stdout: str) -> str:
    (line,) = [ln for ln in stdout.splitlines() if ln.strip().startswith("last run:")]
    return line.strip()


def test_status_remote_tells_the_last_run_in_words(synced: Sandbox) -> None:
    run = synced.status("--remote")

    assert run.exit_code == 0, str(run)
    line = _last_run_line(run.stdout)
    # e.g. "last run: #1 in sync, 2026-12-02 15:26:59 UTC: created 4 tags, uploaded 12 images;
    # 8 API calls": no raw keys (done_uploads, api_calls) of the ledger's mapping
    assert re.fullmatch(
        r"last run: #1 in sync, \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC: created 4 tags, "
        rf"uploaded {len(STANDARD_TREE)} images; \d+ API calls",
        line,
    ), line


def test_status_tells_a_run_that_left_work_undone_in_words(synced: Sandbox) -> None:
    (synced.root / "Dog/notes.jpg").write_text("not an image", encoding="utf-8")
    write_image(synced.root / "Cat/new.jpg", 290)
    assert synced.reconcile().exit_code == 1

    line = _last_run_line(synced.status().stdout)

    assert re.fullmatch(
        r"last run: #2 finished, not everything mirrored, \S+ \S+ UTC: uploaded 1 image; "
        r"\d+ API calls",
        line,
    ), line


def test_status_tells_an_unchanged_run_in_words(synced: Sandbox) -> None:
    assert synced.reconcile().exit_code == 0

    line = _last_run_line(synced.status().stdout)

    assert re.fullmatch(r"last run: #2 in sync, \S+ \S+ UTC: nothing to change; 3 API calls", line)


def test_status_tells_a_failed_run_in_words_with_its_error(synced: Sandbox) -> None:
    synced.endpoint = "http://127.0.0.1:9"  # discard port: nothing listens
    synced.write_config()
    assert synced.cli("reconcile", "--config", str(synced.config_path)).exit_code == 3

    run = synced.status()

    assert re.fullmatch(r"last run: #2 failed, \S+ \S+ UTC", _last_run_line(run.stdout)), run
    assert "    error: " in run.stdout, run
