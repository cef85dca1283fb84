"""The emulator in-process: an httpx transport over the ASGI app, state in a local folder.

Public names: `embedded_transport`, `EmbeddedTransport`, `EMBEDDED_BASE_URL`, `TRAINING_ENV`.

The embedded emulator takes no flags; two environment variables stand in for the `syncd emulator`
ones of simulated training: SYNCD_EMULATOR_TRAINING_SECONDS (--training-seconds) and
SYNCD_EMULATOR_MIN_IMAGES_PER_TAG (--min-images-per-tag; the sample's tags hold 3-4 images).

Use it with `httpx.AsyncClient(transport=embedded_transport(dir), base_url=EMBEDDED_BASE_URL)`:
no server, no port. Image URIs in responses are built on EMBEDDED_BASE_URL, so the same client
fetches them. An emulated dropped response (Faults.drop_rate) surfaces as
`httpx.RemoteProtocolError`, as it does over a real connection.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import httpx

from syncd.emulator.app import create_app
from syncd.emulator.faults import NO_FAULTS, DroppedResponse, Faults
from syncd.emulator.limits import DEFAULT_QUOTAS, DEFAULT_TRAINING_SECONDS, Quotas
from syncd.emulator.store import Store

EMBEDDED_BASE_URL = "http://embedded.syncd"
TRAINING_ENV = ("SYNCD_EMULATOR_TRAINING_SECONDS", "SYNCD_EMULATOR_MIN_IMAGES_PER_TAG")


class EmbeddedTransport(httpx.AsyncBaseTransport):
    """httpx.ASGITransport over the emulator app; closing it closes the store."""

    def __init__(self, store: Store, app_transport: httpx.ASGITransport) -> None:
        self.store = store
        self._inner = app_transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self._inner.handle_async_request(request)
        except DroppedResponse:
            raise httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body (emulated drop)",
                request=request,
            ) from None

    async def aclose(self) -> None:
        await self._inner.aclose()
        self.store.close()


def embedded_transport(
    data_dir: Path | None,
    *,
    training_key: str | None = None,
    faults: Faults = NO_FAULTS,
    quotas: Quotas = DEFAULT_QUOTAS,
    training_seconds: float | None = None,
) -> EmbeddedTransport:
    """Return a transport serving an emulator whose state lives in data_dir (None = memory).
    Unset training settings come from TRAINING_ENV, else the defaults."""
    seconds_env, minimum_env = (os.environ.get(name) for name in TRAINING_ENV)
    if training_seconds is None:
        training_seconds = float(seconds_env) if seconds_env else DEFAULT_TRAINING_SECONDS
    if minimum_env:
        quotas = dataclasses.replace(quotas, min_images_per_tag=max(1, int(minimum_env)))
    store = Store(data_dir, quotas, training_seconds=training_seconds)
    app = create_app(store, training_key=training_key, faults=faults)
    return EmbeddedTransport(store, httpx.ASGITransport(app=app))
