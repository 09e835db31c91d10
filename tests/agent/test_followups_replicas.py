"""Two scheduler replicas on one PostgreSQL database, running at the same time, send each touch exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

from sqlalchemy import select

from agent_service.db import tables
from parley_shared.clock import ManualClock
from parley_shared.contracts import OutgoingMessage, decode
from parley_shared.topology import CAMPAIGN
from tests.support import infra
from tests.support.followups import START, make_rig

CONTACTS = 120


async def test_two_replicas_send_each_touch_exactly_once(pg_database_url: str, amqp_url: str) -> None:
    clock = ManualClock(START)
    a = await make_rig(pg_database_url, amqp_url, clock=clock, follow_up_batch_size=7)
    b = await make_rig(pg_database_url, amqp_url, clock=clock, follow_up_batch_size=7)
    try:
        ids = [await a.add_contact(f"+7701{i:07d}") for i in range(CONTACTS)]
        for n, contact in enumerate(ids):  # replies spread over the morning
            await a.agent_replies(contact, at=START + timedelta(minutes=3 * n))
        per_replica = {"a": 0, "b": 0}
        rounds = 0
        while True:
            pending = [t["due_at"] for t in await a.touches() if t["status"] == "pending"]
            if not pending:
                break
            clock.set(max(min(pending), clock.now()) + timedelta(hours=3))  # let a crowd of touches fall due
            ra, rb = await asyncio.gather(a.scheduler.run_due(), b.scheduler.run_due())
            per_replica["a"] += ra.sent
            per_replica["b"] += rb.sent
            rounds += 1
            assert rounds < 200

        rows = await a.touches()
        assert len(rows) == CONTACTS * 5 and {r["status"] for r in rows} == {"sent"}
        assert per_replica["a"] + per_replica["b"] == CONTACTS * 5
        assert per_replica["a"] > 0 and per_replica["b"] > 0, f"both replicas shared the work: {per_replica}"

        outbox = await a.outbox_rows()
        assert sorted(r["message_id"] for r in outbox) == sorted(r["message_id"] for r in rows)
        assert all(r["published_at"] is not None for r in outbox)
        delivered = [decode(OutgoingMessage, m.body) for m in await infra.drain(amqp_url, CAMPAIGN.name)]
        assert len(delivered) == CONTACTS * 5
        assert max(Counter(m.message_id for m in delivered).values()) == 1, "no touch published twice"
        assert Counter((m.phone, m.follow_up_touch) for m in delivered) == Counter(
            (f"+7701{i:07d}", t) for i in range(CONTACTS) for t in range(1, 6)
        )
        async with a.sessions() as session:
            recorded = (
                await session.execute(select(tables.messages.c.message_id).where(tables.messages.c.kind == "follow_up"))
            ).scalars()
            assert len(set(recorded)) == CONTACTS * 5
    finally:
        await a.close()
        await b.close()
