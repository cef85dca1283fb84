"""Fixtures for the end-to-end tests: a sandbox wired to a fresh emulator project over HTTP.

`sandbox`: an empty dataset root and a config (delete: mirror) for a new multilabel project.
`synced`: the same with STANDARD_TREE written and one successful reconcile behind it.
The training key comes from SYNCD_TRAINING_KEY, as a user would set it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import structlog

from syncd.emulator.server import EmulatorServer
from tests.e2e.support import STANDARD_TREE, Sandbox, write_tree
from tests.support import TEST_KEY


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Put structlog back as it was: the in-process CLI configures it to print to the stderr it
    sees, which under capsys is a capture stream closed after the test; later tests that log
    elsewhere in the suite would then fail writing to it."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture
def sandbox(
    tmp_path: Path,
    emulator: EmulatorServer,
    http: httpx.Client,
    project_id: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Sandbox:
    monkeypatch.setenv("SYNCD_TRAINING_KEY", TEST_KEY)
    monkeypatch.delenv("SYNCD_CONFIG", raising=False)
    monkeypatch.delenv("SYNCD_ENDPOINT", raising=False)
    monkeypatch.delenv("SYNCD_STATE_DIR", raising=False)
    box = Sandbox(tmp_path, emulator.url, project_id, http, capsys)
    box.root.mkdir()
    box.write_config()
    return box


@pytest.fixture
def synced(sandbox: Sandbox) -> Sandbox:
    write_tree(sandbox.root, STANDARD_TREE)
    first = sandbox.reconcile()
    assert first.exit_code == 0, str(first)
    return sandbox
