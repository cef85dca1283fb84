"""The checkout itself: no file is both tracked and ignored (a rule that hides a tracked file
hides its next edits from `git status`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _git(*args: str) -> list[str]:
    result = subprocess.run(
        ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    return [line for line in result.stdout.splitlines() if line]


pytestmark = pytest.mark.skipif(
    shutil.which("git") is None or not (REPO / ".git").exists(), reason="not a git checkout"
)


def test_no_tracked_file_is_ignored() -> None:
    assert _git("ls-files", "--cached", "--ignored", "--exclude-standard") == []


def test_the_readme_sample_is_tracked_and_not_ignored() -> None:
    # The README's first command runs it.
    assert _git("ls-files", "examples/sample.yaml") == ["examples/sample.yaml"]
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", "examples/sample.yaml"], cwd=REPO, timeout=60
    )
    assert ignored.returncode == 1  # 1: not ignored
