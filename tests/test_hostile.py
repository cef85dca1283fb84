"""The hostile server itself: it forwards when the script passes, and misbehaves when told to."""

from __future__ import annotations

import time

import httpx
import pytest

from syncd.emulator.server import EmulatorServer
from tests.support import TEST_KEY
from tests.support.hostile import HostileServer, Reply, forward_after


def test_forwards_to_the_upstream_when_the_script_passes(emulator: EmulatorServer) -> None:
    with HostileServer(lambda request: None, upstream=emulator.url) as bad:
        r = httpx.get(
            f"{bad.url}/customvision/v3.3/training/domains", headers={"Training-Key": TEST_KEY}
        )
    assert r.status_code == 200 and isinstance(r.json(), list) and r.json()
    assert [req.path for req in bad.requests] == ["/customvision/v3.3/training/domains"]


def test_plays_the_script_first_then_forwards(emulator: EmulatorServer) -> None:
    script = forward_after(1, lambda request: Reply(429, headers={"Retry-After": "1e9"}))
    with HostileServer(script, upstream=emulator.url) as bad:
        url = f"{bad.url}/customvision/v3.3/training/domains"
        first = httpx.get(url, headers={"Training-Key": TEST_KEY})
        second = httpx.get(url, headers={"Training-Key": TEST_KEY})
    assert (first.status_code, first.headers["retry-after"]) == (429, "1e9")
    assert second.status_code == 200


@pytest.mark.slow
def test_trickles_a_body_and_can_lie_about_its_length() -> None:
    with HostileServer(lambda r: Reply(body=b"abcd", chunk=1, interval=0.05)) as bad:
        started = time.monotonic()
        assert httpx.get(bad.url).content == b"abcd"
        assert time.monotonic() - started >= 0.15
    with HostileServer(lambda r: Reply(body=b"ab", length=10)) as bad:
        try:
            httpx.get(bad.url, timeout=2)
        except httpx.HTTPError:
            pass
        else:
            raise AssertionError("a short body under a longer Content-Length must fail")


def test_streams_a_huge_body_without_holding_it() -> None:
    with (
        HostileServer(lambda r: Reply(stream_bytes=50_000_000)) as bad,
        httpx.stream("GET", bad.url) as response,
    ):
        seen = sum(len(part) for part in response.iter_bytes())
    assert seen == 50_000_000
