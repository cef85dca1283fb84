"""A reconcile asks the project, its tags and its image count at once, not one after another;
a first sync (a ledger that cannot be trusted) asks the listing's first page in place of the count.

A scripted server (tests/support/hostile.py, in front of a real emulator) holds each of those
reads until all the run's reads of that kind have arrived: sent one after another, the first would
wait for a second that is never sent. The hold has a generous bound that only turns a hang into a
failure; the test asserts what arrived while the first was held, not a speed.
"""

from __future__ import annotations

import re
import threading

import yaml

from tests.e2e.support import STANDARD_TREE, Sandbox, age, write_tree
from tests.support.hostile import HostileServer, Reply, Request

HOLD_S = 20.0
_PROJECT = re.compile(r"/projects/[^/]+$")
_TAGS = re.compile(r"/projects/[^/]+/tags$")
_COUNT = re.compile(r"/projects/[^/]+/images/count$")
_LISTING = re.compile(r"/projects/[^/]+/images$")


class _HoldReads:
    """A script: hold the GETs of the project, tags, count and listing until `expected` have
    arrived."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.arrived: list[str] = []
        self.seen_while_held: list[int] = []  # how many had arrived when each was let through
        self._cond = threading.Condition()

    def __call__(self, request: Request) -> Reply | None:
        path = request.path
        if request.method != "GET" or not any(
            p.search(path) for p in (_PROJECT, _TAGS, _COUNT, _LISTING)
        ):
            return None
        with self._cond:
            self.arrived.append(path)
            self._cond.notify_all()
            self._cond.wait_for(lambda: len(self.arrived) >= self.expected, timeout=HOLD_S)
            self.seen_while_held.append(len(self.arrived))
        return None  # then forwarded to the emulator


def _point_at(sandbox: Sandbox, url: str) -> None:
    config = yaml.safe_load(sandbox.config_path.read_text(encoding="utf-8"))
    config["service"]["endpoint"] = url
    sandbox.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")


def test_the_three_count_reads_are_in_flight_together(sandbox: Sandbox) -> None:
    write_tree(sandbox.root, STANDARD_TREE)
    age(sandbox.root)
    assert sandbox.reconcile().exit_code == 0  # the ledger now has a summary: the count is asked

    hold = _HoldReads(expected=3)
    with HostileServer(hold, upstream=sandbox.endpoint) as server:
        _point_at(sandbox, server.url)
        run = sandbox.reconcile()

    assert run.exit_code == 0, str(run)
    assert run.mirror["local"]["unchanged"] is True
    assert len(hold.arrived) == 3
    # Each read was answered only once all three were in: none waited for another's answer.
    assert hold.seen_while_held == [3, 3, 3]


def test_a_first_sync_asks_the_listing_with_the_project_and_its_tags(sandbox: Sandbox) -> None:
    write_tree(sandbox.root, STANDARD_TREE)
    hold = _HoldReads(expected=3)
    with HostileServer(hold, upstream=sandbox.endpoint) as server:
        _point_at(sandbox, server.url)
        run = sandbox.reconcile()

    assert run.exit_code == 0, str(run)
    assert run.mirror["remote"]["listing"] == "full"
    assert sorted(_LISTING.search(p) is not None for p in hold.arrived) == [False, False, True]
    assert hold.seen_while_held == [3, 3, 3]
