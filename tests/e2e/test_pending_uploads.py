"""Uploads left pending by a lost answer are settled by the next full listing, not kept forever.

Found by the chaos run (seed 1): after dropped upload answers and kill -9s the project and the
tree agreed, but the ledger kept the pending rows, and a pending row sends every later run down
the full listing (README: a no-op reconcile should cost three calls).
"""

from __future__ import annotations

import sqlite3

from tests.e2e.support import Sandbox, sha256


def _pending(box: Sandbox) -> list[str]:
    with sqlite3.connect(f"file:{box.ledger}?mode=ro", uri=True) as db:
        rows = [r[0] for r in db.execute("SELECT sha256 FROM pending_uploads")]
    db.close()
    return rows


def _mark_pending(box: Sandbox, *digests: str) -> None:
    """What a crash between sending a batch and recording its answer leaves in the ledger."""
    with sqlite3.connect(box.ledger) as db:
        for digest in digests:
            db.execute(
                "INSERT INTO pending_uploads (sha256, run_id, started_at) VALUES (?, 1, 'then')",
                [digest],
            )
    db.close()


def test_pending_rows_are_settled_by_the_listing_and_the_cheap_path_returns(
    synced: Sandbox,
) -> None:
    landed = sha256((synced.root / "Dog" / "d0.jpg").read_bytes())  # the service has it
    never_landed = "ab" * 32  # the batch never arrived, and the file is gone since
    _mark_pending(synced, landed, never_landed)

    first = synced.reconcile()

    assert first.exit_code == 0, str(first)
    assert first.mirror["remote"]["listing"] == "full"  # the pending rows asked for it
    assert first.mirror["done"]["uploads"] == 0
    assert _pending(synced) == []

    second = synced.reconcile()

    assert second.exit_code == 0, str(second)
    assert second.mirror["remote"]["listing"] == "counts", str(second)
    assert second.mirror["api_calls"] <= 3
