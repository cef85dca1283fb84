"""The command as a newcomer runs it: default config location, the summary table, --full,
--mirror, a multiclass project, and the embedded emulator (no service, no key)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml

from syncd.emulator.server import EmulatorServer
from tests.e2e.support import STANDARD_TREE, Sandbox, remote_content, write_tree
from tests.emulator.support import api_client
from tests.support import TEST_KEY
from tests.support.spec_check import SpecChecker


def test_config_comes_from_syncd_config(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    write_tree(sandbox.root, STANDARD_TREE)
    monkeypatch.setenv("SYNCD_CONFIG", str(sandbox.config_path))
    monkeypatch.chdir(sandbox.tmp)

    run = sandbox.cli("reconcile", "--json")

    assert run.exit_code == 0, str(run)
    assert sandbox.content() == sandbox.expected()


def test_human_summary_shows_the_upload_count(sandbox: Sandbox) -> None:
    write_tree(sandbox.root, STANDARD_TREE)

    run = sandbox.cli("reconcile", "--config", str(sandbox.config_path))

    assert run.exit_code == 0, str(run)
    assert str(len(STANDARD_TREE)) in run.stdout
    assert "Traceback" not in run.stdout + run.stderr
    assert sandbox.content() == sandbox.expected()


def test_full_lists_the_project_and_still_sends_nothing(synced: Sandbox) -> None:
    run = synced.reconcile("--full")

    assert run.exit_code == 0, str(run)
    assert run.mirror["remote"]["listing"] == "full"
    assert run.mirror["remote"]["images"] == len(STANDARD_TREE)
    assert run.mirror["done"]["uploads"] == 0


def test_unknown_mirror_name_exits_2(sandbox: Sandbox) -> None:
    run = sandbox.cli("reconcile", "--config", str(sandbox.config_path), "--mirror", "nope")

    assert run.exit_code == 2, str(run)
    assert "nope" in run.stderr


def test_same_bytes_in_two_folders_of_a_multiclass_project_is_a_conflict(
    sandbox: Sandbox,
) -> None:
    domains = sandbox.http.get("/domains").json()
    domain = next(d for d in domains if d["type"] == "Classification")
    r = sandbox.http.post(
        "/projects",
        params={"name": "mc", "domainId": domain["id"], "classificationType": "Multiclass"},
    )
    assert r.status_code == 200, r.text
    sandbox.project_id = r.json()["id"]
    sandbox.write_config()
    write_tree(sandbox.root, STANDARD_TREE)
    twin = (sandbox.root / "Dog/d1.jpg").read_bytes()
    (sandbox.root / "Cat/twin.jpg").write_bytes(twin)

    run = sandbox.reconcile()

    assert run.exit_code == 1, str(run)
    conflicts = run.mirror["conflicts"]
    assert len(conflicts) == 1
    assert set(conflicts[0]["paths"]) == {"Dog/d1.jpg", "Cat/twin.jpg"}
    skip = frozenset({"Dog/d1.jpg", "Cat/twin.jpg"})
    assert sandbox.content() == sandbox.expected(skip=skip)


def test_embedded_endpoint_needs_no_service_and_no_key(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    spec_checker: SpecChecker,
) -> None:
    monkeypatch.delenv("SYNCD_TRAINING_KEY", raising=False)
    project_id = str(uuid.uuid4())
    box = Sandbox(tmp_path, "embedded", project_id, None, capsys)  # type: ignore[arg-type]
    box.root.mkdir()
    write_tree(box.root, STANDARD_TREE)
    box.write_config()
    config = yaml.safe_load(box.config_path.read_text(encoding="utf-8"))
    assert config["service"]["endpoint"] == "embedded"

    run = box.reconcile()

    assert run.exit_code == 0, str(run)
    # The embedded emulator keeps its state under <state_dir>/emulator: serve it and look.
    with (
        EmulatorServer(
            training_key=TEST_KEY,
            data_dir=box.state_dir / "emulator",
            response_observer=spec_checker.observe,
        ) as server,
        api_client(server.url) as http,
    ):
        assert remote_content(http, project_id) == box.expected()


def test_every_summary_names_the_endpoint(sandbox: Sandbox) -> None:
    write_tree(sandbox.root, STANDARD_TREE)
    config = str(sandbox.config_path)

    human = sandbox.cli("reconcile", "--config", config)
    as_json = sandbox.reconcile()
    status = sandbox.status()
    status_json = sandbox.status("--json")

    assert human.exit_code == as_json.exit_code == status.exit_code == 0, str(human)
    assert f"at {sandbox.endpoint}" in human.stdout.splitlines()[0]
    assert as_json.mirror["endpoint"] == sandbox.endpoint
    assert f"at {sandbox.endpoint}" in status.stdout.splitlines()[0]
    assert status_json.mirror["endpoint"] == sandbox.endpoint


def test_a_config_without_an_endpoint_is_refused_not_synced_into_the_emulator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SYNCD_ENDPOINT", raising=False)
    box = Sandbox(tmp_path, "embedded", str(uuid.uuid4()), None, capsys)  # type: ignore[arg-type]
    box.root.mkdir()
    write_tree(box.root, STANDARD_TREE)
    config = {
        "state_dir": str(box.state_dir),
        "mirror": {"root": str(box.root), "project_id": box.project_id},
    }
    box.config_path.write_text(yaml.safe_dump(config), encoding="utf-8")

    run = box.cli("reconcile", "--config", str(box.config_path), "--json")

    assert run.exit_code == 2, str(run)
    assert "service.endpoint: missing (required)" in run.stderr
    assert "endpoint: embedded" in run.stderr
    assert not (box.state_dir / "emulator").exists()  # nothing was synced anywhere
