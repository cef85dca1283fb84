"""A first sync creates its tags while the project is read, and a run that then stops before its
plan leaves the project as it found it.

A scripted server (tests/support/hostile.py, in front of a real emulator) holds the read of the
project until a tag create has arrived: a run that creates its tags only after the reads would
never send one while the read is held. The hold has a generous bound that only turns a hang into
a failure; the tests assert what arrived while the read was held, not a speed.
"""

from __future__ import annotations

import re
import threading

import httpx
import yaml

from syncd.scan import MARKER_NAME
from tests.e2e.support import STANDARD_TREE, Run, Sandbox, remote_tags, write_tree
from tests.support.detection import detection_project
from tests.support.hostile import HostileServer, Reply, Request

HOLD_S = 20.0
_PROJECT = re.compile(r"/projects/[^/]+$")
_TAGS = re.compile(r"/projects/[^/]+/tags$")


class _HoldProjectUntilTagCreate:
    """A script: hold the GET of the project until a tag create has arrived (or HOLD_S)."""

    def __init__(self) -> None:
        self.created_while_held: list[bool] = []
        self._tag_create = threading.Event()

    def __call__(self, request: Request) -> Reply | None:
        if request.method == "POST" and _TAGS.search(request.path):
            self._tag_create.set()
        elif request.method == "GET" and _PROJECT.search(request.path):
            self.created_while_held.append(self._tag_create.wait(timeout=HOLD_S))
        return None  # forwarded to the emulator


def _point_at(sandbox: Sandbox, url: str) -> None:
    config = yaml.safe_load(sandbox.config_path.read_text(encoding="utf-8"))
    config["service"]["endpoint"] = url
    sandbox.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")


def _reconcile_held(
    sandbox: Sandbox, json: bool = True
) -> tuple[_HoldProjectUntilTagCreate, HostileServer, Run]:
    """Reconcile through a server that holds the project's read until a tag create arrives."""
    hold = _HoldProjectUntilTagCreate()
    with HostileServer(hold, upstream=sandbox.endpoint) as server:
        _point_at(sandbox, server.url)
        config = str(sandbox.config_path)
        run = sandbox.reconcile() if json else sandbox.cli("reconcile", "--config", config)
    return hold, server, run


def test_a_first_sync_creates_its_tags_while_the_project_is_read(sandbox: Sandbox) -> None:
    write_tree(sandbox.root, STANDARD_TREE)
    hold, server, run = _reconcile_held(sandbox)

    assert run.exit_code == 0, str(run)
    assert hold.created_while_held == [True]
    assert sandbox.content() == sandbox.expected()
    # Each tag once, and said as created (four: Dog, Cat, Bird and the Negative tag).
    assert [r.method for r in server.requests_to("/tags")].count("POST") == 4
    assert run.mirror["done"]["create_tags"] == 4
    sandbox.write_config()  # the emulator itself again
    assert sandbox.reconcile().mirror["planned"]["create_tags"] == 0


def test_a_project_of_the_wrong_kind_keeps_no_tag_created_ahead(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    write_tree(sandbox.root, STANDARD_TREE)
    sandbox.project_id = detection_project(http)
    sandbox.write_config()
    hold, _, run = _reconcile_held(sandbox, json=False)

    assert run.exit_code == 2, str(run)
    assert "its domain type is ObjectDetection" in run.stderr
    assert hold.created_while_held == [True]  # tags were created before the project was read
    assert remote_tags(http, sandbox.project_id) == {}  # and deleted when the run refused it


def test_tags_that_exist_are_found_in_the_listing(sandbox: Sandbox) -> None:
    # The project has the tree's tags and images (synced from another copy of the tree: this
    # root carries no marker), the ledger knows none: each create ahead is refused as existing.
    write_tree(sandbox.root, STANDARD_TREE)
    assert sandbox.reconcile().exit_code == 0
    sandbox.ledger.unlink()
    (sandbox.root / MARKER_NAME).unlink()

    hold, _, run = _reconcile_held(sandbox)

    assert run.exit_code == 0, str(run)
    assert hold.created_while_held == [True]
    assert sorted(remote_tags(sandbox.http, sandbox.project_id)) == [
        "Bird",
        "Cat",
        "Dog",
        "Negative",
    ]
    assert sandbox.content() == sandbox.expected()


def test_a_lost_ledgers_rebuild_creates_no_tag(sandbox: Sandbox) -> None:
    # The root's marker says the tree was synced into this project: its tags are there, and a
    # create ahead would only be refused.
    write_tree(sandbox.root, STANDARD_TREE)
    assert sandbox.reconcile().exit_code == 0
    sandbox.ledger.unlink()

    with HostileServer(lambda request: None, upstream=sandbox.endpoint) as server:
        _point_at(sandbox, server.url)
        run = sandbox.reconcile()

    assert run.exit_code == 0, str(run)
    assert [r.method for r in server.requests_to("/tags")] == ["GET"]
    assert sandbox.content() == sandbox.expected()
