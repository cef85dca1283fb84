"""The emulator refuses to listen on a non-loopback address without a training key: anyone who
could reach it would otherwise have a key-less service to write to."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from syncd.emulator.options import KEY_ENV
from syncd.emulator.server import EmulatorServer
from tests.emulator.support import API_BASE
from tests.support import TEST_KEY

REPO = Path(__file__).resolve().parents[2]
_ENV = {k: v for k, v in os.environ.items() if k != KEY_ENV}


def _emulator(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "syncd", "emulator", "--port", "0", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
@pytest.mark.slow
def test_a_non_loopback_address_without_a_key_exits_2(host: str) -> None:
    proc = _emulator("--host", host, env=_ENV)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"the emulator started on {host} without a key")
    assert proc.returncode == 2, (out, err)
    assert f"refusing to listen on {host} without a training key" in err
    assert KEY_ENV in err
    assert "Traceback" not in err
    assert out == ""


@pytest.mark.slow
def test_a_non_loopback_address_with_a_key_from_the_environment_serves() -> None:
    proc = _emulator("--host", "0.0.0.0", env={**_ENV, KEY_ENV: TEST_KEY})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "syncd emulator listening on http://0.0.0.0:" in line, line
        assert "training key required" in line
        port = int(line.split("http://0.0.0.0:")[1].split()[0])
        domains = f"http://127.0.0.1:{port}{API_BASE}/domains"
        deadline = time.monotonic() + 30
        while True:
            try:
                refused = httpx.get(domains, headers={"Training-Key": "wrong"})
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the emulator never answered"
                time.sleep(0.05)
        assert refused.status_code == 401
        assert httpx.get(domains, headers={"Training-Key": TEST_KEY}).status_code == 200
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "example.org"])
def test_emulator_server_refuses_a_non_loopback_address_without_a_key(host: str) -> None:
    with pytest.raises(ValueError, match="without a training key"):
        EmulatorServer(host=host)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_loopback_needs_no_key(host: str) -> None:
    EmulatorServer(host=host)  # constructing it binds nothing
