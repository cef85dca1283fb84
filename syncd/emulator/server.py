"""Run the emulator: in a background thread for tests (`EmulatorServer`) or as `syncd emulator`.

Public names: `EmulatorServer`, `run_from_args` (its options: syncd.emulator.options),
`is_loopback`, `open_listen_refusal`.

Neither listens on an address other than loopback without a training key: anyone who can reach
it would have a key-less service to write to.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from syncd.emulator.app import ResponseObserver, create_app
from syncd.emulator.faults import NO_FAULTS, DroppedResponse, Faults
from syncd.emulator.limits import DEFAULT_QUOTAS, DEFAULT_TRAINING_SECONDS, Quotas
from syncd.emulator.options import KEY_ENV, tier_settings
from syncd.emulator.store import Store
from syncd.emulator.wire import WireMeter

_START_TIMEOUT_S = 20.0


class _HideDroppedResponses(logging.Filter):
    """Keep uvicorn from logging a traceback for each response cut on purpose (drop_rate)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, DroppedResponse)


def _quiet_drops() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _HideDroppedResponses) for f in logger.filters):
        logger.addFilter(_HideDroppedResponses())


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1): only this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may well resolve to a public address
        return False


def open_listen_refusal(host: str, key: str | None) -> str | None:
    """Why the emulator may not listen on host with this key, or None if it may."""
    if key or is_loopback(host):
        return None
    return (
        f"refusing to listen on {host} without a training key: anyone who can reach that"
        f" address could use the emulator. Set {KEY_ENV} (or --training-key), or listen on"
        " 127.0.0.1"
    )


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on accepted sockets whose proto says
    # TCP, and with Nagle on every response waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _config(app: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=5,
    )


class EmulatorServer:
    """The emulator on a loopback port, served by uvicorn in a background thread."""

    def __init__(
        self,
        *,
        training_key: str | None = None,
        data_dir: Path | None = None,
        faults: Faults = NO_FAULTS,
        quotas: Quotas = DEFAULT_QUOTAS,
        host: str = "127.0.0.1",
        port: int = 0,
        response_observer: ResponseObserver | None = None,
        training_seconds: float = DEFAULT_TRAINING_SECONDS,
    ) -> None:
        refusal = open_listen_refusal(host, training_key)
        if refusal is not None:
            raise ValueError(refusal)
        self._training_key = training_key
        self._training_seconds = training_seconds
        self._data_dir = data_dir
        self._faults = faults
        self._quotas = quotas
        self._host = host
        self._port = port
        self._observer = response_observer
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""
        self.store: Store
        # Bytes on the wire, and the links when faults.bandwidth is set (emulator/wire.py).
        self.wire = WireMeter(faults.bandwidth)

    def __repr__(self) -> str:  # never shows the key
        return f"EmulatorServer(url={self.url!r}, data_dir={self._data_dir!r})"

    def start(self) -> EmulatorServer:
        """Open the store, bind the port and serve; return once requests are answered."""
        self.store = Store(self._data_dir, self._quotas, training_seconds=self._training_seconds)
        app = create_app(
            self.store,
            training_key=self._training_key,
            faults=self._faults,
            response_observer=self._observer,
            wire=self.wire,
        )
        _quiet_drops()
        sock = _bind(self._host, self._port)
        self.url = _url(sock)
        server = uvicorn.Server(_config(app))
        self._server = server
        self._thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])),
            name="syncd-emulator",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the emulator did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving (in-flight requests get a few seconds) and close the store."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
            self._thread = None
        self._server = None
        if hasattr(self, "store"):
            self.store.close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --- command line -----------------------------------------------------------------------------


def run_from_args(args: argparse.Namespace) -> int:
    """Serve in the foreground until SIGINT or SIGTERM; return the exit code (0; 2 when it may
    not listen: the address is taken, or not loopback and there is no key)."""
    key = args.training_key or os.environ.get(KEY_ENV) or None
    refusal = open_listen_refusal(args.host, key)
    if refusal is not None:
        print(f"syncd emulator: {refusal}", file=sys.stderr)
        return 2
    quotas, rates = tier_settings(args)
    faults = Faults(
        **rates,
        fail_rate=args.fail_rate,
        drop_rate=args.drop_rate,
        latency_ms=args.latency,
        seed=args.seed,
        duplicate_without_image=args.duplicate_without_image,
        blob_latency_ms=args.blob_latency,
    )
    try:
        sock = _bind(args.host, args.port)
    except OSError as exc:
        print(f"syncd emulator: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    store = Store(args.data, quotas, training_seconds=args.training_seconds)
    app = create_app(store, training_key=key, faults=faults)
    _quiet_drops()
    server = uvicorn.Server(_config(app))
    where = f"state in {args.data}" if args.data else "state in memory"
    auth = "training key required" if key else "any non-empty Training-Key accepted"
    line = [f"tier {args.tier}"] if args.tier else []
    if faults.bandwidth:
        line.append(f"bandwidth {faults.bandwidth * 8 / 1e6:g} Mbit/s each way")
    extra = "".join(f"; {item}" for item in line)
    print(f"syncd emulator listening on {_url(sock)} ({where}; {auth}{extra})", flush=True)
    # uvicorn re-raises the signal it caught once it has stopped; these handlers absorb that, so
    # SIGTERM and SIGINT end the process cleanly with status 0.
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        store.close()
    return 0
