"""The emulator in-process: an httpx transport over the ASGI app, state in a local folder.

Public names: `embedded_transport`, `EmbeddedTransport`, `EMBEDDED_BASE_URL`.

Use it with `httpx.AsyncClient(transport=embedded_transport(dir), base_url=EMBEDDED_BASE_URL)`:
no server, no port. Image URIs in responses are built on EMBEDDED_BASE_URL, so the same client
fetches them. An emulated dropped response (Faults.drop_rate) surfaces as
`httpx.RemoteProtocolError`, as it does over a real connection.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from syncd.emulator.app import create_app
from syncd.emulator.faults import NO_FAULTS, DroppedResponse, Faults
from syncd.emulator.store import DEFAULT_QUOTAS, DEFAULT_TRAINING_SECONDS, Quotas, Store

EMBEDDED_BASE_URL = "http://embedded.syncd"


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
    training_seconds: float = DEFAULT_TRAINING_SECONDS,
) -> EmbeddedTransport:
    """Return a transport serving an emulator whose state lives in data_dir (None = memory)."""
    store = Store(data_dir, quotas, training_seconds=training_seconds)
    app = create_app(store, training_key=training_key, faults=faults)
    return EmbeddedTransport(store, httpx.ASGITransport(app=app))
