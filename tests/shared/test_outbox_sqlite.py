"""On SQLite (no FOR UPDATE) the relay and an immediate publish never publish the same row twice."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from parley_shared.broker import Broker
from parley_shared.contracts import IncomingMessage
from parley_shared.db import create_engine, new_metadata, session_factory
from parley_shared.outbox import Outbox, outbox_table
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
    outbox = Outbox(table, session_factory(engine), broker, batch_size=500)
    now = datetime.now(UTC)
    ids = [f"m{i}" for i in range(300)]
    try:
        async with outbox.sessions() as session, session.begin():
            for i, message_id in enumerate(ids):
                payload = IncomingMessage(
                    message_id=message_id,
                    correlation_id=message_id,
                    phone="+77010000001",
                    provider="sandbox",
                    provider_message_id=str(i),
                    text="hi",
                    sent_at=now,
                    received_at=now,
                )
                await outbox.add(session, INCOMING, payload)
        await asyncio.gather(outbox.relay_once(), outbox.publish_ids(ids), outbox.relay_once())
        published = await infra.drain(amqp_url, INCOMING.name)
        assert sorted(m.message_id for m in published) == sorted(ids)
        assert await outbox.pending() == 0
    finally:
        await broker.close()
        await engine.dispose()
