"""The API client's exceptions: the service's CustomVisionError codes mapped onto a small tree.

Public names: ApiError and the subclasses drawn below, error_for.

    ApiError                        operation, status, code, service_message, attempts, replayed
    ├── AuthenticationError         401/403: missing, wrong or unauthorised training key
    ├── NotFoundError               404 / NotFound*: something named in the call does not exist
    │   ├── ProjectNotFoundError    NotFoundProject
    │   ├── TagNotFoundError        NotFoundTag
    │   └── ImageNotFoundError      NotFoundImage
    ├── LimitExceededError          a quota or limit (codes containing "Exceed": projects, tags,
    │                               images per project, tags per image, batch size)
    ├── BadRequestError             any other 4xx; `code` says which (BadRequestTagNameNotUnique…)
    ├── ThrottledError              429 still answered when the retry budget ran out; retry_after
    ├── ServiceUnavailableError     5xx still answered when the retry budget ran out
    │   └── ApiConnectionError      no HTTP answer at all: connect/read/write error or timeout
    │       └── DeadlineExceededError   no complete answer within the request deadline
    └── UnexpectedResponseError     a success status whose body is not what the spec describes
        └── ResponseTooLargeError   an answer (JSON or a download) over its size cap

Each message names the operation, the HTTP status, the code and the service's message, e.g.
`get_project: HTTP 404 NotFoundProject: Project not found` and never the training key: the
client scrubs the key out of the service's text before it builds an error, and errors hold no
httpx request or response objects (whose headers would carry the key).
"""

from __future__ import annotations

import httpx


class ApiError(Exception):
    """A Training API call failed; fields say which call, how, and what the service said."""

    def __init__(
        self,
        operation: str,
        *,
        status: int | None = None,
        code: str | None = None,
        service_message: str = "",
        attempts: int = 1,
        replayed: bool = False,
    ) -> None:
        self.operation = operation
        self.status = status
        self.code = code
        self.service_message = service_message
        self.attempts = attempts
        # True when an earlier attempt of this call failed after the request may have reached
        # the service: the request was replayed, so an error here may describe the earlier
        # attempt's success (e.g. NotFoundImage for a delete that already happened).
        self.replayed = replayed
        super().__init__(self._text())

    def _text(self) -> str:
        status = f"HTTP {self.status}" if self.status is not None else "no response"
        parts = [f"{self.operation}: {status}"]
        if self.code:
            parts.append(f" {self.code}")
        if self.service_message:
            parts.append(f": {self.service_message}")
        if self.attempts > 1:
            parts.append(f" (after {self.attempts} attempts)")
        return "".join(parts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._text()!r})"


class AuthenticationError(ApiError):
    """The service refused the training key (401) or its rights (403)."""


class NotFoundError(ApiError):
    """The project, tag, image or other thing named in the call does not exist."""


class ProjectNotFoundError(NotFoundError):
    """The project does not exist (or the key's resource cannot see it)."""


class TagNotFoundError(NotFoundError):
    """A tag named in the call does not exist in the project."""


class ImageNotFoundError(NotFoundError):
    """An image named in the call does not exist in the project."""


class LimitExceededError(ApiError):
    """A quota or limit of the service or the pricing tier was reached."""


class BadRequestError(ApiError):
    """The service rejected the request; `code` names the reason."""


class ThrottledError(ApiError):
    """The service kept answering 429 until the retry budget ran out."""

    def __init__(self, operation: str, *, retry_after: float | None = None, **fields: object):
        self.retry_after = retry_after
        super().__init__(operation, **fields)  # type: ignore[arg-type]


class ServiceUnavailableError(ApiError):
    """The service kept failing (5xx) until the retry budget ran out."""


class ApiConnectionError(ServiceUnavailableError):
    """No HTTP answer: the connection failed, was dropped, or timed out."""


class DeadlineExceededError(ApiConnectionError):
    """The answer did not arrive whole within the request deadline (a stalled or trickling
    service), on every attempt the retry budget allowed."""


class UnexpectedResponseError(ApiError):
    """A success answer whose body could not be read as the spec's shape."""


class ResponseTooLargeError(UnexpectedResponseError):
    """An answer bigger than any legitimate one (limits.MAX_JSON_RESPONSE_BYTES for JSON,
    limits.MAX_DOWNLOAD_BYTES for an image): abandoned without being read whole."""


_NOT_FOUND_BY_CODE: dict[str, type[NotFoundError]] = {
    "NotFoundProject": ProjectNotFoundError,
    "NotFoundProjectDefaultIteration": ProjectNotFoundError,
    "NotFoundTag": TagNotFoundError,
    "NotFoundImage": ImageNotFoundError,
}


def error_class(status: int, code: str | None) -> type[ApiError]:
    """Return the exception class for an HTTP error status and CustomVisionError code."""
    code = code or ""
    if status in (401, 403):
        return AuthenticationError
    if status == 429:
        return ThrottledError
    if status >= 500:
        return ServiceUnavailableError
    if code.startswith("NotFound") or status == 404:
        return _NOT_FOUND_BY_CODE.get(code, NotFoundError)
    if "Exceed" in code:
        return LimitExceededError
    return BadRequestError


def read_error_body(response: httpx.Response) -> tuple[str | None, str]:
    """Return (code, message) of a CustomVisionError body; tolerate bodies that are not one."""
    try:
        body = response.json()
    except ValueError:
        return None, response.text[:300].strip()
    if isinstance(body, dict):
        # The service's own shape is {code, message}; APIM errors (401, 429) use
        # {"error": {"code", "message"}} or {"statusCode", "message"}.
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        code = inner.get("code")
        message = inner.get("message")
        return (str(code) if code is not None else None), str(message or "")
    return None, str(body)[:300]


def error_for(
    operation: str,
    response: httpx.Response,
    *,
    attempts: int = 1,
    replayed: bool = False,
    secret: str | None = None,
    retry_after: float | None = None,
) -> ApiError:
    """Return the typed error for an error response; the secret is scrubbed from the text."""
    code, message = read_error_body(response)
    if secret:
        message = message.replace(secret, "***")
    cls = error_class(response.status_code, code)
    fields: dict[str, object] = {
        "status": response.status_code,
        "code": code,
        "service_message": message,
        "attempts": attempts,
        "replayed": replayed,
    }
    if cls is ThrottledError:
        return ThrottledError(operation, retry_after=retry_after, **fields)
    return cls(operation, **fields)  # type: ignore[arg-type]
