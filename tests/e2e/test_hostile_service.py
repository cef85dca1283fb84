"""`syncd reconcile` against a hostile service (tests/support/hostile.py in front of a real
emulator): endless Retry-After, trickling answers and endless pages end in a sync or a clear exit 3.

Each run is guarded by `_within`, which only turns a hang into a failure (it asserts no speed).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from syncd.api import limits
from tests.e2e.support import STANDARD_TREE, Run, Sandbox, write_tree
from tests.support.hostile import HostileServer, Reply, Request, forward_after

HANG_S = 90.0
_SANDBOX_ATTEMPTS = 3  # the sandbox config's service.max_attempts


def _within(run: Callable[[], Run], seconds: float = HANG_S) -> Run:
    """Run a CLI call in a thread; fail if it has not finished after `seconds`."""
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append(run())
        except BaseException as exc:  # re-raised below, in the test's thread
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"reconcile still running after {seconds:g} s: it hangs"
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def _point_at(sandbox: Sandbox, url: str, **service: Any) -> None:
    """Send the sandbox's syncd to `url`, with extra `service:` settings."""
    sandbox.write_config()
    config = yaml.safe_load(sandbox.config_path.read_text(encoding="utf-8"))
    config["service"].update(endpoint=url, **service)
    sandbox.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")


def _throttle(value: str) -> Callable[[Request], Reply]:
    return lambda request: Reply(
        429, headers={"Retry-After": value}, json={"code": "429", "message": "slow down"}
    )


def _throttle_the_project_read(value: str) -> Callable[[Request], Reply | None]:
    """Throttle the first _SANDBOX_ATTEMPTS reads of the project; let the rest through."""
    throttle = _throttle(value)
    throttled = 0
    lock = threading.Lock()

    def script(request: Request) -> Reply | None:
        nonlocal throttled
        is_project = request.method == "GET" and request.path.split("/")[-2] == "projects"
        with lock:
            if not is_project or throttled >= _SANDBOX_ATTEMPTS:
                return None
            throttled += 1
        return throttle(request)

    return script


@pytest.mark.parametrize(
    "retry_after", ["1000000000", "inf", "nan", "-5", "Tue, 21 Oct 2031 07:28:00 GMT"]
)
def test_reconcile_syncs_once_a_service_that_said_wait_for_ever_answers_again(
    sandbox: Sandbox, retry_after: str
) -> None:
    write_tree(sandbox.root, STANDARD_TREE)
    # A first sync sends its three reads together (project, tags, the listing's first page), and
    # its tag creates with them: the project's read is throttled for its three attempts.
    throttled = _throttle_the_project_read(retry_after)
    with HostileServer(throttled, upstream=sandbox.endpoint) as bad:
        _point_at(sandbox, bad.url, max_retry_after=0.2)
        first = _within(sandbox.reconcile)
        second = _within(sandbox.reconcile)
    assert first.exit_code == 3, str(first)
    assert "429" in first.stdout + first.stderr, str(first)
    assert second.exit_code == 0, str(second)
    assert sandbox.content() == sandbox.expected()


def _trickle(request: Request) -> Reply:
    return Reply(body=b"[", stream_bytes=10**9, chunk=1, interval=0.2, unbounded=True)


def test_reconcile_retries_a_trickling_answer_and_syncs(sandbox: Sandbox) -> None:
    write_tree(sandbox.root, STANDARD_TREE)
    with HostileServer(forward_after(2, _trickle), upstream=sandbox.endpoint) as bad:
        _point_at(sandbox, bad.url, request_deadline=1)
        run = _within(sandbox.reconcile)
    assert run.exit_code == 0, str(run)
    assert sandbox.content() == sandbox.expected()


def test_reconcile_against_a_service_that_only_trickles_exits_3_naming_the_deadline(
    sandbox: Sandbox,
) -> None:
    write_tree(sandbox.root, STANDARD_TREE)
    with HostileServer(_trickle, upstream=sandbox.endpoint) as bad:
        _point_at(sandbox, bad.url, request_deadline=1)
        run = _within(lambda: sandbox.cli("reconcile", "--config", str(sandbox.config_path)))
    assert run.exit_code == 3, str(run)
    assert "get_project" in run.stderr and "deadline" in run.stderr, str(run)
    assert "Traceback" not in run.stdout + run.stderr


def _image(n: int) -> dict[str, Any]:
    return {"id": str(uuid.UUID(int=n + 1)), "created": "2024-01-01T00:00:00Z"}


SAME_PAGE = [_image(n) for n in range(limits.MAX_TAKE)]


def _endless_listing(request: Request) -> Reply | None:
    if request.method == "GET" and request.path.endswith("/images"):
        return Reply(json=SAME_PAGE)
    return None  # everything else goes to the emulator


def test_reconcile_against_an_endless_listing_exits_3(sandbox: Sandbox) -> None:
    write_tree(sandbox.root, STANDARD_TREE)
    with HostileServer(_endless_listing, upstream=sandbox.endpoint) as bad:
        _point_at(sandbox, bad.url)
        run = _within(lambda: sandbox.cli("reconcile", "--config", str(sandbox.config_path)))
    assert run.exit_code == 3, str(run)
    assert "list_images" in run.stderr and "would not end" in run.stderr, str(run)
    assert "Traceback" not in run.stdout + run.stderr
