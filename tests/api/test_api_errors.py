"""Errors: the code -> class table, the message shape, and real failures from the emulator."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from uuid import UUID, uuid4

import httpx
import pytest

from syncd.api import TagPair
from syncd.api.errors import (
    _CLASS_BY_CODE,
    SERVICE_ERROR_CODES,
    ApiConnectionError,
    ApiError,
    AuthenticationError,
    BadRequestError,
    DeadlineExceededError,
    ImageFormatError,
    ImageLimitError,
    ImageNotFoundError,
    ImageSizeError,
    LimitExceededError,
    NotFoundError,
    ProjectNotFoundError,
    ResponseTooLargeError,
    ServiceUnavailableError,
    TagLimitError,
    TagNameNotUniqueError,
    TagNotFoundError,
    ThrottledError,
    TrainingNotNeededError,
    TrainingValidationError,
    UnexpectedResponseError,
    error_class,
    error_for,
)
from syncd.emulator.faults import Faults
from syncd.emulator.limits import Quotas
from syncd.emulator.server import EmulatorServer
from tests.api.conftest import make_client

StartEmulator = Callable[..., EmulatorServer]


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (401, "401", AuthenticationError),
        (403, "Forbidden", AuthenticationError),
        (403, "ForbiddenUser", AuthenticationError),
        (404, "NotFoundProject", ProjectNotFoundError),
        (404, "NotFoundTag", TagNotFoundError),
        (404, "NotFoundImage", ImageNotFoundError),
        (404, "NotFoundProjectDefaultIteration", ProjectNotFoundError),
        (404, "NotFoundIteration", NotFoundError),
        (404, None, NotFoundError),
        (400, "BadRequestExceedTagPerProjectLimit", TagLimitError),
        (400, "BadRequestImageExceededCount", ImageLimitError),
        (400, "BadRequestExceededQuota", LimitExceededError),
        (400, "BadRequestExceededBatchSize", LimitExceededError),
        (400, "BadRequestExceedTagPerImageLimit", LimitExceededError),
        (400, "BadRequestTagNameNotUnique", TagNameNotUniqueError),
        (400, "BadRequestImageFormat", ImageFormatError),
        (400, "BadRequestImageSizeBytes", ImageSizeError),
        (400, "BadRequestImageDimensions", ImageSizeError),
        (400, "BadRequestTrainingNotNeeded", TrainingNotNeededError),
        (400, "BadRequestTrainingNotNeededButTrainingPipelineUpdated", TrainingNotNeededError),
        (400, "BadRequestTrainingValidationFailed", TrainingValidationError),
        (400, "BadRequestClassificationTrainingValidationFailed", TrainingValidationError),
        (
            400,
            "BadRequestMultiClassClassificationTrainingValidationFailed",
            TrainingValidationError,
        ),
        (
            400,
            "BadRequestMultiLabelClassificationTrainingValidationFailed",
            TrainingValidationError,
        ),
        (400, "BadRequestDetectionTrainingValidationFailed", TrainingValidationError),
        (400, "BadRequestTrainingAlreadyInProgress", BadRequestError),
        (400, "BadRequestInvalidIds", BadRequestError),
        (415, "UnsupportedMediaType", BadRequestError),
        (429, "429", ThrottledError),
        (500, "ErrorUnknown", ServiceUnavailableError),
        (503, None, ServiceUnavailableError),
        # The status decides the family; a code from another family does not move the error.
        (503, "BadRequestTagNameNotUnique", ServiceUnavailableError),
        (401, "NotFoundProject", AuthenticationError),
        (404, "BadRequestTrainingNotNeeded", NotFoundError),
        (400, "NotFoundProject", ProjectNotFoundError),
    ],
)
def test_status_and_code_pick_the_class(status: int, code: str | None, expected: type) -> None:
    assert error_class(status, code) is expected
    error = error_for("op", httpx.Response(status, json={"code": code, "message": "m"}))
    assert type(error) is expected and error.code == code


def test_every_code_with_a_class_of_its_own_is_one_the_spec_names() -> None:
    # A typo in the table would leave the service's code on the generic class, unnoticed.
    assert set(_CLASS_BY_CODE) <= SERVICE_ERROR_CODES


# Fatal: no other item of the run can succeed, so the executor stops at the first one.
FATAL = {
    AuthenticationError,
    ProjectNotFoundError,
    ThrottledError,
    ServiceUnavailableError,
    ApiConnectionError,
    DeadlineExceededError,
}
NOT_FATAL = {
    ApiError,
    NotFoundError,
    TagNotFoundError,
    ImageNotFoundError,
    LimitExceededError,
    TagLimitError,
    ImageLimitError,
    BadRequestError,
    TagNameNotUniqueError,
    ImageFormatError,
    ImageSizeError,
    TrainingNotNeededError,
    TrainingValidationError,
    UnexpectedResponseError,
    ResponseTooLargeError,
}


def test_fatal_is_a_class_attribute_true_only_for_what_dooms_the_run() -> None:
    def tree(cls: type[ApiError]) -> set[type[ApiError]]:
        return {cls}.union(*(tree(sub) for sub in cls.__subclasses__()))

    assert tree(ApiError) == FATAL | NOT_FATAL  # every class is classified here
    assert {cls for cls in FATAL if cls.fatal} == FATAL
    assert {cls for cls in NOT_FATAL if cls.fatal} == set()
    assert error_for("list_tags", httpx.Response(401)).fatal
    assert not error_for(
        "create_tag", httpx.Response(400, json={"code": "BadRequestTagName"})
    ).fatal


def test_a_code_carrying_the_key_is_scrubbed_and_gets_no_class_of_its_own() -> None:
    secret = "tk-CLASS-7731"
    code = f"BadRequestTagNameNotUnique{secret}"
    error = error_for("create_tag", httpx.Response(400, json={"code": code}), secret=secret)
    assert secret not in (error.code or "") and secret not in str(error)
    assert type(error) is BadRequestError  # the scrubbed code is not a known one


def test_the_message_names_operation_status_code_and_service_text_but_not_the_key() -> None:
    secret = "tk-ERRORS-0451"
    response = httpx.Response(
        404, json={"code": "NotFoundProject", "message": f"Project not found (key {secret})."}
    )
    error = error_for("get_project", response, attempts=2, secret=secret)
    assert isinstance(error, ProjectNotFoundError)
    assert (error.operation, error.status, error.code) == ("get_project", 404, "NotFoundProject")
    assert str(error) == (
        "get_project: HTTP 404 NotFoundProject: Project not found (key ***). (after 2 attempts)"
    )
    assert secret not in repr(error)


def test_apim_shaped_and_non_json_bodies_still_give_a_typed_error() -> None:
    nested = httpx.Response(401, json={"error": {"code": "401", "message": "Access denied"}})
    assert str(error_for("list_tags", nested)) == "list_tags: HTTP 401 401: Access denied"
    html = httpx.Response(502, text="<html>Bad Gateway</html>")
    error = error_for("list_tags", html)
    assert isinstance(error, ServiceUnavailableError) and error.code is None


@pytest.mark.anyio
@pytest.mark.parametrize("key", ["wrong-key", None])
async def test_a_wrong_or_missing_key_is_an_authentication_error_not_retried(
    emulator: EmulatorServer, key: str | None
) -> None:
    async with make_client(emulator.url, key=key) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.list_projects()
    assert caught.value.status == 401 and caught.value.attempts == 1


@pytest.mark.anyio
async def test_unknown_project_tag_and_image_are_typed(
    emulator: EmulatorServer, project_id: str
) -> None:
    async with make_client(emulator.url) as client:
        with pytest.raises(ProjectNotFoundError) as project:
            await client.get_project(uuid4())
        assert project.value.code == "NotFoundProject"
        with pytest.raises(ProjectNotFoundError):
            await client.list_tags(uuid4())
        with pytest.raises(TagNotFoundError):
            await client.delete_tag(project_id, uuid4())
        tag = await client.create_tag(project_id, "Dog")
        with pytest.raises(ImageNotFoundError) as image:
            async for _ in client.add_tags(project_id, [TagPair(uuid4(), tag.id)]):
                pass
        assert image.value.status == 404 and image.value.operation == "add_tags"
        with pytest.raises(BadRequestError) as bad:
            await client.create_tag(project_id, "")
        assert bad.value.code == "BadRequestTagName"


@pytest.mark.anyio
async def test_a_full_project_is_a_limit_error(start_emulator: StartEmulator) -> None:
    server = start_emulator(quotas=Quotas(max_tags_per_project=2))
    async with make_client(server.url) as client:
        project = await client.create_project("p")
        await client.create_tag(project.id, "a")
        await client.create_tag(project.id, "b")
        with pytest.raises(LimitExceededError) as caught:
            await client.create_tag(project.id, "c")
    assert caught.value.code == "BadRequestExceedTagPerProjectLimit"


@pytest.mark.anyio
async def test_throttling_past_the_budget_is_a_throttled_error(
    start_emulator: StartEmulator,
) -> None:
    server = start_emulator(faults=Faults(tps=1))
    async with make_client(server.url, rate_per_second=100, max_attempts=1) as client:
        outcomes = await asyncio.gather(
            *(client.list_projects() for _ in range(4)), return_exceptions=True
        )
    throttled = [o for o in outcomes if isinstance(o, ThrottledError)]
    assert throttled, outcomes
    assert all(t.status == 429 and (t.retry_after or 0) >= 1 for t in throttled)


@pytest.mark.anyio
async def test_persistent_5xx_is_service_unavailable_after_the_attempts(
    start_emulator: StartEmulator,
) -> None:
    server = start_emulator(faults=Faults(fail_rate=1.0, seed=1))
    async with make_client(server.url, max_attempts=3, base_backoff_s=0.01) as client:
        with pytest.raises(ServiceUnavailableError) as caught:
            await client.list_projects()
    assert caught.value.status in (500, 503) and caught.value.attempts == 3
    assert not isinstance(caught.value, ApiConnectionError)


@pytest.mark.anyio
async def test_dropped_answers_are_connection_errors_marked_replayed(
    start_emulator: StartEmulator,
) -> None:
    server = start_emulator(faults=Faults(drop_rate=1.0, seed=1))
    async with make_client(server.url, max_attempts=2, base_backoff_s=0.01) as client:
        with pytest.raises(ApiConnectionError) as caught:
            await client.list_projects()
    assert caught.value.status is None and caught.value.replayed
    assert caught.value.code == "RemoteProtocolError" and caught.value.attempts == 2


@pytest.mark.anyio
async def test_nobody_listening_is_a_connection_error_not_marked_replayed() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and is closed now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with make_client(f"http://127.0.0.1:{port}", max_attempts=2, base_backoff_s=0.01) as c:
        with pytest.raises(ApiConnectionError) as caught:
            await c.get_project(UUID(int=1))
    assert caught.value.code == "ConnectError" and not caught.value.replayed
    assert isinstance(caught.value, ApiError)
