"""At-least-once delivery with idempotent handlers, on the real RabbitMQ and both databases.

A tiny service built from the shared pieces: it consumes ``incoming_messages``, records an
effect row, and answers on ``outgoing_messages`` through the outbox -- the agent's shape.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Column, MetaData, String, Table, func, select

from parley_shared.broker import Broker, RetryPolicy
from parley_shared.contracts import IncomingMessage, OutgoingMessage, stable_id
from parley_shared.db import create_engine, new_metadata, session_factory
from parley_shared.outbox import Inbox, Outbox, inbox_table, outbox_table
from parley_shared.retry import Backoff
from parley_shared.shutdown import Drains
from parley_shared.topology import INCOMING, OUTGOING
from tests.support import infra

FAST = RetryPolicy(requeue_delay_s=0.01, transient=Backoff(first_s=0.05, max_s=0.2, give_up_after_s=10))


def _metadata() -> tuple[MetaData, Table, Table, Table]:
    md = new_metadata()
    effects = Table("effects", md, Column("message_id", String(200), primary_key=True), Column("text", String(500)))
    return md, outbox_table(md), inbox_table(md), effects


def incoming(i: int, phone: str = "+77010000001") -> IncomingMessage:
    now = datetime.now(UTC)
    return IncomingMessage(
        message_id=f"in-{i}",
        correlation_id=f"c-{i}",
        phone=phone,
        provider="sandbox",
        provider_message_id=f"p-{i}",
        text=f"hello {i}",
        sent_at=now,
        received_at=now,
    )


@dataclass
class EchoService:
    database_url: str
    amqp_url: str
    fail: Callable[[IncomingMessage, int], None] | None = None
    inside: Callable[[IncomingMessage], Awaitable[None]] | None = None  # awaited mid-transaction
    calls: dict[str, int] = field(default_factory=dict)

    async def start(self) -> None:
        md, self.outbox_t, self.inbox_t, self.effects = _metadata()
        self.engine = create_engine(self.database_url)
        async with self.engine.begin() as conn:
            await conn.run_sync(md.create_all)
        self.sessions = session_factory(self.engine)
        self.broker = Broker(self.amqp_url, service="test", retry=FAST)
        await self.broker.connect()
        self.outbox = Outbox(self.outbox_t, self.sessions, self.broker, drains=Drains(), relay_interval_s=0.2)
        self.relay = asyncio.create_task(self.outbox.relay.run())  # publishes what a failed publish left
        self.inbox = Inbox(self.inbox_t)
        await self.broker.consume(INCOMING, self.handle, prefetch=20)

    async def handle(self, message: IncomingMessage) -> None:
        n = self.calls[message.message_id] = self.calls.get(message.message_id, 0) + 1
        async with self.sessions() as session, session.begin():
            if await self.inbox.claim(session, INCOMING.name, message.message_id):
                await session.execute(self.effects.insert().values(message_id=message.message_id, text=message.text))
                if self.inside:
                    await self.inside(message)
                reply = OutgoingMessage(
                    message_id=stable_id("reply", message.message_id),
                    correlation_id=message.correlation_id,
                    phone=message.phone,
                    text=f"echo {message.text}",
                    in_reply_to=[message.message_id],
                )
                await self.outbox.add(session, OUTGOING, reply, cause_id=message.message_id)
        if self.fail:
            self.fail(message, n)  # may raise after the commit, before the publish and the ack
        await self.outbox.publish_after_commit(causes=[message.message_id])

    async def effect_count(self) -> int:
        async with self.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(self.effects)) or 0)

    async def stop(self) -> None:
        self.relay.cancel()
        await self.broker.close()
        await self.engine.dispose()


async def wait_for(predicate: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_malformed_message_is_dead_lettered_at_once_with_its_reason(
    amqp_url: str, publisher: Broker, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    service = EchoService(f"sqlite+aiosqlite:///{tmp_path}/t.db", amqp_url)
    await service.start()
    try:
        await publisher.publish_raw(
            INCOMING, b'{"schema":"incoming_message","v":1,"phone":"nope"}', message_id="bad-1", correlation_id="c"
        )
        await publisher.publish_raw(INCOMING, b"\x00 not json", message_id="bad-2", correlation_id="c")
        await publisher.publish(INCOMING, incoming(1))
        await wait_for(lambda: service.effect_count())
        await wait_for(lambda: _dlq_has(amqp_url, 2))
        dead = await infra.drain(amqp_url, INCOMING.dead_letter_queue)
        reasons = {m.message_id: m.headers["x-parley-error"] for m in dead}
        assert set(reasons) == {"bad-1", "bad-2"}
        assert "malformed" in reasons["bad-1"] and "phone" in reasons["bad-1"]
        assert "not valid JSON" in reasons["bad-2"]
        assert all(m.headers["x-parley-queue"] == "incoming_messages" for m in dead)
    finally:
        await service.stop()


async def _dlq_has(url: str, n: int) -> bool:
    count, _ = await infra.queue_counts(url, INCOMING.dead_letter_queue)
    return count >= n


async def test_poison_message_lands_in_dead_letter_queue_after_the_delivery_limit(
    amqp_url: str, publisher: Broker, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    def always_fail(message: IncomingMessage, _n: int) -> None:
        if message.message_id == "in-666":
            raise ValueError("cannot digest this one")

    service = EchoService(f"sqlite+aiosqlite:///{tmp_path}/t.db", amqp_url, fail=always_fail)
    await service.start()
    try:
        await publisher.publish(INCOMING, incoming(666))
        await publisher.publish(INCOMING, incoming(1))
        await wait_for(lambda: _dlq_has(amqp_url, 1))
        dead = await infra.drain(amqp_url, INCOMING.dead_letter_queue)
        assert [m.message_id for m in dead] == ["in-666"]
        reason = dead[0].headers["x-parley-error"]
        assert f"handler failed {INCOMING.delivery_limit} time(s)" in reason and "cannot digest" in reason
        assert service.calls["in-666"] == INCOMING.delivery_limit
        # the healthy message went through, and the poison one's effect happened once only
        assert await service.effect_count() == 2
        assert (await infra.queue_counts(amqp_url, INCOMING.name))[0] == 0
    finally:
        await service.stop()


async def test_broker_enforces_the_delivery_limit_when_consumers_die(amqp_url: str, publisher: Broker) -> None:
    """A message that kills its consumer every time (no chance to dead-letter it ourselves)."""
    import aio_pika

    await publisher.publish(INCOMING, incoming(13))
    for _ in range(INCOMING.delivery_limit + 1):
        connection = await aio_pika.connect(amqp_url)
        channel = await connection.channel()
        queue = await channel.get_queue(INCOMING.name, ensure=False)
        message = await queue.get(fail=False, timeout=2)
        await connection.close()  # "crash" without ack
        if message is None:
            break
    dead = await infra.drain(amqp_url, INCOMING.dead_letter_queue)
    assert [m.message_id for m in dead] == ["in-13"]
    assert dead[0].headers.get("x-first-death-reason") == "delivery_limit"


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
async def test_crash_after_commit_before_ack_has_one_effect(
    amqp_url: str, publisher: Broker, tmp_path, db: str
) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite+aiosqlite:///{tmp_path}/t.db" if db == "sqlite" else await infra.recreate_database("crash")

    def crash_once(_m: IncomingMessage, n: int) -> None:
        if n == 1:
            raise RuntimeError("process died after commit")

    service = EchoService(url, amqp_url, fail=crash_once)
    await service.start()
    try:
        for i in range(20):
            await publisher.publish(INCOMING, incoming(i))
        await wait_for(lambda: _outgoing_count(amqp_url, 20))
        await asyncio.sleep(0.3)
        assert all(n == 2 for n in service.calls.values()) and len(service.calls) == 20
        assert await service.effect_count() == 20
        replies = await infra.drain(amqp_url, OUTGOING.name)
        assert sorted(m.message_id for m in replies) == sorted(stable_id("reply", f"in-{i}") for i in range(20))
        assert await service.outbox.pending() == 0
    finally:
        await service.stop()


async def _outgoing_count(url: str, n: int) -> bool:
    count, _ = await infra.queue_counts(url, OUTGOING.name)
    return count >= n


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
async def test_force_closed_connection_mid_stream_loses_nothing_and_doubles_nothing(
    amqp_url: str, publisher: Broker, tmp_path, db: str
) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite+aiosqlite:///{tmp_path}/t.db" if db == "sqlite" else await infra.recreate_database("force_close")
    total = 400
    service = EchoService(url, amqp_url)
    await service.start()
    try:
        for i in range(total):
            await publisher.publish(INCOMING, incoming(i, phone=f"+7701{i % 50:07d}"))
        await wait_for(lambda: len(service.calls) >= total // 4)
        await infra.close_all_connections()  # every connection on the vhost, the publisher's too
        await wait_for(lambda: service.broker.health()["ok"], timeout=30)
        await wait_for(lambda: _effects_at_least(service, total), timeout=60)
        await wait_for(lambda: _no_pending(service), timeout=30)
        await wait_for(lambda: _outgoing_count(amqp_url, total), timeout=30)
        replies = await infra.drain(amqp_url, OUTGOING.name)
        ids = [m.message_id for m in replies]
        # every reply arrived; the broker may hold a copy twice (confirm lost in the cut), never a second effect
        assert set(ids) == {stable_id("reply", f"in-{i}") for i in range(total)}
        assert await service.effect_count() == total
        assert (await infra.queue_counts(amqp_url, INCOMING.name))[0] == 0
        assert (await infra.queue_counts(amqp_url, INCOMING.dead_letter_queue))[0] == 0
        bodies = {json.loads(m.body)["in_reply_to"][0] for m in replies}
        assert len(bodies) == total
    finally:
        await service.stop()


class Gate:
    """Holds a handler inside its transaction and records how each held run ended."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.outcomes: list[str] = []

    async def __call__(self, message: IncomingMessage) -> None:
        self.entered.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.outcomes.append("cancelled")
            raise
        self.outcomes.append("finished")


@asynccontextmanager
async def held_inside(
    publisher: Broker, database_url: str, amqp_url: str, **options: Any
) -> AsyncIterator[tuple[EchoService, Gate]]:
    """An EchoService whose handler of ``in-1`` is held inside its transaction (released at exit)."""
    gate = Gate()
    service = EchoService(database_url, amqp_url, inside=gate, **options)
    await service.start()
    try:
        await publisher.publish(INCOMING, incoming(1))
        await asyncio.wait_for(gate.entered.wait(), 10)
        yield service, gate
    finally:
        gate.release.set()
        await service.stop()


@pytest.mark.parametrize(
    ("db", "error"), [("sqlite", ConnectionError), ("postgresql", ConnectionError), ("postgresql", ValueError)]
)
async def test_a_lost_channel_does_not_cut_a_running_handler_short(
    amqp_url: str, publisher: Broker, tmp_path, db: str, error: type[Exception]
) -> None:  # type: ignore[no-untyped-def]
    # Cancelling a handler half-way through its transaction invalidates its database connection;
    # on SQLite a cancelled INSERT ... RETURNING even left the write lock held by a closed
    # connection, stalling every writer (the flaky forced-close test above). The handler must
    # finish; the redelivered copy waits for it, then finds its inbox row: no second effect.
    url = f"sqlite+aiosqlite:///{tmp_path}/t.db" if db == "sqlite" else await infra.recreate_database("lost_channel")

    def fail_first_run(message: IncomingMessage, n: int) -> None:
        if n == 1:  # after its commit the first run fails (transient or not) on its dead channel
            raise error("after the commit")

    async with held_inside(publisher, url, amqp_url, fail=fail_first_run) as (service, gate):
        await infra.close_all_connections()
        # The broker redelivers on the new channel; the copy is held while the first run goes on.
        await wait_for(lambda: _consumer(service)["held_copies"] == 1, timeout=30)
        assert gate.outcomes == [] and service.calls == {"in-1": 1}  # not cancelled; copy not started
        gate.release.set()
        await wait_for(lambda: service.calls.get("in-1", 0) >= 2, timeout=30)  # the copy, after it
        await wait_for(lambda: _effects_at_least(service, 1), timeout=30)
        await wait_for(lambda: _no_pending(service), timeout=30)
        await wait_for(lambda: _outgoing_count(amqp_url, 1), timeout=30)
        await wait_for(lambda: _queue_has(amqp_url, INCOMING.name, 0), timeout=30)
        await asyncio.sleep(0.5)
        assert gate.outcomes == ["finished"]
        assert await service.effect_count() == 1
        # The first run left its failure to the copy (no retry in place, no requeue, no dead
        # letter): two runs in all, no failure counted, nothing dead-lettered.
        assert service.calls == {"in-1": 2}
        assert _consumer(service)["failed"] == 0
        replies = await infra.drain(amqp_url, OUTGOING.name)
        assert {m.message_id for m in replies} == {stable_id("reply", "in-1")}
        assert (await infra.queue_counts(amqp_url, INCOMING.dead_letter_queue))[0] == 0


async def test_a_copy_of_a_message_whose_handler_runs_waits_for_it(amqp_url: str, publisher: Broker, tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with held_inside(publisher, f"sqlite+aiosqlite:///{tmp_path}/t.db", amqp_url) as (service, gate):
        await publisher.publish(INCOMING, incoming(1))  # published twice (e.g. a lost confirm)
        await wait_for(lambda: _consumer(service)["held_copies"] == 1, timeout=10)
        assert service.calls == {"in-1": 1}
        gate.release.set()
        await wait_for(lambda: _consumer(service)["handled"] == 2, timeout=10)
        assert service.calls == {"in-1": 2} and await service.effect_count() == 1
        assert gate.outcomes == ["finished"]  # the copy found the inbox row: it never got inside


def _consumer(service: EchoService) -> dict[str, Any]:
    consumers: dict[str, dict[str, Any]] = service.broker.health()["consumers"]
    return consumers[INCOMING.name]


async def test_shutdown_waits_for_a_running_handler_then_cancels_it_after_the_grace_period(
    amqp_url: str, publisher: Broker, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    async with held_inside(publisher, f"sqlite+aiosqlite:///{tmp_path}/t.db", amqp_url) as (service, gate):
        # Released within the grace period: the handler finishes and its message is acked.
        asyncio.get_running_loop().call_later(0.3, gate.release.set)
        await service.broker.stop_consuming(drain_timeout_s=10)
        assert gate.outcomes == ["finished"]
        assert await service.effect_count() == 1
        await service.broker.consume(INCOMING, service.handle, prefetch=20)
        gate.entered.clear()
        gate.release.clear()
        await publisher.publish(INCOMING, incoming(2))
        await asyncio.wait_for(gate.entered.wait(), 10)
        # Still held after the grace period: cancelled, nothing committed, the broker keeps it.
        await service.broker.stop_consuming(drain_timeout_s=0.3)
        await wait_for(lambda: gate.outcomes == ["finished", "cancelled"], timeout=10)
        assert await service.effect_count() == 1
    await wait_for(lambda: _queue_has(amqp_url, INCOMING.name, 1), timeout=10)  # in-2, back in the queue


async def _queue_has(url: str, queue: str, n: int) -> bool:
    return (await infra.queue_counts(url, queue))[0] == n


async def _effects_at_least(service: EchoService, n: int) -> bool:
    return await service.effect_count() >= n


def _nothing_pending(outbox: Outbox) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return await outbox.pending() == 0

    return check


async def _no_pending(service: EchoService) -> bool:
    await service.outbox.relay_once()
    return await service.outbox.pending() == 0


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
async def test_outbox_relay_publishes_what_a_crash_left_behind(amqp_url: str, tmp_path, db: str) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite+aiosqlite:///{tmp_path}/t.db" if db == "sqlite" else await infra.recreate_database("relay")
    md, outbox_t, _inbox_t, _effects = _metadata()
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(md.create_all)
    sessions = session_factory(engine)
    broker = Broker(amqp_url, service="relay-test")
    await broker.connect()
    outbox = Outbox(outbox_t, sessions, broker, drains=Drains(), relay_interval_s=0.05)
    try:
        async with sessions() as session, session.begin():
            for i in range(30):
                reply = OutgoingMessage(message_id=f"r-{i}", correlation_id="c", phone="+77010000001", text=f"t{i}")
                assert await outbox.add(session, OUTGOING, reply)
            assert not await outbox.add(session, OUTGOING, reply)  # staged once only
        # the process "died" here: nothing published yet
        assert await outbox.pending() == 30
        relay = asyncio.create_task(outbox.relay.run())
        await wait_for(lambda: _outgoing_count(amqp_url, 30))
        # The confirms came before the rows are marked: cancelling the relay now could undo the mark
        # (and the next round would publish them again -- allowed, consumers dedupe, but not this test's point).
        await wait_for(_nothing_pending(outbox))
        relay.cancel()
        replies = await infra.drain(amqp_url, OUTGOING.name)
        assert [m.message_id for m in replies] == [f"r-{i}" for i in range(30)]
    finally:
        await broker.close()
        await engine.dispose()


async def test_unroutable_publish_raises(amqp_url: str, publisher: Broker) -> None:
    import aio_pika

    from parley_shared.broker import PublishError

    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    await channel.queue_delete(OUTGOING.name)
    await connection.close()
    with pytest.raises(PublishError, match="outgoing_messages"):
        await publisher.publish(
            OUTGOING, OutgoingMessage(message_id="x", correlation_id="c", phone="+77010000001", text="t")
        )
