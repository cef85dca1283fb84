"""One writer per ledger: `syncd run` holds its ledgers' lock for its whole life.

A `syncd reconcile` or a second `syncd run` on the same ledger exits 5 with one line naming the
ledger and the holder's pid; `syncd status` and `syncd reconcile --dry-run` still work and write
nothing; the lock goes when the daemon goes, however it goes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.daemon.conftest import World
from tests.daemon.support import REPO
from tests.support import TEST_KEY
from tests.support.images import write_image

EXIT_BUSY = 5


def _syncd(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "syncd", *args, "--config", str(world.config_path)],
        cwd=REPO,
        env={**os.environ, "SYNCD_TRAINING_KEY": TEST_KEY},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _ledger(world: World) -> Path:
    return world.tmp / "state" / "t.ledger.sqlite"


def _files(ledger: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of the ledger and its SQLite side files, as they are now."""
    out = {}
    for suffix in ("", "-wal", "-shm", "-journal"):
        path = Path(f"{ledger}{suffix}")
        if path.exists():
            st = path.stat()
            out[path.name] = (st.st_size, st.st_mtime_ns)
    return out


def test_reconcile_while_the_daemon_runs_exits_5_and_status_still_reads(world: World) -> None:
    write_image(world.root / "Dog" / "a.jpg", 91)
    daemon = world.start_daemon()
    daemon.wait_ready()
    ledger = _ledger(world)
    before = _files(ledger)

    busy = _syncd(world, "reconcile")
    assert busy.returncode == EXIT_BUSY, busy.stderr
    assert "Traceback" not in busy.stderr
    lines = [line for line in busy.stderr.splitlines() if line.startswith("syncd: error:")]
    assert len(lines) == 1, busy.stderr  # one line
    assert str(ledger) in lines[0]
    assert f"pid {daemon.proc.pid}" in lines[0]
    assert "syncd run" in lines[0]

    status = _syncd(world, "status", "--json")
    assert status.returncode == 0, status.stderr
    entry = json.loads(status.stdout)["mirrors"][0]
    assert entry["synced"] is True
    assert entry["images_total"] == 1

    dry = _syncd(world, "reconcile", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert _files(ledger) == before  # neither status nor the dry run wrote a byte

    assert daemon.stop() == 0
    after = _syncd(world, "reconcile")  # the lock went with the daemon
    assert after.returncode == 0, after.stderr


def test_a_second_daemon_on_the_same_ledger_exits_5(world: World) -> None:
    first = world.start_daemon()
    first.wait_ready()
    second = world.start_daemon()
    assert second.proc.wait(60) == EXIT_BUSY, second.log()
    assert f"pid {first.proc.pid}" in second.log()
    assert first.proc.poll() is None  # the first one goes on
    assert first.stop() == 0


def test_a_killed_daemon_leaves_no_lock_behind(world: World) -> None:
    daemon = world.start_daemon()
    daemon.wait_ready()
    daemon.kill()  # SIGKILL: no cleanup at all
    run = _syncd(world, "reconcile")
    assert run.returncode == 0, run.stderr
