"""syncd.firstsync's bookkeeping of a streamed first sync, without a service (the parts are
planned by the pure planner; tests/e2e/test_first_sync_streams.py runs the whole stream)."""

from __future__ import annotations

import asyncio
import sys
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

from syncd.config import MirrorConfig
from syncd.core.model import (
    ClassificationType,
    LedgerView,
    LocalFile,
    RemoteSnapshot,
    RemoteTag,
)
from syncd.core.policy import DeletePolicy
from syncd.firstsync import _parts, _Tally

PID = "11111111-2222-3333-4444-555555555555"


def _files(n: int) -> list[LocalFile]:
    return [
        LocalFile(f"Dog/{i:06}.jpg", 10, 1, 1, f"{i:064x}", ("Dog",), image_format="jpeg")
        for i in range(n)
    ]


async def _batches(files: list[LocalFile]) -> AsyncIterator[list[LocalFile]]:
    for start in range(0, len(files), 500):
        yield files[start : start + 500]


async def _stream(files: list[LocalFile], tally: _Tally) -> int:
    mirror = MirrorConfig(root=Path("/data"), project_id=PID, delete=DeletePolicy.MIRROR)
    remote = RemoteSnapshot(PID, ClassificationType.MULTILABEL, (RemoteTag("t-dog", "Dog"),))
    uploads = 0
    async for part in _parts(
        _batches(files),
        mirror,
        "/data",
        remote,
        LedgerView(ledger_id="0123456789abcdef0123456789abcdef"),
        refused={},
        held_sizes=set(),
        window=(64, 1 << 30),
        tally=tally,
    ):
        uploads += len(part.uploads)
    return uploads


def test_the_contents_streamed_are_one_set_to_the_end() -> None:
    """A first sync's stream ends at its peak (bench E): what it keeps of 100k contents for the
    whole tree's plan is one set of them (4 MB at 100k), not one of what the parts
    held, another of what they sent and a third of what was done."""
    n = 20_000
    files = _files(n)
    tally = _Tally()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        uploads = asyncio.run(_stream(files, tally))
        done = tally.done(frozenset({files[0].sha256 or ""}))  # one did not land
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert uploads == n and tally.planned["uploads"] == n
    assert len(done) == n - 1 and files[1].sha256 in done and files[0].sha256 not in done
    one_set = sys.getsizeof(done)
    print(f"kept {after - before} B, one set of the contents {one_set} B")
    assert after - before < 1.5 * one_set


def test_a_copy_found_later_and_a_content_its_part_did_not_send_are_not_done() -> None:
    files = _files(3)
    copy = LocalFile("Cat/copy.jpg", 10, 1, 2, files[1].sha256, ("Cat",), image_format="jpeg")
    tally = _Tally()
    asyncio.run(_stream([*files, copy], tally))
    tally.unsent.add(files[2].sha256 or "")  # as if its part's plan had refused it
    assert tally.again == {files[1].sha256}
    assert set(tally.done(frozenset())) == {files[0].sha256}
