"""Crash safety: SIGKILL `syncd reconcile` at seeded random moments, rerun, and it converges.

The emulator answers slowly (latency fault) so a kill lands while requests are in flight. Kill
moments are counted in API responses the emulator has sent ("kill after the 2nd write"), so a seed
picks the same point of the run whatever the machine's speed; the race between the kill and the
client recording that response is the point of the test. Each phase kills once among all
responses (mostly reads: project, tags, listing), once among the writes (tags, uploads, retags,
deletes) and once among the uploads, then reruns until exit 0.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest

from syncd.emulator.faults import Faults
from syncd.emulator.server import EmulatorServer
from tests.e2e.support import REPO, STANDARD_TREE, Sandbox, write_tree
from tests.emulator.support import api_client
from tests.support import TEST_KEY
from tests.support.images import write_image
from tests.support.spec_check import SpecChecker

SEED = 20240605
LATENCY_MS = 40
MAX_RERUNS = 6
WRITE_METHODS = frozenset({"POST", "DELETE", "PATCH", "PUT"})
Kind = Literal["response", "write", "upload"]
# (kind, largest k): each phase kills after the k-th response of each kind, k seeded in 1..largest.
KILL_POINTS: tuple[tuple[Kind, int], ...] = (("response", 4), ("write", 6), ("upload", 2))


class ResponseCounter:
    """Counts API responses the emulator sent (image blobs excluded); forwards to the checker."""

    def __init__(self, checker: SpecChecker) -> None:
        self.checker = checker
        self.counts: dict[Kind, int] = {"response": 0, "write": 0, "upload": 0}
        self._lock = threading.Lock()

    def observe(
        self, method: str, path: str, status: int, headers: dict[str, str], body: bytes
    ) -> None:
        if path.startswith("/customvision/"):
            is_upload = method == "POST" and path.endswith(("/images", "/images/files"))
            with self._lock:
                self.counts["response"] += 1
                self.counts["write"] += method in WRITE_METHODS
                self.counts["upload"] += is_upload
        self.checker.observe(method, path, status, headers, body)


@pytest.fixture
def counter(spec_checker: SpecChecker) -> ResponseCounter:
    return ResponseCounter(spec_checker)


@pytest.fixture
def slow_box(
    tmp_path: Path,
    counter: ResponseCounter,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Sandbox]:
    faults = Faults(latency_ms=LATENCY_MS, seed=SEED)
    server = EmulatorServer(training_key=TEST_KEY, faults=faults, response_observer=counter.observe)
    with (
        server,
        api_client(server.url) as http,
    ):
        domain = next(d for d in http.get("/domains").json() if d["type"] == "Classification")
        r = http.post(
            "/projects",
            params={"name": "crash", "domainId": domain["id"], "classificationType": "Multilabel"},
        )
        assert r.status_code == 200, r.text
        monkeypatch.setenv("SYNCD_TRAINING_KEY", TEST_KEY)
        box = Sandbox(tmp_path, server.url, r.json()["id"], http, capsys)
        box.root.mkdir()
        box.write_config()
        yield box


def _command(box: Sandbox) -> list[str]:
    return [sys.executable, "-m", "syncd", "reconcile", "--config", str(box.config_path), "--json"]


def _run_and_kill(box: Sandbox, counter: ResponseCounter, kind: Kind, after: int) -> bool:
    """Start a reconcile; SIGKILL it once the emulator sent `after` more responses of `kind`.

    Returns True if it was killed, False if it finished first.
    """
    target = counter.counts[kind] + after
    proc = subprocess.Popen(
        _command(box), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while proc.poll() is None:
            if counter.counts[kind] >= target:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
                return True
            time.sleep(0.001)
        return False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _converge(box: Sandbox, counter: ResponseCounter, rng: random.Random) -> int:
    """Kill runs at seeded random moments, then rerun until exit 0; return how many were killed."""
    kills = sum(_run_and_kill(box, counter, kind, rng.randint(1, k)) for kind, k in KILL_POINTS)
    for _ in range(MAX_RERUNS):
        proc = subprocess.run(_command(box), cwd=REPO, capture_output=True, text=True, timeout=60)
        if proc.returncode == 0:
            return kills
    raise AssertionError(f"no exit 0 after {MAX_RERUNS} reruns:\n{proc.stdout}\n{proc.stderr}")


def test_killed_reconciles_converge_without_duplicates_or_lost_tags(
    slow_box: Sandbox, counter: ResponseCounter
) -> None:
    rng = random.Random(SEED)
    write_tree(slow_box.root, STANDARD_TREE)
    (slow_box.root / "Cat/twin.jpg").write_bytes((slow_box.root / "Dog/d1.jpg").read_bytes())
    for seed in range(12):
        write_image(slow_box.root / f"Fish/f{seed}.png", 500 + seed)

    kills = _converge(slow_box, counter, rng)
    assert slow_box.content() == slow_box.expected()

    # Second phase: moves, a rename, deletes and new files, killed again.
    (slow_box.root / "Dog/d0.jpg").rename(slow_box.root / "Cat/d0.jpg")
    (slow_box.root / "Bird").rename(slow_box.root / "Parrot")
    for seed in range(3):
        (slow_box.root / f"Fish/f{seed}.png").unlink()
        write_image(slow_box.root / f"Eel/e{seed}.jpg", 600 + seed)
    kills += _converge(slow_box, counter, rng)

    assert kills >= 4, "most kills came too late: the test proved little"
    assert slow_box.content() == slow_box.expected()
    final = slow_box.subprocess_cli("reconcile", "--config", str(slow_box.config_path), "--json")
    assert final.exit_code == 0, str(final)
    assert final.mirror["planned"]["uploads"] == 0
