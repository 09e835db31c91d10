"""Pacing outgoing traffic: one token bucket per account and replies ahead of campaigns.

Pure data structures driven by the times they are given (the sender passes its injected clock's
"now"), so pacing is tested without waiting.

* :class:`TokenBucket` -- ``rate_per_min`` tokens a minute, at most ``burst`` saved up. It starts
  **empty**: a process that restarts in a loop can never send faster than the rate. A provider's
  "slow down" (429 with ``Retry-After``) pauses the whole account, not just one message.
* :class:`PriorityBuffer` -- the waiting sends; conversational replies and operator messages
  always before follow-up campaign touches, first come first served within a class (except that
  the sender passes over a message whose contact has a call running: the messages behind it
  for other contacts go first).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from parley_shared.contracts import OutgoingKind

T = TypeVar("T")
PRIORITY: dict[OutgoingKind, int] = {OutgoingKind.REPLY: 0, OutgoingKind.OPERATOR: 0, OutgoingKind.FOLLOW_UP: 1}


@dataclass
class TokenBucket:
    rate_per_min: float
    burst: float = 1.0
    tokens: float = 0.0
    updated_at: datetime | None = None
    paused_until: datetime | None = None

    @property
    def interval_s(self) -> float:
        return 60.0 / self.rate_per_min

    def _refill(self, now: datetime) -> None:
        if self.updated_at is None:
            self.updated_at = now
            return
        elapsed = (now - self.updated_at).total_seconds()
        if elapsed > 0:
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate_per_min / 60.0)
            self.updated_at = now

    def wait_s(self, now: datetime) -> float:
        """Seconds until a send is allowed (0 when one is allowed now)."""
        self._refill(now)
        pause = (self.paused_until - now).total_seconds() if self.paused_until else 0.0
        missing = max(0.0, 1.0 - self.tokens)
        return max(pause, missing * self.interval_s, 0.0)

    def take(self, now: datetime) -> bool:
        """Use one token if one is available now."""
        if self.wait_s(now) > 1e-9:
            return False
        self.tokens = max(0.0, self.tokens - 1.0)
        return True

    def give_back(self) -> None:
        """Return an unused token (nobody was left to use it)."""
        self.tokens = min(self.burst, self.tokens + 1.0)

    def pause(self, now: datetime, seconds: float) -> None:
        """Hold every send of the account for ``seconds`` (a provider asked us to slow down)."""
        until = now + timedelta(seconds=seconds)
        if self.paused_until is None or until > self.paused_until:
            self.paused_until = until


@dataclass(order=True)
class _Entry(Generic[T]):
    priority: int
    seq: int
    item: T = field(compare=False)


class PriorityBuffer(Generic[T]):
    """Items by (priority, arrival); lower priority values leave first."""

    def __init__(self) -> None:
        self._heap: list[_Entry[T]] = []
        self._seq = itertools.count()

    def push(self, priority: int, item: T) -> None:
        heapq.heappush(self._heap, _Entry(priority, next(self._seq), item))

    def pop(self) -> T:
        return heapq.heappop(self._heap).item

    def peek(self) -> T | None:
        return self._heap[0].item if self._heap else None

    def in_order(self) -> Iterator[T]:
        """Every item, in the order they would leave (lazily: the first one costs no sort)."""
        if self._heap:
            yield self._heap[0].item
            yield from (entry.item for entry in sorted(self._heap)[1:])

    def remove(self, item: T) -> bool:
        for index, entry in enumerate(self._heap):
            if entry.item is item:
                self._heap.pop(index)
                heapq.heapify(self._heap)
                return True
        return False

    def counts(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for entry in self._heap:
            out[entry.priority] = out.get(entry.priority, 0) + 1
        return out

    def __len__(self) -> int:
        return len(self._heap)
