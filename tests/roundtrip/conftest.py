"""Fixtures for the round-trip tests (pull, train, review): a sandbox on an emulator over HTTP.

`server`: an emulator whose iterations complete at once (training_seconds 0), spec-checked.
`box`: a Sandbox (tests/e2e/support.py) on a new multilabel project of `server`; its dataset
root is empty and its config mirrors into that project.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from syncd.emulator.server import EmulatorServer
from tests.e2e.support import Sandbox
from tests.emulator.support import api_client
from tests.support import TEST_KEY
from tests.support.spec_check import SpecChecker


@pytest.fixture
def server(spec_checker: SpecChecker) -> Iterator[EmulatorServer]:
    with EmulatorServer(
        training_key=TEST_KEY, response_observer=spec_checker.observe, training_seconds=0
    ) as running:
        yield running


@pytest.fixture
def api(server: EmulatorServer) -> Iterator[httpx.Client]:
    with api_client(server.url) as client:
        yield client


def new_sandbox(
    tmp_path: Path, url: str, api: httpx.Client, capsys: pytest.CaptureFixture[str]
) -> Sandbox:
    r = api.post("/projects", params={"name": "rt", "classificationType": "Multilabel"})
    assert r.status_code == 200, r.text
    box = Sandbox(tmp_path, url, r.json()["id"], api, capsys)
    box.write_config()
    return box


@pytest.fixture
def box(
    tmp_path: Path,
    server: EmulatorServer,
    api: httpx.Client,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Sandbox:
    monkeypatch.setenv("SYNCD_TRAINING_KEY", TEST_KEY)
    for name in ("SYNCD_CONFIG", "SYNCD_ENDPOINT", "SYNCD_STATE_DIR"):
        monkeypatch.delenv(name, raising=False)
    return new_sandbox(tmp_path, server.url, api, capsys)
