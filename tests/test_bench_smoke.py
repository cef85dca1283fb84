"""The benchmark keeps working: `python -m bench --smoke` runs every scenario end to end.

No timing is asserted (the full run compares ratios; see bench/README.md). What is asserted is
what a user of the benchmark would notice: it exits 0, writes its JSON with scenarios A, A2 (and
A2 at F0), B-K and P, each with rows of the table, and the correctness rows (every image synced,
none re-uploaded, bytes on the wire within 2 % of the image bytes for camera-sized images) hold.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_bench_smoke_runs_every_scenario(tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out), "--work", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    document = json.loads(out.read_text())
    assert document["mode"] == "smoke"
    scenarios = {"A", "A2", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "P"}
    assert set(document["scenarios"]) == scenarios | {"A2-F0"}
    assert not [k for k, v in document["scenarios"].items() if "error" in v]
    rows = document["rows"]
    assert {r["scenario"] for r in rows} == scenarios
    by_metric = {(r["scenario"], r["metric"].split(" (")[0]): r for r in rows}
    assert by_metric[("A", "all images uploaded, exit 0")]["met"] is True
    assert by_metric[("C", "image bytes uploaded")]["syncd"] == "0"
    assert by_metric[("B", "API calls")]["met"] is True
    assert by_metric[("A2", "all images uploaded, exit 0")]["met"] is True
    assert by_metric[("A2", "all images uploaded at F0, exit 0")]["met"] is True
    # The wall split around the calls (the emulator's request times against the spawn's).
    phases = by_metric[("A2", "spawn to first request; first request to last answer; to exit")]
    start, calls, end = (float(x) for x in phases["syncd"].removesuffix(" s").split("; "))
    assert start > 0 and calls > 0 and end >= 0
    assert by_metric[("G", "all images uploaded, exit 0")]["met"] is True
    assert by_metric[("G", "bytes on the wire")]["met"] is True
    for fmt in ("folders", "coco"):  # every image pulled and read back, exit 0
        assert by_metric[("P", f"pull --format {fmt}: throughput; API calls")]["met"] is True
    assert by_metric[("K", "images prepared per second")]["syncd"].endswith("/s")
    assert by_metric[("I", "inotify watches")]["syncd"] != "0"  # the idle daemon was watching
    assert by_metric[("H", "rebuild re-uploaded nothing, exit 0")]["met"] is True
    assert by_metric[("J", "boxes moved: images uploaded, exit")]["met"] is True
    assert "| scenario |" in result.stdout
