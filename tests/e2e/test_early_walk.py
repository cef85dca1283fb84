"""`syncd reconcile` walks each tree in a child process while it starts up (syncd.earlywalk).

These run the command as a user does, in its own process (the in-process CLI of the other tests
has the emulator's threads beside it, and a process with threads does not fork). A small wrapper
records every call of the walk: in which process, and whether the HTTP client was imported yet.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.e2e.support import REPO, STANDARD_TREE, Sandbox, age, write_tree
from tests.support.images import write_image

# Runs `syncd <args>` after wrapping the walk; argv: record file, mode, then syncd's arguments.
_WRAPPED_CLI = """
import json, os, sys
import syncd.scan as scan

record, mode = sys.argv[1], sys.argv[2]
main_pid = os.getpid()
walk_tree = scan.walk_tree

def recorded_walk(mirror, **kwargs):
    in_child = os.getpid() != main_pid
    with open(record, "a") as out:
        out.write(json.dumps({"in_child": in_child, "httpx": "httpx" in sys.modules}) + "\\n")
    if mode == "child-fails" and in_child:
        raise OSError("the child's walk fails")
    return walk_tree(mirror, **kwargs)

scan.walk_tree = recorded_walk
from syncd.cli.main import main
sys.exit(main(sys.argv[3:]))
"""


def _reconcile(sandbox: Sandbox, mode: str = "") -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run `syncd reconcile --json` in its own process; return its mirror's JSON and the walks."""
    record = sandbox.tmp / f"walks-{len(list(sandbox.tmp.glob('walks-*')))}.jsonl"
    args = ["reconcile", "--config", str(sandbox.config_path), "--json"]
    proc = subprocess.run(
        [sys.executable, "-c", _WRAPPED_CLI, str(record), mode, *args],
        cwd=REPO,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    walks = [json.loads(line) for line in record.read_text().splitlines()]
    return json.loads(proc.stdout)["mirrors"][0], walks


@pytest.fixture
def settled(sandbox: Sandbox) -> Sandbox:
    write_tree(sandbox.root, STANDARD_TREE)
    age(sandbox.root)
    assert sandbox.reconcile().exit_code == 0
    return sandbox


def test_the_walk_runs_in_a_child_before_the_client_is_imported(settled: Sandbox) -> None:
    mirror, walks = _reconcile(settled)

    assert mirror["local"]["unchanged"] is True
    assert mirror["local"]["files"] == len(STANDARD_TREE)
    assert mirror["api_calls"] == 3
    assert walks == [{"in_child": True, "httpx": False}]


def test_a_change_is_seen_through_the_early_walk(settled: Sandbox) -> None:
    write_image(settled.root / "Cat/é-new.jpg", 9300)  # a name beyond ASCII crosses the pipe
    (settled.root / "Bird/b0.jpg").unlink()
    age(settled.root)

    mirror, walks = _reconcile(settled)

    assert walks == [{"in_child": True, "httpx": False}]
    assert mirror["local"]["unchanged"] is False
    assert mirror["local"]["files"] == len(STANDARD_TREE)
    assert mirror["done"]["uploads"] == 1
    assert mirror["done"]["delete_images"] == 1
    assert settled.content() == settled.expected()


def test_a_failed_early_walk_is_done_again_in_the_process(settled: Sandbox) -> None:
    write_image(settled.root / "Dog/new.jpg", 9400)
    age(settled.root)

    mirror, walks = _reconcile(settled, mode="child-fails")

    assert walks[0] == {"in_child": True, "httpx": False}
    assert [w["in_child"] for w in walks[1:]] == [False]
    assert mirror["done"]["uploads"] == 1
    assert settled.content() == settled.expected()
