"""Fixtures for the API client tests: clients on the emulator, and a recording transport.

Public names: anyio_backend, start_emulator, make_client, RecordingTransport, seeded_items.
The recording transport forwards every request to a real transport (HTTP or the embedded
emulator) and keeps a copy, so tests can check what went over the wire; it mocks nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from uuid import UUID

import httpx
import pytest

from syncd.api import ClientSettings, Pacer, TrainingClient, UploadItem
from syncd.credentials import TrainingKey
from syncd.emulator.server import EmulatorServer
from tests.support import TEST_KEY
from tests.support.images import image_bytes
from tests.support.spec_check import SpecChecker


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def start_emulator(spec_checker: SpecChecker) -> Iterator[Callable[..., EmulatorServer]]:
    """Start emulators with any EmulatorServer arguments (faults, quotas); stopped at teardown."""
    servers: list[EmulatorServer] = []

    def start(**kwargs: Any) -> EmulatorServer:
        kwargs.setdefault("training_key", TEST_KEY)
        kwargs.setdefault("response_observer", spec_checker.observe)
        server = EmulatorServer(**kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in reversed(servers):
        server.stop()


class RecordingTransport(httpx.AsyncBaseTransport):
    """Forward requests to `inner`, keeping each request (body read) and its status."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests: list[httpx.Request] = []
        self.statuses: list[int | str] = []
        self.answered_at: list[float] = []  # time.monotonic() of each status, in order

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append(request)
        try:
            response = await self.inner.handle_async_request(request)
        except httpx.TransportError as exc:
            self.statuses.append(type(exc).__name__)
            self.answered_at.append(time.monotonic())
            raise
        self.statuses.append(response.status_code)
        self.answered_at.append(time.monotonic())
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()

    def paths(self, method: str | None = None) -> list[str]:
        """Paths (after the API base) of the recorded requests, optionally of one method."""
        base = "/customvision/v3.3/training"
        return [
            r.url.path.removeprefix(base)
            for r in self.requests
            if method is None or r.method == method
        ]


def make_client(
    endpoint: str,
    *,
    key: str | None = TEST_KEY,
    transport: httpx.AsyncBaseTransport | None = None,
    **settings: Any,
) -> TrainingClient:
    """A client on endpoint with its own Pacer (tests never share quota state)."""
    client_settings = ClientSettings(**settings)
    return TrainingClient(
        endpoint,
        TrainingKey(key) if key is not None else None,
        settings=client_settings,
        transport=transport,
        pacer=Pacer(client_settings.rate_per_second),
    )


def seeded_items(
    count: int, start: int = 0, tag_ids: Iterable[UUID] = (), fmt: str = "png"
) -> list[UploadItem]:
    """count distinct real images as UploadItems keyed `img<seed>.<fmt>`."""
    tags = tuple(tag_ids)
    return [
        UploadItem(f"img{seed}.{fmt}", image_bytes(seed, fmt), tags)
        for seed in range(start, start + count)
    ]
