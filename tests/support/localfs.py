"""Faulty local disks for tests: a tiny tmpfs (filled up, or remounted read-only), an immutable
folder, and a child process with a file size limit.

Public names: small_fs, fill, remount_readonly, immutable, run_limited, output_lines.

A tmpfs mount needs root (CI and the dev box run tests as root); where mounting is refused the
test is skipped, and the portable variants (RLIMIT_FSIZE in a child, `chattr +i`) hold the same
rules without a mount.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def small_fs(path: Path, size: str = "1M") -> Iterator[Path]:
    """Mount a tmpfs of `size` at `path` (created) for the block; skip the test if not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path, leave: int = 0) -> Path:
    """Fill the file system of `folder` with one file until no byte is left (then free `leave`
    bytes of it); return the filler's path."""
    filler = folder / "filler"
    block = b"\0" * 65536
    with filler.open("wb") as f:
        try:
            while True:
                f.write(block)
                f.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    if leave:
        os.truncate(filler, max(filler.stat().st_size - leave, 0))
    return filler


def remount_readonly(path: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)


@contextmanager
def immutable(path: Path) -> Iterator[None]:
    """`chattr +i path` for the block (blocks even root); skip if the file system refuses."""
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"chattr +i is not supported here: {done.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=False)


def run_limited(
    args: list[str], *, file_size_limit: int, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m syncd <args>` with RLIMIT_FSIZE set: a write past the limit fails with
    EFBIG (SIGXFSZ ignored), as a full disk fails it with ENOSPC."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.run(
        [sys.executable, "-m", "syncd", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit,
        check=False,
    )


def output_lines(stderr: str) -> list[str]:
    """The lines of stderr that are not structured log events (JSON objects)."""
    out = []
    for line in stderr.splitlines():
        if not line.strip():
            continue
        try:
            if isinstance(json.loads(line), dict):
                continue
        except ValueError:
            pass
        out.append(line)
    return out
