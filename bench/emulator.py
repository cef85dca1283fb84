"""The emulator as the benchmark runs it: a subprocess serving syncd's emulator app, wrapped in a
counter of what arrives on the wire.

Run as `python -m bench.emulator --port 0 [--tps N] [--latency MS] [--bandwidth RATE]
[--tier F0|S0]`; it prints its URL on the first line of stdout. `GET /bench/stats` answers the
counts since the last `POST /bench/reset`: API requests (throttled ones included, by status)
with their request and response body bytes, and image downloads (blob GETs) with their response
bytes; under "wire", the emulator's own count of body bytes each way and, with a bandwidth, the
link time it booked for them (syncd/emulator/wire.py). The counter sits outside the emulator's
own middleware, so it sees every request the client sent, whichever answer it got.

Key: from the SYNCD_EMULATOR_TRAINING_KEY environment variable (never on the command line).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from syncd.emulator.app import create_app
from syncd.emulator.faults import Faults
from syncd.emulator.options import add_line_arguments, tier_settings
from syncd.emulator.server import KEY_ENV, _bind, _url, open_listen_refusal
from syncd.emulator.store import Store
from syncd.emulator.wire import WireMeter

STATS_PATH = "/bench/stats"
RESET_PATH = "/bench/reset"
API_PREFIX = "/customvision/"
TIMELINE_MAX = 1_000  # requests whose times /bench/stats reports: enough for A2's start and end


class WireCounter:
    """Counts requests and bytes per kind; the totals a benchmark compares."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.api_requests = 0
            self.api_body_bytes = 0
            self.by_status: Counter[int] = Counter()
            self.by_route: Counter[str] = Counter()
            self.bytes_by_route: Counter[str] = Counter()
            self.api_response_bytes = 0
            self.downloads = 0
            self.download_bytes = 0
            # (arrived, answered, route, status) of the first TIMELINE_MAX API requests, wall clock
            self.timeline: list[tuple[float, float, str, int]] = []

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "api_requests": self.api_requests,
                "api_body_bytes": self.api_body_bytes,
                "api_response_bytes": self.api_response_bytes,
                "throttled": self.by_status.get(429, 0),
                "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
                "by_route": dict(sorted(self.by_route.items())),
                "bytes_by_route": dict(sorted(self.bytes_by_route.items())),
                "downloads": self.downloads,
                "download_bytes": self.download_bytes,
                "timeline": list(self.timeline),
            }


def _route_name(method: str, path: str) -> str:
    """`POST images/files` from `/customvision/v3.x/training/projects/<id>/images/files`."""
    parts = path.split("/")
    # ['', 'customvision', 'v3.3', 'training', 'projects', '<id>', ...]
    rest = parts[6:] if len(parts) > 5 and parts[4] == "projects" else parts[4:5]
    rest = ["{id}" if len(p) == 36 and p.count("-") == 4 else p for p in rest]
    return f"{method} {'/'.join(rest) or 'project'}"


class CountingMiddleware:
    """Serve /bench/stats and /bench/reset; count everything else on its way in."""

    def __init__(self, app: ASGIApp, counter: WireCounter, wire: WireMeter | None = None) -> None:
        self.app = app
        self.counter = counter
        self.wire = wire  # the emulator's own meter (and links), reset and reported with these

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path in (STATS_PATH, RESET_PATH):
            if path == RESET_PATH:
                self.counter.reset()
                if self.wire is not None:
                    self.wire.reset()
            stats = self.counter.snapshot()
            if self.wire is not None:
                stats["wire"] = self.wire.snapshot()
            body = json.dumps(stats).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        counter = self.counter
        if not path.startswith(API_PREFIX):
            sent = 0

            async def counting_send(message: Message) -> None:
                nonlocal sent
                if message["type"] == "http.response.body":
                    sent += len(message.get("body", b""))
                await send(message)

            await self.app(scope, receive, counting_send)
            with counter._lock:
                counter.downloads += 1
                counter.download_bytes += sent
            return

        arrived = time.time()
        received = 0
        answered = 0
        status = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            return message

        async def status_send(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                answered += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive, status_send)
        finally:
            with counter._lock:
                counter.api_requests += 1
                counter.api_body_bytes += received
                counter.api_response_bytes += answered
                counter.by_status[status] += 1
                route = _route_name(scope["method"], path)
                counter.by_route[route] += 1
                counter.bytes_by_route[route] += received
                if len(counter.timeline) < TIMELINE_MAX:
                    counter.timeline.append((arrived, time.time(), route, status))


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tps", type=float, default=None)
    parser.add_argument("--latency", type=float, default=0.0, metavar="MS")
    add_line_arguments(parser)
    args = parser.parse_args()
    key = os.environ.get(KEY_ENV) or None
    refusal = open_listen_refusal(args.host, key)
    if refusal is not None:
        print(f"bench.emulator: {refusal}", file=sys.stderr)
        return 2
    quotas, rates = tier_settings(args)
    store = Store(None, quotas)  # in memory: the benchmark's data is thrown away
    faults = Faults(**rates, latency_ms=args.latency)
    wire = WireMeter(faults.bandwidth)
    emulator = create_app(store, training_key=key, faults=faults, wire=wire)
    app = CountingMiddleware(emulator, WireCounter(), wire)
    sock = _bind(args.host, args.port)
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    print(_url(sock), flush=True)
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        asyncio.run(server.serve(sockets=[sock]))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
