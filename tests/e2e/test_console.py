"""What `syncd` shows while it waits, read as the person at the terminal reads it (issue 15).

On a terminal (a real pseudo-terminal, tests/support/terminal.py) a live line says what syncd is
waiting for: connecting, a retry after an error or an unreachable service, a throttled wait.
Log lines and warnings never glue onto that line. Elsewhere (a pipe: CI, cron, systemd) the output
stays line-oriented JSON with no escape codes, and the waits are log lines. Output piped into a
reader that leaves early (`| head -1`) ends quietly, with the command's own exit code.
"""

from __future__ import annotations

import itertools
import json
import re
import socket
import sys
from collections.abc import Callable

import yaml

from tests.e2e.support import REPO, STANDARD_TREE, Sandbox, write_tree
from tests.support.hostile import HostileServer, Reply, Request, forward_after
from tests.support.terminal import Screen, run_into_gone_reader, run_on_terminal

_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


def _point_at(sandbox: Sandbox, url: str, **service: object) -> None:
    sandbox.write_config()
    config = yaml.safe_load(sandbox.config_path.read_text(encoding="utf-8"))
    config["service"].update(endpoint=url, **service)
    sandbox.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")


def _syncd_on_terminal(sandbox: Sandbox, *args: str) -> Screen:
    return run_on_terminal(
        [sys.executable, "-m", "syncd", *args, "--config", str(sandbox.config_path)]
        if args and not args[0].startswith("-")
        else [sys.executable, "-m", "syncd", *args],
        cwd=str(REPO),
    )


def _answer(status: int, **headers: str) -> Callable[[Request], Reply]:
    return lambda request: Reply(
        status, headers=headers, json={"code": str(status), "message": "not now"}
    )


_PROJECT_READ = re.compile(r"/projects/[^/]+$")


def _fail_twice(path: re.Pattern[str], status: int) -> Callable[[Request], Reply | None]:
    """A script: answer `status` to the first two GETs whose path matches, forward the rest."""
    failed = itertools.count()
    answer = _answer(status)

    def script(request: Request) -> Reply | None:
        if request.method == "GET" and path.search(request.path) and next(failed) < 2:
            return answer(request)
        return None

    return script


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _drew(screen: Screen, pattern: str) -> bool:
    return any(re.search(pattern, line) for line in screen.drawn)


# --- the live line ------------------------------------------------------------------------------


def test_a_terminal_shows_each_retry_after_a_service_error_then_the_summary(
    sandbox: Sandbox,
) -> None:
    write_tree(sandbox.root, STANDARD_TREE)
    # The project's read fails twice (the reads go out together: the one request is singled out).
    with HostileServer(_fail_twice(_PROJECT_READ, 503), upstream=sandbox.endpoint) as bad:
        _point_at(sandbox, bad.url, max_attempts=4)
        screen = _syncd_on_terminal(sandbox, "reconcile")
    assert screen.exit_code == 0, str(screen)
    assert _drew(screen, rf"^connecting to {re.escape(bad.url)}"), str(screen)
    assert _drew(screen, r"^service error 503: attempt 1 of 4, next in [0-9.]+ s$"), str(screen)
    assert _drew(screen, r"^service error 503: attempt 2 of 4, next in [0-9.]+ s$"), str(screen)
    # The live line is gone at the end; the summary stays.
    assert "result: in sync" in screen.text, str(screen)
    assert "next in" not in screen.text, str(screen)


def test_a_terminal_says_the_service_is_unreachable_attempt_by_attempt(sandbox: Sandbox) -> None:
    _point_at(sandbox, f"http://127.0.0.1:{_closed_port()}", max_attempts=3)
    screen = _syncd_on_terminal(sandbox, "reconcile")
    assert screen.exit_code == 3, str(screen)
    assert _drew(screen, r"^service unreachable: attempt 1 of 3, next in [0-9.]+ s$"), str(screen)
    assert _drew(screen, r"^service unreachable: attempt 2 of 3, next in [0-9.]+ s$"), str(screen)
    assert "syncd: error:" in screen.text, str(screen)


def test_a_terminal_shows_a_throttled_wait_as_the_service_asked_it(sandbox: Sandbox) -> None:
    write_tree(sandbox.root, STANDARD_TREE)
    throttle = _answer(429, **{"Retry-After": "2"})
    with HostileServer(forward_after(1, throttle), upstream=sandbox.endpoint) as bad:
        _point_at(sandbox, bad.url, max_attempts=4)
        screen = _syncd_on_terminal(sandbox, "reconcile")
    assert screen.exit_code == 0, str(screen)
    assert _drew(screen, r"^throttled by the service: attempt 1 of 4, next in 2 s$"), str(screen)


def test_log_lines_never_glue_onto_the_progress_line(sandbox: Sandbox) -> None:
    # -v logs every event on the terminal while the progress line counts the files and uploads.
    write_tree(sandbox.root, STANDARD_TREE)
    sandbox.write_config()
    screen = _syncd_on_terminal(sandbox, "-v", "reconcile", "--config", str(sandbox.config_path))
    assert screen.exit_code == 0, str(screen)
    logged = [row for row in screen.rows if "[info" in row or "[warning" in row]
    assert logged, str(screen)
    glued = [row for row in logged if not _LOG_LINE.match(row)]
    assert not glued, "\n".join(glued)
    assert not [row for row in screen.rows if "uploads/s" in row], str(screen)


# --- not a terminal -----------------------------------------------------------------------------


def test_a_pipe_gets_json_lines_with_each_wait_and_no_escape_codes(sandbox: Sandbox) -> None:
    write_tree(sandbox.root, STANDARD_TREE)
    with HostileServer(_fail_twice(_PROJECT_READ, 503), upstream=sandbox.endpoint) as bad:
        _point_at(sandbox, bad.url, max_attempts=4)
        run = sandbox.subprocess_cli("reconcile", "--config", str(sandbox.config_path))
    assert run.exit_code == 0, str(run)
    assert "\x1b" not in run.stdout + run.stderr, str(run)
    assert "\r" not in run.stdout + run.stderr, str(run)
    events = [json.loads(line) for line in run.stderr.splitlines()]
    retries = [e for e in events if e["event"] == "retry"]
    assert [(e["attempt"], e["of"], e["status"]) for e in retries] == [(1, 4, 503), (2, 4, 503)]
    assert all(e["reason"] == "service error 503" for e in retries), retries
    assert "result: in sync" in run.stdout, str(run)


# --- a reader that leaves early (`| head -1`) ---------------------------------------------------


def _syncd(sandbox: Sandbox, *args: str) -> list[str]:
    return [sys.executable, "-m", "syncd", *args, "--config", str(sandbox.config_path)]


def test_status_and_reconcile_into_a_reader_that_left_end_quietly_with_their_own_code(
    synced: Sandbox,
) -> None:
    for args in (("status",), ("reconcile",), ("reconcile", "--json")):
        code, stderr = run_into_gone_reader(_syncd(synced, *args), cwd=str(REPO))
        assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
        assert code == 0, f"{args}: exit {code}\n{stderr}"
    # Not in sync: the closed pipe does not hide it.
    (synced.root / "Dog" / "broken.jpg").write_bytes(b"not an image")
    code, stderr = run_into_gone_reader(_syncd(synced, "reconcile"), cwd=str(REPO))
    assert "Traceback" not in stderr, stderr
    assert code == 1, stderr


def test_a_reconcile_whose_log_reader_left_still_syncs(sandbox: Sandbox) -> None:
    # `syncd reconcile 2>&1 | head -1`: the log lines have nowhere to go; the sync goes on.
    write_tree(sandbox.root, STANDARD_TREE)
    code, _ = run_into_gone_reader(_syncd(sandbox, "reconcile"), stderr_too=True, cwd=str(REPO))
    assert code == 0
    assert sandbox.content() == sandbox.expected()
