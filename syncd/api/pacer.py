"""Pacing and retrying: the rate all requests share, and when and how long to wait before a retry.

Public names: Pacer, shared_pacer, Backoff, RetryPolicy, should_retry, may_have_reached_service,
retry_after_seconds, DeadlineExceeded, RETRY_STATUSES, RETRY_ERRORS, Wait, wait_reason.

`Pacer` lets requests go at an adaptive rate. At its configured rate it is a sliding window: at most
n = floor(rate) requests in any n/rate seconds (for an integer rate, at most `rate` in any second,
the service's "10 transactions per second" read as strictly as it can be), so the first requests
after a quiet spell (a run's reads and tag creates, a daemon's flush) go out together instead of
1/rate apart. The burst is one short of n (a token bucket of n - 1 refilled at `rate` runs beside
the window): a quota kept as a token bucket of one second's worth (the emulator's, APIM's) then
still has a request in hand when answers of one burst reach it up to 1/rate later than the next
burst's (jitter on the network or in a busy server), and the long-run rate is still `rate`.
Once a 429 has cut the rate below the configured one, it is a token bucket of depth one
(requests leave evenly spaced, 1/rate apart) until the rate is back. The rate adapts AIMD-style
to the service's quota:

- a 429 blocks every request until its Retry-After has passed (never over `max_block_s`, and
  the request that set a block lifts it with `release` when it gives up or ends: a block never
  outlives the request that waits on it), takes the throughput that drew it
  (successes in the last second, or the pacing rate if lower) as the quota estimate `ceiling`,
  and cuts the rate to `ceiling * decrease_factor` (multiplicative decrease);
- the rate then climbs back by `increase_per_second` every second (additive increase), but only to
  `headroom * ceiling` until `probe_after_s` seconds have passed without a 429; only then does it
  probe above, up to the configured rate.

So a run settles just under the quota (95 % of it by default) and meets one 429 per probe. The
clock and sleep are injected, so all of this is unit-tested without sleeping. One Pacer serves
every request to one endpoint with one key in the process (`shared_pacer`), because the quota is
the resource's, not a client's. Where a tier limits the image-creating calls apart (F0), those
pass a second Pacer of their own kind first (ClientSettings.upload_rate_per_second).

`retry_after_seconds` reads the service's ask and cuts it to a cap (limits.MAX_RETRY_AFTER_S by
default); NaN, negative or unreadable values are no ask at all.

`Backoff` is syncd's one backoff formula: capped exponential, cap_n = min(max_s, first_s *
2**(n-1)) before attempt n+1, of which a `jitter` fraction is random: delay = cap_n * (1 - jitter
+ jitter * uniform(0, 1)). Its three users:

    user                          first   max    jitter  delay after failure n
    RetryPolicy (each API call)   0.5 s   30 s   1       uniform(0, cap_n)       (full jitter)
    the daemon (failed reconcile) 1 s     60 s   0.5     uniform(cap_n/2, cap_n) (equal jitter)
    training (polling --wait)     0.5 s   10 s   0       cap_n                   (a schedule)

`RetryPolicy` is that backoff within a budget of attempts and total time; `should_retry` is the
one table of what is worth retrying (modelled on rclone's lib/pacer and azure-core's
RetryPolicy).

`Wait` is what the client tells an observer (`TrainingClient.on_wait`) before it waits: why, which
attempt of how many, and for how long. The client only reports; the CLI draws it (syncd.cli.render)
and the daemon has the client's `retry` log lines.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import re
import threading
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpx
import structlog

from syncd.api import limits

_log = structlog.get_logger(component="api")

# Statuses worth another attempt, with why. Everything else (4xx) is the request's own fault
# and would fail the same way again.
RETRY_STATUSES: Mapping[int, str] = {
    408: "request timeout: the service gave up waiting for the body",
    429: "throttled: over the transactions-per-second quota",
    500: "internal error: often transient",
    502: "bad gateway: the front end lost the backend",
    503: "service unavailable: overloaded or restarting",
    504: "gateway timeout: the backend was too slow",
}


class DeadlineExceeded(Exception):
    """One attempt did not get its whole answer within the request deadline."""


# Transport errors worth another attempt -> could the request have reached the service?
# (False: nothing was sent, so even a non-idempotent request is safe to send again.)
RETRY_ERRORS: Mapping[type[Exception], bool] = {
    httpx.ConnectError: False,
    httpx.ConnectTimeout: False,
    httpx.PoolTimeout: False,
    httpx.WriteTimeout: True,
    httpx.WriteError: True,
    httpx.ReadTimeout: True,
    httpx.ReadError: True,
    httpx.CloseError: True,
    # "Server disconnected without sending a response": a dropped answer to a received request.
    httpx.RemoteProtocolError: True,
    # The answer did not arrive whole in time: the request may well have been acted on.
    DeadlineExceeded: True,
}


@dataclass(frozen=True)
class Wait:
    """One wait before a request is sent (again), as an observer is told of it.

    `reason` is a short phrase for a person ("service unreachable", "service error 503",
    "throttled by the service", "no complete answer", "pacing to the service's quota");
    `attempt` is the attempt that failed (0 for a pacing wait, before any attempt), `of` the
    attempts allowed, `seconds` the wait about to start."""

    reason: str
    operation: str
    attempt: int
    of: int
    seconds: float


PACED = "pacing to the service's quota"


def wait_reason(status: int | None = None, error: BaseException | None = None) -> str:
    """The `Wait.reason` for a failed attempt: an answer's status or a transport error."""
    if error is not None:
        if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout):
            return "service unreachable"
        if isinstance(error, DeadlineExceeded | httpx.TimeoutException):
            return "no complete answer in time"
        return f"connection lost ({type(error).__name__})"
    if status == 429:
        return "throttled by the service"
    return f"service error {status}"


def _error_entry(error: BaseException) -> bool | None:
    for cls in type(error).__mro__:
        if cls in RETRY_ERRORS:
            return RETRY_ERRORS[cls]
    return None


def should_retry(status: int | None = None, error: BaseException | None = None) -> bool:
    """Return True if a response status or a transport error is worth another attempt."""
    if error is not None:
        return _error_entry(error) is not None
    return status in RETRY_STATUSES


def may_have_reached_service(status: int | None = None, error: BaseException | None = None) -> bool:
    """Return True if a failed attempt may still have changed state on the service.

    A 429 comes from the gateway before the service acts; a 5xx or a lost answer may come after.
    """
    if error is not None:
        return _error_entry(error) is not False
    return status is not None and status != 429


_RETRY_AFTER_TEXT = re.compile(r"retry after (\d+(?:\.\d+)?) seconds?", re.IGNORECASE)


def _seconds(value: float, cap: float) -> float | None:
    """A wait the server asked for, made safe: NaN or negative is no answer (None); anything
    longer than `cap` (inf, 1e9, a date years ahead) is cut to `cap`."""
    if math.isnan(value) or value < 0:
        return None
    return min(value, cap)


def retry_after_seconds(
    headers: Mapping[str, str], message: str = "", *, cap: float = limits.MAX_RETRY_AFTER_S
) -> float | None:
    """Return how long a 429 asks us to wait, at most `cap`, from headers or APIM's message text;
    None when it says nothing readable (NaN, a negative number, text that is not a number).

    Checks retry-after-ms / x-ms-retry-after-ms (Azure), Retry-After (seconds or an HTTP date: one
    in the past means now), then the message («Please retry after 1 second.»; the spec documents
    no header).
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        try:
            found = _seconds(float(lowered[name]) / 1000, cap)
        except (KeyError, ValueError):
            continue
        if found is not None:
            return found
    value = lowered.get("retry-after", "").strip()
    if value:
        try:
            return _seconds(float(value), cap)
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        return _seconds(max(0.0, when - time.time()), cap)
    match = _RETRY_AFTER_TEXT.search(message)
    if match:
        return _seconds(float(match.group(1)), cap)
    return None


# How often a request held back by a block wakes to see whether the block was lifted (by the
# request that set it giving up): the most a lifted block still delays a waiting request.
_WAKE_EVERY_S = 1.0


class Pacer:
    """Keeps requests to one endpoint under an adaptive rate shared by all their senders."""

    def __init__(
        self,
        rate_per_second: float = 10.0,
        *,
        min_rate: float = 0.2,
        decrease_factor: float = 0.5,
        increase_per_second: float = 1.0,
        headroom: float = 0.95,
        probe_after_s: float = 60.0,
        default_retry_after_s: float = 1.0,
        burst_s: float = 1.0,
        max_block_s: float = limits.MAX_RETRY_AFTER_LIMIT_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if rate_per_second <= 0:
            raise ValueError(f"rate_per_second must be positive, got {rate_per_second}")
        self.configured_rate = rate_per_second
        self._min_rate = min(min_rate, rate_per_second)
        self._decrease = decrease_factor
        self._increase = increase_per_second
        self._headroom = headroom
        self._probe_after = probe_after_s
        self._default_retry_after = default_retry_after_s
        self._max_block = max_block_s
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()  # state is touched from one loop, or several threads' loops
        self._rate = rate_per_second
        self._ceiling: float | None = None
        self._last_update = clock()
        self._last_throttle = float("-inf")
        self._next_slot = float("-inf")  # the bucket's: when it is empty again (GCRA's TAT)
        self._granted: deque[float] = deque()  # the window's: when the last requests went
        self._blocked_until = float("-inf")  # the latest of _blocks' ends
        self._blocks: dict[object, float] = {}  # who set each live block -> when it ends
        self._burst_s = burst_s
        self._window_start = clock()
        self._window_successes = 0
        self._last_success = float("-inf")
        self._epoch = 0  # bumped by each 429: slots handed out before it are void
        self.throttle_count = 0

    @property
    def rate(self) -> float:
        """The current pacing rate in requests per second."""
        with self._lock:
            self._refresh(self._clock())
            return self._rate

    @property
    def ceiling(self) -> float | None:
        """The last quota estimate (throughput that drew a 429), or None before any 429."""
        return self._ceiling

    def _refresh(self, now: float) -> None:
        """Apply the additive increase for the time since the last update."""
        start = max(self._last_update, self._blocked_until)
        if now > start:
            cap = self.configured_rate
            if self._ceiling is not None and now - self._last_throttle < self._probe_after:
                cap = min(cap, max(self._min_rate, self._headroom * self._ceiling))
            if self._rate < cap:
                self._rate = min(cap, self._rate + self._increase * (now - start))
            self._last_update = now

    def _shape(self) -> tuple[int, float]:
        """The window's size n (requests in any n/rate seconds) and the bucket's tolerance (how
        far ahead of its even spacing a request may go): at the configured rate, a window of
        floor(rate) and a burst of one less; below it (after a 429), evenly spaced."""
        if self._rate < self.configured_rate:
            return 1, 0.0
        window = max(1, math.floor(self._rate))
        burst = max(1, window - 1)
        return window, (burst - 1) / self._rate

    def _earliest(self, now: float) -> float:
        """When a request asking now may go (ignoring blocks); changes nothing."""
        window, tolerance = self._shape()
        start = max(now, self._next_slot - tolerance)
        if len(self._granted) >= window:
            start = max(start, self._granted[-window] + window / self._rate)
        return start

    async def acquire(self) -> None:
        """Wait for this request's turn: after any 429 block, within the window and the bucket
        (at the configured rate), or 1/rate after the previous one (below it)."""
        while True:
            with self._lock:
                now = self._clock()
                self._refresh(now)
                start = max(self._earliest(now), self._blocked_until)
                self._next_slot = max(self._next_slot, start) + 1.0 / self._rate
                self._granted.append(start)
                while len(self._granted) > max(1, math.floor(self.configured_rate)):
                    self._granted.popleft()
                epoch = self._epoch
            while start > now:
                # Wake at least every _WAKE_EVERY_S: a block lifted meanwhile ends the wait.
                await self._sleep(min(start - now, _WAKE_EVERY_S))
                with self._lock:
                    if epoch != self._epoch:
                        break
                    now = self._clock()
            with self._lock:
                # A 429 that arrived while we slept voids every slot handed out before it (they
                # were spaced for the old rate): queue again behind its block at the new rate.
                # So does a block lifted: queue again without it.
                if epoch == self._epoch and self._clock() >= self._blocked_until:
                    return

    def wait_ahead(self) -> float:
        """How long a request that asked for its turn now would wait (0: none); changes nothing."""
        with self._lock:
            now = self._clock()
            return max(0.0, self._earliest(now) - now, self._blocked_until - now)

    def on_success(self) -> None:
        """Record a request that the quota let through (feeds the quota estimate)."""
        with self._lock:
            now = self._clock()
            if now - self._last_success > max(self._burst_s, 2.0 / self._rate):
                # Idle long enough for the quota's burst allowance to refill: a fresh window.
                self._window_start = now
                self._window_successes = 0
            self._window_successes += 1
            self._last_success = now

    def on_throttle(self, retry_after: float | None, *, owner: object | None = None) -> float:
        """Record a 429: block all requests for Retry-After (at most max_block_s) and lower the
        rate; return the wait. `owner` (the request) may lift its block with `release`."""
        wait = self._default_retry_after
        if retry_after is not None and not math.isnan(retry_after):
            wait = max(0.0, retry_after)
        wait = min(wait, self._max_block)
        with self._lock:
            now = self._clock()
            self.throttle_count += 1
            key = object() if owner is None else owner
            self._blocks = {k: end for k, end in self._blocks.items() if end > now}
            self._blocks[key] = max(self._blocks.get(key, now), now + wait)
            if now < self._blocked_until:
                # Another answer to the same overload (requests already in flight): extend the
                # block if asked, but decrease once per event, as TCP does once per window.
                self._blocked_until = max(self._blocked_until, now + wait)
                self._next_slot = self._blocked_until
                self._void_grants_after(now)
                self._epoch += 1
                return self._blocked_until - now
            self._refresh(now)
            # Quota estimate: what got through since the window opened, less a burst allowance
            # of `burst_s` seconds' worth (a token bucket or a fixed window lets that much over
            # before it starts refusing). Kept within [rate * decrease, rate]: a 429 says only
            # that the current rate is too high.
            elapsed = max(0.0, now - self._window_start)
            # The refused request counts too once requests have been paced for a second or more:
            # the allowance ran out at it, not before it. Right after a burst (the window's,
            # after idling: elapsed ~0) the burst itself emptied the allowance, and counting the
            # refused one would put the estimate a whole request a second over the quota.
            refused = min(1.0, elapsed)
            estimate = (self._window_successes + refused) / (elapsed + self._burst_s)
            low = self._rate * self._decrease
            self._ceiling = max(self._min_rate, min(self._rate, max(low, estimate)))
            self._rate = max(self._min_rate, min(low, self._headroom * self._ceiling))
            self._last_throttle = now
            self._void_grants_after(now)
            self._epoch += 1
            self._blocked_until = now + wait
            self._next_slot = self._blocked_until
            self._last_update = self._blocked_until
            # The block lets the allowance refill: the next window opens when it ends.
            self._window_start = self._last_success = self._blocked_until
            self._window_successes = 0
            rate, ceiling = self._rate, self._ceiling
        _log.info(
            "throttled", retry_after=round(wait, 3), rate=round(rate, 3), quota=round(ceiling, 3)
        )
        return wait

    def release(self, owner: object) -> None:
        """Lift the block `owner` set (its request gave up or finished): requests wait only for
        blocks whose requests still wait on them. Blocks set by others stay."""
        with self._lock:
            if self._blocks.pop(owner, None) is None:
                return
            now = self._clock()
            until = max((end for end in self._blocks.values() if end > now), default=float("-inf"))
            if until >= self._blocked_until:
                return
            self._blocked_until = until
            resume = max(now, until)
            # Slots and the rate's and quota window's clocks were set to the old block's end.
            self._next_slot = min(self._next_slot, resume)
            self._last_update = min(self._last_update, resume)
            self._window_start = min(self._window_start, resume)
            self._last_success = min(self._last_success, resume)
            self._void_grants_after(now)
            self._epoch += 1  # waiters queue again without the block

    def _void_grants_after(self, now: float) -> None:
        """Forget turns handed out for later than now: their requests queue again (a new epoch),
        and a turn never taken must not hold the window."""
        while self._granted and self._granted[-1] > now:
            self._granted.pop()


_shared: weakref.WeakValueDictionary[tuple[str, str, float, str], Pacer] = (
    weakref.WeakValueDictionary()
)
_shared_lock = threading.Lock()


def shared_pacer(
    endpoint: str, key_secret: str, rate_per_second: float, kind: str = "all"
) -> Pacer:
    """Return the process's Pacer for this endpoint, key and kind of call (created on first
    use): "all" every call passes; "uploads" the image-creating calls, where limited apart."""
    # A fingerprint, not the key itself, keys the registry.
    fingerprint = hashlib.sha256(key_secret.encode()).hexdigest()[:16]
    index = (endpoint.rstrip("/").lower(), fingerprint, rate_per_second, kind)
    with _shared_lock:
        pacer = _shared.get(index)
        if pacer is None:
            pacer = Pacer(rate_per_second)
            _shared[index] = pacer
        return pacer


@dataclass(frozen=True)
class Backoff:
    """Capped exponential delays, of which the `jitter` fraction is random (1: full jitter, so
    callers that failed together do not retry together; 0: a fixed schedule)."""

    first_s: float
    max_s: float
    jitter: float = 1.0

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Return the delay after failed attempt number `attempt` (1-based)."""
        exponent = min(attempt - 1, 32)  # 2**32 * first_s is far past any cap
        cap = min(self.max_s, self.first_s * 2.0**exponent)
        return cap * (1 - self.jitter + self.jitter * rand())


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry: attempt and time budgets, capped full-jitter backoff."""

    max_attempts: int = 8
    max_elapsed_s: float = 300.0
    base_backoff_s: float = 0.5
    max_backoff_s: float = 30.0

    def backoff(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Return the delay before retrying after failed attempt number `attempt` (1-based)."""
        return Backoff(self.base_backoff_s, self.max_backoff_s).delay(attempt, rand)

    def allows(self, attempt: int, elapsed_s: float, delay_s: float) -> bool:
        """Return True if another attempt after `attempt` fits the budget after waiting delay_s."""
        return attempt < self.max_attempts and elapsed_s + delay_s <= self.max_elapsed_s
