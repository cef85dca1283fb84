"""The emulator's wire: the bytes each request and response carries, and an optional bandwidth.

Public names: `Link`, `Transfer`, `WireMeter`, `WireMiddleware`, `SLICE_BYTES`.

`WireMiddleware` sits outside every other middleware, so it sees each body as it crosses the
socket, whatever the answer was (a 429 included). It counts request body bytes received and
response body bytes sent. With a bandwidth it also makes them take their time:

- Two links, one per direction (the uplink carries request bodies, the downlink response bodies,
  image downloads among them), each of `bandwidth` bytes per second, shared by every connection:
  full duplex, as a real line is.
- A link is a token bucket with no burst: a body is cut into slices of SLICE_BYTES; each slice
  books the link from the moment it is free (or now, if it is idle) for slice / bandwidth
  seconds, and its reader or writer sleeps until that booking ends. Slices of concurrent
  transfers book in turn, so two uploads at once each get about half the rate.
- The link keeps its own accounting (bytes booked, seconds booked, and per transfer the span of
  link time from its first slice's start to its last slice's end), which tests read instead of
  the wall clock.
- A request body the app did not read (a 429, say) is read to its end all the same before the
  answer goes out: the client sends its whole body before it reads the answer, and those bytes
  held the line. Only an answer that closes the connection (a body refused as too large) stops
  it early, as it does the real client.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SLICE_BYTES = 64 * 1024  # the unit two transfers take turns in (a socket read's worth)
_KEPT_TRANSFERS = 1000  # the most recent transfers kept for inspection


@dataclass
class Transfer:
    """One body that crossed a link: its bytes and the span of link time it was booked for."""

    method: str
    path: str
    direction: str  # "up" (a request body) or "down" (a response body)
    bytes: int = 0
    first_start: float | None = None  # link clock (time.monotonic) when its first slice began
    last_end: float | None = None  # ... and when its last slice ended

    @property
    def span_s(self) -> float:
        if self.first_start is None or self.last_end is None:
            return 0.0
        return self.last_end - self.first_start


class Link:
    """One direction of the line: `rate` bytes per second shared by all connections (FIFO)."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("a link's rate must be more than 0")
        self.rate = rate
        self._clock = clock
        self._lock = threading.Lock()
        self._free_at = 0.0
        self.booked_bytes = 0
        self.booked_seconds = 0.0

    def book(self, n: int) -> tuple[float, float]:
        """Book the link for n bytes; return (start, end) on the link's clock."""
        with self._lock:
            start = max(self._clock(), self._free_at)
            end = start + n / self.rate
            self._free_at = end
            self.booked_bytes += n
            self.booked_seconds += n / self.rate
            return start, end

    async def carry(self, n: int, transfer: Transfer) -> None:
        """Take n bytes of transfer across the link, a slice at a time; return when they are."""
        while n > 0:
            part = min(n, SLICE_BYTES)
            start, end = self.book(part)
            if transfer.first_start is None:
                transfer.first_start = start
            transfer.last_end = end
            n -= part
            wait = end - self._clock()
            if wait > 0:
                await anyio.sleep(wait)


class WireMeter:
    """Bytes on the wire since the last reset, and the links, if there is a bandwidth."""

    def __init__(self, bandwidth: float | None = None) -> None:
        self.bandwidth = bandwidth
        self.uplink = Link(bandwidth) if bandwidth else None
        self.downlink = Link(bandwidth) if bandwidth else None
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Zero the counts (the links' bookings stay: the line does not forget its queue)."""
        with self._lock:
            self.received_bytes = 0  # request bodies, every path
            self.sent_bytes = 0  # response bodies, every path
            self.transfers: collections.deque[Transfer] = collections.deque(maxlen=_KEPT_TRANSFERS)
            self._booked_base = {
                "up": (self.uplink.booked_bytes, self.uplink.booked_seconds)
                if self.uplink
                else (0, 0.0),
                "down": (self.downlink.booked_bytes, self.downlink.booked_seconds)
                if self.downlink
                else (0, 0.0),
            }

    def _add(self, transfer: Transfer, n: int) -> None:
        with self._lock:
            if transfer.bytes == 0 and n:
                self.transfers.append(transfer)  # kept from its first byte, seen while it runs
            transfer.bytes += n
            direction = transfer.direction
            if direction == "up":
                self.received_bytes += n
            else:
                self.sent_bytes += n

    def snapshot(self) -> dict[str, Any]:
        """The counts as JSON-ready numbers: bytes each way, and what each link booked."""
        with self._lock:
            out: dict[str, Any] = {
                "received_bytes": self.received_bytes,
                "sent_bytes": self.sent_bytes,
                "bandwidth": self.bandwidth,
            }
            for name, link in (("up", self.uplink), ("down", self.downlink)):
                if link is None:
                    continue
                base_bytes, base_seconds = self._booked_base[name]
                out[f"{name}link_booked_bytes"] = link.booked_bytes - base_bytes
                out[f"{name}link_booked_seconds"] = round(link.booked_seconds - base_seconds, 6)
            return out


class WireMiddleware:
    """Count (and, with a bandwidth, pace) every request and response body (pure ASGI)."""

    def __init__(self, app: ASGIApp, meter: WireMeter) -> None:
        self.app = app
        self.meter = meter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        meter = self.meter
        up = Transfer(scope["method"], scope["path"], "up")
        down = Transfer(scope["method"], scope["path"], "down")
        body_done = False

        async def metered_receive() -> Message:
            nonlocal body_done
            message = await receive()
            if message["type"] == "http.request":
                n = len(message.get("body", b""))
                meter._add(up, n)
                if meter.uplink is not None and n:
                    await meter.uplink.carry(n, up)
                if not message.get("more_body", False):
                    body_done = True
            elif message["type"] == "http.disconnect":
                body_done = True
            return message

        async def metered_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                if not body_done and _has_body(scope) and not _closes(message):
                    await _drain(metered_receive)
                await send(message)
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            body: bytes = message.get("body", b"")
            more = message.get("more_body", False)
            if meter.downlink is None or len(body) <= SLICE_BYTES:
                meter._add(down, len(body))
                if meter.downlink is not None and body:
                    await meter.downlink.carry(len(body), down)
                await send(message)
                return
            # A big body goes out a slice at a time, each after its turn on the downlink.
            for offset in range(0, len(body), SLICE_BYTES):
                part = body[offset : offset + SLICE_BYTES]
                meter._add(down, len(part))
                await meter.downlink.carry(len(part), down)
                last = offset + SLICE_BYTES >= len(body)
                await send(
                    {"type": "http.response.body", "body": part, "more_body": more or not last}
                )

        await self.app(scope, metered_receive, metered_send)


def _closes(start: Message) -> bool:
    """True if an answer closes its connection (a refusal that stops the client sending)."""
    return any(
        name.lower() == b"connection" and value.lower() == b"close"
        for name, value in start.get("headers", [])
    )


def _has_body(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            return value.strip() not in (b"", b"0")
        if name.lower() == b"transfer-encoding":
            return True
    return False


async def _drain(receive: Receive) -> None:
    """Read what is left of a request body (counted and paced as any other)."""
    with anyio.move_on_after(600):
        while True:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                return
