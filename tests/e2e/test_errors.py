"""Errors a user can make: a wrong key, a bad config, a project or service that is not there."""

from __future__ import annotations

import uuid

import pytest

from tests.e2e.support import STANDARD_TREE, Sandbox, write_tree
from tests.support import TEST_KEY

WRONG_KEY = "wrong-KEY-5f3a9c0e7d1b"


def _error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_wrong_key_exits_3_with_one_line_and_never_shows_the_key(sandbox: Sandbox) -> None:
    write_tree(sandbox.root, STANDARD_TREE)

    run = sandbox.subprocess_cli(
        "reconcile", "--config", str(sandbox.config_path), env={"SYNCD_TRAINING_KEY": WRONG_KEY}
    )

    assert run.exit_code == 3, str(run)
    lines = _error_lines(run.stderr)
    assert len(lines) == 1, str(run)
    assert lines[0].startswith("syncd: error: ")
    assert "Traceback" not in run.stdout + run.stderr
    assert WRONG_KEY not in run.stdout + run.stderr
    assert sandbox.images() == []


def test_wrong_key_with_json_prints_the_error_document(sandbox: Sandbox) -> None:
    sandbox.capsys.readouterr()
    sandbox_env = {"SYNCD_TRAINING_KEY": WRONG_KEY}

    run = sandbox.subprocess_cli(
        "reconcile", "--config", str(sandbox.config_path), "--json", env=sandbox_env
    )

    assert run.exit_code == 3, str(run)
    assert run.document is not None and run.document["exit_code"] == 3
    assert run.document["error"]
    assert WRONG_KEY not in run.stdout + run.stderr


def test_right_key_never_appears_in_the_output(sandbox: Sandbox) -> None:
    write_tree(sandbox.root, STANDARD_TREE)
    (sandbox.root / "Dog/notes.jpg").write_text("not an image", encoding="utf-8")

    run = sandbox.subprocess_cli("reconcile", "--config", str(sandbox.config_path))

    assert run.exit_code == 1, str(run)
    assert TEST_KEY not in run.stdout + run.stderr


def test_unknown_config_key_exits_2_naming_the_key(sandbox: Sandbox) -> None:
    text = sandbox.config_path.read_text(encoding="utf-8")
    sandbox.config_path.write_text(text + "colour_scheme: dark\n", encoding="utf-8")

    run = sandbox.cli("reconcile", "--config", str(sandbox.config_path))

    assert run.exit_code == 2, str(run)
    lines = _error_lines(run.stderr)
    assert len(lines) == 1, str(run)
    assert "colour_scheme" in lines[0]
    assert "Traceback" not in run.stdout + run.stderr


def test_unknown_mirror_key_exits_2_naming_the_key(sandbox: Sandbox) -> None:
    sandbox.write_config(delete_policy="mirror")

    run = sandbox.cli("reconcile", "--config", str(sandbox.config_path), "--json")

    assert run.exit_code == 2, str(run)
    assert "delete_policy" in run.stderr
    assert run.document is not None and run.document["exit_code"] == 2
    assert "delete_policy" in run.document["error"]


def test_missing_config_file_exits_2(sandbox: Sandbox) -> None:
    missing = sandbox.tmp / "nowhere.yaml"

    run = sandbox.cli("reconcile", "--config", str(missing))

    assert run.exit_code == 2, str(run)
    assert "nowhere.yaml" in run.stderr
    assert "Traceback" not in run.stdout + run.stderr


def test_project_that_does_not_exist_exits_3(sandbox: Sandbox) -> None:
    write_tree(sandbox.root, STANDARD_TREE)
    sandbox.project_id = str(uuid.uuid4())
    sandbox.write_config()

    run = sandbox.cli("reconcile", "--config", str(sandbox.config_path))

    assert run.exit_code == 3, str(run)
    assert _error_lines(run.stderr)[-1] == _missing(sandbox, sandbox.project_id), str(run)


def test_unreachable_service_exits_3(sandbox: Sandbox) -> None:
    write_tree(sandbox.root, STANDARD_TREE)
    sandbox.endpoint = "http://127.0.0.1:9"  # discard port: nothing listens
    sandbox.write_config()

    run = sandbox.cli("reconcile", "--config", str(sandbox.config_path))

    assert run.exit_code == 3, str(run)
    assert "Traceback" not in run.stdout + run.stderr


def _missing(box: Sandbox, project_id: str) -> str:
    """The one error line for a project the endpoint does not have."""
    return (
        f"syncd: error: project {project_id} not found at {box.endpoint}"
        " (mirror 't': check its project_id)"
    )


def _mistype_project(box: Sandbox) -> str:
    """Point the config at a project id the endpoint does not have; the ledger stays the old
    project's."""
    box.project_id = str(uuid.uuid4())
    box.write_config()
    return box.project_id


def test_a_mistyped_project_id_is_blamed_on_the_project_not_the_ledger(synced: Sandbox) -> None:
    missing = _mistype_project(synced)

    run = synced.cli("reconcile", "--config", str(synced.config_path))

    assert run.exit_code == 3, str(run)
    lines = _error_lines(run.stderr)
    assert lines == [_missing(synced, missing)], str(run)


@pytest.mark.parametrize("command", ["pull", "review", "status"])
def test_other_commands_blame_a_mistyped_project_id_on_the_project(
    synced: Sandbox, command: str
) -> None:
    missing = _mistype_project(synced)
    args = ["--remote"] if command == "status" else []

    run = synced.cli(command, "--config", str(synced.config_path), *args)

    assert run.exit_code == 3, str(run)
    assert _error_lines(run.stderr)[-1] == _missing(synced, missing), str(run)


def test_a_ledger_of_another_existing_project_is_still_refused_as_the_ledgers(
    synced: Sandbox,
) -> None:
    other = synced.http.post("/projects", params={"name": "other"})
    assert other.status_code == 200, other.text
    synced.project_id = other.json()["id"]
    synced.write_config()

    run = synced.cli("reconcile", "--config", str(synced.config_path))

    assert run.exit_code == 2, str(run)
    assert "belongs to project" in run.stderr and "not found" not in run.stderr, str(run)
