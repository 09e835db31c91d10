"""Closed-loop prospects: each writes a message, waits for the answer to it, then writes the next.

The same driver feeds the Parley pipeline and the reference: a target only knows how to send
one message (returning its id) and where answers come from (``Replies``).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.common import percentile

# What each prospect writes, in order (one message, then wait for the answer): a sales
# conversation the offline engine answers message by message.
CONVERSATION = (
    "Hello! We are opening a new office and need furniture.",
    "How much is the ErgoPro 300 chair?",
    "Is it in stock?",
    "How does delivery work?",
    "What payment options do you have?",
    "Is there a warranty on the chairs?",
    "We are about 12 people, mostly working at desks all day.",
    "Backs hurt after a long day, that is the main problem.",
    "Do you have a showroom where we can try the chairs?",
    "Thanks, that helps a lot.",
)


@dataclass
class Retries:
    """5xx answers and dropped connections the client retried (a provider retries them too)."""

    count: int = 0
    statuses: dict[str, int] = field(default_factory=dict)


async def post(
    http: aiohttp.ClientSession,
    url: str,
    body: dict[str, Any],
    *,
    headers: dict[str, str] | None = None,
    retries: Retries,
    attempts: int = 8,
) -> dict[str, Any]:
    """POST and return the JSON answer, retrying server errors (the body carries its own id, so a
    retry that reached the server after all is deduplicated)."""
    for attempt in range(1, attempts + 1):
        try:
            async with http.post(url, json=body, headers=headers) as r:
                if r.status < 500:
                    r.raise_for_status()
                    return dict(await r.json())
                reason = str(r.status)
        except (aiohttp.ClientConnectionError, TimeoutError) as exc:
            reason = type(exc).__name__
        if attempt == attempts:
            raise RuntimeError(f"POST {url} failed {attempts} times: {reason}")
        retries.count += 1
        retries.statuses[reason] = retries.statuses.get(reason, 0) + 1
        await asyncio.sleep(0.5)
    raise AssertionError("unreachable")


def phone(index: int) -> str:
    return f"+7701{index:07d}"


@dataclass
class Reply:
    in_reply_to: list[str]
    seen_at: float


class Replies:
    """Answers as they arrive, one line per prospect phone."""

    def __init__(self) -> None:
        self._queues: dict[str, asyncio.Queue[Reply]] = defaultdict(asyncio.Queue)
        self.count = 0

    def deliver(self, to: str, in_reply_to: list[str]) -> None:
        self.count += 1
        self._queues[to].put_nowait(Reply(list(in_reply_to), time.perf_counter()))

    async def next(self, to: str, timeout: float) -> Reply | None:
        try:
            return await asyncio.wait_for(self._queues[to].get(), timeout)
        except TimeoutError:
            return None


@dataclass
class LoadResult:
    sent: int = 0
    answered: int = 0
    unanswered: int = 0
    out_of_order: int = 0
    errors: int = 0
    latencies_s: list[float] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0

    @property
    def wall_s(self) -> float:
        return self.finished - self.started

    def summary(self) -> dict[str, float | int]:
        return {
            "messages": self.sent,
            "answered": self.answered,
            "unanswered": self.unanswered,
            "out_of_order": self.out_of_order,
            "errors": self.errors,
            "wall_s": round(self.wall_s, 2),
            "messages_per_s": round(self.answered / self.wall_s, 1) if self.wall_s else 0.0,
            "latency_p50_ms": round(percentile(self.latencies_s, 50) * 1000, 1),
            "latency_p99_ms": round(percentile(self.latencies_s, 99) * 1000, 1),
            "latency_max_ms": round(max(self.latencies_s, default=0.0) * 1000, 1),
        }


Send = Callable[[str, str, int], Awaitable[str]]


async def closed_loop(
    send: Send,
    replies: Replies,
    *,
    prospects: int,
    messages: Sequence[str],
    reply_timeout_s: float = 60.0,
) -> LoadResult:
    """``prospects`` concurrent conversations of ``len(messages)`` messages each."""
    result = LoadResult()

    async def prospect(index: int) -> None:
        to = phone(index)
        for k, text in enumerate(messages):
            started = time.perf_counter()
            try:
                message_id = await send(to, text, k)
            except Exception:
                result.errors += 1
                return
            result.sent += 1
            reply = await replies.next(to, reply_timeout_s)
            if reply is None:
                result.unanswered += 1
                return
            result.answered += 1
            result.latencies_s.append(reply.seen_at - started)
            if reply.in_reply_to[-1:] != [message_id]:
                result.out_of_order += 1

    result.started = time.perf_counter()
    await asyncio.gather(*(prospect(i) for i in range(prospects)))
    result.finished = time.perf_counter()
    return result
