"""The client tells an observer (`on_wait`) of each wait before a request, and draws nothing:
a retry's backoff (reason, attempt of how many, seconds) and a pacing wait long enough for a
person to wonder about. The CLI's live line is built on this (tests/e2e/test_console.py)."""

from __future__ import annotations

import pytest

from syncd.api import Wait
from syncd.api.client import PACING_WAIT_SHOWN_S
from syncd.api.pacer import PACED
from syncd.emulator.server import EmulatorServer
from tests.api.conftest import make_client
from tests.support.hostile import HostileServer, Reply, Request, forward_after

pytestmark = pytest.mark.anyio


async def test_a_slow_pace_is_told_as_a_wait_before_the_request(
    emulator: EmulatorServer, project_id: str
) -> None:
    rate = 0.8  # one request every 1.25 s: the second waits over PACING_WAIT_SHOWN_S
    assert 1 / rate > PACING_WAIT_SHOWN_S
    waits: list[Wait] = []
    async with make_client(emulator.url, rate_per_second=rate) as client:
        client.on_wait = waits.append
        await client.list_tags(project_id)
        assert waits == []  # the first request goes at once
        await client.list_tags(project_id)
    (paced,) = waits
    assert (paced.reason, paced.operation, paced.attempt) == (PACED, "list_tags", 0)
    assert PACING_WAIT_SHOWN_S <= paced.seconds <= 1 / rate


async def test_each_retry_is_told_with_its_attempt_and_wait(
    emulator: EmulatorServer, project_id: str
) -> None:
    def unavailable(request: Request) -> Reply:
        return Reply(503, json={"code": "503", "message": "busy"})

    waits: list[Wait] = []
    with HostileServer(forward_after(2, unavailable), upstream=emulator.url) as bad:
        async with make_client(bad.url, max_attempts=5, max_backoff_s=0.2) as client:
            client.on_wait = waits.append
            await client.list_tags(project_id)
    assert [(w.reason, w.attempt, w.of) for w in waits] == [
        ("service error 503", 1, 5),
        ("service error 503", 2, 5),
    ]
    assert all(0 <= w.seconds <= 0.2 for w in waits)
