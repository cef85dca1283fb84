"""A hostile stand-in for the Training API: a small scripted HTTP server that misbehaves on cue.

Public names: HostileServer, Request, Reply, forward_after.

The emulator's job is fidelity; this server's job is to play a broken or malicious service
(endless Retry-After, trickling bodies, endless pages, echoed keys, huge bodies, wrong types) so
that the tests can prove syncd fails closed. It is deliberately not the emulator and knows nothing
of it: a test gives it a *script*, a function from each `Request` to a `Reply`. A script that
returns None lets the request through to `upstream` (usually a real emulator) unchanged, so a test
can be hostile for a while and then let the service "answer normally again".

    with EmulatorServer(training_key=KEY) as emulator:
        with HostileServer(script, upstream=emulator.url) as bad:
            ...  # point syncd at bad.url

Replies are written by hand on a raw asyncio stream, so a reply can lie about its length, trickle
one chunk every few seconds, stream gigabytes it never holds in memory, hang until the test ends,
or close the connection without a word. Every request is recorded in `requests`.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

_MAX_HEADER_BYTES = 64 * 1024
_START_TIMEOUT_S = 10.0
_SCRIPT_THREADS = 64  # requests whose script may run (or hold) at once


@dataclass(frozen=True)
class Request:
    """One request as the server read it: header names are lower-cased."""

    method: str
    target: str  # path and query, as sent
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.target).query, keep_blank_values=True))


@dataclass
class Reply:
    """What to answer. Defaults: 200 with an empty body and a truthful Content-Length.

    - `json`: serialised as the body (and `content-type: application/json`) when not None;
    - `length`: the Content-Length to announce, true or not (None: the body's real length);
    - `chunk`, `interval`: send the body `chunk` bytes at a time, sleeping `interval` s between;
    - `stream_bytes`, `fill`: after `body`, stream this many more bytes of `fill`, never held whole;
    - `close`: drop the connection without answering; `hang`: never answer (until stop());
    - `unbounded`: send no Content-Length at all; the body ends when the connection closes.
    """

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    json: Any = None
    length: int | None = None
    chunk: int = 0
    interval: float = 0.0
    stream_bytes: int = 0
    fill: bytes = b" "
    close: bool = False
    hang: bool = False
    unbounded: bool = False

    def payload(self) -> bytes:
        if self.json is not None:
            return jsonlib.dumps(self.json).encode()
        return self.body


Script = Callable[[Request], "Reply | None"]


def forward_after(count: int, hostile: Script) -> Script:
    """Return a script that plays `hostile` for the first `count` requests, then forwards."""
    seen = 0
    lock = threading.Lock()

    def script(request: Request) -> Reply | None:
        nonlocal seen
        with lock:
            seen += 1
            mine = seen <= count
        return hostile(request) if mine else None

    return script


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many"}


class HostileServer:
    """The scripted server on a loopback port, in a background thread with its own event loop."""

    def __init__(self, script: Script, *, upstream: str | None = None, host: str = "127.0.0.1"):
        self._script = script
        self._upstream = upstream
        self._host = host
        self.requests: list[Request] = []
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"HostileServer(url={self.url!r}, upstream={self._upstream!r})"

    @property
    def api_url(self) -> str:
        """The endpoint syncd's config takes (the server's base URL)."""
        return self.url

    def requests_to(self, fragment: str) -> list[Request]:
        """Return the recorded requests whose path contains `fragment`."""
        with self._lock:
            return [r for r in self.requests if fragment in r.path]

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> HostileServer:
        self._thread = threading.Thread(target=self._run, name="hostile-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT_S):
            raise RuntimeError("the hostile server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        # A script may hold a request until others arrive: one thread each, not the default
        # pool's few (min(32, cores + 4): 6 on a 2-core machine).
        self._loop.set_default_executor(ThreadPoolExecutor(_SCRIPT_THREADS, "hostile-script"))
        self._stopping = asyncio.Event()
        self._forwarder = (
            httpx.AsyncClient(base_url=self._upstream, timeout=60) if self._upstream else None
        )
        server = await asyncio.start_server(self._connection, self._host, 0)
        port = server.sockets[0].getsockname()[1]
        self.url = f"http://{self._host}:{port}"
        tasks: set[asyncio.Task[None]] = set()
        self._tasks = tasks
        self._ready.set()
        async with server:
            await self._stopping.wait()
            server.close()
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._forwarder is not None:
            await self._forwarder.aclose()

    # --- one connection ---------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                with self._lock:
                    self.requests.append(request)
                reply = await asyncio.to_thread(self._script, request)
                if reply is None:
                    reply = await self._forward(request)
                if reply.close:
                    return
                if reply.hang:
                    assert self._stopping is not None
                    await self._stopping.wait()
                    return
                await _write_reply(writer, reply)
                if reply.unbounded:
                    return  # the close ends the body
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:
            return
        finally:
            self._tasks.discard(task)  # type: ignore[arg-type]
            writer.close()

    async def _forward(self, request: Request) -> Reply:
        if self._forwarder is None:
            return Reply(404, json={"code": "NotFound", "message": "no upstream"})
        headers = {k: v for k, v in request.headers.items() if k not in _HOP_HEADERS}
        try:
            response = await self._forwarder.request(
                request.method, request.target, headers=headers, content=request.body
            )
        except httpx.TransportError:  # the upstream is down (killed): the client sees a drop
            return Reply(close=True)
        kept = {k: v for k, v in response.headers.items() if k.lower() not in _HOP_HEADERS}
        return Reply(response.status_code, headers=kept, body=response.content)


_HOP_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "content-encoding"}
)


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    except asyncio.LimitOverrunError:
        return None
    if len(head) > _MAX_HEADER_BYTES:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b"".join([part async for part in _chunks(reader)])
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Request(method, target, headers, body)


async def _chunks(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    while True:
        size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            await reader.readline()
            return
        yield await reader.readexactly(size)
        await reader.readline()


async def _write_reply(writer: asyncio.StreamWriter, reply: Reply) -> None:
    body = reply.payload()
    total = len(body) + reply.stream_bytes
    headers = {"content-length": str(total if reply.length is None else reply.length)}
    if reply.unbounded:
        headers = {"connection": "close"}
    if reply.json is not None:
        headers["content-type"] = "application/json; charset=utf-8"
    headers.update({k.lower(): v for k, v in reply.headers.items()})
    head = f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Status')}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    writer.write(head.encode("latin-1"))
    await writer.drain()
    step = reply.chunk or len(body) or 1
    for start in range(0, len(body), step):
        writer.write(body[start : start + step])
        await writer.drain()
        if reply.interval:
            await asyncio.sleep(reply.interval)
    remaining = reply.stream_bytes
    block = (reply.fill * (65536 // max(1, len(reply.fill)) + 1))[:65536]
    while remaining > 0:
        piece = block[: min(remaining, reply.chunk or len(block))]
        writer.write(piece)
        await writer.drain()
        remaining -= len(piece)
        if reply.interval:
            await asyncio.sleep(reply.interval)
