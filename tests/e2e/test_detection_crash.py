"""A detection mirror killed (SIGKILL) in the middle of its region batches converges on the next
runs: no box lost, none doubled, every image uploaded once.

The emulator answers slowly (latency fault), so region calls are in flight when the kill lands;
the kill moment is counted in region responses the emulator has sent (`after` k of them), so it
is the same point of the run whatever the machine's speed. Each round moves nearly every box (294
deletes and 294 creates: five calls of each, deletes first), kills among them, then moves them
again before the next run: a region whose create answer the kill lost, and that the new boxes
no longer want, must be found and deleted, not left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.emulator.faults import Faults
from syncd.emulator.server import EmulatorServer
from tests.e2e.support import REPO, Sandbox
from tests.emulator.support import api_client
from tests.support import TEST_KEY
from tests.support.detection import (
    Item,
    detection_project,
    expected_boxes,
    sdk_boxes,
    without_ids,
    write_dataset,
    write_label,
)
from tests.support.spec_check import SpecChecker

SEED = 20261202
LATENCY_MS = 40
MAX_RERUNS = 4
# Kill after this many region responses: among the deletes, at the turn, among the creates.
KILL_AFTER = (2, 6, 8)
BOXES_PER_IMAGE = 100


class RegionCounter:
    """Counts the region responses (CreateImageRegions, DeleteImageRegions) the emulator sent."""

    def __init__(self, checker: SpecChecker) -> None:
        self.checker = checker
        self.count = 0
        self._lock = threading.Lock()

    def observe(
        self, method: str, path: str, status: int, headers: dict[str, str], body: bytes
    ) -> None:
        if path.endswith("/images/regions"):
            with self._lock:
                self.count += 1
        self.checker.observe(method, path, status, headers, body)


@pytest.fixture
def counter(spec_checker: SpecChecker) -> RegionCounter:
    return RegionCounter(spec_checker)


@pytest.fixture
def slow_box(
    tmp_path: Path,
    counter: RegionCounter,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Sandbox, EmulatorServer]]:
    server = EmulatorServer(
        training_key=TEST_KEY,
        faults=Faults(latency_ms=LATENCY_MS, seed=SEED),
        response_observer=counter.observe,
    )
    with server, api_client(server.url) as http:
        monkeypatch.setenv("SYNCD_TRAINING_KEY", TEST_KEY)
        box = Sandbox(tmp_path, server.url, detection_project(http), http, capsys)
        box.root.mkdir()
        box.write_config(annotations={"format": "voc"})
        yield box, server


def _items(shift: int) -> list[Item]:
    """Three 200 x 200 images with BOXES_PER_IMAGE boxes each, all but the first two moved by
    `shift` pixels. The two that stay keep each image's tags (fork, knife), so the project's
    counts do not change and only the ledger's mark can tell the next run what the kill lost."""
    boxes = tuple(
        (
            "fork" if i % 2 else "knife",
            ((i % 10) * 19 + (shift if i > 1 else 0), (i // 10) * 19, 10, 10),
        )
        for i in range(BOXES_PER_IMAGE)
    )
    return [Item(f"images/{n}.png", n, (200, 200), boxes) for n in range(3)]


def _run_and_kill(box: Sandbox, counter: RegionCounter, after: int) -> bool:
    """Start a reconcile; SIGKILL it once `after` more region responses were sent. True if it
    was killed, False if it finished first."""
    target = counter.count + after
    command = [sys.executable, "-m", "syncd", "reconcile", "--config", str(box.config_path)]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while proc.poll() is None:
            if counter.count >= target:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
                return True
            time.sleep(0.001)
        return False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@pytest.mark.slow
def test_a_kill_in_the_middle_of_region_batches_converges(
    slow_box: tuple[Sandbox, EmulatorServer], counter: RegionCounter
) -> None:
    box, server = slow_box
    hashes = write_dataset(box.root, "voc", _items(0))
    first = box.reconcile()
    assert first.exit_code == 0, str(first)
    kills = 0
    for number, after in enumerate(KILL_AFTER):
        for item in _items(2 * number + 1):
            write_label(box.root, "voc", item)
        kills += _run_and_kill(box, counter, after)
        items = _items(2 * number + 2)
        for item in items:
            write_label(box.root, "voc", item)
        for _ in range(MAX_RERUNS):
            run = box.reconcile()
            if run.exit_code == 0:
                break
        assert run.exit_code == 0, str(run)
        assert run.mirror["done"]["uploads"] == 0  # boxes never cost an upload
        boxes = sdk_boxes(server.url, box.project_id)  # asserts no image was uploaded twice
        assert without_ids(boxes) == expected_boxes(hashes, items)
        settled = box.reconcile()
        assert settled.mirror["planned"] == dict.fromkeys(settled.mirror["planned"], 0)
    assert kills == len(KILL_AFTER)  # every kill landed among the region calls
