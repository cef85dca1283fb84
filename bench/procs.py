"""Subprocesses the benchmark measures, and the emulator process it serves them from.

`run_measured` runs a command and returns its wall time, peak RSS and I/O counters, the child's
alone. Peak RSS is the child's VmHWM from /proc/<pid>/status, polled every few milliseconds until
it exits (the high-water mark only grows, so the last reading is the peak unless it came in the
final milliseconds); wait4's ru_maxrss is kept too, but it can start from the forking parent's
RSS, so it is an upper bound. The child is waited for without being reaped (waitid WNOWAIT) so
its /proc/<pid>/io can still be read, then reaped with wait4.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PYTHON = sys.executable
REPO = Path(__file__).resolve().parent.parent


@dataclass
class Measured:
    """One finished subprocess: what it printed and what it cost."""

    argv: list[str]
    returncode: int
    wall_s: float
    max_rss_mb: float  # VmHWM, polled
    rusage_max_rss_mb: float  # wait4's ru_maxrss (an upper bound, see the module docstring)
    cpu_s: float
    rchar: int  # bytes read through read syscalls (page cache hits included)
    read_bytes: int  # bytes fetched from the block device
    stdout: str
    stderr: str
    started_at: float = 0.0  # time.time() at the spawn, to line up with the emulator's timeline

    def json_out(self) -> dict[str, Any]:
        """The command's --json document (the last line of stdout that parses)."""
        for line in reversed(self.stdout.strip().splitlines()):
            with contextlib.suppress(json.JSONDecodeError):
                value = json.loads(line)
                if isinstance(value, dict):
                    return value
        raise RuntimeError(
            f"no JSON from {' '.join(self.argv[:4])}... (exit {self.returncode}): "
            f"{self.stderr.strip()[-2000:]}"
        )


def _proc_io(pid: int) -> dict[str, int]:
    try:
        text = Path(f"/proc/{pid}/io").read_text()
    except OSError:
        return {}
    return {k: int(v) for k, v in (line.split(": ") for line in text.splitlines())}


def _hwm_kb(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0  # a zombie has no memory left to report


def run_measured(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout_s: float = 1800.0,
) -> Measured:
    """Run argv to completion; measure wall time, peak RSS, CPU and bytes read."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started_at = time.time()
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(argv), stdout=out, stderr=err, env=dict(env) if env else None, cwd=cwd
        )
        deadline = start + timeout_s
        hwm_kb = 0
        while True:
            info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)
            if info is not None:
                break
            hwm_kb = max(hwm_kb, _hwm_kb(proc.pid))
            if time.perf_counter() > deadline:
                proc.kill()
            time.sleep(0.005)
        wall = time.perf_counter() - start
        io = _proc_io(proc.pid)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Measured(
            argv=list(argv),
            returncode=proc.returncode,
            wall_s=wall,
            max_rss_mb=hwm_kb / 1024,
            rusage_max_rss_mb=usage.ru_maxrss / 1024,
            cpu_s=usage.ru_utime + usage.ru_stime,
            rchar=io.get("rchar", 0),
            read_bytes=io.get("read_bytes", 0),
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
            started_at=started_at,
        )


@dataclass
class Emulator:
    """A `python -m bench.emulator` subprocess and its URL."""

    url: str
    process: subprocess.Popen[bytes]
    options: dict[str, Any] = field(default_factory=dict)

    def stats(self, timeline: bool = False) -> dict[str, Any]:
        """The counts since the last reset; with `timeline`, each request's (arrived, answered,
        route, status) too (wall clock, the first bench.emulator.TIMELINE_MAX requests)."""
        with urllib.request.urlopen(f"{self.url}/bench/stats", timeout=30) as response:
            stats: dict[str, Any] = json.loads(response.read())
        if not timeline:
            stats.pop("timeline", None)
        return stats

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/bench/reset", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()


@contextlib.contextmanager
def emulator(
    key: str,
    *,
    tps: float | None = None,
    latency_ms: float = 0.0,
    bandwidth: float | None = None,
    tier: str | None = None,
) -> Iterator[Emulator]:
    """Start the counting emulator in its own process; stop it on exit. bandwidth: bytes per
    second each way (None: no limit); tier: F0 or S0 (its quotas and rates; tps still wins)."""
    argv = [PYTHON, "-m", "bench.emulator", "--port", "0", "--latency", str(latency_ms)]
    if tps:
        argv += ["--tps", str(tps)]
    if bandwidth:
        argv += ["--bandwidth", f"{bandwidth:.0f}"]
    if tier:
        argv += ["--tier", tier]
    env = {**os.environ, "SYNCD_EMULATOR_TRAINING_KEY": key}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, env=env, cwd=REPO)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().decode().strip()
        if not url.startswith("http"):
            raise RuntimeError(f"the emulator did not start (printed {url!r})")
        options = {"tps": tps, "latency_ms": latency_ms, "bandwidth": bandwidth, "tier": tier}
        yield Emulator(url, proc, options)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
