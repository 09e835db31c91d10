"""The one retry policy: exponential backoff with a ceiling, honouring ``Retry-After``, on tenacity.

Every place that tries again -- waiting for the database or the broker at start-up, a consumer's
handler after infrastructure trouble, a crashed worker, a provider call, a model call, a media
download, a write that must not be lost -- describes *how* with a :class:`Backoff` and *what* is
worth retrying with a predicate, and runs through :meth:`Backoff.retrying` (a tenacity
``AsyncRetrying``). Loops that need the delay itself (the sender, which holds the account
between attempts) ask :meth:`Backoff.delay`.

* The wait before attempt ``n + 1`` is ``first_s * 2^(n-1)``, at least what the failure asked
  for -- an exception with a ``retry_after_s`` attribute (a provider's ``Retry-After``) -- and
  at most ``max_s`` either way (a provider asking for an hour gets ``max_s``; the caller decides
  what a long pause means, e.g. the sender pauses the whole account).
* It stops after ``attempts`` attempts and/or once ``give_up_after_s`` has passed since the first
  (checked before sleeping, so it never sleeps past the deadline); then the last exception is
  raised as it was.
* Sleeping goes through the injected ``sleep`` (tests pass one that does not wait).
* Every retry is logged (``<name>.retry``) with the attempt, the error's type and the wait --
  never the error's text, which may hold a phone number or a message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception
from tenacity.stop import stop_base
from tenacity.wait import wait_base

log = structlog.get_logger("parley.retry")

Sleep = Callable[[float], Awaitable[None]]


def retry_after_of(exc: BaseException | None) -> float | None:
    """The wait a failure asks for (``retry_after_s`` on the exception or its ``failure``)."""
    if exc is None:
        return None
    value = getattr(exc, "retry_after_s", None)
    if value is None:
        value = getattr(getattr(exc, "failure", None), "retry_after_s", None)
    return float(value) if isinstance(value, int | float) else None


@dataclass(frozen=True)
class Backoff:
    """How one use retries (see the module docstring)."""

    first_s: float = 0.5
    max_s: float = 15.0
    attempts: int | None = None
    give_up_after_s: float | None = None

    def delay(self, failures: int, retry_after_s: float | None = None) -> float:
        """The wait after ``failures`` failed attempts in a row."""
        exponential: float = self.first_s * 2 ** min(max(failures - 1, 0), 30)
        return min(max(exponential, retry_after_s or 0.0), self.max_s)

    def retrying(
        self,
        *,
        name: str,
        retry_if: Callable[[BaseException], bool],
        sleep: Sleep = asyncio.sleep,
        before_sleep: Callable[[RetryCallState], Awaitable[None]] | None = None,
        log_level: str = "warning",
        after_attempts: int = 0,
        started_at: float | None = None,
    ) -> AsyncRetrying:
        """A tenacity ``AsyncRetrying`` for ``async for attempt in ...: with attempt: ...``.

        ``retry_if`` decides per exception (anything else is raised at once); ``before_sleep`` runs
        after a failure that will be retried, before the wait (e.g. to record it).
        ``after_attempts``/``started_at``: the caller already made that many attempts, the first at
        that ``time.monotonic()`` (a fast first attempt without tenacity's machinery, see
        :meth:`call`): waits, the attempt limit and the deadline go on from there."""

        async def announce(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            wait = state.upcoming_sleep
            getattr(log, log_level)(
                f"{name}.retry",
                attempt=state.attempt_number + after_attempts,
                error=type(exc).__name__ if exc else None,
                retry_in_s=round(wait, 3),
            )
            if before_sleep is not None:
                await before_sleep(state)

        return AsyncRetrying(
            sleep=sleep,
            stop=_Stop(self, after_attempts, started_at),
            wait=_Wait(self, after_attempts),
            retry=retry_if_exception(retry_if),
            before_sleep=announce,
            reraise=True,
        )

    async def call(
        self,
        fn: Callable[[], Awaitable[Any]],
        *,
        name: str,
        retry_if: Callable[[BaseException], bool],
        sleep: Sleep = asyncio.sleep,
    ) -> Any:
        """``await fn()``, retried by this policy; returns its result or raises its last error.

        The first attempt runs without tenacity's machinery (about 60 us a call, paid on every
        message of a hot path otherwise): only a failure worth retrying enters the loop."""
        started = time.monotonic()
        try:
            return await fn()
        except Exception as exc:
            if not retry_if(exc) or self.stops(1, started, exc):
                raise
            await self.wait_after_first(exc, name=name, sleep=sleep)
        async for attempt in self.retrying(
            name=name, retry_if=retry_if, sleep=sleep, after_attempts=1, started_at=started
        ):
            with attempt:
                return await fn()
        raise AssertionError("unreachable")  # pragma: no cover - tenacity either returns or raises

    def stops(self, attempts: int, started_at: float, exc: BaseException | None) -> bool:
        """Whether to give up after ``attempts`` failed attempts, the first at ``started_at``."""
        if self.attempts is not None and attempts >= self.attempts:
            return True
        if self.give_up_after_s is not None:
            upcoming = self.delay(attempts, retry_after_of(exc))
            return time.monotonic() - started_at + upcoming > self.give_up_after_s
        return False

    async def wait_after_first(self, exc: BaseException, *, name: str, sleep: Sleep = asyncio.sleep) -> None:
        """Log and wait after a first attempt made outside :meth:`retrying`."""
        wait = self.delay(1, retry_after_of(exc))
        log.warning(f"{name}.retry", attempt=1, error=type(exc).__name__, retry_in_s=round(wait, 3))
        await sleep(wait)


class _Wait(wait_base):
    def __init__(self, backoff: Backoff, after_attempts: int) -> None:
        self.backoff = backoff
        self.after_attempts = after_attempts

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        return self.backoff.delay(retry_state.attempt_number + self.after_attempts, retry_after_of(exc))


class _Stop(stop_base):
    """Stop at the attempt limit, or when the next wait would end past the deadline."""

    def __init__(self, backoff: Backoff, after_attempts: int, started_at: float | None) -> None:
        self.backoff = backoff
        self.after_attempts = after_attempts
        self.started_at = started_at

    def __call__(self, retry_state: RetryCallState) -> bool:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        started = self.started_at if self.started_at is not None else retry_state.start_time
        return self.backoff.stops(retry_state.attempt_number + self.after_attempts, started, exc)
