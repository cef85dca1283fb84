"""Fixtures for the emulator behaviour tests: emulators with quotas or faults, or as a process."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from syncd.emulator.server import EmulatorServer
from tests.support import TEST_KEY
from tests.support.spec_check import SpecChecker

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def start_emulator(spec_checker: SpecChecker) -> Iterator[Callable[..., EmulatorServer]]:
    """Start emulators with any EmulatorServer arguments (quotas, faults, data_dir); spec-checked.

    Every server started is stopped at teardown.
    """
    servers: list[EmulatorServer] = []

    def start(**kwargs: Any) -> EmulatorServer:
        kwargs.setdefault("training_key", TEST_KEY)
        kwargs.setdefault("response_observer", spec_checker.observe)
        server = EmulatorServer(**kwargs)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in reversed(servers):
        server.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def cli_emulator(tmp_path: Path) -> Iterator[Callable[..., tuple[subprocess.Popen[bytes], str]]]:
    """Start `python -m syncd emulator --port P --training-key K <args>` as a subprocess.

    Yields start(*args) -> (process, base url); it returns once the server answers anything.
    Processes still running at teardown are killed.
    """
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[IO[bytes]] = []

    def start(*args: str) -> tuple[subprocess.Popen[bytes], str]:
        port = _free_port()
        log_path = tmp_path / f"emulator-{len(procs)}.log"
        log = log_path.open("wb")
        logs.append(log)
        command = [sys.executable, "-m", "syncd", "emulator", "--port", str(port)]
        proc = subprocess.Popen(
            [*command, "--training-key", TEST_KEY, *args],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert proc.poll() is None, log_path.read_text()
            try:
                httpx.get(f"{url}/customvision/v3.3/training/domains", timeout=1)
                return proc, url
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError(f"emulator subprocess did not answer within 20 s: {command}")

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    for log in logs:
        log.close()
