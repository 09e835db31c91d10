"""The one retry policy (``parley_shared.retry``) and the one periodic runner (``parley_shared.periodic``)."""

from __future__ import annotations

import asyncio

import pytest

from parley_shared.periodic import Periodic
from parley_shared.retry import Backoff


class Slow(Exception):
    def __init__(self, retry_after_s: float | None = None) -> None:
        super().__init__("slow down")
        self.retry_after_s = retry_after_s


class Waits:
    """An injected sleep that records the waits and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def test_delay_doubles_up_to_the_ceiling_and_honours_retry_after_within_it() -> None:
    backoff = Backoff(first_s=0.5, max_s=4)
    assert [backoff.delay(n) for n in range(1, 6)] == [0.5, 1, 2, 4, 4]
    assert backoff.delay(1, retry_after_s=3) == 3 and backoff.delay(4, retry_after_s=1) == 4
    assert backoff.delay(1, retry_after_s=3600) == 4


async def test_retries_what_it_is_told_to_with_the_waits_and_gives_up_after_the_attempts() -> None:
    sleep, calls = Waits(), []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise Slow(retry_after_s=2.0 if len(calls) == 2 else None)
        return "done"

    backoff = Backoff(first_s=0.5, max_s=10, attempts=5)
    assert await backoff.call(flaky, name="test", retry_if=lambda e: isinstance(e, Slow), sleep=sleep) == "done"
    assert sleep.waits == [0.5, 2.0]  # the second failure asked for two seconds

    async def always() -> None:
        calls.append(1)
        raise Slow()

    calls.clear()
    with pytest.raises(Slow):  # the last error as it was, not a wrapper
        await Backoff(first_s=0.1, attempts=3).call(always, name="test", retry_if=lambda e: True, sleep=sleep)
    assert len(calls) == 3


async def test_an_error_not_worth_retrying_is_raised_at_once() -> None:
    sleep, calls = Waits(), []

    async def broken() -> None:
        calls.append(1)
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError):
        await Backoff(attempts=5).call(broken, name="test", retry_if=lambda e: isinstance(e, Slow), sleep=sleep)
    assert calls == [1] and sleep.waits == []


async def test_a_deadline_stops_before_a_wait_that_would_end_past_it() -> None:
    sleep, calls = Waits(), []

    async def down() -> None:
        calls.append(1)
        raise Slow()

    with pytest.raises(Slow):
        await Backoff(first_s=1, max_s=1, give_up_after_s=0.0).call(
            down, name="test", retry_if=lambda e: True, sleep=sleep
        )
    assert calls == [1] and sleep.waits == []


async def test_periodic_runs_again_when_woken_backs_off_after_failures_and_resets_after_success() -> None:
    outcomes = iter([None, "fail", "fail", None, None])
    runs = 0
    waits: list[float] = []
    resumed = asyncio.Event()

    async def job() -> None:
        nonlocal runs
        runs += 1
        if next(outcomes) == "fail":
            raise ConnectionError("database away")

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        resumed.set()
        await asyncio.Event().wait()  # only a wake-up ends this wait

    periodic = Periodic("test-job", job, interval_s=10, backoff=Backoff(first_s=1, max_s=8), sleep=sleep)
    task = asyncio.create_task(periodic.run())
    try:
        for _ in range(4):
            await resumed.wait()
            resumed.clear()
            periodic.wake()
        await resumed.wait()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert runs == 5
    assert waits == [10, 1, 2, 10, 10]  # the interval; backoff after each failure; reset by a success
    assert periodic.failures == 0 and periodic.last_error is None


async def test_a_wake_during_a_run_starts_the_next_run_at_once() -> None:
    runs = 0
    second = asyncio.Event()
    periodic: Periodic

    async def job() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            periodic.wake()  # work arrived while this run was busy
        else:
            second.set()

    async def never(_seconds: float) -> None:
        await asyncio.Event().wait()

    periodic = Periodic("test-job", job, interval_s=60, sleep=never)
    task = asyncio.create_task(periodic.run())
    await asyncio.wait_for(second.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert runs == 2
