"""A first sync killed halfway must not leave the tree without its marker for good.

Found by the chaos run (seed 269507518): the daemon was killed during its first reconcile, after
some uploads were recorded and before the root marker was written. From then on the ledger knew
files and the marker was missing, so every later run refused every delete ("is this the right
folder?") and never wrote the marker: 192 deleted files stayed in the project.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from syncd.emulator.faults import Faults
from syncd.emulator.server import EmulatorServer
from tests.e2e.support import REPO, Sandbox, write_tree
from tests.emulator.support import api_client
from tests.support import TEST_KEY
from tests.support.spec_check import SpecChecker

FILES = 70  # two upload batches of at most 64, sent one after the other (max_concurrency 1)


@pytest.fixture
def slow_box(
    tmp_path: Path,
    spec_checker: SpecChecker,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Sandbox]:
    server = EmulatorServer(
        training_key=TEST_KEY,
        faults=Faults(latency_ms=300),
        response_observer=spec_checker.observe,
    )
    with (
        server,
        api_client(server.url) as http,
    ):
        r = http.post("/projects", params={"name": "first", "classificationType": "Multilabel"})
        assert r.status_code == 200, r.text
        monkeypatch.setenv("SYNCD_TRAINING_KEY", TEST_KEY)
        box = Sandbox(tmp_path, server.url, r.json()["id"], http, capsys)
        box.root.mkdir()
        yield box


def _recorded_images(ledger: Path) -> int:
    try:
        with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=1) as db:
            (n,) = db.execute("SELECT COUNT(*) FROM images").fetchone()
        db.close()
        return int(n)
    except sqlite3.Error:
        return 0  # not created yet


def test_a_file_deleted_after_a_killed_first_sync_is_deleted_remotely_next_run(
    slow_box: Sandbox,
) -> None:
    box = slow_box
    write_tree(box.root, {f"Dog/d{n:03}.jpg": 3000 + n for n in range(FILES)})
    box.write_config()
    config = yaml.safe_load(box.config_path.read_text(encoding="utf-8"))
    config["service"]["max_concurrency"] = 1
    box.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "syncd", "reconcile", "--config", str(box.config_path)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60  # only a hang reaches this
        while _recorded_images(box.ledger) == 0 and proc.poll() is None:
            assert time.monotonic() < deadline, "the first batch was never recorded"
            time.sleep(0.005)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)  # the second batch is still on its way
    finally:
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"

    (box.root / "Dog" / "d000.jpg").unlink()  # the user goes on working meanwhile

    rerun = box.reconcile()

    assert rerun.exit_code == 0, str(rerun)
    assert box.content() == box.expected()
    assert (box.root / ".syncd-root").exists()
