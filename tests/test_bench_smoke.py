"""The benchmark keeps working: `python -m bench --smoke` runs every scenario end to end.

No timing is asserted (the full run compares ratios; see bench/README.md). What is asserted is
what a user of the benchmark would notice: it exits 0, writes its JSON with scenarios A-F, each
with rows of the table, and the correctness rows (every image synced, none re-uploaded) hold.
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
    assert set(document["scenarios"]) == set("ABCDEF")
    assert not [k for k, v in document["scenarios"].items() if "error" in v]
    rows = document["rows"]
    assert {r["scenario"] for r in rows} == set("ABCDEF")
    by_metric = {(r["scenario"], r["metric"].split(" (")[0]): r for r in rows}
    assert by_metric[("A", "all images uploaded, exit 0")]["met"] is True
    assert by_metric[("C", "image bytes uploaded")]["syncd"] == "0"
    assert by_metric[("B", "API calls")]["met"] is True
    assert "| scenario |" in result.stdout
