"""The short chaos run in CI: 20 s of edits, faults and kill -9s; then tree, ledger, project agree.

The full run is `make chaos` (minutes per seed, several seeds); a failure prints its seed, and
`SYNCD_CHAOS_SEED=<seed>` replays it here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.chaos.driver import ChaosSettings, run_chaos


@pytest.mark.slow
def test_a_short_chaos_run_loses_duplicates_leaks_and_wrongly_deletes_nothing(
    tmp_path: Path,
) -> None:
    seed = int(os.environ.get("SYNCD_CHAOS_SEED", "20260801"))
    settings = ChaosSettings(
        seed=seed,
        duration_s=20,
        workdir=tmp_path / "chaos",
        ops_per_daemon_kill=15,
        ops_per_emulator_kill=20,
        settle_deadline_s=60,
        hostile_rate=0.08,
    )

    result = run_chaos(settings)

    print(result.summary())
    assert result.ok, result.summary()
    # The run was what it claims: edits of every kind, and both processes killed.
    assert set(result.file_ops()) == {
        "create",
        "overwrite",
        "move",
        "rename_folder",
        "delete",
        "copy",
    }, result.summary()
    assert result.operations["kill_daemon"] >= 1, result.summary()
    assert result.operations["kill_emulator"] >= 1, result.summary()
    assert result.hostile_faults(), result.summary()
    assert result.images_at_end > 0
