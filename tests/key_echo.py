"""The forms a hostile server echoes the training key in, and a search for them in any output.

Public names: key_forms, echo_text, leaks.

Built here independently of syncd.redact, so the tests do not check the scrubber with its own list:
raw, upper-cased, JSON-escaped (every character as \\uXXXX), backslash-escaped (\\xXX), percent-
encoded (upper and lower hex, and as quote_plus writes it), base64 (alone and inside a Basic
header), and cut: the text ends inside the key (a prefix) or starts inside it (a suffix).
"""

from __future__ import annotations

import base64
import json
from urllib.parse import quote_plus


def key_forms(key: str) -> dict[str, str]:
    """name -> the key written in that form."""
    data = key.encode()
    return {
        "raw": key,
        "upper": key.upper(),
        "json-escaped": "".join(f"\\u{ord(c):04x}" for c in key),
        "backslash-escaped": "".join(f"\\x{b:02x}" for b in data),
        "percent upper": "".join(f"%{b:02X}" for b in data),
        "percent lower": "".join(f"%{b:02x}" for b in data),
        "quote_plus": quote_plus(key, safe=""),
        "base64": base64.b64encode(data).decode(),
        "base64 basic": base64.b64encode(b"user:" + data).decode(),
    }


def echo_text(key: str) -> str:
    """A message that holds the key in every form (the cut forms at its two ends)."""
    middle = " | ".join(f"{name}={form}" for name, form in key_forms(key).items())
    return f"{key[-12:]} rejected; {middle}; last seen {key[:-5]}"


def _needles(key: str) -> dict[str, str]:
    needles = {f"prefix {key[:10]!r}": key[:10], f"suffix {key[-10:]!r}": key[-10:]}
    for name, form in key_forms(key).items():
        needles[name] = form
        needles[f"{name}, JSON-escaped again"] = json.dumps(form)[1:-1]
    needles["base64 core"] = base64.b64encode(key.encode()).decode()[4:-8]
    needles["base64 basic core"] = base64.b64encode(b"user:" + key.encode()).decode()[12:-8]
    return needles


def leaks(text: str | bytes, key: str) -> list[str]:
    """The names of the key's forms found in `text` (any case for the raw pieces)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    found = []
    for name, needle in _needles(key).items():
        haystack, look = (text, needle) if "base64" in name else (text.lower(), needle.lower())
        if look in haystack:
            found.append(name)
    return found
