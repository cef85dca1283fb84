"""The client against a hostile service: every wait capped, every request and download under a
deadline, every body read up to a cap, every paged read ending by itself.

Each test points a real TrainingClient at tests/support/hostile.py's scripted server
(forwarding to a real emulator where the test needs the service to "answer normally again").
Waits are bounded by `_bounded`, which only turns a hang into a failure: nothing here asserts a
speed.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from syncd.api import (
    ApiError,
    TaggingStatus,
    ThrottledError,
    UnexpectedResponseError,
    limits,
)
from syncd.api.errors import DeadlineExceededError, ResponseTooLargeError
from syncd.emulator.server import EmulatorServer
from tests.api.conftest import make_client
from tests.support.hostile import HostileServer, Reply, Request, forward_after

pytestmark = pytest.mark.anyio

T = TypeVar("T")
HANG_S = 20.0  # generous: only a hang reaches it


async def _bounded(awaitable: Awaitable[T], what: str, seconds: float = HANG_S) -> T:
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except TimeoutError:
        raise AssertionError(f"{what}: still waiting after {seconds:g} s") from None


async def _collect(iterator: Any) -> list[Any]:
    return [item async for item in iterator]


def _throttle(value: str) -> Callable[[Request], Reply]:
    return lambda request: Reply(
        429, headers={"Retry-After": value}, json={"code": "429", "message": "slow down"}
    )


# --- Retry-After is capped, and a request that gives up lifts its block ----------------------

HOSTILE_RETRY_AFTER = ["1000000000", "inf", "nan", "-5", "Wed, 21 Oct 2031 07:28:00 GMT", "x"]


@pytest.mark.parametrize("retry_after", HOSTILE_RETRY_AFTER)
@pytest.mark.slow
async def test_hostile_retry_after_values_are_waited_at_most_the_cap(
    emulator: EmulatorServer, retry_after: str
) -> None:
    """Three 429s asking for forever, nonsense or a date years ahead, then a normal service:
    the call succeeds after waits of at most max_retry_after each."""
    with HostileServer(forward_after(3, _throttle(retry_after)), upstream=emulator.url) as bad:
        async with make_client(bad.url, max_retry_after_s=0.2, rate_per_second=100) as client:
            projects = await _bounded(client.list_projects(), "list_projects after 429s")
    assert isinstance(projects, list)
    assert len(bad.requests) == 4


async def test_a_request_that_gives_up_on_a_throttle_lifts_its_block(
    emulator: EmulatorServer,
) -> None:
    """A Retry-After longer than the retry budget is not waited: the call fails at once, and the
    block it set on the shared Pacer goes with it, so the next call goes straight through."""
    with HostileServer(forward_after(1, _throttle("1000000000")), upstream=emulator.url) as bad:
        async with make_client(bad.url, max_retry_time_s=5.0) as client:
            with pytest.raises(ThrottledError) as caught:
                await _bounded(client.list_projects(), "the throttled call")
            assert caught.value.retry_after is not None and caught.value.retry_after <= 60
            projects = await _bounded(client.list_projects(), "the call after the throttle", 10)
    assert isinstance(projects, list)


# --- every request and download has an overall deadline ------------------------------------


def _trickle(request: Request) -> Reply:
    # A valid start of a JSON list of unannounced length, then one byte every 0.2 s for ever.
    return Reply(body=b"[", stream_bytes=10**9, chunk=1, interval=0.2, unbounded=True)


@pytest.mark.slow
async def test_a_trickling_answer_ends_in_a_deadline_error_naming_the_operation() -> None:
    with HostileServer(_trickle) as bad:
        async with make_client(bad.url, request_deadline_s=1.0, max_attempts=2) as client:
            with pytest.raises(DeadlineExceededError) as caught:
                await _bounded(client.list_projects(), "list_projects from a trickling server")
    assert isinstance(caught.value, ApiError)
    assert "list_projects" in str(caught.value) and "deadline" in str(caught.value)
    assert caught.value.attempts == 2
    assert len(bad.requests) == 2


@pytest.mark.slow
async def test_a_trickling_answer_is_retried_once_the_service_answers_again(
    emulator: EmulatorServer,
) -> None:
    with HostileServer(forward_after(1, _trickle), upstream=emulator.url) as bad:
        async with make_client(bad.url, request_deadline_s=1.0) as client:
            projects = await _bounded(client.list_projects(), "list_projects after a trickle")
    assert isinstance(projects, list)
    assert len(bad.requests) == 2


@pytest.mark.slow
async def test_a_trickling_download_ends_in_a_deadline_error() -> None:
    with HostileServer(_trickle) as bad:
        async with make_client(bad.url, request_deadline_s=1.0) as client:
            with pytest.raises(DeadlineExceededError) as caught:
                await _bounded(
                    _collect(client.download(f"{bad.url}/blob/original", image_id="img-1")),
                    "a trickling download",
                )
    assert "download" in str(caught.value) and "deadline" in str(caught.value)
    assert "img-1" in str(caught.value)


# --- responses are read up to a cap ---------------------------------------------------------


def _huge_json_list() -> bytes:
    # Valid JSON (a list and whitespace), one byte over the cap.
    return b"[" + b" " * (limits.MAX_JSON_RESPONSE_BYTES - 1) + b"]"


@pytest.mark.parametrize(
    "reply",
    [
        pytest.param(lambda: Reply(body=_huge_json_list(), unbounded=True), id="streamed"),
        pytest.param(lambda: Reply(body=_huge_json_list()), id="announced"),
        pytest.param(lambda: Reply(body=b"[]", length=10**12), id="lying-length"),
    ],
)
@pytest.mark.slow
async def test_a_json_answer_over_the_cap_is_refused(reply: Callable[[], Reply]) -> None:
    answer = reply()
    with HostileServer(lambda request: answer) as bad:
        async with make_client(bad.url, max_attempts=1) as client:
            with pytest.raises(ResponseTooLargeError) as caught:
                await _bounded(client.list_projects(), "an oversized answer")
    assert isinstance(caught.value, UnexpectedResponseError)
    assert "list_projects" in str(caught.value)
    assert f"{limits.MAX_JSON_RESPONSE_BYTES}" in str(caught.value)


@pytest.mark.parametrize("announced", [True, False])
async def test_a_download_over_the_cap_is_abandoned_naming_the_image(announced: bool) -> None:
    reply = Reply(stream_bytes=50_000_000, unbounded=not announced)
    received = 0

    async def consume(client: Any) -> None:
        nonlocal received
        async for chunk in client.download(f"{bad.url}/blob/original", image_id="img-7"):
            received += len(chunk)

    with HostileServer(lambda request: reply) as bad:
        async with make_client(bad.url) as client:
            with pytest.raises(ResponseTooLargeError) as caught:
                await _bounded(consume(client), "an oversized download")
    assert "img-7" in str(caught.value)
    assert received <= limits.MAX_DOWNLOAD_BYTES
    if announced:
        assert received == 0  # refused on its Content-Length, before reading


# --- paged reads end by themselves ----------------------------------------------------------


def _image(image_id: str) -> dict[str, Any]:
    return {"id": image_id, "created": "2024-01-01T00:00:00Z", "width": 1, "height": 1}


SAME_PAGE = [_image(str(uuid.UUID(int=n + 1))) for n in range(limits.MAX_TAKE)]


def _endless_same_page(request: Request) -> Reply:
    return Reply(json=SAME_PAGE if request.method == "GET" else [])


def _ever_new_ids(request: Request) -> Reply:
    return Reply(json=[_image(str(uuid.uuid4())) for _ in range(limits.MAX_TAKE)])


@pytest.mark.parametrize(
    "tagging",
    [None, TaggingStatus.TAGGED, TaggingStatus.UNTAGGED],
    ids=["all", "tagged", "untagged"],
)
@pytest.mark.parametrize("script", [_endless_same_page, _ever_new_ids], ids=["same", "new"])
@pytest.mark.slow
async def test_an_endless_image_listing_ends_with_an_unexpected_response(
    script: Callable[[Request], Reply], tagging: TaggingStatus | None
) -> None:
    with HostileServer(script) as bad:
        async with make_client(bad.url, rate_per_second=10_000) as client:
            with pytest.raises(UnexpectedResponseError) as caught:
                await _bounded(
                    _collect(client.iter_images(uuid.uuid4(), tagging_status=tagging)),
                    "an endless listing",
                    60,
                )
    assert "list_images" in str(caught.value)
    pages = len(bad.requests)
    assert pages <= limits.MAX_IMAGES_PER_PROJECT // limits.MAX_TAKE + 2


def _performances(count: Any, page: Callable[[Request], list[dict[str, Any]]]) -> Any:
    def script(request: Request) -> Reply:
        if request.path.endswith("/count"):
            return Reply(json=count)
        return Reply(json=page(request))

    return script


def _perf(image_id: str) -> dict[str, Any]:
    return {"id": image_id, "tags": [], "predictions": []}


_fresh = itertools.count(10**6)


@pytest.mark.parametrize(
    ("count", "page"),
    [
        pytest.param(10**12, lambda r: [], id="count-beyond-quota"),
        pytest.param(
            4 * limits.MAX_TAKE,
            lambda r: [_perf(str(uuid.UUID(int=n + 1))) for n in range(limits.MAX_TAKE)],
            id="same-page",
        ),
        pytest.param("12", lambda r: [], id="count-not-a-number"),
        pytest.param(10, lambda r: {"id": "not a list"}, id="page-not-a-list"),
    ],
)
async def test_an_endless_or_odd_performance_listing_ends_with_an_unexpected_response(
    count: Any, page: Callable[[Request], Any]
) -> None:
    with HostileServer(_performances(count, page)) as bad:
        async with make_client(bad.url, rate_per_second=10_000) as client:
            with pytest.raises(UnexpectedResponseError):
                await _bounded(
                    _collect(client.iter_image_performances(uuid.uuid4(), uuid.uuid4())),
                    "an endless performance listing",
                )
    assert len(bad.requests) <= 6


async def test_a_count_beyond_the_project_quota_is_an_unexpected_response() -> None:
    with HostileServer(lambda request: Reply(json=10**12)) as bad:
        async with make_client(bad.url) as client:
            with pytest.raises(UnexpectedResponseError) as caught:
                await _bounded(client.count_images(uuid.uuid4()), "count_images")
    assert "count_images" in str(caught.value)


async def test_a_compressed_answer_is_read_once_decoded() -> None:
    """The capped read decodes gzip itself: the answer it hands on must not be decoded twice."""
    import gzip
    import json

    body = gzip.compress(json.dumps([]).encode())
    with HostileServer(lambda r: Reply(body=body, headers={"content-encoding": "gzip"})) as bad:
        async with make_client(bad.url) as client:
            assert await _bounded(client.list_projects(), "a gzip answer") == []


async def test_an_answer_that_does_not_decode_is_an_unexpected_response() -> None:
    reply = Reply(body=b"not gzip at all", headers={"content-encoding": "gzip"})
    with HostileServer(lambda r: reply) as bad:
        async with make_client(bad.url) as client:
            with pytest.raises(UnexpectedResponseError, match="list_projects"):
                await _bounded(client.list_projects(), "an undecodable answer")
            with pytest.raises(UnexpectedResponseError, match="img-3"):
                await _bounded(
                    _collect(client.download(f"{bad.url}/blob/x", image_id="img-3")), "download"
                )
