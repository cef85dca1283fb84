"""Fixtures for the emulator behaviour tests: emulators with custom quotas or faults."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import TEST_KEY
from spec_check import SpecChecker
from syncd.emulator.server import EmulatorServer


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
