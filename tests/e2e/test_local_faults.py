"""Local faults: a full disk, a read-only file system, a name too long. Each ends the command with
exit 6 and one line naming the path, no traceback, and no `.part` file left behind.

The disks are real: a tiny tmpfs (filled up, or remounted read-only) where mounting is allowed
(root), and where it is not, the portable variants: a child with RLIMIT_FSIZE (EFBIG, as a full
disk fails a write) and `chattr +i` (an immutable folder refuses even root).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.emulator.server import EmulatorServer
from syncd.scan import MARKER_NAME
from tests.e2e.support import STANDARD_TREE, Run, Sandbox, write_tree
from tests.roundtrip.support import label_project
from tests.support.hostile import HostileServer, Reply, Request
from tests.support.localfs import (
    fill,
    immutable,
    output_lines,
    remount_readonly,
    run_limited,
    small_fs,
)

EXIT_LOCAL = 6


def _one_line_naming(run: Run | object, path: Path | str) -> str:
    """Assert the run exited 6 with one error line (besides log events) naming `path`."""
    stdout, stderr = run.stdout, run.stderr  # type: ignore[attr-defined]
    code = getattr(run, "exit_code", getattr(run, "returncode", None))
    assert code == EXIT_LOCAL, f"exit {code}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    assert "Traceback" not in stdout + stderr, stderr
    lines = output_lines(stderr)
    assert len(lines) == 1, stderr
    assert lines[0].startswith("syncd: error: cannot "), lines[0]
    assert str(path) in lines[0], lines[0]
    return lines[0]


def _parts(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith((".part", ".tmp", ".extra"))]


# --- reconcile: the ledger ---------------------------------------------------------------------


@pytest.mark.parametrize("synced_before", [False, True])
def test_ledger_on_a_full_disk(sandbox: Sandbox, synced_before: bool) -> None:
    write_tree(sandbox.root, STANDARD_TREE)
    with small_fs(sandbox.state_dir, "1M"):
        if synced_before:
            assert sandbox.reconcile().exit_code == 0
            write_tree(sandbox.root, {"Dog/new.jpg": 900})
        fill(sandbox.state_dir)

        run = sandbox.subprocess_cli("reconcile", "--config", str(sandbox.config_path))

        line = _one_line_naming(run, sandbox.ledger)
        assert "free some space" in line
    if not synced_before:
        assert sandbox.images() == []  # nothing is sent while the ledger cannot record it


@pytest.mark.parametrize("synced_before", [False, True])
def test_ledger_on_a_read_only_file_system(sandbox: Sandbox, synced_before: bool) -> None:
    write_tree(sandbox.root, STANDARD_TREE)
    with small_fs(sandbox.state_dir, "1M"):
        if synced_before:
            assert sandbox.reconcile().exit_code == 0
            write_tree(sandbox.root, {"Dog/new.jpg": 900})
        remount_readonly(sandbox.state_dir)

        run = sandbox.subprocess_cli("reconcile", "--config", str(sandbox.config_path))

        line = _one_line_naming(run, sandbox.ledger)
        assert "read-only" in line
    assert len(sandbox.images()) == (12 if synced_before else 0)


def test_ledger_over_the_file_size_limit(sandbox: Sandbox) -> None:
    """Portable (no mount): RLIMIT_FSIZE makes the ledger's writes fail as a full disk would."""
    write_tree(sandbox.root, STANDARD_TREE)

    run = run_limited(["reconcile", "--config", str(sandbox.config_path)], file_size_limit=8192)

    _one_line_naming(run, sandbox.ledger)


def test_state_dir_name_too_long(sandbox: Sandbox) -> None:
    write_tree(sandbox.root, STANDARD_TREE)
    ledger = sandbox.tmp / ("s" * 300) / "t.ledger.sqlite"
    sandbox.write_config(ledger=str(ledger))

    run = sandbox.subprocess_cli("reconcile", "--config", str(sandbox.config_path))

    line = _one_line_naming(run, ledger)
    assert "shorter" in line
    assert sandbox.images() == []


# --- reconcile: the root marker ------------------------------------------------------------------


def test_root_marker_on_a_read_only_tree(sandbox: Sandbox) -> None:
    with small_fs(sandbox.root, "1M"):
        write_tree(sandbox.root, STANDARD_TREE)
        remount_readonly(sandbox.root)

        run = sandbox.subprocess_cli("reconcile", "--config", str(sandbox.config_path))

        line = _one_line_naming(run, sandbox.root / MARKER_NAME)
        assert "read-only" in line
    assert sandbox.images() == []  # the marker comes first: nothing was sent without it


def test_root_marker_in_an_immutable_folder(sandbox: Sandbox) -> None:
    """Portable (no mount): an immutable root refuses the marker even to root."""
    write_tree(sandbox.root, STANDARD_TREE)
    with immutable(sandbox.root):
        run = sandbox.subprocess_cli("reconcile", "--config", str(sandbox.config_path))

        _one_line_naming(run, sandbox.root / MARKER_NAME)
        assert _parts(sandbox.root) == []
    assert sandbox.images() == []


# --- pull ----------------------------------------------------------------------------------------

SMALL_PROJECT = {("Dog",): 12, ("Cat",): 12, ("Bird", "Cat"): 4}


def _pull(sandbox: Sandbox, into: Path) -> Run:
    return sandbox.subprocess_cli("pull", "--config", str(sandbox.config_path), "--into", str(into))


@pytest.mark.parametrize("leave", [0, 24 * 1024])
def test_pull_into_a_full_disk(sandbox: Sandbox, leave: int) -> None:
    label_project(sandbox.http, sandbox.project_id, SMALL_PROJECT)
    into = sandbox.tmp / "pulled"
    with small_fs(into, "256K"):
        filler = fill(into, leave=leave)

        run = _pull(sandbox, into)

        line = _one_line_naming(run, into)
        assert "free some space" in line
        assert _parts(into) == []
        assert not (into / ".syncd-pull").exists()
        filler.unlink()


def test_pull_into_a_read_only_file_system(sandbox: Sandbox) -> None:
    label_project(sandbox.http, sandbox.project_id, SMALL_PROJECT)
    into = sandbox.tmp / "pulled"
    with small_fs(into, "1M"):
        remount_readonly(into)

        run = _pull(sandbox, into)

        line = _one_line_naming(run, into)
        assert "read-only" in line


def test_pull_into_an_immutable_folder(sandbox: Sandbox) -> None:
    """Portable (no mount): an immutable target refuses every write, even root's."""
    label_project(sandbox.http, sandbox.project_id, SMALL_PROJECT)
    into = sandbox.tmp / "pulled"
    into.mkdir()
    with immutable(into):
        run = _pull(sandbox, into)

        _one_line_naming(run, into)
        assert _parts(into) == []


def test_pull_of_a_tag_whose_path_is_too_long(sandbox: Sandbox) -> None:
    tag = "T" * 200
    label_project(sandbox.http, sandbox.project_id, {(tag,): 3})
    # Each part within NAME_MAX (255), the whole 3,870 long: the marker and the `.part` files
    # fit under PATH_MAX (4,096), `<into>/<tag>/<id>.png` does not.
    into = sandbox.tmp
    while len(str(into)) < 3870 - 201:
        into = into / ("d" * 200)
    into = into / ("e" * (3870 - len(str(into)) - 1))
    into.mkdir(parents=True)

    run = _pull(sandbox, into)

    line = _one_line_naming(run, into)
    assert "shorter" in line
    assert _parts(into) == []


# --- deeply nested input ---------------------------------------------------------------------

NESTED_JSON = b"[" * 50_000 + b"]" * 50_000  # json.loads recurses once per level


@pytest.mark.parametrize("status", [200, 400])
def test_deeply_nested_json_from_the_server_is_an_unreadable_answer(
    sandbox: Sandbox, emulator: EmulatorServer, status: int
) -> None:
    write_tree(sandbox.root, STANDARD_TREE)

    def script(request: Request) -> Reply | None:
        if request.method == "GET" and request.path.endswith("/tags"):
            headers = {"content-type": "application/json"}
            return Reply(status=status, headers=headers, body=NESTED_JSON)
        return None

    with HostileServer(script, upstream=emulator.url) as bad:
        sandbox.endpoint = bad.api_url
        sandbox.write_config()
        run = sandbox.cli("reconcile", "--config", str(sandbox.config_path))

    assert run.exit_code == 3, str(run)
    assert "Traceback" not in run.stdout + run.stderr
    (line,) = output_lines(run.stderr)
    assert line.startswith("syncd: error: "), line
