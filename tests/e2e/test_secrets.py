"""The training key never leaves its file: not in output, logs, errors, status or any file written.

A sample of the CLI's flows runs as child processes (so every log line, warning and error is
captured, as a user or journald would see them) with a recognisable key read from a key file:
sync with problems, JSON, dry run, status, status --remote, a key the service refuses, a wrong
project, an endpoint that is not the service. Then every file under the sandbox other than the
key file is searched for the key's bytes, and the ledger's mode is checked (0600).
The daemon's log is searched the same way by the chaos run (tests/chaos).
"""

from __future__ import annotations

import os
import stat
import uuid
from pathlib import Path

import pytest
import yaml

from syncd.emulator.server import EmulatorServer
from tests.e2e.support import STANDARD_TREE, Run, Sandbox, write_tree
from tests.support import TEST_KEY
from tests.support.hostile import HostileServer
from tests.support.images import image_bytes
from tests.support.key_echo import echoing_script, leaks

# The suite's key (tests/support/__init__.py) is already recognisable; these variants catch a
# key that is shown partly (a prefix or a suffix, as "tk-TEST..." or "...SECRET" redaction might).
NEEDLES = (TEST_KEY, TEST_KEY[:12], TEST_KEY[-12:])
NO_KEY_ENV = {"SYNCD_TRAINING_KEY": ""}


def _use_key_file(box: Sandbox, endpoint: str | None = None, project_id: str | None = None) -> Path:
    key_file = box.tmp / "secrets" / "training.key"
    key_file.parent.mkdir(exist_ok=True)
    key_file.write_text(TEST_KEY + "\n", encoding="utf-8")
    key_file.chmod(0o600)
    box.write_config()
    config = yaml.safe_load(box.config_path.read_text(encoding="utf-8"))
    config["service"]["training_key"] = {"file": str(key_file)}
    config["service"]["endpoint"] = endpoint or box.endpoint
    config["mirror"]["project_id"] = project_id or box.project_id
    box.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return key_file


def _assert_no_key(run: Run, what: str) -> None:
    text = run.stdout + run.stderr
    for needle in NEEDLES:
        assert needle not in text, f"{what}: the key ({needle!r}) is in the output:\n{run}"


def _files_holding_the_key(root: Path, key_file: Path) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path == key_file or not path.is_file():
            continue
        data = path.read_bytes()
        if any(n.encode() in data for n in NEEDLES):
            found.append(str(path.relative_to(root)))
    return found


def test_the_key_appears_in_no_output_and_no_file_and_the_ledger_is_private(
    sandbox: Sandbox,
) -> None:
    write_tree(sandbox.root, STANDARD_TREE)
    (sandbox.root / "Dog" / "notes.jpg").write_text("not an image", encoding="utf-8")
    key_file = _use_key_file(sandbox)
    config = str(sandbox.config_path)

    flows = {
        "reconcile -v": ("-v", "reconcile", "--config", config),
        "reconcile --json": ("reconcile", "--config", config, "--json"),
        "reconcile --dry-run": ("reconcile", "--config", config, "--dry-run", "--full"),
        "status": ("status", "--config", config),
        "status --remote --json": ("status", "--config", config, "--remote", "--json"),
    }
    for what, args in flows.items():
        run = sandbox.subprocess_cli(*args, env=NO_KEY_ENV)
        assert run.exit_code in (0, 1), f"{what}:\n{run}"
        _assert_no_key(run, what)

    (sandbox.root / "Cat" / "c0.jpg").write_bytes(image_bytes(7001))  # something to send
    run = sandbox.subprocess_cli("reconcile", "--config", config, env=NO_KEY_ENV)
    _assert_no_key(run, "reconcile after a change")

    assert _files_holding_the_key(sandbox.tmp, key_file) == []
    assert stat.S_IMODE(os.stat(sandbox.ledger).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(sandbox.ledger.parent).st_mode) & 0o077 == 0


def test_error_paths_do_not_show_the_key(sandbox: Sandbox) -> None:
    write_tree(sandbox.root, STANDARD_TREE)
    config = str(sandbox.config_path)

    _use_key_file(sandbox, project_id=str(uuid.uuid4()))
    missing = sandbox.subprocess_cli("reconcile", "--config", config, "--json", env=NO_KEY_ENV)
    assert missing.exit_code == 3, str(missing)
    _assert_no_key(missing, "wrong project")

    # A service that wants another key: the one sent must not be echoed in the refusal.
    with EmulatorServer(training_key="some-other-key-entirely") as other:
        key_file = _use_key_file(sandbox, endpoint=other.url)
        refused = sandbox.subprocess_cli("reconcile", "--config", config, env=NO_KEY_ENV)
    assert refused.exit_code == 3, str(refused)
    _assert_no_key(refused, "key refused")

    _use_key_file(sandbox, endpoint="http://127.0.0.1:9")  # nothing listens
    unreachable = sandbox.subprocess_cli("reconcile", "--config", config, env=NO_KEY_ENV)
    assert unreachable.exit_code == 3, str(unreachable)
    _assert_no_key(unreachable, "unreachable")

    assert _files_holding_the_key(sandbox.tmp, key_file) == []


@pytest.mark.parametrize("where", ["env", "value"])
def test_the_key_from_env_or_config_value_is_not_shown_either(sandbox: Sandbox, where: str) -> None:
    write_tree(sandbox.root, STANDARD_TREE)
    env = {"SYNCD_TRAINING_KEY": TEST_KEY}
    if where == "value":
        sandbox.write_config()
        config = yaml.safe_load(sandbox.config_path.read_text(encoding="utf-8"))
        config["service"]["training_key"] = {"value": TEST_KEY}  # accepted with a warning
        sandbox.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        env = NO_KEY_ENV

    run = sandbox.subprocess_cli("reconcile", "--config", str(sandbox.config_path), env=env)

    assert run.exit_code == 0, str(run)
    _assert_no_key(run, where)
    # Only where the user put it (which also shows the search finds the key when it is there).
    written = _files_holding_the_key(sandbox.tmp, key_file=sandbox.tmp / "no-key-file")
    assert written == ([] if where == "env" else ["syncd.yaml"])


def test_pull_endpoint_flag_refuses_plain_http_to_another_host(sandbox: Sandbox) -> None:
    config = str(sandbox.config_path)
    run = sandbox.cli("pull", "--config", config, "--endpoint", "http://203.0.113.7:5000")
    assert run.exit_code == 2, str(run)
    assert "--endpoint" in run.stderr and "service.allow_insecure_http" in run.stderr


# --- a hostile service that echoes the key it is sent, in every form -------------------------


def _assert_no_form(what: str, text: str | bytes) -> None:
    found = leaks(text, TEST_KEY)
    assert not found, f"{what}: the key is there as {found}"


def _files_holding_any_form(root: Path, key_file: Path) -> dict[str, list[str]]:
    found = {}
    for path in root.rglob("*"):
        if path != key_file and path.is_file():
            forms = leaks(path.read_bytes(), TEST_KEY)
            if forms:
                found[str(path.relative_to(root))] = forms
    return found


def test_a_service_echoing_the_key_leaves_no_form_of_it_anywhere(sandbox: Sandbox) -> None:
    write_tree(sandbox.root, STANDARD_TREE)
    config = str(sandbox.config_path)
    script = echoing_script(sandbox.endpoint, sandbox.project_id)
    with HostileServer(script, upstream=sandbox.endpoint) as bad:
        key_file = _use_key_file(sandbox, endpoint=bad.url)
        runs = {
            "reconcile -v": sandbox.subprocess_cli("-v", "reconcile", "--config", config),
            "reconcile --json": sandbox.subprocess_cli(
                "reconcile", "--config", config, "--json", env=NO_KEY_ENV
            ),
            "status": sandbox.subprocess_cli("status", "--config", config, env=NO_KEY_ENV),
            "status --json": sandbox.subprocess_cli(
                "status", "--config", config, "--json", env=NO_KEY_ENV
            ),
            "status --remote": sandbox.subprocess_cli(
                "status", "--config", config, "--remote", env=NO_KEY_ENV
            ),
        }
        assert len(bad.requests_to("/images")) > 0  # the uploads did meet the hostile answer
    fatal = echoing_script(sandbox.endpoint, sandbox.project_id, fatal=True)
    with HostileServer(fatal, upstream=sandbox.endpoint) as bad:
        _use_key_file(sandbox, endpoint=bad.url)
        runs["reconcile, a non-JSON 500"] = sandbox.subprocess_cli(
            "reconcile", "--config", config, "--json", env=NO_KEY_ENV
        )
        runs["reconcile, a non-JSON 500, human"] = sandbox.subprocess_cli(
            "reconcile", "--config", config, env=NO_KEY_ENV
        )

    for what, run in runs.items():
        _assert_no_form(f"{what} (stdout)", run.stdout)
        _assert_no_form(f"{what} (stderr)", run.stderr)
    assert sandbox.ledger.exists()
    assert _files_holding_any_form(sandbox.tmp, key_file) == {}
    # ...and the hostile answers were met, and reported (scrubbed), not dodged:
    reconciled = runs["reconcile --json"]
    assert reconciled.exit_code == 1, str(reconciled)
    failed = reconciled.mirror["failed"]
    assert failed and {f["operation"] for f in failed} == {"upload"}, failed
    assert all("***" in (f["code"] or "") for f in failed), failed
    assert runs["reconcile, a non-JSON 500"].exit_code == 3
    assert "***" in runs["reconcile, a non-JSON 500"].stderr
    assert "***" in runs["status"].stdout  # the errors are there, scrubbed
