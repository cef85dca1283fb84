"""WATCHDOG=1 proves progress: the daemon stops pinging once a mirror loop is stuck.

The subprocess test points `syncd run` at the hostile server, which never answers any request, so
the first reconcile hangs in its first request (the read timeout is set far above the stall
bound). The daemon must go on living but stop pinging systemd once the loop has shown no progress
for `daemon.stall_seconds`, say `stalled` in its STATUS= line and log one error line.
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from syncd.config import load_config
from syncd.daemon.loop import Daemon
from syncd.daemon.notify import Notifier
from tests.daemon.conftest import World
from tests.daemon.support import wait_until
from tests.support.hostile import HostileServer, Reply, Request
from tests.support.images import write_image

STALL_SECONDS = 2


def _hang(_request: Request) -> Reply:
    return Reply(hang=True)


def test_watchdog_pings_stop_when_the_sync_loop_hangs(
    world: World, notify_socket: tuple[str, list[str]]
) -> None:
    path, messages = notify_socket
    with HostileServer(_hang) as hostile:
        world.write_config(
            daemon={"stall_seconds": STALL_SECONDS},
            # One attempt that waits far longer than the stall bound: the loop is wedged in it.
            service={"endpoint": hostile.url, "read_timeout": 300, "max_attempts": 1},
        )
        daemon = world.start_daemon(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
        wait_until(lambda: hostile.requests, "the daemon's first request")
        daemon.wait_for(lambda: "WATCHDOG=1" in list(messages), "a first WATCHDOG=1 ping")
        stalled = daemon.wait_event("stalled")
        assert len(stalled) == 1
        assert stalled[0]["level"] == "error"
        assert stalled[0]["mirrors"] == ["t"]
        assert stalled[0]["bound_seconds"] == STALL_SECONDS

        pings = list(messages).count("WATCHDOG=1")
        time.sleep(3 * 0.2 + 1.0)  # several ping intervals (WATCHDOG_USEC / 2 = 0.2 s)
        assert daemon.proc.poll() is None, daemon.log()
        assert list(messages).count("WATCHDOG=1") == pings, "pinged while stalled"
        status = [line for m in list(messages) for line in m.splitlines() if "STATUS=" in line]
        assert any(line.startswith("STATUS=stalled") for line in status), status
        assert len(daemon.events("stalled")) == 1  # one error line, not one per check
        assert daemon.stop() == 0


def test_a_healthy_idle_daemon_keeps_pinging_under_a_small_bound(
    world: World, notify_socket: tuple[str, list[str]]
) -> None:
    path, messages = notify_socket
    write_image(world.root / "Dog" / "a.jpg", 81)
    world.write_config(daemon={"stall_seconds": STALL_SECONDS})
    daemon = world.start_daemon(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
    daemon.wait_ready()
    pings = list(messages).count("WATCHDOG=1")
    time.sleep(2 * STALL_SECONDS + 1)  # idle: nothing due for an hour, yet the loop beats
    assert list(messages).count("WATCHDOG=1") > pings
    assert not daemon.events("stalled"), daemon.log()
    assert daemon.stop() == 0


# --- in process, on a virtual clock -------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def systemd() -> Iterator[tuple[str, socket.socket]]:
    """A bound datagram socket standing in for systemd's notify socket (read synchronously)."""
    folder = tempfile.mkdtemp(prefix="sd-", dir="/tmp")
    path = f"{folder}/notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    yield path, sock
    sock.close()
    Path(path).unlink(missing_ok=True)
    Path(folder).rmdir()


def _received(sock: socket.socket) -> list[str]:
    lines = []
    while True:
        try:
            lines += sock.recv(4096).decode().splitlines()
        except BlockingIOError:
            return lines


def test_pings_stop_past_the_stall_bound_and_resume_with_progress(
    world: World, systemd: tuple[str, socket.socket]
) -> None:
    path, sock = systemd
    config = load_config(world.write_config(daemon={"stall_seconds": 30}))
    clock = _Clock()
    daemon = Daemon(world.config_path, config, Notifier(path, 20_000_000), clock=clock)
    daemon.liveness.watch("t")

    clock.now += 29.0
    daemon.check_progress()
    assert _received(sock) == ["WATCHDOG=1"]

    clock.now += 2.0  # 31 s without a heartbeat: past the 30 s bound
    with capture_logs() as logs:
        daemon.check_progress()
        clock.now += 60.0
        daemon.check_progress()
    assert [e["mirrors"] for e in logs if e["event"] == "stalled"] == [["t"]]  # one line
    assert [e["log_level"] for e in logs if e["event"] == "stalled"] == ["error"]
    lines = _received(sock)
    assert "WATCHDOG=1" not in lines
    assert [line for line in lines if line.startswith("STATUS=stalled: no progress for 31 s in t")]

    daemon.liveness.beat("t")  # the loop moved again
    daemon.check_progress()
    lines = _received(sock)
    assert "WATCHDOG=1" in lines
    assert not [line for line in lines if line.startswith("STATUS=stalled")]


class _Slept(Exception):
    """Ends a loop of checks once a fake sleep has seen enough of them."""


def _check_intervals(daemon: Daemon, checks: int = 3) -> list[float]:
    """How long the daemon's progress checks sleep between checks (on a fake sleep)."""
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == checks:
            raise _Slept

    daemon.sleep = sleep
    with pytest.raises(_Slept):
        asyncio.run(daemon.watch_progress())
    return slept


def test_without_systemd_s_watchdog_an_idle_daemon_is_not_woken_every_second(
    world: World,
) -> None:
    # Nothing asks for pings: progress is judged only to log a stall, which need not be known to
    # the second when the bound is 15 minutes; the checks come as often as the idle loop's beat.
    config = load_config(world.write_config(daemon={"stall_seconds": 900}))
    daemon = Daemon(world.config_path, config, Notifier(None), clock=_Clock())
    assert _check_intervals(daemon) == [10.0] * 3
    # A small bound is still judged within a quarter of it.
    config = load_config(world.write_config(daemon={"stall_seconds": 2}))
    daemon = Daemon(world.config_path, config, Notifier(None), clock=_Clock())
    assert _check_intervals(daemon) == [0.5] * 3


def test_under_systemd_s_watchdog_progress_is_judged_at_each_ping(
    world: World, systemd: tuple[str, socket.socket]
) -> None:
    path, _sock = systemd
    config = load_config(world.write_config(daemon={"stall_seconds": 900}))
    daemon = Daemon(world.config_path, config, Notifier(path, 60_000_000), clock=_Clock())
    assert _check_intervals(daemon) == [30.0] * 3  # half of WatchdogSec=60
