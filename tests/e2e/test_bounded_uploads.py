"""An upload reads at most the bytes the scan hashed (issue 13, "Bounded resources").

A file that grows between the scan and its upload is not sent, is reported with its path, and is
never read whole: a 4 GiB sparse file in place of a hashed 20 KB image is refused after reading at
most one byte more than the scan saw. The seam is the create-tag call, which in a run into a
project that holds images comes after the scan and before the uploads are read: the hostile
server grows the file there, then forwards to the emulator. (A first sync into an empty project
reads a window's files while their tags are created, so it has no such seam; the same read
guards both.)
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from syncd.emulator.server import EmulatorServer
from tests.e2e.support import Sandbox, sha256, write_tree
from tests.support.hostile import HostileServer, Reply, Request
from tests.support.images import write_image

_SPARSE_BYTES = 4 * 1024**3
# Headroom above the test process's current address space while the run reads the tree. Reading
# the sparse file whole would need 4 GiB and fail with MemoryError under it; syncd needs a few MB.
_HEADROOM_BYTES = 1024**3


def _address_space_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmSize in /proc/self/status")


@contextmanager
def _address_space_headroom(extra: int) -> Iterator[None]:
    """Cap this process's address space at its current size plus `extra` (restored after), so
    that a whole read of a huge file fails at once instead of filling the machine's memory."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (_address_space_bytes() + extra, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def test_a_file_grown_huge_after_the_scan_is_skipped_unread_and_sent_next_run(
    sandbox: Sandbox, emulator: EmulatorServer
) -> None:
    write_tree(sandbox.root, {"Cat/c.jpg": 4})
    assert sandbox.reconcile().exit_code == 0  # the project holds an image: no streamed sync
    write_tree(sandbox.root, {"Dog/big.jpg": 1, "Dog/ok.jpg": 2})
    grown = sandbox.root / "Dog/big.jpg"
    assert grown.stat().st_size < 100_000

    def grow_on_create_tag(request: Request) -> Reply | None:
        if request.method == "POST" and request.path.endswith("/tags"):
            os.truncate(grown, _SPARSE_BYTES)  # sparse: no disk blocks, 4 GiB to read()
        return None  # forward to the emulator

    with HostileServer(grow_on_create_tag, upstream=emulator.url) as hostile:
        sandbox.endpoint = hostile.url
        sandbox.write_config()
        with _address_space_headroom(_HEADROOM_BYTES):
            run = sandbox.reconcile()
        assert hostile.requests_to("/tags"), "the seam was not reached"

    assert grown.stat().st_size == _SPARSE_BYTES
    assert run.exit_code == 1, str(run)
    [failure] = run.mirror["failed"]
    assert failure["subject"] == "Dog/big.jpg", str(run)
    assert "changed since it was scanned; will be sent next run" in failure["message"]
    # Only the unchanged image went up.
    assert set(sandbox.content()) == {
        sha256((sandbox.root / rel).read_bytes()) for rel in ("Cat/c.jpg", "Dog/ok.jpg")
    }

    # The file becomes a valid image again: the next run sends its new content.
    write_image(grown, 3)
    sandbox.endpoint = emulator.url
    sandbox.write_config()
    again = sandbox.reconcile()
    assert again.exit_code == 0, str(again)
    assert sandbox.content() == sandbox.expected()
