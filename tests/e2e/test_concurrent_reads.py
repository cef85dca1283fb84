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

from tests.e2e.support import STANDARD_TREE, Sandbox, age, remote_tags, write_tree
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


_TAG_CREATE = re.compile(r"/projects/[^/]+/tags$")


class _HoldStart(_HoldReads):
    """Also hold each tag create (POST .../tags) until `expected` requests have arrived."""

    def __call__(self, request: Request) -> Reply | None:
        if request.method == "POST" and _TAG_CREATE.search(request.path):
            with self._cond:
                self.arrived.append(f"POST {request.path}?{request.query.get('name')}")
                self._cond.notify_all()
                self._cond.wait_for(lambda: len(self.arrived) >= self.expected, timeout=HOLD_S)
                self.seen_while_held.append(len(self.arrived))
            return None
        return super().__call__(request)


def test_a_first_sync_creates_its_folders_tags_beside_its_reads(sandbox: Sandbox) -> None:
    write_tree(sandbox.root, STANDARD_TREE)
    # 3 reads + Dog, Cat, Bird (the Negative tag is the plan's to create)
    hold = _HoldStart(expected=6)
    with HostileServer(hold, upstream=sandbox.endpoint) as server:
        _point_at(sandbox, server.url)
        run = sandbox.reconcile()

    assert run.exit_code == 0, str(run)
    assert sorted(p.rpartition("?")[2] for p in hold.arrived[:6] if p.startswith("POST")) == [
        "Bird",
        "Cat",
        "Dog",
    ]
    # None waited for another's answer (the plan's Negative tag came after, alone).
    assert hold.seen_while_held[:6] == [6] * 6
    assert run.mirror["done"]["create_tags"] == 1  # the plan made only the Negative tag
    tags = remote_tags(sandbox.http, sandbox.project_id)
    assert sorted(tags) == ["Bird", "Cat", "Dog", "Negative"]
    assert sandbox.content() == sandbox.expected()


def test_a_lost_ledger_meets_the_tags_it_creates_early_already_there(sandbox: Sandbox) -> None:
    """A first sync by a ledger that was lost: the project has the folders' tags, each early
    create is refused as not unique (a call each), the listing's tags stand in, and nothing is
    created twice or uploaded again."""
    write_tree(sandbox.root, STANDARD_TREE)
    assert sandbox.reconcile().exit_code == 0
    before = remote_tags(sandbox.http, sandbox.project_id)
    sandbox.ledger.unlink()

    creates: list[str] = []

    def count_creates(request: Request) -> Reply | None:
        if request.method == "POST" and _TAG_CREATE.search(request.path):
            creates.append(request.query.get("name", ""))
        return None

    with HostileServer(count_creates, upstream=sandbox.endpoint) as server:
        _point_at(sandbox, server.url)
        run = sandbox.reconcile()

    assert run.exit_code == 0, str(run)
    assert sorted(creates) == ["Bird", "Cat", "Dog"]  # the calls the early creates cost
    assert run.mirror["done"]["create_tags"] == 0
    assert run.mirror["done"]["uploads"] == 0
    assert remote_tags(sandbox.http, sandbox.project_id) == before
    assert sandbox.content() == sandbox.expected()
