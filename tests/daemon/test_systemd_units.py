"""The systemd units in systemd/ pass `systemd-analyze verify` (skipped where it is missing)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "systemd"
NAMES = ("syncd.service", "syncd-reconcile.service", "syncd-reconcile.timer")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify also checks that ExecStart's binary exists: point it at this environment's syncd.
    syncd = Path(sys.executable).parent / "syncd"
    assert syncd.exists(), "install the package (pip install -e .) to get the syncd script"
    for name in NAMES:
        text = (UNITS / name).read_text().replace("/usr/local/bin/syncd", str(syncd))
        (tmp_path / name).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / n) for n in NAMES)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    problems = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 0 and not problems, result.stderr


def test_the_service_is_type_notify_with_a_watchdog_and_hardening() -> None:
    text = (UNITS / "syncd.service").read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=60",
        "Restart=on-failure",
        "LoadCredential=training-key:/etc/syncd/training-key",
        "StateDirectory=syncd",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=read-only",
        "PrivateTmp=yes",
        "User=syncd",
        "ExecStart=/usr/local/bin/syncd run --config /etc/syncd/syncd.yaml",
    ):
        assert f"\n{line}\n" in text, line
