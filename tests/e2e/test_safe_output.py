"""Server text is printed safely: a message, a tag or a project name from the service can hold
terminal escapes, a carriage return or a bidi override; the human output shows them escaped and
never passes them to the terminal. `--json` keeps them, escaped by JSON."""

from __future__ import annotations

import json

import pytest
import structlog

from syncd.emulator.server import EmulatorServer
from syncd.log import configure_logging
from tests.e2e.support import STANDARD_TREE, Sandbox, write_tree
from tests.support.hostile import HostileServer, Reply, Request

# Clear the screen, set the window title, go back to the start of the line, reverse the rest.
HOSTILE = "bad image\x1b[2J\x1b]0;pwned\x07\rall fine\u202e\u2066 \x9b31m"
UNSAFE_CHARS = ("\x1b", "\x07", "\r", "\u202e", "\u2066", "\x9b")


def _unsafe(text: str) -> list[str]:
    return [c for c in UNSAFE_CHARS if c in text]


def test_service_messages_are_escaped_in_the_summary_status_and_errors(
    sandbox: Sandbox, emulator: EmulatorServer
) -> None:
    write_tree(sandbox.root, STANDARD_TREE)

    def refuse_uploads(request: Request) -> Reply | None:
        if request.method == "POST" and request.path.endswith(("/images", "/images/files")):
            return Reply(400, json={"code": "BadRequestImageFormat", "message": HOSTILE})
        return None

    with HostileServer(refuse_uploads, upstream=emulator.url) as bad:
        sandbox.endpoint = bad.api_url
        sandbox.write_config()
        summary = sandbox.cli("reconcile", "--config", str(sandbox.config_path))
        as_json = sandbox.reconcile()

    assert summary.exit_code == 1, str(summary)
    assert "\\x1b[2J" in summary.stdout  # the message is shown, escaped
    assert _unsafe(summary.stdout + summary.stderr) == [], repr(summary.stdout)
    assert any(HOSTILE in f["message"] for f in as_json.mirror["failed"])  # JSON keeps the data

    status = sandbox.status()
    assert "\\x1b[2J" in status.stdout  # the ledger's recent errors
    assert _unsafe(status.stdout + status.stderr) == [], repr(status.stdout)

    def refuse_the_key(request: Request) -> Reply | None:
        return Reply(401, json={"statusCode": 401, "message": HOSTILE})

    with HostileServer(refuse_the_key) as bad:
        sandbox.endpoint = bad.api_url
        sandbox.write_config()
        refused = sandbox.cli("reconcile", "--config", str(sandbox.config_path))
        refused_json = sandbox.cli("reconcile", "--config", str(sandbox.config_path), "--json")

    assert refused.exit_code == 3, str(refused)
    assert "\\x1b[2J" in refused.stderr
    assert _unsafe(refused.stdout + refused.stderr) == [], repr(refused.stderr)
    assert HOSTILE in json.loads(refused_json.stdout)["error"]


def test_log_lines_on_a_terminal_are_escaped_too(capsys: pytest.CaptureFixture[str]) -> None:
    """On a terminal the log is human text (ConsoleRenderer), not JSON: same rule."""
    configure_logging(json=False)
    # The console renderer quotes (repr) some values, not all: this one it passed on raw.
    structlog.get_logger(component="test").warning("upload_failed", error="a\x1b[2Jb\u202ec")
    err = capsys.readouterr().err
    assert "upload_failed" in err and "\\x1b[2J" in err
    assert _unsafe(err) == [], repr(err)
