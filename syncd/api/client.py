"""The one async client for the Custom Vision Training API v3.3: one method per endpoint we use.

Public names: TrainingClient, ClientSettings, choose_upload_format.

Every request goes through `TrainingClient._call`, which (1) takes one of `max_concurrency` slots,
(2) waits for its turn at the shared Pacer, (3) sends, and (4) on a retryable failure (see
`pacer.should_retry`) backs off and tries again within the RetryPolicy's budget. A request that may
already have changed state on the service (a lost answer, a 5xx) is replayed only where replaying is
provably harmless; each call site says why. The final failure becomes a typed `errors.ApiError`.

Methods that take many items split them into legal batches (`limits`), run up to `max_concurrency`
batches at once, and are async iterators that yield each batch's results as the batch completes;
if a batch fails, no new batch starts, the batches already running finish and are yielded, then
the first error is raised.

Every attempt runs under an overall deadline (`request_deadline_s`, connect to last byte) and
reads at most `limits.MAX_JSON_RESPONSE_BYTES` (downloads: `limits.MAX_DOWNLOAD_BYTES`); a 429's
wait is capped (`max_retry_after_s`) and lifted when its request gives up; listings end at the
project quota or at a page that brings nothing new.

The training key goes only into the `Training-Key` header of requests to the API's base URL
(an httpx Auth flow): never to image URIs, which are pre-signed, and never into a log or an error.
Whatever the service answers is scrubbed of the key (every form of it, `syncd.redact`) as it is
read: each string of a JSON answer, and the code and message of an error.
"""

from __future__ import annotations

import asyncio
import base64
import random
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

from syncd.optional import without_optional

# httpx imports its command line (rich, pygments) and structlog its pretty tracebacks (rich) when
# those are installed: syncd uses neither (syncd.optional; syncd.log does the same for structlog).
with without_optional("rich", "pygments", "better_exceptions"):
    import httpx
    import structlog

from syncd.api import limits
from syncd.api.errors import (
    ApiConnectionError,
    ApiError,
    DeadlineExceededError,
    ImageNotFoundError,
    ResponseTooLargeError,
    TagNameNotUniqueError,
    TagNotFoundError,
    TrainingNotNeededError,
    UnexpectedResponseError,
    error_for,
    read_error_body,
)
from syncd.api.limits import UploadFormat
from syncd.api.models import (
    Domain,
    DomainType,
    Image,
    ImagePerformance,
    Iteration,
    IterationStatus,
    MetadataResult,
    MetadataStatus,
    Order,
    Project,
    RegionAddResult,
    RegionEntry,
    Tag,
    TagAddResult,
    TaggingStatus,
    TagPair,
    TagType,
    TrainingType,
    UploadItem,
    UploadResult,
    UploadStatus,
    parse_domain,
    parse_image,
    parse_image_performance,
    parse_iteration,
    parse_project,
    parse_region,
    parse_region_entry,
    parse_tag,
)
from syncd.api.pacer import (
    PACED,
    DeadlineExceeded,
    Pacer,
    RetryPolicy,
    Wait,
    may_have_reached_service,
    retry_after_seconds,
    shared_pacer,
    should_retry,
    wait_reason,
)
from syncd.credentials import TrainingKey
from syncd.redact import loads_scrubbed, scrub
from syncd.tls import take_prepared

_log = structlog.get_logger(component="api")

R = TypeVar("R")
Id = UUID | str

# The uplink assumed unless told (service.uplink_mbps): 100 Mbit/s, a common business line.
DEFAULT_UPLINK_BYTES_PER_S = 100e6 / 8
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
_EPOCH = datetime.fromtimestamp(0, UTC)
# A request held back by the pacer for at least this long is worth telling `on_wait` about (a
# person wonders after a second or two; the usual 1/rate spacing is far below it).
PACING_WAIT_SHOWN_S = 1.0
# The operations that create images: the ones a tier may limit apart (upload_rate_per_second).
_IMAGE_CREATING = frozenset({"upload_images"})


@dataclass(frozen=True)
class ClientSettings:
    """Rate, concurrency, retry budget, timeouts and batching knobs (defaults suit S0)."""

    # Calls per second the Pacer starts at and never exceeds (S0 and F0: 10/s; F0 uploads: below).
    rate_per_second: float = 10.0
    # Image-creating calls per second, where the tier limits them apart from the rest (F0's
    # uploads are throttled near 2/s while reads go at 10/s); None: only rate_per_second.
    upload_rate_per_second: float | None = None
    # Requests (and batches of one call) in flight at once: the rate times the time a call takes
    # (Little's law). 10, a second's worth at the quota: a first sync's uploads start in a burst
    # once their tags exist, and with 8 the burst's last two waited for an answer (bench A2: 0.73
    # -> 0.84). Not 16: H's 100k-image first sync met two 429s (a busy service sees requests
    # bunched that were sent apart) and fell from 0.99 to 0.81. 4 capped a first sync at ~7
    # calls/s (bench A). The Pacer, not this, keeps the rate under the quota.
    max_concurrency: int = 10
    # Retry budget per call: attempts in all, and seconds from the first attempt.
    max_attempts: int = 8
    max_retry_time_s: float = 300.0
    # Backoff: full jitter in [0, min(max_backoff_s, base_backoff_s * 2**(attempt-1))].
    base_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    # Timeouts; read/write are generous for a 64-image upload of 6 MB images on a slow uplink.
    connect_timeout_s: float = 10.0
    # The longest one Retry-After holds requests back; a longer ask is cut to this. A wait that
    # does not fit what is left of the retry budget is not made: the request fails at once.
    max_retry_after_s: float = limits.MAX_RETRY_AFTER_S
    # Overall deadline of one attempt, from sending to the last byte of the answer (or of a
    # download), whatever the per-read timeouts: a trickling answer ends in a retry or a
    # DeadlineExceededError. 300 s carries the biggest batch (max_batch_bytes, 64 MB) over a
    # ~2 Mbit/s uplink; a download of a 6 MB original needs ~25 s at that rate.
    request_deadline_s: float = 300.0
    read_timeout_s: float = 120.0
    write_timeout_s: float = 120.0
    pool_timeout_s: float = 120.0
    # Wire bytes per upload call (not a service limit: bounds memory and the cost of a replay).
    max_batch_bytes: int = 64 * 1024 * 1024
    # The uplink, in bytes per second (service.uplink_mbps): with the rate, what one call is
    # worth in bytes when choosing an upload format (call_cost).
    uplink_bytes_per_s: float = DEFAULT_UPLINK_BYTES_PER_S
    # A fixed worth of one call in bytes, overriding the one the uplink and the rate give.
    call_cost_bytes: int | None = None

    def call_cost(self) -> float:
        """What one call is worth in bytes: what the uplink carries in the 1/rate seconds one
        call takes of the rate quota (100 Mbit/s at 10/s: 1.25 MB). Multipart needs a second
        call per batch for syncd's metadata, so small images go in the files format (one call,
        base64) and camera-sized ones raw, where the third more bytes of base64 costs more than
        the extra call; the less the quota allows, the bigger the images that go in one call."""
        if self.call_cost_bytes is not None:
            return float(self.call_cost_bytes)
        return self.uplink_bytes_per_s / self.rate_per_second

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts,
            max_elapsed_s=self.max_retry_time_s,
            base_backoff_s=self.base_backoff_s,
            max_backoff_s=self.max_backoff_s,
        )


class _KeyAuth(httpx.Auth):
    """Put the training key on requests to the API base URL, and on nothing else."""

    def __init__(self, base_url: str, key: TrainingKey | None) -> None:
        self._base_url = base_url
        self._key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._key is not None and str(request.url).startswith(self._base_url):
            request.headers["Training-Key"] = self._key.reveal()
        yield request


class _ScrubbedResponse:
    """A success answer as the parse functions read it: `json()` gives the body with the key
    scrubbed out of every string in it (names, descriptions, anything the service echoes)."""

    def __init__(self, response: httpx.Response, secret: str | None) -> None:
        self._response = response
        self._secrets = (secret,) if secret else ()

    def json(self) -> Any:
        return loads_scrubbed(self._response.text, self._secrets)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._response, name)


_NO_AUTH = httpx.Auth()  # the no-op flow: for pre-signed image URIs


def _csv(ids: Iterable[Id]) -> str:
    return ",".join(str(i) for i in ids)


def _json(response: httpx.Response) -> Any:
    return response.json()


def _no_body(response: httpx.Response) -> None:
    return None


class _Implausible(ValueError):
    """A well-formed answer no real project can give; the text is ours, not the server's."""


def _count(response: httpx.Response) -> int:
    value = response.json()
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"a count must be a bare integer, got {str(value)[:40]!r}")
    if not 0 <= value <= limits.MAX_IMAGES_PER_PROJECT:
        raise _Implausible(
            f"a count of {value} is outside 0..{limits.MAX_IMAGES_PER_PROJECT}, the project quota"
        )
    return value


# Headers describing the wire form of a body, not the decoded bytes a read answer holds.
_FRAMING_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


class _TooLarge(Exception):
    """An answer over its size cap (raised before it is read whole)."""

    def __init__(self, cap: int, size: int | None, status: int | None = None) -> None:
        self.cap = cap
        self.status = status
        super().__init__(
            f"an answer of {size if size is not None else 'more than ' + str(cap)} bytes is over"
            f" the {cap}-byte cap"
        )


def _check_length(response: httpx.Response, cap: int) -> None:
    """Refuse an answer whose Content-Length is over `cap`, before reading any of it."""
    try:
        announced = int(response.headers.get("content-length", ""))
    except ValueError:
        return  # none (or nonsense): the read below stops at the cap anyway
    if announced > cap:
        raise _TooLarge(cap, announced, response.status_code)


async def _read_capped(response: httpx.Response, cap: int) -> bytes:
    """Read a streamed answer whole, but stop and raise _TooLarge past `cap` bytes (decoded)."""
    _check_length(response, cap)
    parts: list[bytes] = []
    size = 0
    async for part in response.aiter_bytes():
        size += len(part)
        if size > cap:
            raise _TooLarge(cap, None, response.status_code)
        parts.append(part)
    return b"".join(parts)


def choose_upload_format(
    items: Sequence[UploadItem], metadata: Mapping[str, str] | None, settings: ClientSettings
) -> UploadFormat:
    """Return the upload format that costs less for this job: calls * call_cost() + bytes, both
    limits in one unit (bytes; divided by the uplink, the seconds of the line and of the quota).

    Multipart sends raw bytes but needs one call per tag set (and per 64 images), plus one
    UpdateImageMetadata call per batch when metadata is wanted; files sends base64 (~4/3 the
    bytes) but mixes tag sets in one call and carries metadata. Ties go to multipart.
    Items with regions go in the files format whatever it costs: it is the only create call
    that carries regions (CreateImagesFromData has none, docs/spec/REGIONS.md).
    """
    if any(item.regions for item in items):
        return UploadFormat.FILES
    costs: dict[UploadFormat, float] = {}
    for upload_format in (UploadFormat.MULTIPART, UploadFormat.FILES):
        batches = limits.upload_batches(
            items,
            size_of=lambda item: len(item.data),
            tags_of=lambda item: item.tag_ids,
            upload_format=upload_format,
            max_batch_bytes=settings.max_batch_bytes,
        )
        calls = len(batches)
        if metadata and upload_format is UploadFormat.MULTIPART:
            calls *= 2
        wire = sum(limits.encoded_size(len(item.data), upload_format) for item in items)
        costs[upload_format] = calls * settings.call_cost() + wire
    return min(costs, key=lambda f: (costs[f], f is not UploadFormat.MULTIPART))


def _part_name(index: int, key: str) -> str:
    """A multipart/entry name the service echoes back (sourceUrl); ASCII, unique in the batch."""
    suffix = next((s for s in _IMAGE_SUFFIXES if key.lower().endswith(s)), "")
    return f"image{index}{suffix}"


class TrainingClient:
    """Async client for one Custom Vision training resource; use as `async with`."""

    def __init__(
        self,
        endpoint: str,
        key: TrainingKey | None,
        *,
        settings: ClientSettings | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        pacer: Pacer | None = None,
        api_version: str = "v3.3",
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings or ClientSettings()
        self._endpoint = endpoint.rstrip("/")
        self._base = f"{self._endpoint}/customvision/{api_version}/training"
        self._secret = key.reveal() if key is not None else None
        self._secrets = (self._secret,) if self._secret else ()
        if pacer is None:
            pacer = (
                shared_pacer(self._endpoint, self._secret, self.settings.rate_per_second)
                if self._secret
                else Pacer(self.settings.rate_per_second)
            )
        self.pacer = pacer
        # Image-creating calls pass this one too (then the shared one): see ClientSettings.
        self.upload_pacer: Pacer | None = None
        upload_rate = self.settings.upload_rate_per_second
        if upload_rate is not None and upload_rate < self.settings.rate_per_second:
            self.upload_pacer = (
                shared_pacer(self._endpoint, self._secret, upload_rate, kind="uploads")
                if self._secret
                else Pacer(upload_rate)
            )
        self.api_calls = 0  # requests sent to the API (attempts, retries included; no downloads)
        # Told of every attempt's outcome: (operation, HTTP status or transport error's name).
        self.on_call: Callable[[str, str], None] | None = None
        # Told of every wait before a request is sent (again): a retry's backoff, a throttled
        # wait, a long pacing wait. The client only reports; whoever set it draws (the CLI).
        self.on_wait: Callable[[Wait], None] | None = None
        self._retry = self.settings.retry_policy()
        self._rand = rand
        self._clock = time.monotonic
        self._slots = asyncio.Semaphore(self.settings.max_concurrency)
        self._download_slots = asyncio.Semaphore(self.settings.max_concurrency)
        s = self.settings
        self._http = httpx.AsyncClient(
            transport=transport,
            # The context syncd.tls built while the command started, if any (else httpx's own).
            verify=(take_prepared() if transport is None else None) or True,
            auth=_KeyAuth(self._base, key),
            headers={"Accept": "application/json", "User-Agent": "syncd"},
            timeout=httpx.Timeout(
                connect=s.connect_timeout_s,
                read=s.read_timeout_s,
                write=s.write_timeout_s,
                pool=s.pool_timeout_s,
            ),
            # API calls and downloads each hold at most max_concurrency connections.
            limits=httpx.Limits(
                max_connections=2 * s.max_concurrency,
                max_keepalive_connections=2 * s.max_concurrency,
                keepalive_expiry=30,
            ),
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"TrainingClient({self._endpoint!r})"

    async def __aenter__(self) -> TrainingClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # --- the one request path -------------------------------------------------------------

    async def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        parse: Callable[[httpx.Response], R],
        replay: bool | Callable[[], Awaitable[R | None]],
        ok: tuple[int, ...] = (200,),
        **request: Any,
    ) -> R:
        """Send one API request with pacing and retries; return parse(response) or raise ApiError.

        `replay` says what to do after an attempt that may have reached the service: True if
        sending it again is harmless, False to give up, or a lookup that returns the result if
        the earlier attempt did take effect (None: it did not, send again).
        """
        url = f"{self._base}{path}"
        owner = object()  # names this call's throttle blocks on the shared Pacer
        try:
            return await self._attempts(operation, method, url, parse, replay, ok, owner, request)
        finally:
            # Given up, failed or done: no block of ours may hold anyone back any more.
            for pacer in self._pacers(operation):
                pacer.release(owner)

    def _pacers(self, operation: str) -> tuple[Pacer, ...]:
        """The pacers a call passes: its operation's own (if it has one), then the shared one."""
        if self.upload_pacer is not None and operation in _IMAGE_CREATING:
            return (self.upload_pacer, self.pacer)
        return (self.pacer,)

    async def _attempts(
        self,
        operation: str,
        method: str,
        url: str,
        parse: Callable[[httpx.Response], R],
        replay: bool | Callable[[], Awaitable[R | None]],
        ok: tuple[int, ...],
        owner: object,
        request: dict[str, Any],
    ) -> R:
        started = self._clock()
        attempt = 0
        replayed = False
        pacers = self._pacers(operation)
        while True:
            attempt += 1
            if replayed and callable(replay):
                found = await replay()
                if found is not None:
                    _log.info("replay_resolved", operation=operation, attempt=attempt)
                    return found
            response: httpx.Response | None = None
            failure: Exception | None = None
            async with self._slots:
                self._tell_pacing(operation)
                for pacer in pacers:
                    await pacer.acquire()
                self.api_calls += 1
                try:
                    response = await self._send(method, url, request)
                except (httpx.TransportError, DeadlineExceeded) as exc:
                    failure = exc
                except httpx.DecodingError:
                    raise UnexpectedResponseError(
                        operation,
                        service_message="an answer that does not decode (content-encoding)",
                        attempts=attempt,
                        replayed=replayed,
                    ) from None
                except _TooLarge as exc:
                    # Not retried: a service that sends this once will send it again.
                    raise ResponseTooLargeError(
                        operation,
                        status=exc.status,
                        service_message=str(exc),
                        attempts=attempt,
                        replayed=replayed,
                    ) from None
            status = response.status_code if response is not None else None
            if self.on_call is not None:
                self.on_call(operation, str(status) if failure is None else type(failure).__name__)
            if response is not None and status != 429:
                for pacer in pacers:
                    pacer.on_success()  # it passed the quota, whatever the answer
            if response is not None and status in ok:
                try:
                    return parse(_ScrubbedResponse(response, self._secret))  # type: ignore[arg-type]
                # RecursionError: JSON nested thousands deep (json.loads recurses per level).
                except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
                    text = str(exc) if isinstance(exc, _Implausible) else "unreadable answer"
                    raise UnexpectedResponseError(
                        operation,
                        status=status,
                        service_message=f"{text} ({type(exc).__name__})",
                        attempts=attempt,
                    ) from None
            retry_after: float | None = None
            delay = 0.0
            if status == 429 and response is not None:
                _, message = read_error_body(response)
                retry_after = retry_after_seconds(
                    response.headers, message, cap=self.settings.max_retry_after_s
                )
                # The Pacer holds every request back for the wait; the retry waits in acquire().
                # If the wait does not fit the budget the call gives up, and _call lifts the block.
                # Every pacer the call passed cuts its rate: the 429 does not say whose quota.
                wait = max(pacer.on_throttle(retry_after, owner=owner) for pacer in pacers)
                retry_after = wait
            else:
                wait = delay = self._retry.backoff(attempt, self._rand)
            retryable = should_retry(status=status, error=failure)
            ambiguous = may_have_reached_service(status=status, error=failure)
            if ambiguous and replay is False:
                retryable = False
            elapsed = self._clock() - started
            if not retryable or not self._retry.allows(attempt, elapsed, wait):
                raise self._failure(operation, response, failure, attempt, replayed, retry_after)
            replayed = replayed or ambiguous
            self._waiting(operation, attempt, wait, status, failure)
            if delay > 0:
                await asyncio.sleep(delay)

    def _waiting(
        self,
        operation: str,
        attempt: int,
        seconds: float,
        status: int | None,
        failure: BaseException | None,
    ) -> None:
        """Log a retry's wait (the daemon's account of it) and tell the observer (the CLI's)."""
        reason = wait_reason(status, failure)
        of = self._retry.max_attempts
        _log.info(
            "retry",
            operation=operation,
            attempt=attempt,
            of=of,
            reason=reason,
            status=status,
            error=type(failure).__name__ if failure else None,
            delay=round(seconds, 3),
        )
        if self.on_wait is not None:
            self.on_wait(Wait(reason, operation, attempt, of, seconds))

    def _tell_pacing(self, operation: str) -> None:
        """Tell the observer of a pacing wait long enough for a person to wonder about."""
        if self.on_wait is None:
            return
        ahead = self.pacer.wait_ahead()
        if ahead >= PACING_WAIT_SHOWN_S:
            self.on_wait(Wait(PACED, operation, 0, self._retry.max_attempts, ahead))

    async def _send(self, method: str, url: str, request: dict[str, Any]) -> httpx.Response:
        """One attempt: send, and read the whole answer within the request deadline and the JSON
        size cap; return it read (raise DeadlineExceeded or _TooLarge)."""
        deadline = self.settings.request_deadline_s
        try:
            async with asyncio.timeout(deadline) as timer:
                streamed = await self._http.send(
                    self._http.build_request(method, url, **request), stream=True
                )
                try:
                    body = await _read_capped(streamed, limits.MAX_JSON_RESPONSE_BYTES)
                finally:
                    await streamed.aclose()
        except TimeoutError:
            if not timer.expired():
                raise
            raise DeadlineExceeded(
                f"no complete answer within the {deadline:g} s request deadline"
            ) from None
        # The body is decoded already (the cap counts decoded bytes: no zip bomb gets past it).
        headers = [
            (name, value)
            for name, value in streamed.headers.multi_items()
            if name.lower() not in _FRAMING_HEADERS
        ]
        return httpx.Response(
            streamed.status_code, headers=headers, content=body, request=streamed.request
        )

    def _failure(
        self,
        operation: str,
        response: httpx.Response | None,
        failure: Exception | None,
        attempts: int,
        replayed: bool,
        retry_after: float | None,
    ) -> ApiError:
        if response is not None:
            error = error_for(
                operation,
                response,
                attempts=attempts,
                replayed=replayed,
                secret=self._secret,
                retry_after=retry_after,
            )
        else:
            text = scrub(str(failure) or type(failure).__name__, self._secrets)
            kind = DeadlineExceededError if isinstance(failure, DeadlineExceeded) else None
            error = (kind or ApiConnectionError)(
                operation,
                code=type(failure).__name__,
                service_message=text[:200],
                attempts=attempts,
                replayed=replayed,
            )
        # Not logged here: the error is raised, and whoever handles it reports it once.
        return error

    async def _stream(self, jobs: Iterable[Callable[[], Awaitable[R]]]) -> AsyncIterator[R]:
        """Run jobs, at most max_concurrency at once; yield each result as its job completes.

        On a failure no new job starts; those running finish and are yielded; then it raises.
        """
        pending: set[asyncio.Task[R]] = set()
        waiting = iter(jobs)
        error: BaseException | None = None
        try:
            while True:
                while error is None and len(pending) < self.settings.max_concurrency:
                    job = next(waiting, None)
                    if job is None:
                        break
                    pending.add(asyncio.ensure_future(job()))
                if not pending:
                    break
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    exc = task.exception()
                    if exc is not None:
                        error = error or exc
                    else:
                        yield task.result()
            if error is not None:
                raise error
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    # --- projects -------------------------------------------------------------------------

    async def get_project(self, project_id: Id) -> Project:
        """Return the project; raise ProjectNotFoundError if it does not exist."""
        return await self._call(
            "get_project",
            "GET",
            f"/projects/{project_id}",
            parse=lambda r: parse_project(r.json()),
            replay=True,
        )

    async def list_projects(self) -> list[Project]:
        """Return every project of the resource."""
        return await self._call(
            "list_projects",
            "GET",
            "/projects",
            parse=lambda r: [parse_project(p) for p in r.json()],
            replay=True,
        )

    async def create_project(
        self,
        name: str,
        *,
        domain_id: Id | None = None,
        classification_type: str = "Multilabel",
        description: str | None = None,
        detection: bool = False,
    ) -> Project:
        """Create a classification project (the General domain unless domain_id is given), or
        with `detection` an object detection one (the General detection domain unless given;
        no classificationType, which only classification projects have)."""
        if domain_id is None:
            domain_id = await self._general_domain(
                DomainType.OBJECT_DETECTION if detection else DomainType.CLASSIFICATION
            )
        params = {"name": name, "domainId": str(domain_id)}
        if not detection:
            params["classificationType"] = classification_type
        if description:
            params["description"] = description

        async def existing() -> Project | None:
            # A replay could make a second project of the same name: look for the first one.
            return next((p for p in await self.list_projects() if p.name == name), None)

        return await self._call(
            "create_project",
            "POST",
            "/projects",
            params=params,
            parse=lambda r: parse_project(r.json()),
            replay=existing,
        )

    async def _general_domain(self, domain_type: DomainType) -> UUID:
        of_type = [d for d in await self.list_domains() if d.type == domain_type]
        if not of_type:
            raise UnexpectedResponseError(
                "list_domains", service_message=f"no {domain_type} domain"
            )
        general = [d for d in of_type if d.name == "General"]
        return (general or of_type)[0].id

    async def list_domains(self) -> list[Domain]:
        """Return the resource's domains (GetDomains)."""
        return await self._call(
            "list_domains",
            "GET",
            "/domains",
            parse=lambda r: [parse_domain(d) for d in r.json()],
            replay=True,
        )

    async def get_domain(self, domain_id: Id) -> Domain:
        """Return one domain (GetDomain); raise NotFoundError (NotFoundDomain) if unknown."""
        return await self._call(
            "get_domain",
            "GET",
            f"/domains/{domain_id}",
            parse=lambda r: parse_domain(r.json()),
            replay=True,
        )

    async def project_domain(self, project_id: Id) -> Domain | None:
        """Return the domain in the project's settings (its type says classification or object
        detection), or None if the settings name none."""
        project = await self.get_project(project_id)
        if project.domain_id is None:
            return None
        return await self.get_domain(project.domain_id)

    # --- tags -----------------------------------------------------------------------------

    async def list_tags(self, project_id: Id) -> list[Tag]:
        """Return the project's tags (in no particular order)."""
        return await self._call(
            "list_tags",
            "GET",
            f"/projects/{project_id}/tags",
            parse=lambda r: [parse_tag(t) for t in r.json()],
            replay=True,
        )

    async def _find_tag(self, project_id: Id, name: str) -> Tag | None:
        tags = await self.list_tags(project_id)
        exact = [t for t in tags if t.name == name]
        folded = [t for t in tags if t.name.casefold() == name.casefold()]
        found = exact or folded
        return found[0] if found else None

    async def create_tag(
        self, project_id: Id, name: str, tag_type: TagType = TagType.REGULAR
    ) -> Tag:
        """Create a tag; raise TagNameNotUniqueError if it exists."""
        params = {"name": name, "type": str(tag_type)}
        try:
            return await self._call(
                "create_tag",
                "POST",
                f"/projects/{project_id}/tags",
                params=params,
                parse=lambda r: parse_tag(r.json()),
                # Not idempotent: before a replay, look the name up; if the lost attempt created
                # the tag, that tag is the answer.
                replay=lambda: self._find_tag(project_id, name),
            )
        except TagNameNotUniqueError as exc:
            # The lookup raced the lost attempt's commit: the name now exists because we made it.
            if exc.replayed:
                tag = await self._find_tag(project_id, name)
                if tag is not None:
                    return tag
            raise

    async def delete_tag(self, project_id: Id, tag_id: Id) -> None:
        """Delete a tag (its images lose it); raise TagNotFoundError if it never existed."""
        try:
            await self._call(
                "delete_tag",
                "DELETE",
                f"/projects/{project_id}/tags/{tag_id}",
                ok=(200, 204),
                parse=_no_body,
                # Idempotent in effect: a second delete finds nothing to delete (handled below).
                replay=True,
            )
        except TagNotFoundError as exc:
            # NotFoundTag after a lost answer: the earlier attempt deleted it. Success.
            if not exc.replayed:
                raise

    # --- counting and listing -------------------------------------------------------------

    async def count_images(
        self,
        project_id: Id,
        *,
        tagging_status: TaggingStatus | None = None,
        tag_ids: Iterable[Id] | None = None,
        metadata_filter: str | None = None,
    ) -> int:
        """Return how many images match (GetImageCount; tag ids are a union, not split)."""
        params: dict[str, str] = {}
        if tagging_status is not None:
            params["taggingStatus"] = str(tagging_status)
        if tag_ids:
            # The count endpoints set no maxItems; splitting would double-count a union.
            params["tagIds"] = _csv(tag_ids)
        if metadata_filter:
            params["$filter"] = metadata_filter
        return await self._call(
            "count_images",
            "GET",
            f"/projects/{project_id}/images/count",
            params=params,
            parse=_count,
            replay=True,
        )

    async def iter_images(
        self,
        project_id: Id,
        *,
        tagging_status: TaggingStatus | None = None,
        tag_ids: Sequence[Id] | None = None,
        metadata_filter: str | None = None,
        order: Order = Order.OLDEST,
        page_size: int = limits.MAX_TAKE,
        skip: int = 0,
    ) -> AsyncIterator[Image]:
        """Yield every matching image once, paging with skip/take (GetImages), from the `skip`th
        (the caller has the ones before; without tag ids only).

        Oldest-first by default, so images added during the walk land on later pages instead of
        shifting earlier ones; images deleted during the walk may shift one past us (a later full
        listing catches it). More than 20 tag ids are walked 20 at a time (the filter is a union).
        """
        take = max(1, min(page_size, limits.MAX_TAKE))
        tag_groups: list[Sequence[Id] | None] = (
            list(limits.chunked(list(tag_ids), limits.MAX_TAG_FILTER_IDS)) if tag_ids else [None]
        )
        if skip and tag_ids:
            raise ValueError("skip is for a listing without tag ids")
        start = skip
        seen: set[UUID] = set()
        for group in tag_groups:
            skip = start
            while True:
                params: dict[str, str | int] = {"orderBy": str(order), "take": take, "skip": skip}
                if tagging_status is not None:
                    params["taggingStatus"] = str(tagging_status)
                if group:
                    params["tagIds"] = _csv(group)
                if metadata_filter:
                    params["$filter"] = metadata_filter
                page = await self._call(
                    "list_images",
                    "GET",
                    f"/projects/{project_id}/images",
                    params=params,
                    parse=lambda r: [parse_image(i) for i in r.json()],
                    replay=True,
                )
                new = 0
                for image in page:
                    if image.id not in seen:
                        seen.add(image.id)
                        new += 1
                        yield image
                if len(page) < take:
                    break
                # A full page must move the walk on, and no walk outgrows the project quota:
                # otherwise the service is repeating itself or inventing ids, and paging on
                # would never end.
                if new == 0:
                    raise _endless("list_images", f"a full page at skip {skip} held no new image")
                skip += take
                if (
                    skip >= limits.MAX_IMAGES_PER_PROJECT
                    or len(seen) > limits.MAX_IMAGES_PER_PROJECT
                ):
                    raise _endless(
                        "list_images",
                        f"the listing goes on past {limits.MAX_IMAGES_PER_PROJECT} images,"
                        " the project quota",
                    )

    async def get_images_by_ids(self, project_id: Id, image_ids: Iterable[Id]) -> list[Image]:
        """Return the images with these ids that exist (in no particular order)."""
        ids = list(dict.fromkeys(str(i) for i in image_ids))
        path = f"/projects/{project_id}/images/id"

        def job(chunk: Sequence[str]) -> Callable[[], Awaitable[list[Image]]]:
            return lambda: self._call(
                "get_images_by_ids",
                "GET",
                path,
                params={"imageIds": _csv(chunk)},
                parse=lambda r: [parse_image(i) for i in r.json()],
                replay=True,
            )

        chunks = limits.chunked(ids, limits.MAX_IDS_PER_LOOKUP)
        return [image async for page in self._stream(job(c) for c in chunks) for image in page]

    # --- uploads --------------------------------------------------------------------------

    async def upload_images(
        self,
        project_id: Id,
        items: Sequence[UploadItem],
        metadata: Mapping[str, str] | None = None,
    ) -> AsyncIterator[list[UploadResult]]:
        """Create images; yield each batch's per-item results as the batch completes.

        Items over MAX_IMAGE_BYTES are not sent (ErrorImageSize, first), nor items with over
        MAX_REGIONS_PER_IMAGE regions (ErrorRegionLimitExceed). Tags past the 20 an upload
        carries are added afterwards. Regions travel in the create call (files format). With
        metadata, every image the items end up as (created or duplicate with a known id)
        carries it when its batch is yielded.
        """
        keys = [item.key for item in items]
        if len(set(keys)) != len(keys):
            raise ValueError("upload item keys must be distinct")
        limits.check_metadata(metadata)
        for item in items:
            if len(set(item.tag_ids)) > limits.MAX_TAGS_PER_IMAGE:
                raise ValueError(f"{item.key!r} has over {limits.MAX_TAGS_PER_IMAGE} tags")
        too_big = [i for i in items if len(i.data) > limits.MAX_IMAGE_BYTES]
        too_many_regions = [
            i
            for i in items
            if len(i.data) <= limits.MAX_IMAGE_BYTES
            and len(set(i.regions)) > limits.MAX_REGIONS_PER_IMAGE
        ]
        sendable = [
            i
            for i in items
            if len(i.data) <= limits.MAX_IMAGE_BYTES
            and len(set(i.regions)) <= limits.MAX_REGIONS_PER_IMAGE
        ]
        if too_big:
            yield [UploadResult(i.key, UploadStatus.ERROR_IMAGE_SIZE) for i in too_big]
        if too_many_regions:
            yield [
                UploadResult(i.key, UploadStatus.ERROR_REGION_LIMIT_EXCEED)
                for i in too_many_regions
            ]
        if not sendable:
            return
        upload_format = choose_upload_format(sendable, metadata, self.settings)
        batches = limits.upload_batches(
            sendable,
            size_of=lambda item: len(item.data),
            tags_of=lambda item: item.tag_ids,
            upload_format=upload_format,
            max_batch_bytes=self.settings.max_batch_bytes,
        )
        _log.info(
            "upload_plan",
            images=len(sendable),
            batches=len(batches),
            format=str(upload_format),
        )

        def job(batch: list[UploadItem]) -> Callable[[], Awaitable[list[UploadResult]]]:
            return lambda: self._upload_batch(project_id, batch, upload_format, metadata)

        async for results in self._stream(job(b) for b in batches):
            yield results

    async def _upload_batch(
        self,
        project_id: Id,
        batch: list[UploadItem],
        upload_format: UploadFormat,
        metadata: Mapping[str, str] | None,
    ) -> list[UploadResult]:
        names = [_part_name(n, item.key) for n, item in enumerate(batch)]
        if upload_format is UploadFormat.MULTIPART:
            tags = limits.upload_tags(batch[0].tag_ids)
            request: dict[str, Any] = {
                "files": [
                    ("imageData", (name, item.data, "application/octet-stream"))
                    for name, item in zip(names, batch, strict=True)
                ],
            }
            if tags:
                request["params"] = {"tagIds": _csv(tags)}
            path = f"/projects/{project_id}/images"
        else:
            body: dict[str, Any] = {
                "images": [
                    {
                        "name": name,
                        "contents": base64.b64encode(item.data).decode("ascii"),
                        "tagIds": [str(t) for t in limits.upload_tags(item.tag_ids)],
                        **(
                            {"regions": [r.wire() for r in dict.fromkeys(item.regions)]}
                            if item.regions
                            else {}
                        ),
                    }
                    for name, item in zip(names, batch, strict=True)
                ]
            }
            if metadata:
                body["metadata"] = dict(metadata)
            request = {"json": body}
            path = f"/projects/{project_id}/images/files"
        summary = await self._call(
            "upload_images",
            "POST",
            path,
            ok=(200, 207),
            parse=_json,
            # Replaying an upload is harmless: the service answers OKDuplicate for bytes the
            # project already has, so a lost answer never turns into a second image.
            replay=True,
            **request,
        )
        results = self._upload_results(batch, names, summary)
        await self._finish_uploads(project_id, batch, results, upload_format, metadata)
        return results

    @staticmethod
    def _upload_results(
        batch: list[UploadItem], names: list[str], summary: Any
    ) -> list[UploadResult]:
        entries = summary.get("images") if isinstance(summary, dict) else None
        if not isinstance(entries, list):
            raise UnexpectedResponseError("upload_images", status=200, service_message="no images")
        # The service echoes each part's filename in sourceUrl, quotes included [R].
        by_name = {str(e.get("sourceUrl") or "").strip('"'): e for e in entries}
        if not set(names) <= set(by_name) and len(entries) == len(batch):
            by_name = dict(zip(names, entries, strict=True))  # fall back to answer order
        results = []
        for name, item in zip(names, batch, strict=True):
            entry = by_name.get(name)
            if entry is None:
                results.append(UploadResult(item.key, UploadStatus.ERROR_UNKNOWN))
                continue
            image = entry.get("image")
            results.append(
                UploadResult(
                    item.key,
                    UploadStatus.parse(entry.get("status")),
                    parse_image(image) if isinstance(image, dict) and image.get("id") else None,
                )
            )
        return results

    async def _finish_uploads(
        self,
        project_id: Id,
        batch: list[UploadItem],
        results: list[UploadResult],
        upload_format: UploadFormat,
        metadata: Mapping[str, str] | None,
    ) -> None:
        """Add the tags an upload could not carry and the metadata multipart could not."""
        landed = [
            (item, result, result.image)
            for item, result in zip(batch, results, strict=True)
            if result.ok and result.image is not None
        ]
        extra = [
            TagPair(image.id, tag)
            for item, _, image in landed
            for tag in limits.extra_tags(item.tag_ids)
            if tag not in image.tag_ids
        ]
        if extra:
            async for _ in self.add_tags(project_id, extra):
                pass
        if metadata:
            # Multipart carries no metadata at all; whether a files batch's metadata reaches a
            # duplicate is undocumented, so duplicates get it explicitly too.
            ids = [
                image.id
                for _, result, image in landed
                if upload_format is UploadFormat.MULTIPART
                or result.status is UploadStatus.OK_DUPLICATE
            ]
            if ids:
                async for updated in self.update_metadata(project_id, ids, metadata):
                    for entry in updated:
                        if entry.status is not MetadataStatus.OK:
                            _log.warning(
                                "metadata_not_set",
                                image_id=str(entry.image_id),
                                status=str(entry.status),
                            )

    # --- tags on images, deletion, metadata -----------------------------------------------

    async def add_tags(
        self, project_id: Id, pairs: Iterable[TagPair]
    ) -> AsyncIterator[TagAddResult]:
        """Tag images; yield each batch's created/duplicated/exceeded pairs as it completes."""
        path = f"/projects/{project_id}/images/tags"

        def job(chunk: list[TagPair]) -> Callable[[], Awaitable[TagAddResult]]:
            body = {"tags": [{"imageId": str(p.image_id), "tagId": str(p.tag_id)} for p in chunk]}
            return lambda: self._call(
                "add_tags",
                "POST",
                path,
                json=body,
                parse=_tag_add_result,
                # Idempotent by design: a pair that already exists comes back in `duplicated`.
                replay=True,
            )

        async for result in self._stream(job(c) for c in limits.tag_pair_batches(pairs)):
            yield result

    # --- regions (object detection) --------------------------------------------------------

    async def create_image_regions(
        self, project_id: Id, entries: Iterable[RegionEntry]
    ) -> AsyncIterator[RegionAddResult]:
        """Add regions to images (CreateImageRegions, <= 64 entries a call, repeats dropped);
        yield each batch's created / duplicated / exceeded as it completes."""
        path = f"/projects/{project_id}/images/regions"

        def job(chunk: list[RegionEntry]) -> Callable[[], Awaitable[RegionAddResult]]:
            body = {"regions": [entry.wire() for entry in chunk]}
            return lambda: self._call(
                "create_image_regions",
                "POST",
                path,
                json=body,
                ok=(200, 207),
                parse=_region_add_result,
                # Replaying is harmless: a region the lost attempt created comes back in
                # `duplicated` (same image, tag and box), never as a second region. Its id is
                # then not in this answer; the caller reads the image to learn it.
                replay=True,
            )

        batches = limits.region_batches(entries, limits.MAX_REGIONS_PER_CREATE)
        async for result in self._stream(job(b) for b in batches):
            yield result

    async def delete_image_regions(
        self, project_id: Id, region_ids: Iterable[Id]
    ) -> AsyncIterator[list[UUID]]:
        """Delete regions (DeleteImageRegions, <= 64 ids a call); yield each batch's ids once
        they are gone."""
        path = f"/projects/{project_id}/images/regions"
        ids = [UUID(str(i)) for i in region_ids]

        def job(chunk: list[UUID]) -> Callable[[], Awaitable[list[UUID]]]:
            async def run() -> list[UUID]:
                await self._call(
                    "delete_image_regions",
                    "DELETE",
                    path,
                    params={"regionIds": _csv(chunk)},
                    ok=(200, 204),
                    parse=_no_body,
                    # Idempotent: a region already gone stays gone.
                    replay=True,
                )
                return chunk

            return run

        batches = limits.region_batches(ids, limits.MAX_REGION_IDS_PER_DELETE)
        async for result in self._stream(job(b) for b in batches):
            yield result

    async def remove_tags(
        self, project_id: Id, image_ids: Iterable[Id], tag_ids: Iterable[Id]
    ) -> AsyncIterator[list[TagPair]]:
        """Remove each tag from each image; yield each batch's (image, tag) pairs when done."""
        path = f"/projects/{project_id}/images/tags"
        images = [UUID(str(i)) for i in image_ids]
        tags = [UUID(str(t)) for t in tag_ids]

        def job(
            image_chunk: tuple[UUID, ...], tag_chunk: tuple[UUID, ...]
        ) -> Callable[[], Awaitable[list[TagPair]]]:
            async def run() -> list[TagPair]:
                try:
                    await self._call(
                        "remove_tags",
                        "DELETE",
                        path,
                        params={"imageIds": _csv(image_chunk), "tagIds": _csv(tag_chunk)},
                        ok=(200, 204),
                        parse=_no_body,
                        # Idempotent: removing an absent association leaves the same state.
                        replay=True,
                    )
                except (ImageNotFoundError, TagNotFoundError) as exc:
                    # Not found after a lost answer cannot come from our own removal (the image
                    # and tag stay); only swallow it for a replay, where the outcome is the same.
                    if not exc.replayed:
                        raise
                return [TagPair(i, t) for i in image_chunk for t in tag_chunk]

            return run

        batches = limits.tag_removal_batches(images, tags)
        async for result in self._stream(job(i, t) for i, t in batches):
            yield result

    async def delete_images(
        self, project_id: Id, image_ids: Iterable[Id]
    ) -> AsyncIterator[list[UUID]]:
        """Delete images; yield each batch's ids once they are gone.

        Ids already absent count as deleted: the state the caller asked for is reached.
        """
        path = f"/projects/{project_id}/images"
        ids = [UUID(str(i)) for i in dict.fromkeys(str(i) for i in image_ids)]

        def job(chunk: Sequence[UUID]) -> Callable[[], Awaitable[list[UUID]]]:
            async def run() -> list[UUID]:
                try:
                    await self._delete_batch(path, chunk)
                except ImageNotFoundError as exc:
                    if not exc.replayed:
                        # Some ids were already gone and the service may have refused the whole
                        # batch: delete whichever still exist.
                        remaining = await self.get_images_by_ids(project_id, chunk)
                        if remaining:
                            await self._delete_batch(path, [i.id for i in remaining])
                    # On a replay NotFoundImage means the lost attempt deleted them. Success.
                return list(chunk)

            return run

        async for result in self._stream(
            job(c) for c in limits.chunked(ids, limits.MAX_IMAGES_PER_DELETE)
        ):
            yield result

    async def _delete_batch(self, path: str, ids: Sequence[UUID]) -> None:
        await self._call(
            "delete_images",
            "DELETE",
            path,
            params={"imageIds": _csv(ids)},
            ok=(200, 202, 204),
            parse=_no_body,
            # Idempotent in effect: a replayed delete finds the images gone (NotFoundImage,
            # handled by the caller) or deletes them; either way they are gone once.
            replay=True,
        )

    async def update_metadata(
        self, project_id: Id, image_ids: Iterable[Id], metadata: Mapping[str, str]
    ) -> AsyncIterator[list[MetadataResult]]:
        """Set metadata on images (one map for all); yield each batch's per-image results."""
        limits.check_metadata(metadata)
        path = f"/projects/{project_id}/images/metadata"
        ids = list(dict.fromkeys(str(i) for i in image_ids))
        body = dict(metadata)

        def job(chunk: Sequence[str]) -> Callable[[], Awaitable[list[MetadataResult]]]:
            return lambda: self._call(
                "update_metadata",
                "POST",
                path,
                params={"imageIds": _csv(chunk)},
                json=body,
                ok=(200, 207),
                parse=_metadata_results,
                # Replay is harmless: it writes the same map to the same images again.
                replay=True,
            )

        chunks = limits.chunked(ids, limits.MAX_IMAGES_PER_METADATA_UPDATE)
        async for result in self._stream(job(c) for c in chunks):
            yield result

    # --- training and iterations ----------------------------------------------------------

    async def list_iterations(self, project_id: Id) -> list[Iteration]:
        """Return the project's iterations (in no promised order)."""
        return await self._call(
            "list_iterations",
            "GET",
            f"/projects/{project_id}/iterations",
            parse=lambda r: [parse_iteration(i) for i in r.json()],
            replay=True,
        )

    async def get_iteration(self, project_id: Id, iteration_id: Id) -> Iteration:
        """Return one iteration; raise NotFoundError (code NotFoundIteration) if it is unknown."""
        return await self._call(
            "get_iteration",
            "GET",
            f"/projects/{project_id}/iterations/{iteration_id}",
            parse=lambda r: parse_iteration(r.json()),
            replay=True,
        )

    async def _training_iteration(self, project_id: Id) -> Iteration | None:
        training = [
            i
            for i in await self.list_iterations(project_id)
            if i.status == IterationStatus.TRAINING
        ]
        return max(training, key=lambda i: i.created or _EPOCH, default=None)

    async def train_project(
        self,
        project_id: Id,
        *,
        force: bool = False,
        training_type: TrainingType = TrainingType.REGULAR,
        reserved_budget_hours: int = 0,
        notification_email: str | None = None,
        selected_tags: Sequence[Id] | None = None,
    ) -> Iteration:
        """Start training (TrainProject) and return the new iteration, usually still training.

        Raises TrainingNotNeededError when nothing changed since the last training (unless
        `force`), TrainingValidationError (too few images or tags), BadRequestError with code
        BadRequestTrainingAlreadyInProgress.
        """
        params: dict[str, str | int] = {"trainingType": str(training_type)}
        if reserved_budget_hours:
            params["reservedBudgetInHours"] = reserved_budget_hours
        if force:
            params["forceTrain"] = "true"
        if notification_email:
            params["notificationEmailAddress"] = notification_email
        body = {"selectedTags": [str(t) for t in selected_tags]} if selected_tags else None
        try:
            return await self._call(
                "train_project",
                "POST",
                f"/projects/{project_id}/train",
                params=params,
                json=body,
                parse=lambda r: parse_iteration(r.json()),
                # Not idempotent: a lost attempt may have started training. Before a replay,
                # an iteration now training is that attempt's (or a concurrent one, which would
                # have refused ours anyway): it is the answer.
                replay=lambda: self._training_iteration(project_id),
            )
        except TrainingNotNeededError as exc:
            # The lost attempt trained and finished before the replay, which then found nothing
            # to train: the newest iteration is the one it made.
            if exc.replayed:
                iterations = await self.list_iterations(project_id)
                if iterations:
                    return max(iterations, key=lambda i: i.created or _EPOCH)
            raise

    async def count_image_performances(
        self, project_id: Id, iteration_id: Id, tag_ids: Iterable[Id] | None = None
    ) -> int:
        """Return how many images GetImagePerformances lists for the iteration (its tagged
        training images, or those with any of tag_ids)."""
        params = {"tagIds": _csv(tag_ids)} if tag_ids else {}
        return await self._call(
            "count_image_performances",
            "GET",
            f"/projects/{project_id}/iterations/{iteration_id}/performance/images/count",
            params=params,
            parse=_count,
            replay=True,
        )

    async def image_performance_page(
        self,
        project_id: Id,
        iteration_id: Id,
        *,
        skip: int,
        take: int = limits.MAX_TAKE,
        tag_ids: Sequence[Id] | None = None,
        order: Order = Order.OLDEST,
    ) -> list[ImagePerformance]:
        """Return one page of the iteration's image performances (take <= 256, tag_ids <= 20)."""
        params: dict[str, str | int] = {
            "orderBy": str(order),
            "take": max(0, min(take, limits.MAX_TAKE)),
            "skip": skip,
        }
        if tag_ids:
            if len(tag_ids) > limits.MAX_TAG_FILTER_IDS:
                raise ValueError(f"at most {limits.MAX_TAG_FILTER_IDS} tag ids per page")
            params["tagIds"] = _csv(tag_ids)
        return await self._call(
            "image_performances",
            "GET",
            f"/projects/{project_id}/iterations/{iteration_id}/performance/images",
            params=params,
            parse=lambda r: [parse_image_performance(p) for p in r.json()],
            replay=True,
        )

    async def iter_image_performances(
        self, project_id: Id, iteration_id: Id, *, page_size: int = limits.MAX_TAKE
    ) -> AsyncIterator[ImagePerformance]:
        """Yield every image performance of the iteration once: the count first, then
        ceil(count / page_size) pages of at most 256, up to max_concurrency at once."""
        take = max(1, min(page_size, limits.MAX_TAKE))
        total = await self.count_image_performances(project_id, iteration_id)

        def job(skip: int) -> Callable[[], Awaitable[list[ImagePerformance]]]:
            return lambda: self.image_performance_page(
                project_id, iteration_id, skip=skip, take=take
            )

        seen: set[UUID] = set()
        # `total` is at most the project quota (_count), so the pages are too.
        async for page in self._stream(job(skip) for skip in range(0, total, take)):
            new = 0
            for perf in page:
                if perf.id not in seen:  # an iteration is frozen; this only guards odd answers
                    seen.add(perf.id)
                    new += 1
                    yield perf
            if page and new == 0:
                raise _endless("image_performances", "a page held no new image")

    # --- image bytes ----------------------------------------------------------------------

    async def download(
        self, uri: str, chunk_size: int = 1 << 16, *, image_id: str | None = None
    ) -> AsyncIterator[bytes]:
        """Yield an image's bytes from its pre-signed URI (no key is sent); retried until the
        first byte arrives. Raises ApiError subclasses like the API calls (operation download):
        DeadlineExceededError when an attempt takes longer than the request deadline from
        sending to the last byte, ResponseTooLargeError past limits.MAX_DOWNLOAD_BYTES (refused on
        its Content-Length, or abandoned once that much has come). `image_id` names the image in
        those errors (the URI is pre-signed: it never goes into a message)."""
        url = uri if "://" in uri else f"{self._endpoint}/{uri.lstrip('/')}"
        what = f"image {image_id}" if image_id else "an image"
        cap = limits.MAX_DOWNLOAD_BYTES
        limit = self.settings.request_deadline_s
        loop = asyncio.get_running_loop()
        started = self._clock()
        attempt = 0
        while True:
            attempt += 1
            failure: Exception | None = None
            status: int | None = None
            async with self._download_slots:
                deadline = loop.time() + limit
                try:
                    async with asyncio.timeout_at(deadline):
                        # auth=_NO_AUTH: a pre-signed URI carries its own signature; never the key.
                        response = await self._http.send(
                            self._http.build_request("GET", url), auth=_NO_AUTH, stream=True
                        )
                    try:
                        status = response.status_code
                        if status == 200:
                            try:
                                _check_length(response, cap)
                            except _TooLarge as exc:
                                raise ResponseTooLargeError(
                                    "download", status=200, service_message=f"{what}: {exc}"
                                ) from None
                            received = 0
                            chunks = response.aiter_bytes(chunk_size)
                            while True:
                                # The deadline covers each read, not the caller's work between.
                                try:
                                    async with asyncio.timeout_at(deadline):
                                        chunk = await anext(chunks)
                                except StopAsyncIteration:
                                    return
                                received += len(chunk)
                                if received > cap:
                                    raise ResponseTooLargeError(
                                        "download",
                                        status=200,
                                        service_message=f"{what}: {_TooLarge(cap, None)}",
                                    )
                                yield chunk
                        async with asyncio.timeout_at(deadline):
                            body = await _read_capped(response, limits.MAX_JSON_RESPONSE_BYTES)
                        error_response = httpx.Response(
                            status,
                            headers=[
                                (name, value)
                                for name, value in response.headers.multi_items()
                                if name.lower() not in _FRAMING_HEADERS
                            ],
                            content=body,
                        )
                    finally:
                        await response.aclose()
                except httpx.TransportError as exc:
                    if status == 200:
                        raise ApiConnectionError(
                            "download",
                            code=type(exc).__name__,
                            service_message=f"{what}: cut off",
                        ) from None
                    failure = exc
                except httpx.DecodingError:
                    raise UnexpectedResponseError(
                        "download", status=status, service_message=f"{what}: does not decode"
                    ) from None
                except _TooLarge as exc:  # an error answer over the JSON cap
                    raise ResponseTooLargeError(
                        "download", status=status, service_message=f"{what}: {exc}"
                    ) from None
                except TimeoutError:
                    if loop.time() < deadline:
                        raise
                    late = DeadlineExceeded(
                        f"{what}: not received whole within the {limit:g} s deadline"
                    )
                    if status == 200:
                        raise DeadlineExceededError(
                            "download", status=200, service_message=str(late)
                        ) from None
                    failure = late
            delay = self._retry.backoff(attempt, self._rand)
            if status == 429 and failure is None:
                asked = retry_after_seconds(
                    error_response.headers, cap=self.settings.max_retry_after_s
                )
                delay = delay if asked is None else asked
            retryable = should_retry(status=status, error=failure)
            if not retryable or not self._retry.allows(attempt, self._clock() - started, delay):
                raise self._failure(
                    "download", None if failure else error_response, failure, attempt, False, None
                )
            self._waiting("download", attempt, delay, status, failure)
            await asyncio.sleep(delay)


def _endless(operation: str, why: str) -> UnexpectedResponseError:
    return UnexpectedResponseError(
        operation, status=200, service_message=f"{why}: the listing would not end"
    )


def _tag_add_result(response: httpx.Response) -> TagAddResult:
    body = response.json()

    def pairs(name: str) -> tuple[TagPair, ...]:
        # Real answers use [] for an empty list, the spec's examples null [R].
        return tuple(TagPair(UUID(p["imageId"]), UUID(p["tagId"])) for p in body.get(name) or [])

    return TagAddResult(pairs("created"), pairs("duplicated"), pairs("exceeded"))


def _region_add_result(response: httpx.Response) -> RegionAddResult:
    body = response.json()
    created = tuple(
        (UUID(entry["imageId"]), parse_region(entry)) for entry in body.get("created") or []
    )
    return RegionAddResult(
        created,
        tuple(parse_region_entry(e) for e in body.get("duplicated") or []),
        tuple(parse_region_entry(e) for e in body.get("exceeded") or []),
    )


def _metadata_results(response: httpx.Response) -> list[MetadataResult]:
    from types import MappingProxyType

    return [
        MetadataResult(
            UUID(entry["imageId"]),
            MetadataStatus.parse(entry.get("status")),
            MappingProxyType(dict(entry.get("metadata") or {})),
        )
        for entry in response.json().get("images") or []
    ]
