"""Shared fixtures: a real emulator on a loopback port, a project in it, and image files.

Every test that talks to the service talks to `syncd emulator` over real HTTP (or its in-process
ASGI transport); nothing here mocks our HTTP layer.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from syncd.emulator.server import EmulatorServer
from tests.support import TEST_KEY
from tests.support.spec_check import SpecChecker

# Suites that run syncd or the emulator as child processes (or fuzz, or run chaos) are slow as a
# whole: `pytest -m "not slow"` (the fast lane) leaves them out; the default run and CI keep them.
SLOW_SUITES = frozenset({"chaos", "daemon", "e2e", "fuzz", "roundtrip"})
TESTS_DIR = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("SYNCD_TEST_KEY", TEST_KEY)


def _fast_lane(config: pytest.Config) -> bool:
    return " ".join(config.getoption("markexpr").split()) == "not slow"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # The fast lane does not even import the slow suites: collecting the fuzz suite alone takes
    # seconds (schemathesis builds a test per operation).
    if _fast_lane(config) and collection_path.parent == TESTS_DIR:
        return collection_path.name in SLOW_SUITES or None
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(TESTS_DIR) and (
            item.path.relative_to(TESTS_DIR).parts[0] in SLOW_SUITES
        ):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def spec_checker() -> Iterator[SpecChecker]:
    """Check every emulator response against the spec; fail the test at teardown on a violation."""
    checker = SpecChecker()
    yield checker
    if checker.violations:
        pytest.fail(f"emulator responses broke the spec:\n{checker.report()}", pytrace=False)


@pytest.fixture
def emulator(spec_checker: SpecChecker) -> Iterator[EmulatorServer]:
    """A fresh in-memory emulator on 127.0.0.1, no faults, key TEST_KEY; responses spec-checked."""
    with EmulatorServer(training_key=TEST_KEY, response_observer=spec_checker.observe) as server:
        yield server


@pytest.fixture
def emulator_on_disk(tmp_path: Path, spec_checker: SpecChecker) -> Iterator[EmulatorServer]:
    """An emulator with state under tmp_path/emulator (SQLite + blobs); responses spec-checked."""
    with EmulatorServer(
        training_key=TEST_KEY,
        data_dir=tmp_path / "emulator",
        response_observer=spec_checker.observe,
    ) as server:
        yield server


@pytest.fixture
def http(emulator: EmulatorServer) -> Iterator[httpx.Client]:
    """A plain httpx client pointed at the emulator's training base URL, with the key set."""
    with httpx.Client(
        base_url=f"{emulator.url}/customvision/v3.3/training",
        headers={"Training-Key": TEST_KEY},
        timeout=30,
    ) as client:
        yield client


@pytest.fixture
def project_id(http: httpx.Client) -> str:
    """A new multilabel classification project in the emulator."""
    domains = http.get("/domains").json()
    domain = next(d for d in domains if d["type"] == "Classification")
    r = http.post(
        "/projects",
        params={"name": "test", "domainId": domain["id"], "classificationType": "Multilabel"},
    )
    assert r.status_code == 200, r.text
    return r.json()["id"]
