"""Injected faults: throttling, failures, dropped responses, latency; reproducible with a seed."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from syncd.emulator.faults import Faults
from syncd.emulator.server import EmulatorServer
from tests.emulator.support import api_client

StartEmulator = Callable[..., EmulatorServer]


def _eventually(request: Callable[[], httpx.Response], deadline_s: float = 20) -> httpx.Response:
    """Repeat a read until it answers 200 (faults apply to reads too); bounded by a deadline."""
    end = time.monotonic() + deadline_s
    while True:
        try:
            r = request()
            if r.status_code == 200:
                return r
        except httpx.TransportError:
            pass
        assert time.monotonic() < end, "no 200 before the deadline"
        time.sleep(0.05)


def _project(server: EmulatorServer) -> str:
    """Create a project on a faulty server, retrying reads and checking creates by name."""
    with api_client(server.url) as http:
        domains = _eventually(lambda: http.get("/domains")).json()
        while True:
            try:
                r = http.post("/projects", params={"name": "p", "domainId": domains[0]["id"]})
                if r.status_code == 200:
                    return r.json()["id"]
            except httpx.TransportError:
                pass
            projects = _eventually(lambda: http.get("/projects")).json()
            if projects:
                return projects[0]["id"]


def _tag_names(server: EmulatorServer, pid: str) -> set[str]:
    with api_client(server.url) as http:
        return {t["name"] for t in _eventually(lambda: http.get(f"/projects/{pid}/tags")).json()}


def _create_tags(server: EmulatorServer, pid: str, n: int) -> dict[str, object]:
    """POST n tags named t0..t{n-1}; return name -> status code, or the transport error type."""
    outcome: dict[str, object] = {}
    with api_client(server.url) as http:
        for i in range(n):
            try:
                r = http.post(f"/projects/{pid}/tags", params={"name": f"t{i}"})
                outcome[f"t{i}"] = r.status_code
                if r.status_code in (429, 500, 503):
                    assert r.json(), r.text  # an error body, not nothing
            except httpx.TransportError as exc:
                outcome[f"t{i}"] = type(exc).__name__
    return outcome


def test_faults_are_off_by_default(http: httpx.Client, project_id: str) -> None:
    statuses = [http.get(f"/projects/{project_id}/tags").status_code for _ in range(60)]
    assert statuses == [200] * 60


@pytest.mark.slow
def test_tps_limit_answers_429_with_retry_after_and_does_nothing(
    start_emulator: StartEmulator,
) -> None:
    server = start_emulator(faults=Faults(tps=5))
    pid = _project(server)
    time.sleep(1.1)  # a fresh second's budget, so the burst below is what gets throttled
    throttled = []
    with api_client(server.url) as http:
        for i in range(25):
            r = http.post(f"/projects/{pid}/tags", params={"name": f"t{i}"})
            assert r.status_code in (200, 429), r.text
            if r.status_code == 429:
                throttled.append(f"t{i}")
                retry_after = r.headers.get("Retry-After")
                assert retry_after is not None and float(retry_after) > 0
    assert throttled, "25 back-to-back writes at tps=5 were never throttled"
    names = _tag_names(server, pid)
    assert names == {f"t{i}" for i in range(25)} - set(throttled)


def test_fail_rate_answers_5xx_and_writes_nothing(start_emulator: StartEmulator) -> None:
    server = start_emulator(faults=Faults(fail_rate=0.5, seed=7))
    pid = _project(server)
    outcome = _create_tags(server, pid, 40)
    failed = {name for name, status in outcome.items() if status in (500, 503)}
    succeeded = {name for name, status in outcome.items() if status == 200}
    assert failed and succeeded, outcome
    assert failed | succeeded == set(outcome), outcome
    assert _tag_names(server, pid) == succeeded


def test_a_dropped_response_was_still_committed(start_emulator: StartEmulator) -> None:
    server = start_emulator(faults=Faults(drop_rate=0.5, seed=3))
    pid = _project(server)
    outcome = _create_tags(server, pid, 30)
    dropped = {name for name, status in outcome.items() if isinstance(status, str)}
    assert dropped, outcome
    assert all(status == 200 or isinstance(status, str) for status in outcome.values()), outcome
    assert _tag_names(server, pid) == set(outcome)


@pytest.mark.slow
def test_latency_delays_every_response(start_emulator: StartEmulator) -> None:
    server = start_emulator(faults=Faults(latency_ms=300))
    with api_client(server.url) as http:
        http.get("/domains")  # connection set up outside the measurement
        for _ in range(3):
            started = time.perf_counter()
            assert http.get("/projects").status_code == 200
            assert time.perf_counter() - started >= 0.3


@pytest.mark.parametrize("faults", [{"fail_rate": 0.4}, {"drop_rate": 0.4}])
@pytest.mark.slow
def test_a_seed_makes_the_fault_sequence_reproducible(
    start_emulator: StartEmulator, faults: dict[str, float]
) -> None:
    def run(seed: int) -> list[object]:
        server = start_emulator(faults=Faults(seed=seed, **faults))
        outcomes = []
        with api_client(server.url) as http:
            for _ in range(30):
                try:
                    outcomes.append(http.get("/domains").status_code)
                except httpx.TransportError as exc:
                    outcomes.append(type(exc).__name__)
        return outcomes

    first = run(11)
    assert first == run(11)
    assert len(set(first)) > 1, first  # the faults did happen


@pytest.mark.slow
def test_the_cli_flags_switch_faults_on(cli_emulator: Callable) -> None:
    _, url = cli_emulator("--fail-rate", "1.0", "--seed", "1")
    with api_client(url) as http:
        assert {http.get("/projects").status_code for _ in range(5)} <= {500, 503}
    _, url = cli_emulator("--tps", "2")
    with api_client(url) as http:
        statuses = [http.get("/projects").status_code for _ in range(10)]
    assert 429 in statuses and 200 in statuses
