"""The one way to run periodic work: :class:`Periodic`.

Each service's background rounds -- the outbox relay, the turn sweeper, the Wappi poller, the
follow-up scheduler -- are a job run every ``interval_s``, one run at a time, until the service
stops (the runtime starts and cancels them: ``Runtime.add_periodic``). ``wake()`` runs the job
again at once (the outbox relay after a publish failed); a run that fails is logged and the next
one waits by the shared retry policy (``backoff``, reset by a success) -- wake-ups included: work
arriving during an outage does not end the outage, and a failing job woken again and again would
spin -- so a database or a provider that is away is not hammered. Waiting goes through the
injected ``sleep``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from parley_shared.retry import Backoff, Sleep

log = structlog.get_logger("parley.periodic")


class Periodic:
    def __init__(
        self,
        name: str,
        job: Callable[[], Awaitable[Any]],
        *,
        interval_s: float,
        backoff: Backoff | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.name = name
        self.job = job
        self.interval_s = interval_s
        self.backoff = backoff or Backoff(first_s=interval_s, max_s=max(interval_s, 30.0))
        self.sleep = sleep
        self._wake = asyncio.Event()
        self.runs = 0
        self.failures = 0  # in a row
        self.last_error: str | None = None

    def wake(self) -> None:
        """Run the job again as soon as the current run (if any) ends."""
        self._wake.set()

    async def run(self) -> None:
        """Run the job, then wait (interval, backoff after a failure, or a wake-up), until cancelled."""
        while True:
            # Cleared before the run: a wake() that arrives during it starts the next one at once.
            self._wake.clear()
            if await self.run_once():
                await self._wait(self.interval_s)
            else:
                await self.sleep(self.backoff.delay(self.failures))

    async def run_once(self) -> bool:
        """One run of the job; True if it succeeded (a failure is logged, never raised)."""
        self.runs += 1
        try:
            await self.job()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failures += 1
            self.last_error = type(exc).__name__
            log.warning(
                "periodic.failed",
                job=self.name,
                error=type(exc).__name__,
                failures=self.failures,
                exc_info=self.failures == 1,  # the traceback once, not on every round of an outage
            )
            return False
        self.failures = 0
        self.last_error = None
        return True

    async def _wait(self, seconds: float) -> None:
        if self._wake.is_set():
            return
        sleeper = asyncio.ensure_future(self.sleep(seconds))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waker):
                task.cancel()
            # asyncio.wait, not ``await task`` under suppress(CancelledError): a stop (this task's
            # own cancellation) that lands while the timer is being cancelled must not be swallowed
            # as the timer's -- the job would run on and the service's stop would wait for ever.
            await asyncio.wait({sleeper, waker})
