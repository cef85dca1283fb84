"""Helpers for the daemon tests: `syncd run` as a subprocess, the project read over plain HTTP.

Public names: Daemon, Uploads, wait_until, image_count, EXIT_TIMEOUT_S (the project itself is
read with tests/support/project_view.py).

The daemon is a real process (`python -m syncd run --config ...`) talking to an EmulatorServer
over real HTTP; its JSON log lines (stderr) are read back as events. Waits poll a condition under
a generous deadline that only turns a hang into a failure: nothing here asserts a speed.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from tests.support.project_view import Changing

REPO = Path(__file__).resolve().parents[2]
DEADLINE_S = 30.0  # a generous bound on any wait: only a hang should ever reach it
EXIT_TIMEOUT_S = 15.0  # the default shutdown bound (10 s) plus interpreter start-up slack


def wait_until(
    condition: Callable[[], Any], what: str, deadline_s: float = DEADLINE_S, step: float = 0.1
) -> Any:
    """Poll `condition` until it returns something truthy; fail naming `what` at the deadline.
    A condition that raises Changing (the daemon was mid-change) is polled again."""
    end = time.monotonic() + deadline_s
    while True:
        try:
            value = condition()
        except Changing:
            value = None
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline_s:g} s waiting for {what}")
        time.sleep(step)


def image_count(http: httpx.Client, project_id: str) -> int:
    r = http.get(f"/projects/{project_id}/images/count")
    assert r.status_code == 200, r.text
    return int(r.json())


_UPLOAD = re.compile(r"/projects/[^/]+/images(/files)?$")


@dataclass
class Uploads:
    """Every successful upload request the emulator answered: images created per request."""

    batches: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(
        self, method: str, path: str, status: int, _headers: Mapping[str, str], body: bytes
    ) -> None:
        if method == "POST" and status == 200 and _UPLOAD.search(path):
            summary = json.loads(body)
            created = [i for i in summary.get("images") or () if i.get("status") == "OK"]
            with self.lock:
                self.batches.append(len(created))

    @property
    def images(self) -> int:
        with self.lock:
            return sum(self.batches)

    @property
    def requests(self) -> int:
        with self.lock:
            return len(self.batches)


class Daemon:
    """`python -m syncd run` in a subprocess, its stderr (JSON lines) kept in a file."""

    def __init__(
        self,
        config: Path,
        log_path: Path,
        env: Mapping[str, str],
        launcher: Path | None = None,
    ) -> None:
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("ab")
        start = [str(launcher)] if launcher else ["-m", "syncd"]
        self.proc = subprocess.Popen(
            [sys.executable, *start, "run", "--config", str(config)],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and (name is None or event.get("event") == name):
                out.append(event)
        return out

    def wait_event(self, name: str, count: int = 1, deadline_s: float = DEADLINE_S) -> Any:
        def seen() -> list[dict[str, Any]] | None:
            assert self.proc.poll() is None or len(self.events(name)) >= count, self.log()
            found = self.events(name)
            return found if len(found) >= count else None

        return wait_until(seen, f"{count} {name!r} event(s) in the daemon log", deadline_s)

    def wait_for(self, condition: Callable[[], Any], what: str) -> Any:
        """wait_until(condition), failing at once (with the log) if the daemon has exited."""

        def alive_and(condition: Callable[[], Any] = condition) -> Any:
            code = self.proc.poll()
            assert code is None, f"syncd run exited with {code}:\n{self.log()}"
            return condition()

        try:
            return wait_until(alive_and, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- daemon log (tail) ---\n{self.log()}") from None

    def wait_ready(self) -> None:
        self.wait_event("ready")

    def send(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Send `sig` and return the exit code (fails if the process outlives EXIT_TIMEOUT_S)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"syncd run outlived SIGTERM by {EXIT_TIMEOUT_S} s") from None
        finally:
            self._log.flush()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]
