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


async def test_periodic_waits_the_interval_backs_off_after_failures_and_resets_after_success() -> None:
    outcomes = iter([None, "fail", "fail", None, None])
    waits: list[float] = []
    done = asyncio.Event()

    async def job() -> None:
        outcome = next(outcomes, "stop")
        if outcome == "stop":
            done.set()
            await asyncio.Event().wait()
        if outcome == "fail":
            raise ConnectionError("database away")

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    periodic = Periodic("test-job", job, interval_s=10, backoff=Backoff(first_s=1, max_s=8), sleep=sleep)
    task = asyncio.create_task(periodic.run())
    await asyncio.wait_for(done.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert waits == [10, 1, 2, 10, 10]  # the interval; the backoff after each failure; reset by a success
    assert periodic.failures == 0 and periodic.last_error is None


async def test_a_wake_up_ends_the_interval_but_never_a_failures_backoff() -> None:
    """Work arriving during an outage does not end the outage: a failing job woken again and again
    (the outbox relay, woken by every publish that failed) must not spin."""
    runs = 0
    failing = True
    sleeping = asyncio.Event()

    async def job() -> None:
        nonlocal runs
        runs += 1
        if failing:
            raise ConnectionError("broker away")

    async def sleep(_seconds: float) -> None:
        sleeping.set()
        await asyncio.Event().wait()  # never ends by itself

    periodic = Periodic("test-job", job, interval_s=10, backoff=Backoff(first_s=1, max_s=8), sleep=sleep)
    task = asyncio.create_task(periodic.run())
    try:
        await asyncio.wait_for(sleeping.wait(), 5)  # backing off after the first failure
        for _ in range(5):
            periodic.wake()
            for _ in range(10):
                await asyncio.sleep(0)
        assert runs == 1
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    failing, runs = False, 0
    sleeping.clear()
    second = asyncio.Event()

    async def counted() -> None:
        nonlocal runs
        runs += 1
        if runs == 2:
            second.set()

    periodic = Periodic("test-job", counted, interval_s=10, sleep=sleep)
    task = asyncio.create_task(periodic.run())
    try:
        await asyncio.wait_for(sleeping.wait(), 5)  # waiting out the interval after a success
        periodic.wake()
        await asyncio.wait_for(second.wait(), 5)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


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


async def test_a_stop_that_lands_while_a_wait_is_being_cleaned_up_still_stops_it() -> None:
    """The runtime stops a job by cancelling it once. A cancel that arrives in the moment a finished
    wait tidies up its timer must end the job, not be taken for the timer's own cancellation (the
    job would then run on, and the service's stop would wait for it forever)."""
    tidying, go_on = asyncio.Event(), asyncio.Event()

    async def timer(_seconds: float) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            tidying.set()  # the wait ended (woken); its timer is being cancelled
            await go_on.wait()
            raise

    runs, ran = 0, asyncio.Event()

    async def job() -> None:
        nonlocal runs
        runs += 1
        ran.set()

    periodic = Periodic("job", job, interval_s=60.0, sleep=timer)
    task = asyncio.create_task(periodic.run())
    await asyncio.wait_for(ran.wait(), 1.0)
    periodic.wake()
    await asyncio.wait_for(tidying.wait(), 1.0)
    task.cancel()  # the stop, in that moment
    go_on.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 1.0)
    assert runs == 1
