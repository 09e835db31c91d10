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
        exponential = self.first_s * 2 ** min(max(failures - 1, 0), 30)
        return min(max(exponential, retry_after_s or 0.0), self.max_s)

    def retrying(
        self,
        *,
        name: str,
        retry_if: Callable[[BaseException], bool],
        sleep: Sleep = asyncio.sleep,
        before_sleep: Callable[[RetryCallState], Awaitable[None]] | None = None,
        log_level: str = "warning",
    ) -> AsyncRetrying:
        """A tenacity ``AsyncRetrying`` for ``async for attempt in ...: with attempt: ...``.

        ``retry_if`` decides per exception (anything else is raised at once); ``before_sleep`` runs
        after a failure that will be retried, before the wait (e.g. to record it)."""

        async def announce(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            wait = state.upcoming_sleep
            getattr(log, log_level)(
                f"{name}.retry",
                attempt=state.attempt_number,
                error=type(exc).__name__ if exc else None,
                retry_in_s=round(wait, 3),
            )
            if before_sleep is not None:
                await before_sleep(state)

        return AsyncRetrying(
            sleep=sleep,
            stop=_Stop(self),
            wait=_Wait(self),
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
        """``await fn()``, retried by this policy; returns its result or raises its last error."""
        async for attempt in self.retrying(name=name, retry_if=retry_if, sleep=sleep):
            with attempt:
                return await fn()
        raise AssertionError("unreachable")  # pragma: no cover - tenacity either returns or raises


class _Wait(wait_base):
    def __init__(self, backoff: Backoff) -> None:
        self.backoff = backoff

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        return self.backoff.delay(retry_state.attempt_number, retry_after_of(exc))


class _Stop(stop_base):
    """Stop at the attempt limit, or when the next wait would end past the deadline."""

    def __init__(self, backoff: Backoff) -> None:
        self.backoff = backoff

    def __call__(self, retry_state: RetryCallState) -> bool:
        b = self.backoff
        if b.attempts is not None and retry_state.attempt_number >= b.attempts:
            return True
        if b.give_up_after_s is not None:
            exc = retry_state.outcome.exception() if retry_state.outcome else None
            upcoming = b.delay(retry_state.attempt_number, retry_after_of(exc))
            elapsed = time.monotonic() - retry_state.start_time
            return elapsed + upcoming > b.give_up_after_s
        return False
