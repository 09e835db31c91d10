"""Group commit: concurrent calls served in batches, one transaction for many callers.

Under load most of a short transaction's cost is fixed (session, BEGIN, COMMIT, statement
overhead), not per row. :class:`GroupCommit` lets every caller ``await submit(item)`` as if it
ran alone, while the items submitted meanwhile are handed to one ``run_batch(items)`` call:

* the first item starts a batch at once (no waiting, so a lone caller is not slowed down);
* items that arrive while ``max_batches`` batches are running wait and go together into the
  next one, up to ``max_size`` items;
* ``run_batch`` returns one result per item, in order; a result that is an exception is raised
  to that item's caller alone;
* if ``run_batch`` raises and ``retry_alone(exc)`` says so (e.g. not the database being away but
  something about one item), each item is run again in a batch of its own, so that one bad item
  fails alone; otherwise every caller of the batch gets the exception.

A caller that is cancelled leaves the batch running: its item is still handled. A batch runs
in a context of its own (no caller's correlation id on its log lines). Every group commit
registers itself with its service's :class:`~parley_shared.shutdown.Drains` when it is created:
at shutdown :meth:`drain` waits for the batches still running (and those queued behind them)
before the connections close.

Each group commit has a ``name``; ``/metrics`` counts its batches, items and batches re-run item
by item (``parley_group_commit_*_total{name}``): items per batch is how much it saves.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import structlog
from prometheus_client import Counter

from parley_shared.broker import is_transient
from parley_shared.shutdown import Drains

log = structlog.get_logger("parley.batching")

BATCHES = Counter("parley_group_commit_batches_total", "Batches run by a group commit", ["name"])
ITEMS = Counter("parley_group_commit_items_total", "Items served by a group commit's batches", ["name"])
RETRIED_ALONE = Counter(
    "parley_group_commit_retried_alone_total", "Failed batches re-run item by item (one bad item)", ["name"]
)

T = TypeVar("T")
R = TypeVar("R")

# The most items one database group commit takes (``BATCH_MAX_SIZE``): what arrived beyond it
# waits for the next batch. Never a size to wait for: a batch is whatever is there.
BATCH_MAX_SIZE = 200


@dataclass(frozen=True)
class _Pending(Generic[T, R]):
    item: T
    future: asyncio.Future[R]


def transactions(
    run_batch: Callable[[list[T]], Awaitable[Sequence[R | Exception]]],
    *,
    name: str,
    drains: Drains,
    max_size: int = BATCH_MAX_SIZE,
    max_batches: int = 1,
) -> GroupCommit[T, R]:
    """The group commit of a service's database writes: ``max_batches`` batches at most in flight
    (one: what arrives while a batch runs goes into the next, so on a busy machine batches grow
    instead of transactions multiplying; pass one explicitly where commits must follow each other),
    each of at most ``max_size`` items (the service's ``BATCH_MAX_SIZE``), and a batch that failed for a
    reason of its own re-run item by item -- not one that met the database or the broker away
    (:func:`~parley_shared.broker.is_transient`), which every item would meet alone too: those
    callers get the error and retry as they would have."""
    return GroupCommit(
        run_batch,
        name=name,
        drains=drains,
        max_batches=max_batches,
        max_size=max_size,
        retry_alone=lambda exc: not is_transient(exc),
    )


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        run_batch: Callable[[list[T]], Awaitable[Sequence[R | Exception]]],
        *,
        name: str,
        drains: Drains,
        max_batches: int = 2,
        max_size: int = 200,
        retry_alone: Callable[[Exception], bool] | None = None,
    ) -> None:
        if max_batches < 1 or max_size < 1:
            raise ValueError("max_batches and max_size must be at least 1")
        self.run_batch = run_batch
        self.name = name
        self.retry_alone = retry_alone
        self.max_batches = max_batches
        self.max_size = max_size
        self._waiting: list[_Pending[T, R]] = []
        self._running = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0  # how many batches ran (for tests and metrics)
        self.items = 0
        self.largest = 0  # the most items a batch took
        drains.register(self)

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Wait until no batch runs or waits (at shutdown), at most ``timeout_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self._tasks:
            remaining = deadline - loop.time()
            if remaining <= 0:
                log.warning("batch.drain_timeout", name=self.name, running=len(self._tasks), waiting=len(self._waiting))
                return
            await asyncio.wait(set(self._tasks), timeout=remaining)

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Pending(item, future))
        self._start()
        return await future

    def _start(self) -> None:
        while self._waiting and self._running < self.max_batches:
            batch, self._waiting = self._waiting[: self.max_size], self._waiting[self.max_size :]
            self._running += 1
            # A batch serves many callers: it must not log under the first one's correlation id.
            task = asyncio.get_running_loop().create_task(self._run(batch), context=contextvars.Context())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[_Pending[T, R]]) -> None:
        results: Sequence[R | Exception] = ()
        failure: Exception | None = None
        try:
            results = await self._call([p.item for p in batch])
            if len(results) != len(batch):
                failure = RuntimeError(f"run_batch returned {len(results)} results for {len(batch)} items")
        except Exception as exc:  # handed to every caller of the batch
            failure = exc
        finally:
            self._running -= 1
            self.batches += 1
            self.items += len(batch)
            self.largest = max(self.largest, len(batch))
            BATCHES.labels(self.name).inc()
            ITEMS.labels(self.name).inc(len(batch))
            cancelled = failure is None and len(results) != len(batch)  # run_batch itself was cancelled
            for index, pending in enumerate(batch):
                if pending.future.done():  # its caller was cancelled
                    continue
                if failure is not None:
                    pending.future.set_exception(failure)
                elif cancelled:
                    pending.future.cancel()
                else:
                    result = results[index]
                    if isinstance(result, Exception):
                        pending.future.set_exception(result)
                    else:
                        pending.future.set_result(result)
            self._start()

    async def _call(self, items: list[T]) -> Sequence[R | Exception]:
        try:
            return await self.run_batch(items)
        except Exception as exc:
            if len(items) == 1 or self.retry_alone is None or not self.retry_alone(exc):
                raise
            log.warning("batch.retrying_alone", name=self.name, error=type(exc).__name__, items=len(items))
            RETRIED_ALONE.labels(self.name).inc()
        results: list[R | Exception] = []
        for item in items:
            try:
                results += await self.run_batch([item])
            except Exception as exc:
                results.append(exc)
        return results
