"""What a service's shutdown waits for before its connections close.

Work that outlives the call that started it -- a group commit's running batches, the outbox's
publishes after a commit -- registers itself here when it is created (``Drains.register``). At
stop the runtime drains them newest first within one ``SHUTDOWN_TIMEOUT_S`` budget: the
batches of handlers before the outbox, since those batches end by publishing through it.
"""

from __future__ import annotations

import time
from typing import Protocol


class Drainable(Protocol):
    name: str

    async def drain(self, timeout_s: float) -> None:
        """Wait until the work in flight is done, at most ``timeout_s``."""
        ...


class Drains:
    def __init__(self) -> None:
        self._items: list[Drainable] = []

    def register(self, item: Drainable) -> None:
        self._items.append(item)

    @property
    def names(self) -> list[str]:
        return [item.name for item in self._items]

    async def drain_all(self, timeout_s: float) -> None:
        """Drain every registered item, newest first, sharing one ``timeout_s`` budget."""
        deadline = time.monotonic() + timeout_s
        for item in reversed(self._items):
            await item.drain(max(0.0, deadline - time.monotonic()))
