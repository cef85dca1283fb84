"""The forms a hostile server echoes the training key in, and a search for them in any output.

Public names: key_forms, echo_text, leaks, echoing_script.

Built here independently of syncd.redact, so the tests do not check the scrubber with its own list:
raw, upper-cased, JSON-escaped (every character as \\uXXXX), backslash-escaped (\\xXX), percent-
encoded (upper and lower hex, and as quote_plus writes it), base64 (alone and inside a Basic
header), and cut: the text ends inside the key (a prefix) or starts inside it (a suffix).
"""

from __future__ import annotations

import base64
import json
import uuid
from urllib.parse import quote_plus

import httpx

from tests.support.hostile import Reply, Request, Script


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


def echoing_script(upstream: str, project_id: str, *, fatal: bool = False) -> Script:
    """Forward to the emulator, but put the key the request carried (every form of it, see
    tests/support/key_echo.py) into the project's name, an extra tag's name, and the code and
    message of every upload's error; with `fatal`, GetProject answers a non-JSON 500 holding it."""
    base = f"{upstream}/customvision/v3.3/training"
    project = f"/projects/{project_id}"

    def script(request: Request) -> Reply | None:
        key = request.headers.get("training-key", "")
        echoed = echo_text(key)
        path = request.path.removeprefix("/customvision/v3.3/training")
        if request.method == "GET" and path == project:
            if fatal:
                filler = "x" * (300 - len(key) // 2)  # a cut at 300 lands inside the key
                return Reply(500, body=f"{filler}{key} / {echoed}".encode())
            body = httpx.get(base + path, headers={"Training-Key": key}).json()
            return Reply(json={**body, "name": f"p {echoed}", "description": echoed})
        if request.method == "GET" and path == f"{project}/tags":
            tags = httpx.get(base + path, headers={"Training-Key": key}).json()
            extra = {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, key)), "name": key[:-3] + "!"}
            return Reply(json=[*tags, {**extra, "type": "Regular", "imageCount": 0}])
        if request.method == "POST" and path in (f"{project}/images", f"{project}/images/files"):
            code = f"BadRequestImage{key}"
            return Reply(400, json={"code": code, "message": echoed})
        return None

    return script
