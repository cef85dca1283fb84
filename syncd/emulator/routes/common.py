"""What every route module shares: the app's state, error answers, parameter and body parsing.

Public names: `PROJECT_PATH`, `Emulator`, `emulator`, `store_of`, `run`, `api`, `error`, `bad`,
`BodyRefused`, `too_large`, `parse_uuid`, `id_list`, `int_param`, `choice_param`, `bool_param`,
`str_list`, `project_param`, `no_iteration`, `body_chunks`, `json_body`, `base_url`.

Errors: bad ids are 400 BadRequestInvalidIds; too many items 400 BadRequestExceededBatchSize; other
bad parameters 400 BadRequest; a body over its route's cap (limits.py) 413, refused unread or as it
streams (`BodyRefused`, whose answer closes the connection). `iterationId` on tag and image routes
(iteration-scoped views) is not emulated: any value is 404 NotFoundIteration (`no_iteration`).
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from syncd.emulator.faults import Faults
from syncd.emulator.limits import MAX_JSON_BODY_BYTES
from syncd.emulator.store import ApiError, Store

T = TypeVar("T")
PROJECT_PATH = "/projects/{project_id}"  # the path every project-scoped route starts with


@dataclass(frozen=True)
class Emulator:
    """What the handlers serve, kept on the app as `app.state.emulator` by `create_app`."""

    store: Store
    faults: Faults
    multipart_cap: int  # CreateImagesFromData's body cap (limits.upload_body_limits)
    files_cap: int  # CreateImagesFromFiles's body cap


def emulator(request: Request) -> Emulator:
    state: Emulator = request.app.state.emulator
    return state


def store_of(request: Request) -> Store:
    return emulator(request).store


async def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call fn in a worker thread: SQLite and blob I/O block (the store has its own lock)."""
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


def api(
    handler: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """Wrap an API handler: an ApiError it raises becomes the {code, message} answer."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as exc:
            response = error(exc.status, exc.code, exc.message)
            if isinstance(exc, BodyRefused):
                response.headers["connection"] = "close"
            return response

    return endpoint


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status)


def bad(code: str, message: str) -> ApiError:
    return ApiError(400, code, message)


# --- parameter parsing --------------------------------------------------------------------------


def parse_uuid(value: Any, what: str) -> str:
    """Return value (a string, or any JSON value from a body) as a canonical lowercase uuid; raise
    400 BadRequestInvalidIds otherwise."""
    try:
        parsed = uuid.UUID(value.strip())
    except (ValueError, AttributeError, TypeError):
        raise bad("BadRequestInvalidIds", f"{what} is not a valid id.") from None
    return str(parsed)


def id_list(request: Request, name: str, limit: int | None, required: bool = False) -> list[str]:
    """Parse a csv list of uuids (repeated parameters are joined too); enforce the limit."""
    raw = ",".join(request.query_params.getlist(name))
    items = [item for item in (part.strip() for part in raw.split(",")) if item]
    if required and not items:
        raise bad("BadRequestRequiredParamIsNull", f"{name} is required.")
    if limit is not None and len(items) > limit:
        raise bad("BadRequestExceededBatchSize", f"{name} is limited to {limit} items.")
    return [parse_uuid(item, name) for item in items]


def int_param(request: Request, name: str, default: int, low: int, high: int | None) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad("BadRequest", f"{name} must be an integer.") from None
    if value < low:
        raise bad("BadRequest", f"{name} must be at least {low}.")
    if high is not None and value > high:
        raise bad("BadRequestExceededBatchSize", f"{name} is limited to {high}.")
    return value


def choice_param(
    request: Request, name: str, values: tuple[str, ...], default: str | None, code: str
) -> str | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    for value in values:
        if raw.lower() == value.lower():
            return value
    raise bad(code, f"{name} must be one of {', '.join(values)}.")


def bool_param(request: Request, name: str) -> bool:
    raw = (request.query_params.get(name) or "").lower()
    if raw in ("", "false"):
        return False
    if raw == "true":
        return True
    raise bad("BadRequest", f"{name} must be true or false.")


def project_param(request: Request) -> str:
    return parse_uuid(request.path_params["project_id"], "projectId")


def no_iteration(request: Request) -> None:
    raw = request.query_params.get("iterationId")
    if raw:
        parse_uuid(raw, "iterationId")
        raise ApiError(
            404, "NotFoundIteration", "Iteration-scoped views are not emulated on this route."
        )


async def body_chunks(request: Request, cap: int, code: str) -> AsyncIterator[bytes]:
    """Yield the body as it arrives; refuse it (413 `code`) unread if its Content-Length is over
    cap, or as soon as more than cap bytes have arrived (a chunked body has no length)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise too_large(cap, code)
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > cap:
            raise too_large(cap, code)
        yield chunk


class BodyRefused(ApiError):
    """A refusal sent before the body was read to its end. Its answer closes the connection, so
    the client stops sending (uvicorn would otherwise read and drop the rest of the body)."""


def too_large(cap: int, code: str) -> ApiError:
    return BodyRefused(
        413, code, f"The request body is over {cap} bytes, the most this call takes."
    )


async def json_body(
    request: Request, cap: int = MAX_JSON_BODY_BYTES, code: str = "BadRequest"
) -> Any:
    raw = bytearray()
    async for chunk in body_chunks(request, cap, code):
        raw.extend(chunk)
    try:
        return json.loads(raw) if raw.strip() else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise bad("BadRequest", "The request body is not valid JSON.") from None


def str_list(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad("BadRequestInvalidIds", f"{name} must be a list of ids.")
    return value


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")
