"""The daemon's backoff after a failed reconcile: 1 s doubling to 60 s, equal jitter (the delay
after failure n is uniform in [cap_n / 2, cap_n]), drawn from syncd.api.pacer.Backoff."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from syncd.config import parse_config
from syncd.daemon.loop import BACKOFF, _MirrorLoop
from syncd.errors import ServiceUnreachableError

PROJECT_ID = "6a1f3c2e-4b5d-4e6f-8a9b-0c1d2e3f4a5b"
CAPS = [1, 2, 4, 8, 16, 32, 60, 60, 60]  # cap_n for failures 1..9


def _retry_delays(tmp_path: Path, rand: float, failures: int) -> list[float]:
    """Fail a mirror loop `failures` times in a row; return how long each failure waits."""
    config = parse_config(
        f"state_dir: {tmp_path / 'state'}\n"
        "service: {endpoint: embedded}\n"
        f"mirror: {{name: m, root: '{tmp_path / 'root'}', project_id: {PROJECT_ID}}}\n",
        environ={},
    )

    async def fail() -> list[float]:
        client: Any = None  # a failure never reaches the client
        loop = _MirrorLoop(config, config.mirrors[0], client)
        loop.rand = lambda: rand
        delays = []
        for _ in range(failures):
            before = time.monotonic()
            loop._failed("timer", ServiceUnreachableError("the service is away", "m"))
            assert loop.retry_at is not None
            delays.append(loop.retry_at - before)
        return delays

    return asyncio.run(fail())


@pytest.mark.parametrize(("rand", "fraction"), [(1.0, 1.0), (0.0, 0.5), (0.5, 0.75)])
def test_a_failed_reconcile_waits_the_documented_backoff(
    tmp_path: Path, rand: float, fraction: float
) -> None:
    delays = _retry_delays(tmp_path, rand, len(CAPS))
    # retry_at is set a moment after `before`: allow that moment, never less than the delay.
    for delay, cap in zip(delays, CAPS, strict=True):
        assert cap * fraction <= delay <= cap * fraction + 0.1, (delays, CAPS)


def test_the_daemon_backoff_is_the_shared_policy_with_the_same_caps() -> None:
    assert (BACKOFF.first_s, BACKOFF.max_s, BACKOFF.jitter) == (1.0, 60.0, 0.5)
