"""The Pacer (rate, 429 blocks, AIMD), the retry policy and the should_retry table; virtual time."""

from __future__ import annotations

import asyncio
import bisect
import heapq
import itertools
import math
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import TypeVar

import httpx
import pytest

from syncd.api import limits
from syncd.api.pacer import (
    Backoff,
    Pacer,
    RetryPolicy,
    may_have_reached_service,
    retry_after_seconds,
    should_retry,
)

T = TypeVar("T")


class VirtualTime:
    """A clock and sleep for asyncio code: time jumps to the next sleeper when all are waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(0.0, delay), next(self._seq), future))
        await future

    def run(self, main: Callable[[], Awaitable[T]]) -> T:
        async def drive() -> T:
            task = asyncio.ensure_future(main())
            while not task.done():
                for _ in range(20):  # let every runnable coroutine reach its next sleep
                    await asyncio.sleep(0)
                if task.done() or not self._sleepers:
                    continue
                wake, _, future = heapq.heappop(self._sleepers)
                self.now = max(self.now, wake)
                future.set_result(None)
            return task.result()

        return asyncio.run(drive())


def make_pacer(vt: VirtualTime, rate: float = 10.0, **kwargs: float) -> Pacer:
    return Pacer(rate, clock=vt.clock, sleep=vt.sleep, **kwargs)


def _send_all(vt: VirtualTime, pacer: Pacer, requests: int) -> list[float]:
    """When each of `requests` concurrent requests got its turn."""
    sent: list[float] = []

    async def request() -> None:
        await pacer.acquire()
        sent.append(vt.now)

    async def main() -> None:
        await asyncio.gather(*(request() for _ in range(requests)))

    vt.run(main)
    return sent


def test_after_idling_a_burst_one_short_of_the_rate_goes_at_once() -> None:
    vt = VirtualTime()
    pacer = make_pacer(vt, rate=10)
    sent = _send_all(vt, pacer, 30)
    assert sent[:9] == [0.0] * 9  # a run's reads and tag creates need not wait for each other
    assert sent[9] > 0.0
    assert 2.0 <= sent[-1] <= 2.1 + 1e-9  # 30 requests: the rate holds over the run


def _most_in_any_window(sent: list[float], seconds: float) -> int:
    """The most requests in any half-open window [t, t + seconds)."""
    ordered = sorted(sent)
    return max(bisect.bisect_left(ordered, t + seconds - 1e-9) - i for i, t in enumerate(ordered))


def _send_with_pauses(
    vt: VirtualTime, pacer: Pacer, requests: int, pauses: list[float], seed: int
) -> list[float]:
    """When each of `requests` requests got its turn, sent by 8 workers that each pause a
    random choice of `pauses` after every turn (idle spells refill the burst)."""
    rng = random.Random(seed)
    sent: list[float] = []
    remaining = itertools.count()

    async def worker() -> None:
        while next(remaining) < requests:
            await pacer.acquire()
            sent.append(vt.now)
            await vt.sleep(rng.choice(pauses))

    async def main() -> None:
        await asyncio.gather(*(worker() for _ in range(8)))

    vt.run(main)
    return sent


def test_never_more_than_the_rate_in_any_second_over_a_long_run() -> None:
    """8 workers, each sending, then pausing a random while (idle spells refill the burst),
    400 requests in all at a configured 10/s."""
    vt = VirtualTime()
    sent = _send_with_pauses(vt, make_pacer(vt, rate=10), 400, [0.0, 0.05, 0.5, 3.0], seed=7)
    assert len(sent) == 400
    assert _most_in_any_window(sent, 1.0) <= 10


def test_an_emulator_like_bucket_never_refuses_the_burst_or_the_run_despite_jitter() -> None:
    """The emulator's quota (syncd/emulator/faults.py): a token bucket of capacity tps refilled
    at tps/s, fed each request up to 1/rate later than it was sent (the network, a busy
    server). 600 requests from 8 workers with idle spells: not one refused."""
    vt = VirtualTime()
    sent = _send_with_pauses(vt, make_pacer(vt, rate=10), 600, [0.0, 0.0, 0.3, 2.0], seed=11)
    jitter = random.Random(12)
    arrivals = [t + jitter.uniform(0.0, 0.0999) for t in sent]
    tokens, at, refused = 10.0, 0.0, 0
    for arrival in sorted(arrivals):
        tokens = min(10.0, tokens + (arrival - at) * 10)
        at = arrival
        if tokens >= 1:
            tokens -= 1
        else:
            refused += 1
    assert refused == 0


def test_below_the_configured_rate_requests_leave_evenly_spaced() -> None:
    """After a 429 has cut the rate, no burst: 1/rate apart, as the AIMD's estimate assumes."""
    vt = VirtualTime()
    pacer = make_pacer(vt, rate=10, increase_per_second=0.0)
    pacer.on_throttle(1.0)
    rate = pacer.rate
    assert rate < 10
    sent = _send_all(vt, pacer, 10)
    assert sent == pytest.approx([1.0 + n / rate for n in range(10)])


def test_a_429_holds_every_request_back_for_retry_after() -> None:
    vt = VirtualTime()
    pacer = make_pacer(vt, rate=100)
    sent: list[float] = []

    async def main() -> None:
        await pacer.acquire()
        vt.now = 1.0
        assert pacer.on_throttle(2.5) == 2.5
        for _ in range(3):
            await pacer.acquire()
            sent.append(vt.now)

    vt.run(main)
    assert sent[0] == pytest.approx(3.5)
    assert all(t >= 3.5 for t in sent)


def test_a_block_arriving_while_requests_wait_moves_them_behind_it() -> None:
    vt = VirtualTime()
    pacer = make_pacer(vt, rate=2)
    sent: list[float] = []

    async def request() -> None:
        await pacer.acquire()
        sent.append(vt.now)

    async def throttle_soon() -> None:
        await vt.sleep(0.2)
        pacer.on_throttle(3.0)

    async def main() -> None:
        await asyncio.gather(*(request() for _ in range(4)), throttle_soon())

    vt.run(main)
    assert sent[0] == 0.0  # went out before the 429 came back
    assert all(t >= 3.2 for t in sent[1:]), sent


def test_a_429_estimates_the_quota_from_what_got_through_and_cuts_the_rate() -> None:
    vt = VirtualTime()
    pacer = make_pacer(vt, rate=4)
    for n in range(20):  # 4/s for 5 s, then refused
        vt.now = 0.25 * n
        pacer.on_success()
    vt.now = 5.0
    pacer.on_throttle(1.0)
    # (20 through + the refused one) / (5 s + 1 s of burst allowance) = 3.5/s
    assert pacer.ceiling == pytest.approx(3.5)
    vt.now = 6.0  # the block just ended: multiplicative decrease to half the old rate
    assert pacer.rate == pytest.approx(2.0)


def test_a_429_soon_after_starting_at_least_halves_the_rate() -> None:
    vt = VirtualTime()
    pacer = make_pacer(vt, rate=10)
    pacer.on_success()
    vt.now = 0.1
    pacer.on_throttle(1.0)
    # 2 / 1.1 s is a poor reading; the estimate never goes below rate * decrease_factor.
    assert pacer.ceiling == pytest.approx(5)
    vt.now = 1.1
    assert pacer.rate == pytest.approx(4.75)


def test_after_a_429_the_rate_climbs_back_to_just_under_the_quota_then_probes() -> None:
    vt = VirtualTime()
    pacer = make_pacer(vt, rate=10, increase_per_second=1.0, headroom=0.95, probe_after_s=30)
    for n in range(20):  # 5/s for 4 s
        vt.now = 0.2 * n
        pacer.on_success()
    vt.now = 4.0
    pacer.on_throttle(1.0)  # quota estimate 21/5 = 4.2; rate 10 -> 5 -> capped at 0.95 * 4.2
    assert pacer.ceiling == pytest.approx(5.0)  # clamped: never below half the old rate
    vt.now = 5.0
    assert pacer.rate == pytest.approx(4.75)
    vt.now = 20.0
    assert pacer.rate == pytest.approx(4.75)  # held at 95 % of the estimate
    vt.now = 35.0
    assert pacer.rate > 4.75  # no 429 for probe_after_s: probe upwards again
    vt.now = 60.0
    assert pacer.rate == pytest.approx(10)  # never above the configured rate


def test_rate_climbs_additively_after_a_deep_cut() -> None:
    vt = VirtualTime()
    pacer = make_pacer(vt, rate=8, increase_per_second=1.0)
    for n in range(40):  # 8/s for 5 s
        vt.now = 0.125 * n
        pacer.on_success()
    vt.now = 5.0
    pacer.on_throttle(2.0)  # estimate 41/6 = 6.83; rate -> 4 after the block
    vt.now = 7.0
    assert pacer.rate == pytest.approx(4.0)
    vt.now = 8.0
    assert pacer.rate == pytest.approx(5.0)
    vt.now = 30.0
    assert pacer.rate == pytest.approx(0.95 * 41 / 6)


def test_answers_to_one_overload_lower_the_rate_once() -> None:
    vt = VirtualTime()
    pacer = make_pacer(vt, rate=8)
    pacer.on_throttle(1.0)
    first = pacer._rate
    vt.now = 0.05
    pacer.on_throttle(1.0)  # another request that was already in flight
    assert pacer._rate == first
    assert pacer.throttle_count == 2


@pytest.mark.parametrize("quota", [2, 5])
def test_against_a_token_bucket_quota_the_pacer_settles_just_under_it(quota: int) -> None:
    """A simulated service like APIM (and the emulator): a token bucket of one second's worth,
    429 with Retry-After in whole seconds (>= 1). 4 workers send 300 calls through a pacer
    configured at 10/s; 10 ms per call."""
    vt = VirtualTime()
    pacer = make_pacer(vt, rate=10)
    bucket = {"tokens": float(quota), "at": 0.0}
    throttled_at: list[float] = []
    done_at: list[float] = []
    remaining = itertools.count()

    async def call() -> float | None:
        bucket["tokens"] = min(quota, bucket["tokens"] + (vt.now - bucket["at"]) * quota)
        bucket["at"] = vt.now
        await vt.sleep(0.01)
        if bucket["tokens"] >= 1:
            bucket["tokens"] -= 1
            return None
        return max(1, math.ceil((1 - bucket["tokens"]) / quota))

    async def worker() -> None:
        while next(remaining) < 300:
            while True:
                await pacer.acquire()
                retry_after = await call()
                if retry_after is None:
                    pacer.on_success()
                    done_at.append(vt.now)
                    break
                throttled_at.append(vt.now)
                pacer.on_throttle(retry_after)

    async def main() -> None:
        await asyncio.gather(*(worker() for _ in range(4)))

    vt.run(main)
    warm_up = 10.0
    late_429s = [t for t in throttled_at if t > warm_up]
    steady = [t for t in done_at if t > warm_up]
    achieved = len(steady) / (done_at[-1] - warm_up)
    assert len(done_at) == 300
    # The warm-up: the first burst after idling meets the bucket with all 4 workers' requests
    # at once (up to 4 refused together), then at most two halvings find the quota.
    assert len(throttled_at) - len(late_429s) <= 6, throttled_at
    # One probe a minute at most once settled.
    assert len(late_429s) <= 2 * (done_at[-1] // 60 + 1), throttled_at
    assert achieved >= 0.9 * quota, achieved


# --- retry policy and table -------------------------------------------------------------------


def test_backoff_is_full_jitter_under_a_doubling_cap() -> None:
    policy = RetryPolicy(base_backoff_s=0.5, max_backoff_s=30)
    assert [policy.backoff(n, rand=lambda: 1.0) for n in range(1, 9)] == [
        0.5,
        1,
        2,
        4,
        8,
        16,
        30,
        30,
    ]
    assert policy.backoff(5, rand=lambda: 0.0) == 0
    assert policy.backoff(1000, rand=lambda: 0.5) == 15


@pytest.mark.parametrize(
    ("jitter", "rand", "expected"),
    [
        (1.0, 0.0, [0, 0, 0, 0, 0]),  # full jitter: uniform(0, cap)
        (1.0, 0.5, [0.5, 1, 2, 2.5, 2.5]),
        (0.5, 0.0, [0.5, 1, 2, 2.5, 2.5]),  # equal jitter: uniform(cap / 2, cap)
        (0.5, 1.0, [1, 2, 4, 5, 5]),
        (0.0, 0.3, [1, 2, 4, 5, 5]),  # no jitter: the cap itself, whatever rand says
    ],
)
def test_backoff_is_a_doubling_cap_of_which_the_jitter_fraction_is_random(
    jitter: float, rand: float, expected: list[float]
) -> None:
    backoff = Backoff(first_s=1.0, max_s=5.0, jitter=jitter)
    assert [backoff.delay(n, rand=lambda: rand) for n in range(1, 6)] == expected
    assert backoff.delay(10**6, rand=lambda: 1.0) == 5.0  # no overflow far past the cap


@pytest.mark.parametrize("rand", [0.0, 0.25, 0.9, 1.0])
def test_the_retry_policy_is_the_shared_backoff_with_full_jitter(rand: float) -> None:
    policy = RetryPolicy()  # the client's defaults: 0.5 s doubling to 30 s
    same = Backoff(first_s=0.5, max_s=30.0, jitter=1.0)
    delays = [policy.backoff(n, rand=lambda: rand) for n in range(1, 10)]
    assert delays == [same.delay(n, rand=lambda: rand) for n in range(1, 10)]
    assert delays == [rand * cap for cap in (0.5, 1, 2, 4, 8, 16, 30, 30, 30)]


def test_the_budget_limits_attempts_and_total_time() -> None:
    policy = RetryPolicy(max_attempts=3, max_elapsed_s=10)
    assert policy.allows(1, 0, 1) and policy.allows(2, 5, 5)
    assert not policy.allows(3, 0, 0)
    assert not policy.allows(1, 9, 2)


@pytest.mark.parametrize(
    ("status", "retry", "reached"),
    [
        (429, True, False),
        (500, True, True),
        (502, True, True),
        (503, True, True),
        (504, True, True),
        (400, False, True),
        (401, False, True),
        (404, False, True),
    ],
)
def test_should_retry_by_status(status: int, retry: bool, reached: bool) -> None:
    assert should_retry(status=status) is retry
    assert may_have_reached_service(status=status) is reached


REQUEST = httpx.Request("GET", "http://x")


@pytest.mark.parametrize(
    ("error", "retry", "reached"),
    [
        (httpx.ConnectError("refused", request=REQUEST), True, False),
        (httpx.ConnectTimeout("slow", request=REQUEST), True, False),
        (httpx.PoolTimeout("busy", request=REQUEST), True, False),
        (httpx.ReadTimeout("slow", request=REQUEST), True, True),
        (httpx.WriteTimeout("slow", request=REQUEST), True, True),
        (httpx.ReadError("reset", request=REQUEST), True, True),
        (httpx.RemoteProtocolError("disconnected", request=REQUEST), True, True),
        (httpx.UnsupportedProtocol("ftp", request=REQUEST), False, True),
        (httpx.LocalProtocolError("bad", request=REQUEST), False, True),
    ],
)
def test_should_retry_by_transport_error(error: Exception, retry: bool, reached: bool) -> None:
    assert should_retry(error=error) is retry
    if retry:
        assert may_have_reached_service(error=error) is reached


def test_retry_after_from_headers_or_message() -> None:
    assert retry_after_seconds({"Retry-After": "3"}) == 3
    assert retry_after_seconds({"retry-after": "0.5"}) == 0.5
    assert retry_after_seconds({"x-ms-retry-after-ms": "250", "Retry-After": "9"}) == 0.25
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < (retry_after_seconds({"Retry-After": later}) or 0) <= 30
    message = (
        "Requests to the CreateImagesFromData Operation under Custom_Vision_Training_3.3 have "
        "exceeded rate limit of your current Custom_Vision.Training F0 pricing tier. "
        "Please retry after 1 second."
    )
    assert retry_after_seconds({}, message) == 1
    assert retry_after_seconds({}, "please Retry after 12 seconds") == 12
    assert retry_after_seconds({}, "slow down") is None


# --- hostile Retry-After values and the caps on every block ---------------------------------


def test_retry_after_is_capped_and_hostile_values_are_read_safely() -> None:
    cap = limits.MAX_RETRY_AFTER_S
    assert retry_after_seconds({"Retry-After": "1000000000"}) == cap
    assert retry_after_seconds({"Retry-After": "1e400"}) == cap  # overflows to inf
    assert retry_after_seconds({"Retry-After": "inf"}) == cap
    assert retry_after_seconds({"Retry-After": "nan"}) is None
    assert retry_after_seconds({"Retry-After": "-5"}) is None
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    assert retry_after_seconds({"Retry-After": "Mon, 99 Foo 2031 99:00:00 GMT"}) is None
    assert retry_after_seconds({"retry-after-ms": "1e15"}) == cap
    assert retry_after_seconds({"retry-after-ms": "nan", "Retry-After": "2"}) == 2
    years_ahead = format_datetime(datetime(2031, 10, 21, 7, 28, tzinfo=UTC), usegmt=True)
    assert retry_after_seconds({"Retry-After": years_ahead}) == cap
    long_ago = format_datetime(datetime(2001, 10, 21, 7, 28, tzinfo=UTC), usegmt=True)
    assert retry_after_seconds({"Retry-After": long_ago}) == 0
    assert retry_after_seconds({}, "please retry after 99999999999 seconds") == cap
    assert retry_after_seconds({"Retry-After": "30"}, cap=2.0) == 2.0


@pytest.mark.parametrize("asked", [1e9, math.inf, math.nan, -5.0])
def test_no_throttle_block_outlasts_the_pacers_cap(asked: float) -> None:
    vt = VirtualTime()
    pacer = make_pacer(vt, rate=10)

    async def main() -> float:
        wait = pacer.on_throttle(asked)
        assert 0 <= wait <= limits.MAX_RETRY_AFTER_LIMIT_S
        await pacer.acquire()
        return vt.now

    assert vt.run(main) <= limits.MAX_RETRY_AFTER_LIMIT_S + 1


def test_a_released_block_lets_waiting_and_new_requests_through() -> None:
    """The request that set a block gave up: a new request goes at once, and one already
    waiting behind the block goes within a second (it wakes to look)."""
    vt = VirtualTime()
    pacer = make_pacer(vt, rate=100)
    mine = object()
    sent: list[float] = []

    async def request() -> None:
        await pacer.acquire()
        sent.append(vt.now)

    async def main() -> None:
        pacer.on_throttle(50.0, owner=mine)
        waiting = asyncio.ensure_future(request())
        await vt.sleep(2.0)
        pacer.release(mine)
        await request()
        await waiting

    vt.run(main)
    assert min(sent) == pytest.approx(2.0)
    assert max(sent) <= 3.0 + 1e-9


def test_releasing_one_block_keeps_another_requests_block() -> None:
    vt = VirtualTime()
    pacer = make_pacer(vt, rate=100)
    first, second = object(), object()

    async def main() -> float:
        pacer.on_throttle(5.0, owner=first)
        vt.now = 1.0
        pacer.on_throttle(5.0, owner=second)  # another answer to the same overload: until 6
        pacer.release(first)
        await pacer.acquire()
        return vt.now

    assert vt.run(main) == pytest.approx(6.0)
