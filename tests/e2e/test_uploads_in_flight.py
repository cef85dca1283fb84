"""Slow answers do not slow the uploads below the quota: enough calls are in flight at once.

At the quota's 10 calls a second, calls that take about a second to answer need 10 in flight
(Little's law), and a first sync's uploads start in a burst once the tags exist. With the
default `service.max_concurrency`, a first sync of 10 upload calls must have all 10 out before
the first is answered (8 in flight held the rest back for an answer: bench A2's start).

A scripted server (tests/support/hostile.py, in front of a real emulator) holds each upload
until 10 are held at once. The hold has a generous bound that only turns a hang into a failure;
the test asserts how many were out together, not a speed.
"""

from __future__ import annotations

import re
import threading

import yaml

from tests.e2e.support import Sandbox, age, write_tree
from tests.support.hostile import HostileServer, Reply, Request

HOLD_S = 20.0
CALLS = 10  # the quota's second: 10 calls at 10 a second
IMAGES = CALLS * 64  # 64 images a call (the API's batch limit): 10 upload calls
_UPLOAD = re.compile(r"/projects/[^/]+/images(/files)?$")


class _HoldUploads:
    """A script: hold each upload until `together` uploads are held at once (or HOLD_S)."""

    def __init__(self, together: int) -> None:
        self.together = together
        self.held = 0
        self.most_held = 0
        self._cond = threading.Condition()

    def __call__(self, request: Request) -> Reply | None:
        if request.method != "POST" or not _UPLOAD.search(request.path):
            return None
        with self._cond:
            self.held += 1
            self.most_held = max(self.most_held, self.held)
            self._cond.notify_all()
            self._cond.wait_for(lambda: self.most_held >= self.together, timeout=HOLD_S)
            self.held -= 1
        return None  # then forwarded to the emulator


def test_a_first_sync_has_a_seconds_worth_of_uploads_in_flight(sandbox: Sandbox) -> None:
    write_tree(sandbox.root, {f"F{i % 2}/x{i}.png": 10_000 + i for i in range(IMAGES)})
    age(sandbox.root)
    config = yaml.safe_load(sandbox.config_path.read_text(encoding="utf-8"))
    config["service"].pop("max_concurrency", None)  # the default is what is under test
    hold = _HoldUploads(together=CALLS)
    with HostileServer(hold, upstream=sandbox.endpoint) as server:
        config["service"]["endpoint"] = server.url
        sandbox.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        run = sandbox.reconcile()

    assert run.exit_code == 0, str(run)
    assert run.mirror["done"]["uploads"] == IMAGES
    assert len(server.requests_to("/images")) >= CALLS
    assert hold.most_held >= CALLS, f"only {hold.most_held} uploads were out at once"
