"""Fixtures for the daemon tests: an emulator on disk (restartable on its port), a project, a
dataset root, a config, and `syncd run` subprocesses that are killed at teardown if still alive.
"""

from __future__ import annotations

import socket
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from syncd.emulator.faults import NO_FAULTS, Faults
from syncd.emulator.server import EmulatorServer
from tests.daemon.support import Daemon, Uploads
from tests.emulator.support import api_client, new_project
from tests.support import TEST_KEY
from tests.support.spec_check import SpecChecker

MIRROR = "t"
# Short timers so a test waits fractions of a second, not the production defaults.
FAST = {
    "settle_seconds": 0.3,
    "max_delay_seconds": 0.2,
    "rescan_seconds": 1,
    "shutdown_timeout_seconds": 8,
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class World:
    """Everything one daemon test needs; the emulator can be stopped and started again."""

    tmp: Path
    spec: SpecChecker
    port: int = field(default_factory=_free_port)
    uploads: Uploads = field(default_factory=Uploads)
    faults: Faults = NO_FAULTS
    server: EmulatorServer | None = None
    daemons: list[Daemon] = field(default_factory=list)
    project_id: str = ""

    def __post_init__(self) -> None:
        self.start_emulator()
        self.http = api_client(self.url)
        self.project_id = new_project(self.http)
        self.root.mkdir()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def root(self) -> Path:
        return self.tmp / "dataset"

    @property
    def config_path(self) -> Path:
        return self.tmp / "syncd.yaml"

    def observe(self, *args: Any) -> None:
        self.spec.observe(*args)
        self.uploads.observe(*args)

    def start_emulator(self) -> None:
        self.server = EmulatorServer(
            training_key=TEST_KEY,
            data_dir=self.tmp / "emulator",
            port=self.port,
            faults=self.faults,
            response_observer=self.observe,
        ).start()

    def stop_emulator(self) -> None:
        assert self.server is not None
        self.server.stop()
        self.server = None

    def config(
        self,
        *,
        daemon: Mapping[str, Any] | None = None,
        mirror: Mapping[str, Any] | None = None,
        mirrors: list[Mapping[str, Any]] | None = None,
        service: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The config document: one mirror (delete: mirror) of `root`, fast daemon timers."""
        doc: dict[str, Any] = {
            "state_dir": str(self.tmp / "state"),
            # Few attempts and short timeouts: a stopped emulator shows up as a failure quickly.
            "service": {
                "endpoint": self.url,
                "max_attempts": 2,
                "connect_timeout": 2,
                **(service or {}),
            },
            "daemon": {**FAST, **(daemon or {})},
        }
        base = {"name": MIRROR, "root": str(self.root), "project_id": self.project_id}
        if mirrors is not None:
            doc["mirrors"] = list(mirrors)
        else:
            doc["mirror"] = {**base, "delete": "mirror", **(mirror or {})}
        return doc

    def write_config(self, **kwargs: Any) -> Path:
        self.config_path.write_text(yaml.safe_dump(self.config(**kwargs)))
        return self.config_path

    def start_daemon(
        self, *, env: Mapping[str, str] | None = None, launcher: Path | None = None
    ) -> Daemon:
        if not self.config_path.exists():
            self.write_config()
        log = self.tmp / f"daemon-{len(self.daemons)}.log"
        daemon = Daemon(
            self.config_path,
            log,
            {"SYNCD_TRAINING_KEY": TEST_KEY, **(env or {})},
            launcher=launcher,
        )
        self.daemons.append(daemon)
        return daemon

    def close(self) -> None:
        for daemon in self.daemons:
            daemon.kill()
        self.http.close()
        if self.server is not None:
            self.server.stop()


@pytest.fixture
def world(tmp_path: Path, spec_checker: SpecChecker) -> Iterator[World]:
    w = World(tmp_path, spec_checker)
    yield w
    w.close()


@pytest.fixture
def slow_world(tmp_path: Path, spec_checker: SpecChecker) -> Iterator[World]:
    """A world whose emulator adds 400 ms to every request, so uploads are in flight a while."""
    w = World(tmp_path, spec_checker, faults=Faults(latency_ms=400))
    yield w
    w.close()


@pytest.fixture
def notify_socket() -> Iterator[tuple[str, list[str]]]:
    """A unix datagram socket standing in for systemd's; yields (path, messages received)."""
    folder = tempfile.mkdtemp(prefix="sd-", dir="/tmp")  # AF_UNIX paths max out at 108 bytes
    path = f"{folder}/notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    messages: list[str] = []
    done = threading.Event()

    def receive() -> None:
        while not done.is_set():
            try:
                messages.append(sock.recv(4096).decode())
            except TimeoutError:
                continue

    thread = threading.Thread(target=receive, daemon=True)
    thread.start()
    yield path, messages
    done.set()
    thread.join(2)
    sock.close()
    Path(path).unlink(missing_ok=True)
    Path(folder).rmdir()
