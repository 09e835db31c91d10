"""The outbox on SQLite: the relay and a publish after a commit never publish a row twice, and a
publish that fails never raises."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from parley_shared.broker import Broker
from parley_shared.contracts import IncomingMessage
from parley_shared.db import create_engine, new_metadata, session_factory
from parley_shared.outbox import Outbox, outbox_table
from parley_shared.shutdown import Drains
from parley_shared.topology import INCOMING
from tests.support import infra


async def test_relay_and_publish_ids_racing_on_sqlite_publish_each_row_once(amqp_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    metadata = new_metadata()
    table = outbox_table(metadata)
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/outbox.db")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    broker = Broker(amqp_url, service="test")
    await broker.connect()
    outbox = Outbox(table, session_factory(engine), broker, drains=Drains(), batch_size=500)
    now = datetime.now(UTC)
    ids = [f"m{i}" for i in range(300)]
    try:
        async with outbox.sessions() as session, session.begin():
            for i, message_id in enumerate(ids):
                await outbox.add(session, INCOMING, _message(message_id, i, now))
        await asyncio.gather(outbox.relay_once(), outbox.publish_after_commit(ids=ids), outbox.relay_once())
        published = await infra.drain(amqp_url, INCOMING.name)
        assert sorted(m.message_id for m in published) == sorted(ids)
        assert await outbox.pending() == 0
    finally:
        await broker.close()
        await engine.dispose()


async def test_a_publish_after_a_commit_never_raises_and_leaves_a_failure_to_the_relay(tmp_path) -> None:  # type: ignore[no-untyped-def]
    metadata = new_metadata()
    table = outbox_table(metadata)
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/outbox.db")
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    drains = Drains()
    outbox = Outbox(table, session_factory(engine), Broker("amqp://nowhere/", service="test"), drains=drains)
    try:
        async with outbox.sessions() as session, session.begin():
            await outbox.add(session, INCOMING, _message("m1", 1, datetime.now(UTC)))
        assert await outbox.publish_after_commit(ids=["m1"]) is False  # the broker is away: no exception
        assert outbox.deferred == 1 and outbox.relay._wake.is_set()  # the relay runs next, not in an interval
        assert await outbox.pending() == 1
        assert "outbox_after_commit" in drains.names  # shutdown waits for publishes in flight
    finally:
        await engine.dispose()


def _message(message_id: str, n: int, now: datetime) -> IncomingMessage:
    return IncomingMessage(
        message_id=message_id,
        correlation_id=message_id,
        phone="+77010000001",
        provider="sandbox",
        provider_message_id=str(n),
        text="hi",
        sent_at=now,
        received_at=now,
    )
