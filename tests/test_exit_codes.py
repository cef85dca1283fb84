"""The README's exit-code table and the CLI's one table (syncd.cli.main.EXIT_CODES) agree."""

from __future__ import annotations

import re
from pathlib import Path

from syncd.cli.main import (
    EXIT_CODES,
    EXIT_INTERRUPTED,
    EXIT_NOT_IN_SYNC,
    EXIT_OK,
    exit_code_for,
)
from syncd.errors import (
    KeyRefusedError,
    ProjectMissingError,
    ServiceAnswerError,
    ServiceUnreachableError,
)

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_codes() -> set[int]:
    """The codes in the README's `| exit | meaning |` table."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index("| exit | meaning |")
    codes = set()
    for line in lines[start + 2 :]:
        match = re.match(r"\|\s*(\d+)\s*\|", line)
        if match is None:
            break
        codes.add(int(match.group(1)))
    return codes


def test_the_readme_table_lists_exactly_the_codes_the_cli_returns() -> None:
    cli_codes = set(EXIT_CODES.values()) | {EXIT_OK, EXIT_NOT_IN_SYNC, EXIT_INTERRUPTED}
    assert _readme_codes() == cli_codes == {0, 1, 2, 3, 4, 5, 6, 130}


def test_every_service_error_kind_is_exit_3() -> None:
    for kind in (ServiceUnreachableError, KeyRefusedError, ProjectMissingError, ServiceAnswerError):
        assert exit_code_for(kind("x")) == 3
