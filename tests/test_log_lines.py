"""The JSON log line (syncd.log): unicode stays readable, yet nothing in it is obeyed by a
terminal (control characters, bidi overrides, line separators are escaped), and the key is
still scrubbed (issue 15)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import structlog

from syncd.log import configure_logging, redact_secret

KEY = "tk-LOGLINE-0123456789abcdef-SECRET"


@pytest.fixture
def json_log() -> Iterator[structlog.typing.FilteringBoundLogger]:
    saved = structlog.get_config()
    configure_logging(json=True)
    try:
        yield structlog.get_logger(component="test")
    finally:
        structlog.configure(**saved)


def test_letters_of_any_script_are_written_as_they_are(
    json_log: structlog.typing.FilteringBoundLogger, capsys: pytest.CaptureFixture[str]
) -> None:
    json_log.info("uploaded", path="Hund/größe_犬.jpg", tags=["Hund", "Größe"])
    line = capsys.readouterr().err
    assert '"path": "Hund/größe_犬.jpg"' in line and '"Größe"' in line, line
    assert "\\u" not in line, line


@pytest.mark.parametrize(
    "char", ["\x1b", "\x07", "\r", "\n", "\x7f", "\x9b", "\u202e", "\u2066", "\u2028", "\u200f"]
)
def test_what_a_terminal_would_obey_is_escaped_and_the_line_stays_json(
    json_log: structlog.typing.FilteringBoundLogger, capsys: pytest.CaptureFixture[str], char: str
) -> None:
    json_log.warning("item_failed", subject=f"Dog/a{char}b_ä.jpg")
    line = capsys.readouterr().err
    assert line.count("\n") == 1 and line.endswith("\n"), repr(line)
    assert char not in line[:-1], repr(line)
    assert json.loads(line)["subject"] == f"Dog/a{char}b_ä.jpg"
    assert "ä" in line


def test_the_key_is_scrubbed_from_a_unicode_line(
    json_log: structlog.typing.FilteringBoundLogger, capsys: pytest.CaptureFixture[str]
) -> None:
    redact_secret(KEY)
    json_log.warning("echo", message=f"größe {KEY} 犬", escaped=json.dumps(KEY + "é"))
    line = capsys.readouterr().err
    assert KEY[:12] not in line and "***" in line and "größe" in line, line
