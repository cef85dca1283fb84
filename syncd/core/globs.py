"""The include/exclude patterns of `files:`: posix globs over paths relative to the root.

Public names: compile_glob, glob_problem.

`*` and `?` stay within one folder, `**` spans folders, `[...]` is a character class (`[!...]`
negates it). The config checks every pattern with `glob_problem` when it is loaded; the scanner
matches with `compile_glob`.
"""

from __future__ import annotations

import re


def compile_glob(pattern: str) -> re.Pattern[str]:
    """Return a regex for a posix glob: `*` and `?` stay in one folder, `**` spans folders."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                raise ValueError("an unclosed '['")
            body = pattern[i + 1 : end]
            negate = body.startswith("!")
            body = re.escape(body[1:] if negate else body).replace("\\-", "-")
            out.append(f"[{'^' if negate else ''}{body}]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def glob_problem(pattern: str) -> str | None:
    """Return why `pattern` is not a usable glob, or None."""
    if not pattern:
        return "an empty pattern"
    if pattern.startswith("/"):
        return "patterns are relative to the root (no leading '/')"
    try:
        compile_glob(pattern)
    except (ValueError, re.error) as exc:
        return str(exc)
    return None
