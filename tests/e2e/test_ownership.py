"""Ownership is proven by the ledger, not by a name: two installs that share a mirror name and a
project never delete each other's images, and a lost ledger never deletes what it cannot prove
it uploaded."""

from __future__ import annotations

import pytest

from tests.e2e.support import Sandbox, sha256, write_tree

# Two installs, both mirror "t" with delete: mirror, into one project; distinct bytes.
TREE_A = {"Dog/a0.jpg": 500, "Dog/a1.jpg": 501, "Cat/a2.jpg": 502}
TREE_B = {"Dog/b0.jpg": 600, "Dog/b1.jpg": 601, "Cat/b2.jpg": 602}


@pytest.fixture
def other(sandbox: Sandbox, capsys: pytest.CaptureFixture[str]) -> Sandbox:
    """A second install: its own root, state dir and ledger; same mirror name, same project."""
    box = Sandbox(sandbox.tmp / "b", sandbox.endpoint, sandbox.project_id, sandbox.http, capsys)
    box.root.mkdir(parents=True)
    box.write_config()
    return box


def _shas(box: Sandbox, tree: dict[str, int]) -> set[str]:
    return {sha256((box.root / rel).read_bytes()) for rel in tree}


def test_two_installs_sharing_a_mirror_name_never_delete_each_others_images(
    sandbox: Sandbox, other: Sandbox
) -> None:
    a, b = sandbox, other
    write_tree(a.root, TREE_A)
    write_tree(b.root, TREE_B)
    assert a.reconcile().exit_code == 0
    first_b = b.reconcile()
    assert first_b.exit_code == 0, str(first_b)
    assert first_b.mirror["done"]["delete_images"] == 0  # A's three images are not B's
    a_shas, b_shas = _shas(a, TREE_A), _shas(b, TREE_B)
    assert set(a.content()) == a_shas | b_shas

    gone_a = a.root / "Dog/a0.jpg"
    gone_b = b.root / "Cat/b2.jpg"
    gone_shas = _shas(a, {"Dog/a0.jpg": 0}) | _shas(b, {"Cat/b2.jpg": 0})
    gone_a.unlink()
    run_a = a.reconcile("--full")
    gone_b.unlink()
    run_b = b.reconcile("--full")

    assert run_a.exit_code == 0 and run_b.exit_code == 0, f"{run_a}\n{run_b}"
    assert run_a.mirror["done"]["delete_images"] == 1  # its own, and only that
    assert run_b.mirror["done"]["delete_images"] == 1
    assert set(a.content()) == (a_shas | b_shas) - gone_shas


def test_a_rebuilt_ledger_deletes_nothing_it_did_not_record(sandbox: Sandbox) -> None:
    write_tree(sandbox.root, TREE_A)
    assert sandbox.reconcile().exit_code == 0
    before = sandbox.content()
    sandbox.ledger.unlink()  # lost: the next run builds a new ledger, with a new id
    (sandbox.root / "Dog/a0.jpg").unlink()

    run = sandbox.reconcile()

    assert run.exit_code == 0, str(run)
    assert run.mirror["done"]["delete_images"] == 0
    assert run.mirror["planned"]["adopts"] == 2  # the files still here are this ledger's again
    assert run.mirror["planned"]["kept"] == 1  # the one whose file is gone: foreign to it
    assert any("kept" in w and "foreign" in w for w in run.mirror["warnings"]), run.mirror
    assert sandbox.content() == before
    # and so it stays: later runs do not take it for this ledger's either
    again = sandbox.reconcile("--full")
    assert again.mirror["done"]["delete_images"] == 0
    assert sandbox.content() == before
