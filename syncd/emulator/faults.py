"""Injected faults for the emulator: throttling, failures, dropped responses, latency.

Public names: `Faults` (the switches, all off by default), `NO_FAULTS`, `FaultMiddleware` (pure
ASGI, applied to the training API paths; image URIs get only `blob_latency_ms`), `DroppedResponse`.

Per API request, in this order:
1. `latency_ms`: `await anyio.sleep(...)`, so other requests keep being served meanwhile.
2. `upload_tps` (the image-creating calls) and `train_tps` (TrainProject): a token bucket per
   operation kind, as a tier's per-operation limit (the F0 tier: limits.TIERS). An empty one
   answers 429 with the message the service gives on F0 («Requests to the CreateImagesFromData
   Operation under Custom_Vision_Training_3.3 have exceeded rate limit of your current
   Custom_Vision.Training F0 pricing tier. Please retry after 1 second.», docs/spec/DIGEST.md §1).
   Then `tps`: a token bucket (capacity max(1, tps), refilled at tps per second) over every API
   call. An empty bucket answers 429 with `Retry-After: <whole seconds, >= 1>` and the APIM-style
   body `{"code": "429", "message": "... Please retry after N second(s)."}`; the app is not
   called.
3. `fail_rate`: a 500 or 503 (half each) with an `ErrorUnknown` body; the app is not called.
4. `drop_rate`: the app runs (its write commits), then the response is cut: the status line and
   headers go out with a Content-Length one byte longer than the body (204 becomes 200 so that
   there is a body to miss), then `DroppedResponse` is raised; uvicorn closes the connection.
   httpx then raises `httpx.RemoteProtocolError` ("peer closed connection without sending
   complete message body"); the caller never gets a usable response. In-process, the embedded
   transport turns `DroppedResponse` into the same `httpx.RemoteProtocolError`.
Three random numbers are drawn per request from one `random.Random(seed)` whatever the switches,
so a seed gives the same fault sequence for the same sequence of requests.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_PATH_PREFIX = "/customvision/"
BLOB_PATH = "/emulator/blobs/"  # image URIs: only blob_latency_ms applies to them


@dataclass(frozen=True)
class Faults:
    """Fault switches, all off by default."""

    tps: float | None = None  # past N requests/second -> 429 + Retry-After; no effect
    fail_rate: float = 0.0  # probability of a 500 or 503 before the app runs
    drop_rate: float = 0.0  # probability the connection is cut after the app ran (committed)
    latency_ms: float = 0.0  # added delay per request
    seed: int | None = None  # reproducible fault sequences
    duplicate_without_image: bool = False  # OKDuplicate results omit `image`
    blob_latency_ms: float = 0.0  # added delay per image-URI download (a slow blob store)
    # Bytes per second each way, shared by all connections (wire.py); None: no limit.
    bandwidth: float | None = None
    upload_tps: float | None = None  # past N image-creating calls/second -> 429 (a tier's limit)
    train_tps: float | None = None  # past N TrainProject calls/second -> 429
    tier: str = ""  # the pricing tier the 429 messages name ("" = the emulator's own words)


NO_FAULTS = Faults()


class DroppedResponse(Exception):
    """Raised to cut a response after its headers went out (the emulated dropped connection)."""


# The per-operation limits: (method, the path after /projects/<id>/) -> the spec's operationId.
_UPLOAD_OPERATIONS = {
    "images": "CreateImagesFromData",
    "images/files": "CreateImagesFromFiles",
    "images/urls": "CreateImagesFromUrls",
    "images/predictions": "CreateImagesFromPredictions",
}
_TRAIN_OPERATION = "TrainProject"


def _operation(method: str, path: str) -> str | None:
    """The operationId of an image-creating or training call, else None."""
    if method != "POST":
        return None
    parts = path.split("/")
    # ['', 'customvision', '<version>', 'training', 'projects', '<id>', ...]
    if len(parts) < 7 or parts[4] != "projects":
        return None
    rest = "/".join(parts[6:])
    if rest == "train":
        return _TRAIN_OPERATION
    return _UPLOAD_OPERATIONS.get(rest)


class _TokenBucket:
    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.updated = time.monotonic()

    def take(self) -> float | None:
        """Take a token; return None if one was there, else the seconds until there is one."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return None
        return (1 - self.tokens) / self.rate


def _too_many_requests(message: str, seconds: int) -> list[Message]:
    """A 429 as the service sends it: code "429", its message, and Retry-After in seconds."""
    return _json_response(
        429, {"code": "429", "message": message}, [(b"retry-after", str(seconds).encode())]
    )


def _json_response(
    status: int, body: dict[str, Any], extra: list[tuple[bytes, bytes]]
) -> list[Message]:
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json; charset=utf-8"),
        (b"content-length", str(len(payload)).encode()),
        *extra,
    ]
    return [
        {"type": "http.response.start", "status": status, "headers": headers},
        {"type": "http.response.body", "body": payload},
    ]


class FaultMiddleware:
    """Apply `Faults` to requests under /customvision/ (pure ASGI)."""

    def __init__(self, app: ASGIApp, faults: Faults) -> None:
        self.app = app
        self.faults = faults
        self._rng = random.Random(faults.seed)
        self._lock = threading.Lock()
        self._bucket = _TokenBucket(faults.tps) if faults.tps else None
        self._upload_bucket = _TokenBucket(faults.upload_tps) if faults.upload_tps else None
        self._train_bucket = _TokenBucket(faults.train_tps) if faults.train_tps else None

    def _operation_bucket(self, scope: Scope) -> tuple[str, _TokenBucket] | None:
        operation = _operation(scope["method"], scope["path"])
        if operation is None:
            return None
        bucket = self._train_bucket if operation == _TRAIN_OPERATION else self._upload_bucket
        return None if bucket is None else (operation, bucket)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PATH_PREFIX):
            if self.faults.blob_latency_ms > 0 and scope.get("path", "").startswith(BLOB_PATH):
                await anyio.sleep(self.faults.blob_latency_ms / 1000)
            await self.app(scope, receive, send)
            return
        faults = self.faults
        if faults.latency_ms > 0:
            await anyio.sleep(faults.latency_ms / 1000)
        limited = self._operation_bucket(scope)
        with self._lock:
            operation_wait = limited[1].take() if limited is not None else None
            wait = None
            if operation_wait is None and self._bucket is not None:
                wait = self._bucket.take()
            fail_draw, kind_draw, drop_draw = (self._rng.random() for _ in range(3))
        if operation_wait is not None and limited is not None:
            seconds = max(1, math.ceil(operation_wait))
            tier = f"Custom_Vision.Training {faults.tier}" if faults.tier else "emulator"
            message = (
                f"Requests to the {limited[0]} Operation under Custom_Vision_Training_3.3 have"
                f" exceeded rate limit of your current {tier} pricing tier. Please retry after"
                f" {seconds} second{'s' if seconds > 1 else ''}."
            )
            for msg in _too_many_requests(message, seconds):
                await send(msg)
            return
        if wait is not None:
            seconds = max(1, math.ceil(wait))
            message = (
                "Requests to the Custom Vision Training emulator have exceeded its rate limit of"
                f" {faults.tps:g} calls per second. Please retry after {seconds} second(s)."
            )
            for msg in _too_many_requests(message, seconds):
                await send(msg)
            return
        if fail_draw < faults.fail_rate:
            status = 500 if kind_draw < 0.5 else 503
            body = {"code": "ErrorUnknown", "message": f"Injected fault: HTTP {status}."}
            for msg in _json_response(status, body, []):
                await send(msg)
            return
        if drop_draw < faults.drop_rate:
            await self.app(scope, receive, _dropping(send))
            return
        await self.app(scope, receive, send)


def _dropping(send: Send) -> Send:
    """Wrap send so the response's headers go out and its body never does."""
    started: dict[str, Any] = {}

    async def dropping_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            started.update(message)
            return
        if message["type"] == "http.response.body":
            body_len = len(message.get("body", b""))
            status = started.get("status", 200)
            headers = [
                (k, v)
                for k, v in started.get("headers", [])
                if k.lower() not in (b"content-length", b"transfer-encoding")
            ]
            headers.append((b"content-length", str(body_len + 1).encode()))
            await send(
                {
                    "type": "http.response.start",
                    "status": 200 if status in (204, 304) else status,
                    "headers": headers,
                }
            )
            raise DroppedResponse("emulated dropped connection")
        await send(message)

    return dropping_send
