"""The API client's exceptions: the service's CustomVisionError codes mapped onto a small tree.

Public names: ApiError and the subclasses drawn below, error_for, SERVICE_ERROR_CODES.

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
`get_project: HTTP 404 NotFoundProject: Project not found` and never the training key: an
error scrubs the key out of the service's code and message (`syncd.redact.scrub`, every form of
it) as it is made, before either is cut to its cap, and errors hold no httpx request or response
objects (whose headers would carry the key).
"""

from __future__ import annotations

import httpx

from syncd.redact import scrub

# The service's text is cut to these lengths, after the key is scrubbed out of it (a cut first
# could leave a piece of the key that no longer matches it).
MAX_CODE_CHARS = 100
MAX_MESSAGE_CHARS = 300
# A body longer than this is read only this far for its message (scrubbing is linear in it).
MAX_ERROR_TEXT_READ = 64 * 1024


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
        # Scrubbed here too, whoever made the error: every registered key, in every form.
        self.code = scrub(code)[:MAX_CODE_CHARS] if code is not None else None
        self.service_message = scrub(service_message)[:MAX_MESSAGE_CHARS]
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


# CustomVisionError.code: the spec's enum (x-ms-enum CustomVisionErrorCodes, 130 values; DIGEST §5).
# The service may send others (the enum is modelAsString); only these become metric labels.
_SPEC_CODES = """
NoError BadRequest BadRequestExceededBatchSize BadRequestNotSupported BadRequestInvalidIds
BadRequestProjectName BadRequestProjectNameNotUnique BadRequestProjectDescription
BadRequestProjectUnknownDomain BadRequestProjectUnknownClassification
BadRequestProjectUnsupportedDomainTypeChange BadRequestProjectUnsupportedExportPlatform
BadRequestProjectImagePreprocessingSettings BadRequestProjectDuplicated BadRequestIterationName
BadRequestIterationNameNotUnique BadRequestIterationDescription BadRequestIterationIsNotTrained
BadRequestIterationValidationFailed BadRequestWorkspaceCannotBeModified
BadRequestWorkspaceNotDeletable BadRequestTagName BadRequestTagNameNotUnique
BadRequestTagDescription BadRequestTagType BadRequestMultipleNegativeTag
BadRequestMultipleGeneralProductTag BadRequestImageTags BadRequestImageRegions
BadRequestNegativeAndRegularTagOnSameImage BadRequestUnsupportedDomain
BadRequestRequiredParamIsNull BadRequestIterationIsPublished BadRequestInvalidPublishName
BadRequestInvalidPublishTarget BadRequestUnpublishFailed BadRequestIterationNotPublished
BadRequestSubscriptionApi BadRequestExceedProjectLimit BadRequestExceedIterationPerProjectLimit
BadRequestExceedTagPerProjectLimit BadRequestExceedTagPerImageLimit BadRequestExceededQuota
BadRequestCannotMigrateProjectWithName BadRequestNotLimitedTrial BadRequestImageBatch
BadRequestImageStream BadRequestImageUrl BadRequestImageFormat BadRequestImageSizeBytes
BadRequestImageDimensions BadRequestImageExceededCount BadRequestTrainingNotNeeded
BadRequestTrainingNotNeededButTrainingPipelineUpdated BadRequestTrainingValidationFailed
BadRequestClassificationTrainingValidationFailed
BadRequestMultiClassClassificationTrainingValidationFailed
BadRequestMultiLabelClassificationTrainingValidationFailed
BadRequestDetectionTrainingValidationFailed BadRequestTrainingAlreadyInProgress
BadRequestDetectionTrainingNotAllowNegativeTag BadRequestInvalidEmailAddress
BadRequestDomainNotSupportedForAdvancedTraining
BadRequestExportPlatformNotSupportedForAdvancedTraining
BadRequestReservedBudgetInHoursNotEnoughForAdvancedTraining BadRequestExportValidationFailed
BadRequestExportAlreadyInProgress BadRequestPredictionIdsMissing
BadRequestPredictionIdsExceededCount BadRequestPredictionTagsExceededCount
BadRequestPredictionResultsExceededCount BadRequestPredictionInvalidApplicationName
BadRequestPredictionInvalidQueryParameters BadRequestInvalidImportToken
BadRequestExportWhileTraining BadRequestImageMetadataKey BadRequestImageMetadataValue
BadRequestOperationNotSupported BadRequestInvalidArtifactUri
BadRequestCustomerManagedKeyRevoked BadRequestInvalid UnsupportedMediaType Forbidden
ForbiddenUser ForbiddenUserResource ForbiddenUserSignupDisabled
ForbiddenUserSignupAllowanceExceeded ForbiddenUserDoesNotExist ForbiddenUserDisabled
ForbiddenUserInsufficientCapability ForbiddenDRModeEnabled ForbiddenInvalid NotFound
NotFoundProject NotFoundProjectDefaultIteration NotFoundIteration NotFoundIterationPerformance
NotFoundTag NotFoundImage NotFoundDomain NotFoundApimSubscription NotFoundInvalid Conflict
ConflictInvalid ErrorUnknown ErrorIterationCopyFailed ErrorPreparePerformanceMigrationFailed
ErrorProjectInvalidWorkspace ErrorProjectInvalidPipelineConfiguration ErrorProjectInvalidDomain
ErrorProjectTrainingRequestFailed ErrorProjectImportRequestFailed
ErrorProjectExportRequestFailed ErrorFeaturizationServiceUnavailable
ErrorFeaturizationQueueTimeout ErrorFeaturizationInvalidFeaturizer
ErrorFeaturizationAugmentationUnavailable ErrorFeaturizationUnrecognizedJob
ErrorFeaturizationAugmentationError ErrorExporterInvalidPlatform ErrorExporterInvalidFeaturizer
ErrorExporterInvalidClassifier ErrorPredictionServiceUnavailable ErrorPredictionModelNotFound
ErrorPredictionModelNotCached ErrorPrediction ErrorPredictionStorage ErrorRegionProposal
ErrorUnknownBaseModel ErrorInvalid
"""
SERVICE_ERROR_CODES: frozenset[str] = frozenset(_SPEC_CODES.split())


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
    """Return (code, message) of a CustomVisionError body; tolerate bodies that are not one.

    The text is the service's, uncut and unscrubbed: `error_for` scrubs it, then cuts it.
    """
    try:
        body = response.json()
    except (ValueError, RecursionError):  # not JSON, or JSON nested too deep to parse
        return None, response.text[:MAX_ERROR_TEXT_READ].strip()
    if isinstance(body, dict):
        # The service's own shape is {code, message}; APIM errors (401, 429) use
        # {"error": {"code", "message"}} or {"statusCode", "message"}.
        error = body.get("error")
        inner = error if isinstance(error, dict) else body
        code = inner.get("code")
        message = inner.get("message")
        return (str(code) if code is not None else None), str(message or "")
    return None, str(body)[:MAX_ERROR_TEXT_READ]


def error_for(
    operation: str,
    response: httpx.Response,
    *,
    attempts: int = 1,
    replayed: bool = False,
    secret: str | None = None,
    retry_after: float | None = None,
) -> ApiError:
    """Return the typed error for an error response; the key is scrubbed from code and text
    (the secret given, and every registered one) before anything reads or cuts them."""
    extra = (secret,) if secret else ()
    code, message = read_error_body(response)
    message = scrub(message, extra)
    if code is not None:
        code = scrub(code, extra)
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
