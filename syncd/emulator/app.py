"""The emulator's HTTP API: Custom Vision Training v3.3 routes on a Starlette app.

Public names: `create_app`, `API_PREFIXES`, `ResponseObserver`.

The same routes (one module per resource under `routes/`) answer under
`/customvision/v3.3/training` and `/customvision/v3.4-preview/training` (the path the official SDK
3.1.1 calls); image bytes under `/emulator/blobs/` (routes/blobs.py) and the test seam under
`/emulator/projects/` (routes/iterations.py) sit outside them.

Decisions where the spec is silent (see also the route modules and `store/`):
- An unemulated or unknown route is 404 NotFound; a wrong method 405 BadRequestNotSupported.
- A missing, empty or wrong key is 401 `{"code": "401", "message": "Access denied ..."}`: the
  APIM gateway's code and message, but bare rather than under "error" so the SDK's
  CustomVisionError picks the code up. Image URIs need no key (like SAS URLs).
- Every response carries an `apim-request-id`, as the gateway's do.
"""

from __future__ import annotations

import hmac
import json
import uuid
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from syncd.emulator.faults import NO_FAULTS, FaultMiddleware, Faults
from syncd.emulator.limits import upload_body_limits
from syncd.emulator.routes import blobs, domains, images, iterations, projects, regions, tags
from syncd.emulator.routes.common import Emulator, error
from syncd.emulator.store import Store
from syncd.emulator.wire import WireMeter, WireMiddleware

API_PREFIXES = ("/customvision/v3.3/training", "/customvision/v3.4-preview/training")
ResponseObserver = Callable[[str, str, int, dict[str, str], bytes], None]
UNAUTHORIZED_MESSAGE = (
    "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a"
    " valid key for an active subscription and use a correct regional API endpoint for your"
    " resource."
)
_API_ROUTES = [
    *domains.ROUTES,
    *projects.ROUTES,
    *tags.ROUTES,
    *images.ROUTES,
    *regions.ROUTES,
    *iterations.ROUTES,
]


def create_app(
    store: Store,
    *,
    training_key: str | None,
    faults: Faults = NO_FAULTS,
    response_observer: ResponseObserver | None = None,
    wire: WireMeter | None = None,
) -> Starlette:
    """Return the emulator as an ASGI app serving store (see the module docstring). Every body
    crosses `wire` (a new WireMeter at faults.bandwidth if none is given), kept as
    `app.state.wire`."""
    meter = wire if wire is not None else WireMeter(faults.bandwidth)
    multipart_cap, files_cap = upload_body_limits(store.quotas.max_image_bytes)
    routes: list[BaseRoute] = [Mount(prefix, routes=_API_ROUTES) for prefix in API_PREFIXES]
    routes += [*blobs.ROUTES, *iterations.SEAM_ROUTES]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(WireMiddleware, meter=meter),
            Middleware(_ObserveMiddleware, observer=response_observer),
            Middleware(FaultMiddleware, faults=faults),
            Middleware(_KeyMiddleware, training_key=training_key),
        ],
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
    app.state.emulator = Emulator(store, faults, multipart_cap, files_cap)
    app.state.wire = meter
    return app


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 405:
        return error(405, "BadRequestNotSupported", "Method not supported on this path.")
    if status == 404:
        return error(404, "NotFound", "No such operation in the emulator.")
    return error(status, "ErrorUnknown", "Unexpected error.")


async def _server_error(request: Request, exc: Exception) -> Response:
    return error(500, "ErrorUnknown", "Unexpected error in the emulator.")


# --- middleware -----------------------------------------------------------------------------------


async def _send_json(send: Send, status: int, body: dict[str, str]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class _KeyMiddleware:
    """Refuse training API requests without the right Training-Key header (401)."""

    def __init__(self, app: ASGIApp, training_key: str | None) -> None:
        self.app = app
        self._key = training_key.encode() if training_key is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path.startswith("/customvision/") or path.startswith(iterations.SEAM_PREFIX):
            given = b""
            for name, value in scope["headers"]:
                if name.lower() == b"training-key":
                    given = value
            if not given or (self._key is not None and not hmac.compare_digest(given, self._key)):
                await _send_json(send, 401, {"code": "401", "message": UNAUTHORIZED_MESSAGE})
                return
        await self.app(scope, receive, send)


class _ObserveMiddleware:
    """Stamp every response with an apim-request-id and hand it to the observer, if any."""

    def __init__(self, app: ASGIApp, observer: ResponseObserver | None) -> None:
        self.app = app
        self.observer = observer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        body = bytearray()

        async def observed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": [
                        *message.get("headers", []),
                        (b"apim-request-id", str(uuid.uuid4()).encode()),
                    ],
                }
                start.update(message)
            elif message["type"] == "http.response.body" and self.observer is not None:
                body.extend(message.get("body", b""))
                if not message.get("more_body", False):
                    headers = {
                        k.decode("latin-1"): v.decode("latin-1") for k, v in start["headers"]
                    }
                    self.observer(
                        scope["method"], scope["path"], start["status"], headers, bytes(body)
                    )
            await send(message)

        await self.app(scope, receive, observed_send)
