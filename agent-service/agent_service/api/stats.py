"""``GET /stats``: what the agent service holds and has in flight, for operators (all time, not a period)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import structlog
from aiohttp import web
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from agent_service.context import AGENT
from agent_service.db import tables
from parley_shared.db import Session
from parley_shared.http import json_response
from parley_shared.openapi import describe

log = structlog.get_logger(__name__)
QUEUE_DEPTHS_TIMEOUT_S = 5.0


class ContactStats(BaseModel):
    total: int
    by_client_status: dict[str, int]
    needs_human: int
    owned_by_human: int


class TurnStats(BaseModel):
    contacts_waiting: int = Field(description="Contacts with buffered messages waiting for their turn")
    messages_pending: int = Field(description="Inbound messages not yet handled by a turn")


class QueueDepth(BaseModel):
    messages: int
    consumers: int


class StatsOut(BaseModel):
    """Counts over the agent's database, the outbox and the RabbitMQ queues."""

    contacts: ContactStats
    messages: dict[str, dict[str, int]] = Field(description="direction (in, out) -> status -> count")
    turns: TurnStats
    follow_ups: dict[str, int] = Field(description="Follow-up touches by status (pending, sent, cancelled, skipped)")
    scheduled_calls: dict[str, int] = Field(description="Scheduled calls by status")
    outbox_pending: int = Field(description="Messages committed but not yet confirmed by the broker")
    queues: dict[str, QueueDepth] = Field(description="Messages ready and consumers per queue (dead letters included)")
    queues_error: str | None = Field(description="Why the queue depths are missing, if they are")


def _nested(rows: Iterable[Any]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for outer, inner, count in rows:
        out.setdefault(outer, {})[inner] = count
    return out


async def _database_counts(session: Session) -> dict[str, Any]:
    c, m, f, s = tables.contacts.c, tables.messages.c, tables.follow_ups.c, tables.scheduled_calls.c
    statuses: dict[str, int] = dict(
        (await session.execute(select(c.client_status, func.count()).group_by(c.client_status))).all()
    )
    flagged = await session.scalar(select(func.count()).where(c.needs_human == True))  # noqa: E712
    human = await session.scalar(select(func.count()).where(c.owner == "human"))
    waiting = await session.scalar(select(func.count()).where(c.turn_due_at.is_not(None)))
    messages = _nested(
        await session.execute(select(m.direction, m.status, func.count()).group_by(m.direction, m.status))
    )
    return {
        "contacts": {
            "total": sum(statuses.values()),
            "by_client_status": statuses,
            "needs_human": flagged or 0,
            "owned_by_human": human or 0,
        },
        "messages": messages,
        "turns": {"contacts_waiting": waiting or 0, "messages_pending": messages.get("in", {}).get("pending", 0)},
        "follow_ups": dict((await session.execute(select(f.status, func.count()).group_by(f.status))).all()),
        "scheduled_calls": dict((await session.execute(select(s.status, func.count()).group_by(s.status))).all()),
    }


@describe(
    "Counts: contacts, messages, turns in flight, follow-ups, outbox, queue depths",
    responses={200: StatsOut},
    tags=("operations",),
)
async def stats(request: web.Request) -> web.Response:
    runtime = request.app[AGENT].runtime
    async with runtime.sessions() as session:
        counts = await _database_counts(session)
    queues: dict[str, Any] = {}
    queues_error = None
    try:
        queues = await asyncio.wait_for(runtime.broker.queue_depths(), QUEUE_DEPTHS_TIMEOUT_S)
        if not queues:
            queues_error = "broker not connected"
    except Exception as exc:  # the stats still answer while the broker is away
        queues_error = type(exc).__name__
        log.warning("stats.queue_depths_failed", error=queues_error)
    return json_response(
        StatsOut.model_validate(
            {**counts, "outbox_pending": await runtime.outbox.pending(), "queues": queues, "queues_error": queues_error}
        )
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/stats", stats)
