"""Transactional outbox and inbox: the two tables that make at-least-once delivery exactly-once in effect.

* **Inbox** (``inbox``): one row per consumed ``message_id`` (primary key). A handler claims the
  id inside its own transaction; a redelivered message finds it taken and has no second effect.
* **Outbox** (``outbox``): a message to publish is written in the same transaction as the state
  change that causes it. After the commit the producer calls :meth:`Outbox.publish_after_commit`
  -- the one way to publish what a transaction staged: it publishes at once, never raises (a
  failure is logged and wakes the relay), tracks its task (drained at shutdown) and returns an
  awaitable for callers that act only once the broker confirmed. Whatever was not confirmed
  (crash, broker down) is published by the relay (:attr:`Outbox.relay`, a
  :class:`~parley_shared.periodic.Periodic` job). Rows are claimed with ``FOR UPDATE SKIP
  LOCKED`` on PostgreSQL so replicas share the work. A message can be published twice (crash
  after the confirm, before the mark): consumers dedupe on ``message_id``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    func,
    or_,
    select,
    text,
    update,
)

from parley_shared.batching import GroupCommit
from parley_shared.broker import Broker, PublishError
from parley_shared.clock import Clock, SystemClock
from parley_shared.contracts import Contract
from parley_shared.db import Session, SessionFactory, UtcDateTime, insert_ignore
from parley_shared.periodic import Periodic
from parley_shared.retry import Backoff, Sleep
from parley_shared.shutdown import Drains
from parley_shared.topology import BY_NAME, WorkQueue

log = structlog.get_logger("parley.outbox")


def outbox_table(metadata: MetaData) -> Table:
    return Table(
        "outbox",
        metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("message_id", String(200), nullable=False, unique=True),
        Column("correlation_id", String(200), nullable=False),
        Column("queue", String(100), nullable=False),
        Column("cause_id", String(200), nullable=True, index=True),
        Column("body", LargeBinary, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Column("published_at", UtcDateTime, nullable=True),
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("last_error", String(500), nullable=True),
        Index(
            "ix_outbox_pending",
            "id",
            postgresql_where=text("published_at IS NULL"),
            sqlite_where=text("published_at IS NULL"),
        ),
    )


def inbox_table(metadata: MetaData) -> Table:
    return Table(
        "inbox",
        metadata,
        Column("message_id", String(200), primary_key=True),
        Column("queue", String(100), nullable=False),
        Column("processed_at", UtcDateTime, nullable=False),
    )


class Inbox:
    """Claims consumed message ids so that a redelivery has no second effect."""

    def __init__(self, table: Table, clock: Clock | None = None) -> None:
        self.table = table
        self.clock = clock or SystemClock()

    async def claim(self, session: Session, queue: str, message_id: str) -> bool:
        """True the first time ``message_id`` is claimed (in the caller's transaction), else False."""
        return message_id in await self.claim_many(session, queue, [message_id])

    async def seen(self, session: Session, message_id: str) -> bool:
        """Whether ``message_id`` was claimed before (a redelivered copy can skip costly work)."""
        found = await session.scalar(select(self.table.c.message_id).where(self.table.c.message_id == message_id))
        return found is not None

    async def claim_many(self, session: Session, queue: str, message_ids: Sequence[str]) -> set[str]:
        """:meth:`claim` for several ids in one statement: the ids claimed now (not seen before)."""
        if not message_ids:
            return set()
        now = self.clock.now()
        rows = [{"message_id": i, "queue": queue, "processed_at": now} for i in message_ids]
        result = await insert_ignore(session, self.table, rows, ["message_id"], returning=["message_id"])
        return set(result.scalars())


class Outbox:
    def __init__(
        self,
        table: Table,
        sessions: SessionFactory,
        broker: Broker,
        *,
        drains: Drains,
        clock: Clock | None = None,
        batch_size: int = 200,
        relay_interval_s: float = 1.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.name = "outbox_after_commit"
        self.table = table
        self.sessions = sessions
        self.broker = broker
        self.clock = clock or SystemClock()
        self.batch_size = batch_size
        self.published = 0
        self.deferred = 0  # publishes after a commit that failed (left to the relay)
        self._after_commit: set[asyncio.Task[bool]] = set()
        # The relay: every relay_interval_s, or at once when a publish after a commit failed.
        # While the broker is away the relay backs off, but never beyond a few seconds: it is what
        # publishes the backlog once the broker is back.
        self.relay = Periodic(
            "outbox-relay",
            self.relay_all,
            interval_s=relay_interval_s,
            backoff=Backoff(first_s=relay_interval_s, max_s=max(relay_interval_s, 5.0)),
            sleep=sleep,
        )
        # SQLite ignores FOR UPDATE: without this, the relay and a publish after a commit could
        # read the same pending rows and publish them twice. One process writes a SQLite file,
        # so serialising its publishers is enough there (PostgreSQL locks the rows instead).
        self._serial: asyncio.Lock | None = asyncio.Lock() if sessions.engine.dialect.name == "sqlite" else None
        self.group_commit: GroupCommit[tuple[tuple[str, ...], tuple[str, ...]], None] = GroupCommit(
            self._flush, name="outbox_publish", drains=drains, max_batches=2
        )
        drains.register(self)  # after its group commit: drained before it
        # Built once (building a statement costs more CPU than running it).
        t = table
        pending = (
            select(t.c.id, t.c.message_id, t.c.correlation_id, t.c.queue, t.c.body)
            .where(t.c.published_at.is_(None))
            .order_by(t.c.id)
            .limit(bindparam("b_limit"))
        )
        self._relay_query = pending.with_for_update(skip_locked=True)
        self._requested_query = pending.where(
            or_(
                t.c.message_id.in_(bindparam("b_ids", expanding=True)),
                t.c.cause_id.in_(bindparam("b_causes", expanding=True)),
            )
        ).with_for_update()
        in_ids = t.c.id.in_(bindparam("b_ids", expanding=True))
        self._mark_published = update(t).where(in_ids)  # + published_at
        self._mark_failed = update(t).where(in_ids).values(attempts=t.c.attempts + 1)  # + last_error

    # ---------------------------------------------------------------- writing (in the caller's tx)
    async def add(self, session: Session, queue: WorkQueue, payload: Contract, *, cause_id: str | None = None) -> bool:
        """Stage ``payload`` for ``queue`` in the caller's transaction. False if already staged."""
        result = await insert_ignore(session, self.table, self._row(queue, payload, cause_id), ["message_id"])
        return bool(result.rowcount)

    async def add_many(self, session: Session, items: Sequence[tuple[WorkQueue, Contract, str | None]]) -> None:
        """Stage several ``(queue, payload, cause_id)`` in the caller's transaction, one statement."""
        if items:
            rows = [self._row(queue, payload, cause_id) for queue, payload, cause_id in items]
            await insert_ignore(session, self.table, rows, ["message_id"])

    def _row(self, queue: WorkQueue, payload: Contract, cause_id: str | None) -> dict[str, Any]:
        if not isinstance(payload, queue.contract):
            raise TypeError(f"{queue.name} carries {queue.contract.__name__}, not {type(payload).__name__}")
        return {
            "message_id": payload.message_id,
            "correlation_id": payload.correlation_id,
            "queue": queue.name,
            "cause_id": cause_id,
            "body": payload.encode(),
            "created_at": self.clock.now(),
        }

    # ---------------------------------------------------------------- publishing (after commit)
    def publish_after_commit(self, *, ids: Sequence[str] = (), causes: Sequence[str] = ()) -> Awaitable[bool]:
        """Publish the rows a committed transaction staged: by message id and/or by cause.

        Starts at once in a task of the outbox's own (drained at shutdown), so the caller may go
        on; awaiting the result waits for the broker's confirms: True when they came, False when
        the publish failed -- then it was logged, and the relay is woken to publish the rows.
        Never raises; cancelling the awaiting caller does not cancel the publish.

        Requests made while a flush runs are served together by the next one (group commit: one
        transaction, one ``SELECT ... FOR UPDATE`` and one ``UPDATE`` for all of them)."""
        if not ids and not causes:
            done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
            done.set_result(True)
            return done
        task = asyncio.get_running_loop().create_task(self._publish((tuple(ids), tuple(causes))))
        self._after_commit.add(task)
        task.add_done_callback(self._after_commit.discard)
        return asyncio.shield(task)

    async def _publish(self, request: tuple[tuple[str, ...], tuple[str, ...]]) -> bool:
        try:
            await self.group_commit.submit(request)
        except Exception as exc:  # the broker or the database: the relay publishes the rows later
            self.deferred += 1
            log.warning(
                "outbox.publish_deferred", error=type(exc).__name__, ids=len(request[0]), causes=len(request[1])
            )
            self.wake()
            return False
        return True

    async def drain(self, timeout_s: float) -> None:
        """Wait for the publishes after a commit still running (at shutdown), at most ``timeout_s``."""
        if self._after_commit:
            _, still = await asyncio.wait(set(self._after_commit), timeout=timeout_s)
            if still:
                log.warning("outbox.drain_timeout", running=len(still))

    async def relay_once(self) -> int:
        """Publish the oldest pending rows (a batch); returns how many were confirmed."""
        return await self._publish_where(self._relay_query, {})

    async def relay_all(self) -> None:
        """Publish every pending row, batch by batch (the relay's job)."""
        while await self.relay_once() >= self.batch_size:
            pass

    async def _flush(self, requests: list[tuple[tuple[str, ...], tuple[str, ...]]]) -> list[None]:
        params = {
            "b_ids": sorted({i for ids, _ in requests for i in ids}),
            "b_causes": sorted({c for _, causes in requests for c in causes}),
        }
        try:
            while await self._publish_where(self._requested_query, params) >= self.batch_size:
                pass
        except PublishError:
            raise
        except Exception as exc:  # the database: the relay publishes the rows later
            raise PublishError(repr(exc)) from exc
        return [None] * len(requests)

    async def _publish_where(self, query: Any, params: dict[str, Any]) -> int:
        if self._serial is None:
            return await self._publish_rows(query, params)
        async with self._serial:
            return await self._publish_rows(query, params)

    async def _publish_rows(self, query: Any, params: dict[str, Any]) -> int:
        count = 0
        async with self.sessions() as session, session.begin():
            rows = (await session.execute(query, {**params, "b_limit": self.batch_size})).all()
            # Confirms are pipelined on one channel: publish the batch together, then mark.
            results = await asyncio.gather(
                *(
                    self.broker.publish_raw(
                        BY_NAME[row.queue], row.body, message_id=row.message_id, correlation_id=row.correlation_id
                    )
                    for row in rows
                ),
                return_exceptions=True,
            )
            done = [row.id for row, res in zip(rows, results, strict=True) if res is None]
            failed = [(row.id, res) for row, res in zip(rows, results, strict=True) if res is not None]
            failure: BaseException | None = failed[0][1] if failed else None
            if failed:
                error = str(failure)[:500]
                await session.execute(self._mark_failed, {"b_ids": [i for i, _ in failed], "last_error": error})
            if done:
                await session.execute(self._mark_published, {"b_ids": done, "published_at": self.clock.now()})
            count = len(done)
        self.published += count
        if failure is not None:
            raise failure if isinstance(failure, PublishError) else PublishError(repr(failure))
        return count

    # ---------------------------------------------------------------- relay
    def wake(self) -> None:
        """Run the relay now (rows are waiting that a publish after a commit could not confirm)."""
        self.relay.wake()

    async def pending(self) -> int:
        async with self.sessions() as session:
            return int(
                await session.scalar(
                    select(func.count()).select_from(self.table).where(self.table.c.published_at.is_(None))
                )
                or 0
            )

    async def oldest_pending_at(self) -> datetime | None:
        async with self.sessions() as session:
            oldest: datetime | None = await session.scalar(
                select(func.min(self.table.c.created_at)).where(self.table.c.published_at.is_(None))
            )
            return oldest
