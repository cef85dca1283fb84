"""Logging setup: structlog, one event per line; JSON when stderr is not a terminal.

Public names: configure_logging, redact_secret.

Every component takes its own lazy logger (`structlog.get_logger(component=...)`: lazy, so
it follows this configuration even when made at import time). As a last line
of defence, a processor scrubs every registered secret out of an event's values in every form
`syncd.redact.scrub` knows (raw, escaped, percent-encoded, base64, a cut piece), so a key that
slipped into an error text still never reaches the log.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO, cast

from syncd.display import json_escaped, printable_tree
from syncd.optional import without_optional
from syncd.redact import register_secret, registered_secrets, scrub

# structlog imports rich (and better_exceptions) when installed, for pretty tracebacks: syncd's
# format_exc_info renders every exception as plain text first (syncd.optional).
with without_optional("rich", "better_exceptions"):
    import structlog


def redact_secret(secret: str) -> None:
    """Register a secret (the training key) that must never be logged."""
    register_secret(secret)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list | tuple):
        return type(value)(_scrub(v) for v in value)
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    return value


def _scrub_processor(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    if not registered_secrets():
        return event_dict
    return {key: _scrub(value) for key, value in event_dict.items()}


def _printable_processor(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """On a terminal: escape control characters from elsewhere (syncd.display), so a server's
    message is shown, not obeyed. JSON lines escape them already."""
    return {key: printable_tree(value) for key, value in event_dict.items()}


def _json_escaped_line(_logger: Any, _name: str, line: Any) -> Any:
    """After the JSON renderer (unicode kept readable): what a terminal would obey is escaped."""
    return json_escaped(line) if isinstance(line, str) else line


def _scrub_line(_logger: Any, _name: str, line: Any) -> Any:
    """After the renderer: the line as written (reprs of any object included) is scrubbed too."""
    return scrub(line) if isinstance(line, str) and registered_secrets() else line


class _CurrentStderr:
    """Whatever sys.stderr is when a line is written (not when logging was configured), so a
    swapped stream (a test's capture, a daemon's redirect) never leaves a closed file behind."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(*, json: bool | None = None, level: str = "info") -> None:
    """Configure structlog for the process; JSON lines unless stderr is a terminal."""
    if json is None:
        json = not sys.stderr.isatty()
    # JSON lines keep file names readable (no \\u escapes for letters): ensure_ascii=False, and
    # _json_escaped_line escapes the controls and bidi marks json.dumps then leaves raw.
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _scrub_processor,
            *([] if json else [_printable_processor]),
            renderer,
            *([_json_escaped_line] if json else []),
            _scrub_line,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        # PrintLogger only calls write() and flush(), all _CurrentStderr has of TextIO.
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, _CurrentStderr())),
        cache_logger_on_first_use=False,
    )
