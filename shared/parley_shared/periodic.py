"""Periodic work: one APScheduler interval job per task, run until cancelled.

The follow-up scheduler and retention run this way: the first round at once, then every
``interval_s``; a round still running when the next is due is not started twice
(``max_instances=1``), missed rounds collapse into one (``coalesce``). The job catches and logs
its own errors (a failed round is retried at the next interval).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler


async def run_every(interval_s: float, job: Callable[[], Awaitable[None]], *, name: str) -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.add_job(
        job,
        "interval",
        seconds=interval_s,
        next_run_time=datetime.now(UTC),
        max_instances=1,
        coalesce=True,
        misfire_grace_time=max(1, int(interval_s)),
        id=name,
    )
    scheduler.start()
    try:
        await asyncio.Event().wait()
    finally:
        scheduler.shutdown(wait=False)
