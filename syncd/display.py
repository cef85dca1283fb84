"""Text from elsewhere made safe to show: on a terminal, and in a spreadsheet.

Public names: printable, printable_tree, csv_cell, json_escaped, some_paths, SHOWN_PATHS.

Tag and project names, error messages and file names come from the service or the disk, and can
hold anything. On a terminal, control characters (C0, DEL, C1), ANSI escape sequences, a carriage
return and the bidirectional overrides would be obeyed, not shown: they can clear the screen, set
the window title, rewrite a line or reverse it. `printable` escapes each one (`\\x1b`, `\\u202e`)
so it is seen and not obeyed. `--json` output needs none of this (json.dumps escapes them).
A JSON log line keeps letters of every script as they are (readable in `journalctl`), so
`json_escaped` escapes, JSON's way (`\\u202e`), the few of those characters json.dumps leaves raw
when it does not escape all of non-ASCII.

A CSV cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is a formula to a
spreadsheet (OWASP "CSV injection"); `csv_cell` prefixes it with `'`, except a plain number.

A message that names paths names at most SHOWN_PATHS of them, then counts the rest
(`some_paths`): one line stays one line when a tag merge or a failure is about 110 files.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

SHOWN_PATHS = 5  # paths one line of a message names; the rest are counted (`--json` lists all)

# C0 and DEL and C1 controls; the Arabic letter mark, LRM and RLM; the line and paragraph
# separators; the bidi embeddings and overrides (U+202A-U+202E) and isolates (U+2066-U+2069).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """Return `text` with every character a terminal would obey escaped."""
    return _UNSAFE.sub(_escape, text)


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def json_escaped(line: str) -> str:
    """Return a JSON text (json.dumps(..., ensure_ascii=False)) with every character a terminal
    would obey written as a JSON escape: the same JSON, only safe to show. Outside strings JSON
    has none of them, so only strings change."""
    return _UNSAFE.sub(_json_escape, line)


def printable_tree(value: Any) -> Any:
    """Return a JSON-like value (dicts, lists, strings...) with every string made printable."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {key: printable_tree(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [printable_tree(item) for item in value]
    return value


def csv_cell(text: str) -> str:
    """Return a CSV cell a spreadsheet shows as text: printable, and not a formula."""
    if text.startswith(_FORMULA_START) and not _NUMBER.fullmatch(text):
        text = "'" + text
    return printable(text)


def some_paths(items: Sequence[str], separator: str = ", ", shown: int = SHOWN_PATHS) -> str:
    """The first `shown` items (paths, or `path: reason`s) joined, then `and N more`."""
    head = separator.join(items[:shown])
    rest = len(items) - shown
    return f"{head}{separator}and {rest} more" if rest > 0 else head
