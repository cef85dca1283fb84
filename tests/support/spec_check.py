"""Check emulator responses against the official Swagger 2.0 spec (docs/spec/...v3.3.json).

Public names: `SpecChecker` (its `observe` is an emulator `response_observer`; `violations` lists
what broke the spec), `Violation`, `SPEC_FILE`.

How the Swagger document is read (the spec is Swagger 2.0, not JSON Schema, so it is translated):
- the operation is found by matching the path, less the `/customvision/v3.3/training` or
  `/customvision/v3.4-preview/training` prefix, against the spec's templates (literal segments win
  over `{param}` ones, so `/images/count` is not read as an image id);
- the response schema is the one for the status; errors (>= 400) use `default` (CustomVisionError,
  `code` checked against the spec's enum), except 401/403/429, which the API gateway (APIM) answers
  before the service: those need a JSON `{code, message}` either bare or under `error`
  (docs/spec/DIGEST.md section 1); any other undocumented status is a violation;
- `x-nullable: false` forbids null, `x-nullable: true` allows it; properties the spec leaves
  unannotated allow null (AutoRest's reading of optional reference types, and the real service
  sends `"thumbnailUri": null` for new projects); `readOnly`, `example` and `x-ms-*` are ignored;
- `enum` is strict, and objects that list `properties` get `additionalProperties: false` so a
  misspelt key (`imageID`) is caught rather than silently passing;
- formats checked: uuid, date-time (RFC 3339 with offset), int32 range, byte (base64);
- one real-service deviation is accepted on purpose: create results echo `tags[].tagName: null`
  ([R] in docs/spec/DIGEST.md §2) although ImageTag.tagName says `x-nullable: false`.
Responses outside the training API prefix (image blob URIs) are skipped.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

SPEC_FILE = (
    Path(__file__).resolve().parents[2] / "docs" / "spec" / "customvision-training-v3.3.json"
)
API_PREFIXES = ("/customvision/v3.3/training", "/customvision/v3.4-preview/training")
_CREATE_OPERATIONS = frozenset(
    {
        "CreateImagesFromData",
        "CreateImagesFromFiles",
        "CreateImagesFromUrls",
        "CreateImagesFromPredictions",
    }
)
# (definition, property) pairs whose null the real service sends for these operations.
_REAL_SERVICE_NULLS = (("ImageTag", "tagName"),)
# Answered by the API gateway (APIM) in front of the service, not documented in the spec; real
# bodies look like {"error": {"code": "401", "message": "Access denied due to invalid ..."}}.
_GATEWAY_STATUSES = frozenset({401, 403, 429})
_SWAGGER_ONLY_KEYS = frozenset(
    {"readOnly", "example", "x-nullable", "description", "title", "discriminator", "xml"}
)
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$",
)


@dataclass(frozen=True)
class Violation:
    """One response that broke the spec: where, and what was wrong."""

    method: str
    path: str
    status: int
    problem: str

    def __str__(self) -> str:
        return f"{self.method} {self.path} -> {self.status}: {self.problem}"


def _check_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    # uuid.UUID also takes braces and urn: forms; the wire format is the bare 8-4-4-4-12 form.
    return len(value) == 36


def _check_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    try:
        datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    except ValueError:
        return False
    return True


def _check_int32(value: object) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


def _check_byte(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


_FORMATS = jsonschema.FormatChecker(formats=())
_FORMATS.checks("uuid")(_check_uuid)
_FORMATS.checks("date-time")(_check_date_time)
_FORMATS.checks("int32")(_check_int32)
_FORMATS.checks("byte")(_check_byte)


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """Return schema widened to also accept null."""
    if "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    out = dict(schema)
    if "type" in out:
        types = out["type"] if isinstance(out["type"], list) else [out["type"]]
        out["type"] = [*types, "null"] if "null" not in types else types
    if "enum" in out and None not in out["enum"]:
        out["enum"] = [*out["enum"], None]
    return out


def _translate(node: Any) -> Any:
    """Translate one Swagger 2.0 schema node (recursively) into JSON Schema draft 7."""
    if isinstance(node, list):
        return [_translate(item) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        # Draft 7 ignores $ref siblings; Swagger's are only description/readOnly here.
        return {"$ref": node["$ref"]}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _SWAGGER_ONLY_KEYS or key.startswith("x-"):
            continue
        if key == "properties":
            props = {}
            for name, prop in value.items():
                translated = _translate(prop)
                if prop.get("x-nullable", True) is not False:
                    translated = _nullable(translated)
                props[name] = translated
            out["properties"] = props
        elif key == "type" and value == "file":
            return {}
        else:
            out[key] = _translate(value)
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    # Items and additionalProperties values are nullable only when they say so.
    for key in ("items", "additionalProperties"):
        raw = node.get(key)
        if isinstance(raw, dict) and raw.get("x-nullable") is True:
            out[key] = _nullable(out[key])
    return out


@cache
def _spec() -> dict[str, Any]:
    return json.loads(SPEC_FILE.read_text(encoding="utf-8"))


@cache
def _definitions(real_service_nulls: bool) -> dict[str, Any]:
    raw = copy.deepcopy(_spec()["definitions"])
    if real_service_nulls:
        for definition, prop in _REAL_SERVICE_NULLS:
            raw[definition]["properties"][prop]["x-nullable"] = True
    return {name: _translate(schema) for name, schema in raw.items()}


@dataclass(frozen=True)
class _Operation:
    operation_id: str
    template: str
    responses: dict[str, Any]


@cache
def _templates() -> list[tuple[re.Pattern[str], int, str, dict[str, Any]]]:
    """Return (regex, literal segment count, template, path item) for every spec path."""
    out = []
    for template, item in _spec()["paths"].items():
        segments = template.strip("/").split("/")
        pattern = "/".join(
            "[^/]+" if seg.startswith("{") and seg.endswith("}") else re.escape(seg)
            for seg in segments
        )
        literals = sum(1 for seg in segments if not seg.startswith("{"))
        out.append((re.compile(f"^/{pattern}/?$"), literals, template, item))
    return out


def find_operation(method: str, api_path: str) -> _Operation | None:
    """Return the spec operation for a method and a path relative to the API base, or None."""
    best: tuple[int, str, dict[str, Any]] | None = None
    for regex, literals, template, item in _templates():
        if regex.match(api_path) and (best is None or literals > best[0]):
            best = (literals, template, item)
    if best is None:
        return None
    _, template, item = best
    op = item.get(method.lower())
    if op is None:
        return None
    return _Operation(op["operationId"], template, op["responses"])


def _api_path(path: str) -> str | None:
    path = path.split("?", 1)[0]
    for prefix in API_PREFIXES:
        if path == prefix or path.startswith(prefix + "/"):
            return path[len(prefix) :] or "/"
    return None


@cache
def _validator(schema_json: str, real_service_nulls: bool) -> jsonschema.Draft7Validator:
    schema = _translate(json.loads(schema_json))
    root = {"definitions": _definitions(real_service_nulls), "allOf": [schema]}
    return jsonschema.Draft7Validator(root, format_checker=_FORMATS)


def _schema_problems(schema: dict[str, Any], body: Any, real_service_nulls: bool) -> list[str]:
    validator = _validator(json.dumps(schema, sort_keys=True), real_service_nulls)
    problems = []
    for error in sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in error.absolute_path) or "<body>"
        problems.append(f"at {where}: {error.message[:300]}")
    return problems


def _gateway_problems(operation_id: str, status: int, body: bytes) -> list[str]:
    """Check a 401/403/429, which APIM answers before the service: either error shape will do."""
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return [f"{operation_id}: {status} body is not JSON: {body[:200]!r}"]
    error = parsed.get("error", parsed) if isinstance(parsed, dict) else None
    if not (
        isinstance(error, dict)
        and isinstance(error.get("code"), str)
        and isinstance(error.get("message"), str)
    ):
        return [f"{operation_id}: {status} body is not an error {{code, message}}: {parsed!r}"]
    return []


def check_response(
    method: str, path: str, status: int, headers: dict[str, str], body: bytes
) -> list[str]:
    """Return the ways one response breaks the spec (empty when it conforms or is not API)."""
    api_path = _api_path(path)
    if api_path is None:
        return []
    op = find_operation(method, api_path)
    if op is None:
        # An undocumented route may fail however it likes, but must not succeed.
        return [f"no spec operation for {method} {api_path}"] if status < 400 else []
    if status in _GATEWAY_STATUSES:
        return _gateway_problems(op.operation_id, status, body)
    key = str(status)
    if key not in op.responses:
        if status < 400:
            return [f"status {status} not documented for {op.operation_id}"]
        key = "default"
    response = op.responses.get(key)
    if response is None:
        return [f"status {status} not documented for {op.operation_id} (no default)"]
    schema = response.get("schema")
    if schema is None:
        return [] if not body.strip() else [f"{op.operation_id} {status} must have no body"]
    if schema.get("type") == "file":
        return []
    content_type = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    problems = []
    if not content_type.lower().startswith("application/json"):
        problems.append(f"content-type {content_type!r}, expected application/json")
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [*problems, f"body is not JSON ({exc}): {body[:200]!r}"]
    real_service_nulls = op.operation_id in _CREATE_OPERATIONS
    problems += _schema_problems(schema, parsed, real_service_nulls)
    return [f"{op.operation_id}: {p}" for p in problems]


class SpecChecker:
    """Collect spec violations from every response an emulator sends; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._violations: list[Violation] = []
        self.responses_checked = 0

    def observe(
        self, method: str, path: str, status: int, headers: dict[str, str], body: bytes
    ) -> None:
        """Check one response (the emulator's `response_observer` signature)."""
        problems = check_response(method, path, status, headers, body)
        with self._lock:
            self.responses_checked += 1
            self._violations.extend(Violation(method, path, status, p) for p in problems)

    @property
    def violations(self) -> list[Violation]:
        """Return the violations seen so far, oldest first."""
        with self._lock:
            return list(self._violations)

    def report(self) -> str:
        """Return the violations as text, one per line."""
        return "\n".join(str(v) for v in self.violations)
