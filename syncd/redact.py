"""Scrubbing the training key out of text, in every form a server (or a slip) could give it.

Public names: REDACTED, MIN_SPLIT_CHARS, KEY_LIKE_RUN, register_secret, registered_secrets,
scrub, scrub_json, loads_scrubbed, encoded_forms, looks_like_key, mask_key_like.

Every string that comes from the service (error codes and messages, a non-JSON body, tag and
project names, any JSON string) is passed through `scrub` at the API client's boundary, before it
is cut, logged, stored in the ledger, shown by `status` or turned into a metric label; the log
processor (syncd.log) runs it again as the last line of defence. `scrub` finds the key:

- raw, in any letter case (an upper-cased hex key is still the key);
- with any of its characters escaped as JSON (`\\u0074`), a backslash (`\\x74`, `\\-`), percent
  (`%74`, or `%2574` encoded twice; upper or lower hex) or HTML (`&#116;`) would write it, in any
  mix, behind any number of backslashes (an escape escaped again);
- base64-encoded (standard or URL-safe, at each of the three byte alignments, so also inside a
  longer base64 text such as an echoed `Authorization: Basic` header);
- split by a cut: any beginning or end of the key at least MIN_SPLIT_CHARS characters long, wherever
  it is (a text cut inside the key ends with its beginning; `'tk-TEST-01…' is invalid` holds one
  mid-text). A piece cut out of the middle of the key on both sides is not recognised.

How: the text's escapes are decoded once into a plain, ASCII-lower-cased copy that remembers where
each character came from; the key's pieces are found there with plain substring searches, and the
spans they came from are replaced in the original. Keys are printable ASCII (syncd.credentials
refuses others); a registered secret that is not is matched raw, ignoring case.
Every registered secret (each TrainingKey registers itself) is scrubbed; callers may add more.
"""

from __future__ import annotations

import base64
import bisect
import functools
import json
import re
from collections.abc import Iterable
from typing import Any

REDACTED = "***"
# A cut that leaves fewer characters of the key than this is not recognisable as the key (and
# 8 random characters of a 32-character key leave 24 unknown): shorter pieces are left alone.
MIN_SPLIT_CHARS = 8

_registered: set[str] = set()


def register_secret(secret: str) -> None:
    """Register a secret (the training key) that `scrub` always removes."""
    if secret:
        _registered.add(secret)


def registered_secrets() -> frozenset[str]:
    return frozenset(_registered)


# One escaped character, in every way `scrub` knows: percent (once or twice), backslash + x, u,
# U or the character itself, HTML decimal or hex.
_ESCAPE = re.compile(
    r"%(?:25)?([0-9a-fA-F]{2})"
    r"|\\+(?:x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|(.))"
    r"|&#(?:[xX]([0-9a-fA-F]{1,8})|([0-9]{1,10}));",
    re.DOTALL,
)
_ESCAPE_START = re.compile(r"[%\\&]")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _unescape(match: re.Match[str]) -> str:
    pct, x, u, big_u, char, hex_entity, dec_entity = match.groups()
    if char is not None:
        return char
    try:
        if dec_entity is not None:
            return chr(int(dec_entity))
        return chr(int(pct or x or u or big_u or hex_entity, 16))
    except (ValueError, OverflowError):
        return "\ufffd"


class _Plain:
    """`text` with each escape decoded to one character and ASCII letters lower-cased; maps a
    span of the plain copy back to the span of `text` it came from."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._at: list[int] = []  # plain index of each decoded escape
        self._start: list[int] = []  # where that escape starts in text
        self._end: list[int] = []  # and ends
        if "%" not in text and "\\" not in text and "&" not in text:
            self.lower = text.translate(_ASCII_LOWER)
            return
        pieces: list[str] = []
        done = 0  # text consumed
        size = 0  # plain length so far
        for candidate in _ESCAPE_START.finditer(text):  # far quicker than _ESCAPE.finditer
            if candidate.start() < done:
                continue
            match = _ESCAPE.match(text, candidate.start())
            if match is None:
                continue
            pieces.append(text[done : match.start()])
            size += match.start() - done
            pieces.append(_unescape(match))
            self._at.append(size)
            self._start.append(match.start())
            self._end.append(match.end())
            size += 1
            done = match.end()
        pieces.append(text[done:])
        self.lower = "".join(pieces).translate(_ASCII_LOWER)

    def _source(self, i: int) -> tuple[int, int]:
        """The span of text that plain character i came from."""
        k = bisect.bisect_right(self._at, i) - 1
        if k >= 0 and self._at[k] == i:
            return self._start[k], self._end[k]
        start = i if k < 0 else self._end[k] + (i - self._at[k] - 1)
        return start, start + 1

    def span(self, start: int, end: int) -> tuple[int, int]:
        return self._source(start)[0], self._source(end - 1)[1]


def _pieces(plain: str, key: str) -> list[tuple[int, int]]:
    """Spans of `plain` holding the key, or a beginning or an end of it MIN_SPLIT_CHARS long."""
    n, m = len(key), MIN_SPLIT_CHARS
    spans = []
    head, tail = key[:m], key[-m:]
    at = plain.find(head)
    while at >= 0:
        length = m
        while length < n and at + length < len(plain) and plain[at + length] == key[length]:
            length += 1
        spans.append((at, at + length))
        at = plain.find(head, at + 1)
    at = plain.find(tail)
    while at >= 0:
        end = at + m
        start = at
        while end - start < n and start > 0 and plain[start - 1] == key[n - (end - start) - 1]:
            start -= 1
        spans.append((start, end))
        at = plain.find(tail, at + 1)
    return spans


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


@functools.lru_cache(maxsize=64)
def _base64_cores(secret: str) -> tuple[str, ...]:
    """The base64 characters fixed by the secret alone, at each of the three byte alignments."""
    data = secret.encode("utf-8")
    cores = []
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + data + b"\0\0").decode()
        first = -(-offset * 8 // 6)  # the first character made only of the secret's bits
        last = (offset + len(data)) * 8 // 6  # one past the last such character
        core = encoded[first:last]
        cores += [core, core.translate(str.maketrans("+/", "-_"))]
    return tuple(c for c in dict.fromkeys(cores) if len(c) >= MIN_SPLIT_CHARS)


@functools.lru_cache(maxsize=64)
def _base64_pattern(secret: str) -> re.Pattern[str] | None:
    cores = _base64_cores(secret)
    return re.compile("|".join(re.escape(c) for c in cores)) if cores else None


def _plain_form(secret: str) -> bool:
    """True for a secret found through the plain copy (printable ASCII, long enough)."""
    return secret.isascii() and secret.isprintable() and len(secret) >= MIN_SPLIT_CHARS


def _wanted(secrets: Iterable[str]) -> set[str]:
    return _registered.union(s for s in secrets if s)


def _suspects(text: str, secrets: Iterable[str], plain: _Plain | None = None) -> list[str]:
    """The secrets of which `text` may hold a form: cheap, and never misses one."""
    wanted = _wanted(secrets)
    if not text or not wanted:
        return []
    plain = plain or _Plain(text)
    found = []
    for secret in wanted:
        key = secret.translate(_ASCII_LOWER)
        if not _plain_form(secret):
            hit = key.lower() in text.lower()
        else:
            hit = key[:MIN_SPLIT_CHARS] in plain.lower or key[-MIN_SPLIT_CHARS:] in plain.lower
        if hit or any(core in text for core in _base64_cores(secret)):
            found.append(secret)
    return found


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """Return `text` with every registered secret, and each of `secrets`, replaced by ***."""
    if not text:
        return text
    plain = _Plain(text)
    suspects = _suspects(text, secrets, plain)
    if not suspects:
        return text
    spans: list[tuple[int, int]] = []
    for secret in suspects:
        if _plain_form(secret):
            key = secret.translate(_ASCII_LOWER)
            spans += [plain.span(a, b) for a, b in _pieces(plain.lower, key)]
        else:
            found = re.finditer(re.escape(secret), text, re.IGNORECASE)
            spans += [m.span() for m in found]
    out = []
    done = 0
    for start, end in _merged(spans):
        out.append(text[done:start])
        out.append(REDACTED)
        done = end
    out.append(text[done:])
    text = "".join(out)
    for secret in suspects:
        pattern = _base64_pattern(secret)
        if pattern is not None:
            text = pattern.sub(REDACTED, text)
    return text


def scrub_json(value: Any, secrets: Iterable[str] = ()) -> Any:
    """Return decoded JSON with `scrub` applied to every string in it, object keys included."""
    extra = tuple(secrets)

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            return scrub(item, extra)
        if isinstance(item, list):
            return [walk(v) for v in item]
        if isinstance(item, dict):
            return {walk(k): walk(v) for k, v in item.items()}
        return item

    return walk(value) if extra or _registered else value


def loads_scrubbed(text: str, secrets: Iterable[str] = ()) -> Any:
    """Return the JSON in `text` (json.loads; ValueError if it is not JSON) with every string
    scrubbed; a body that holds no trace of a secret (the usual case) is not walked at all."""
    extra = tuple(secrets)
    value = json.loads(text)
    return scrub_json(value, extra) if _suspects(text, extra) else value


def encoded_forms(secret: str) -> list[str]:
    """A sample of the forms `scrub` removes (raw, escaped, percent-encoded, base64)."""
    from urllib.parse import quote, quote_plus

    forms = [
        secret,
        secret.upper(),
        secret.lower(),
        json.dumps(secret)[1:-1],
        "".join(f"\\u{ord(c):04x}" for c in secret),
        "".join(f"\\x{ord(c):02x}" for c in secret),
        quote(secret, safe=""),
        quote_plus(secret),
        "".join(f"%{b:02X}" for b in secret.encode()),
        "".join(f"%{b:02x}" for b in secret.encode()),
        base64.b64encode(secret.encode()).decode(),
        base64.urlsafe_b64encode(secret.encode()).decode(),
        *_base64_cores(secret),
    ]
    return list(dict.fromkeys(forms))


# A run of at least this many letters and digits, mixing both, is what a key looks like (Azure's
# are 32 hex characters or 84 base62 ones); ordinary values (names, paths, UUIDs, URLs) have
# shorter runs, or runs of letters only.
KEY_LIKE_RUN = 16
_RUN = re.compile(rf"[A-Za-z0-9]{{{KEY_LIKE_RUN},}}")
_TOKEN = re.compile(r"[A-Za-z0-9+=_~-]+")  # not . or /: a path or key path keeps its parts


def looks_like_key(value: str) -> bool:
    """True if `value` holds a long run of letters and digits mixed, the shape of a key."""
    return any(
        any(c.isdigit() for c in run) and any(c.isalpha() for c in run)
        for run in _RUN.findall(value)
    )


def mask_key_like(text: str) -> str:
    """Return `text` with every token that looks like a key replaced by ***: for messages that
    echo a value the user typed, which might be a key pasted into the wrong place."""
    return _TOKEN.sub(lambda m: REDACTED if looks_like_key(m.group()) else m.group(), text)
