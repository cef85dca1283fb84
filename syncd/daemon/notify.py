"""The systemd notify protocol (sd_notify), written directly on $NOTIFY_SOCKET: no dependency.

Public names: Notifier.

A message is one datagram of newline-separated `KEY=VALUE` lines sent to the unix socket named
by $NOTIFY_SOCKET (a path, or `@name` for the abstract namespace). Without the variable (not
under systemd, or Type= is not notify) every call does nothing. Sending never raises: a lost
status line must not stop the daemon; systemd's own timeouts cover a notifier that stays silent.

Messages used: READY=1, STATUS=<text>, WATCHDOG=1, STOPPING=1, RELOADING=1 (see
systemd's sd_notify(3)).
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping

import structlog

_log = structlog.get_logger(component="notify")


class Notifier:
    """Sends sd_notify messages to one socket, or nowhere."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self._address: str | bytes | None = None
        if address:
            # «If the first character of $NOTIFY_SOCKET is "@", the string is understood as
            # Linux abstract namespace socket.» (sd_notify(3))
            self._address = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog_usec = watchdog_usec
        self._sock: socket.socket | None = None
        self._last_status: str | None = None
        self._warned = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """Return a Notifier for $NOTIFY_SOCKET, with the watchdog period from $WATCHDOG_USEC
        when $WATCHDOG_PID is unset or names this process."""
        env = os.environ if environ is None else environ
        usec: int | None = None
        pid = env.get("WATCHDOG_PID")
        if env.get("WATCHDOG_USEC") and (not pid or pid == str(os.getpid())):
            try:
                usec = int(env["WATCHDOG_USEC"]) or None
            except ValueError:
                usec = None
        return cls(env.get("NOTIFY_SOCKET"), usec)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between WATCHDOG=1 pings (half the period systemd allows), or None."""
        if not self.enabled or not self.watchdog_usec:
            return None
        return self.watchdog_usec / 1_000_000 / 2

    def send(self, *lines: str) -> None:
        """Send one datagram holding `lines` (e.g. "READY=1", "STATUS=watching")."""
        if self._address is None:
            return
        data = "\n".join(lines).encode("utf-8", "replace")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(data, self._address)
        except OSError as exc:
            if not self._warned:  # once: a socket that is gone stays gone
                self._warned = True
                _log.warning("notify_failed", error=exc.strerror or str(exc))

    def ready(self, status: str) -> None:
        self._last_status = status
        self.send("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        """Send STATUS= if it differs from the last one sent."""
        if status != self._last_status:
            self._last_status = status
            self.send(f"STATUS={status}")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")

    def reloading(self) -> None:
        """RELOADING=1 (with the monotonic clock systemd's Type=notify-reload asks for); send
        ready() when the reload is done."""
        self._last_status = "reloading the config"
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", f"STATUS={self._last_status}")

    def stopping(self) -> None:
        self._last_status = "stopping"
        self.send("STOPPING=1", "STATUS=stopping")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
