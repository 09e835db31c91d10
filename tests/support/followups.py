"""A follow-up/calls test rig on the real engines, without the conversation code.

:func:`make_rig` migrates a fresh agent database, builds a (not started) :class:`Runtime` with a
:class:`ManualClock`, builds the service's components on it (the follow-up hooks and scheduler, the call booker) with
the managers' routes on a base app and connects the broker when a URL is given. Tests drive the hooks the way the turn
code does -- inside a transaction, with the contact row as it stands after the turn -- through
:meth:`Rig.prospect_writes` and :meth:`Rig.agent_replies`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import select, update

from agent_service.app import add_routes, build
from agent_service.calls.service import CallBooker
from agent_service.context import AGENT
from agent_service.db import MIGRATIONS, tables
from agent_service.followups.scheduler import FollowUpScheduler
from agent_service.followups.service import FollowUps
from agent_service.settings import AgentSettings
from parley_shared.clock import ManualClock
from parley_shared.db import migrate
from parley_shared.http import base_app
from parley_shared.service import RUNTIME, Runtime

TOKEN = "follow-ups-test-token-0123456789"
START = datetime(2026, 1, 5, 4, 0, tzinfo=UTC)  # Monday 09:00 in Almaty (UTC+5)


@dataclass
class Rig:
    settings: AgentSettings
    runtime: Runtime
    app: web.Application
    follow_ups: FollowUps
    booker: CallBooker
    scheduler: FollowUpScheduler
    clock: ManualClock

    @property
    def sessions(self) -> Any:
        return self.runtime.sessions

    async def close(self) -> None:
        await self.runtime.broker.close()
        await self.runtime.engine.dispose()

    async def add_contact(self, phone: str, **columns: Any) -> int:
        now = self.clock.now()
        values = {
            "phone": phone,
            "client_status": "client",
            "client_category": "prospect",
            "provider": "sandbox",
            "first_seen_at": now,
            "created_at": now,
            "updated_at": now,
            **columns,
        }
        async with self.sessions() as session, session.begin():
            result = await session.execute(tables.contacts.insert().values(values))
            return int(result.inserted_primary_key[0])

    async def contact(self, session: Any, contact_id: int) -> dict[str, Any]:
        row = (await session.execute(select(tables.contacts).where(tables.contacts.c.id == contact_id))).mappings()
        return dict(row.one())

    async def prospect_writes(self, contact_id: int, *, at: datetime | None = None, **columns: Any) -> None:
        """An inbound message: the turn records it on the contact, then calls ``on_inbound``."""
        now = at or self.clock.now()
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(tables.contacts)
                .where(tables.contacts.c.id == contact_id)
                .values(last_inbound_at=now, updated_at=now, **columns)
            )
            await self.follow_ups.on_inbound(session, [await self.contact(session, contact_id)], now)

    async def agent_replies(self, *contact_ids: int, at: datetime | None = None, **columns: Any) -> None:
        """The AI's replies (several: a batch of turns in one transaction): the turn updates each
        contact (outcome, owner, ...), then calls ``on_agent_messages`` once for all of them."""
        now = at or self.clock.now()
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(tables.contacts)
                .where(tables.contacts.c.id.in_(contact_ids))
                .values(last_outbound_at=now, updated_at=now, **columns)
            )
            rows = [await self.contact(session, contact_id) for contact_id in contact_ids]
            await self.follow_ups.on_agent_messages(session, rows, now)

    async def touches(self, contact_id: int | None = None) -> list[dict[str, Any]]:
        t = tables.follow_ups
        query = select(t).order_by(t.c.contact_id, t.c.sequence_no, t.c.touch)
        if contact_id is not None:
            query = query.where(t.c.contact_id == contact_id)
        async with self.sessions() as session:
            return [dict(r) for r in (await session.execute(query)).mappings()]

    async def outbox_rows(self) -> list[dict[str, Any]]:
        async with self.sessions() as session:
            return [dict(r) for r in (await session.execute(select(tables.outbox))).mappings()]


async def make_rig(
    database_url: str,
    amqp_url: str | None = None,
    *,
    clock: ManualClock | None = None,
    **overrides: Any,
) -> Rig:
    values: dict[str, Any] = {
        "database_url": database_url,
        "api_token": TOKEN,
        "llm_engine": "offline",
        "knowledge_embeddings": False,
        "follow_up_spread_minutes": 30,
        **overrides,
    }
    if amqp_url is not None:
        values["amqp_url"] = amqp_url
    settings = AgentSettings(**values)
    clock = clock or ManualClock(START)
    app = base_app(tokens={"test": TOKEN}, max_body_bytes=settings.max_body_bytes)
    runtime = Runtime(
        service="agent-followups-test",
        settings=settings,
        database_url=database_url,
        migrations=MIGRATIONS,
        outbox_table=tables.outbox,
        inbox_table=tables.inbox,
        clock=clock,
    )
    app[RUNTIME] = runtime
    agent = app[AGENT] = build(runtime, settings)  # built, never started: tests drive the pieces
    add_routes(app)
    await migrate(runtime.engine, MIGRATIONS)
    if amqp_url is not None:
        await runtime.broker.connect()
    return Rig(settings, runtime, app, agent.follow_ups, agent.booker, agent.scheduler, clock)


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}
