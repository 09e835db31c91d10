"""``GET /stats`` (bearer token): message counts by direction, status and provider; queue depths;
outbox backlog; what the sender holds; the poller's state."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel
from sqlalchemy import func, select

from gateway.context import GATEWAY
from gateway.db import tables
from parley_shared.db import TupleRows
from parley_shared.http import json_response
from parley_shared.openapi import describe


class StatsOut(BaseModel):
    """Counts from message_logs, queue depths, outbox backlog, sender and poller state."""

    provider: str
    messages: dict[str, Any]
    queues: dict[str, Any]
    outbox_pending: int
    sender_waiting: dict[str, int]
    poller: dict[str, Any] | None


@describe(
    "Message counts by direction, status and provider; queue depths; sender and poller state",
    responses={200: StatsOut},
    tags=("operations",),
)
async def stats(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    t = tables.message_logs
    query = select(t.c.direction, t.c.provider, t.c.status, func.count()).group_by(
        t.c.direction, t.c.provider, t.c.status
    )
    async with gateway.runtime.sessions() as session:
        rows: TupleRows = (await session.execute(query)).all()
    messages: dict[str, Any] = {}
    for direction, provider, status, count in rows:
        side = messages.setdefault(direction, {"total": 0, "by_status": {}, "by_provider": {}})
        side["total"] += count
        side["by_status"][status] = side["by_status"].get(status, 0) + count
        side["by_provider"][provider] = side["by_provider"].get(provider, 0) + count
    try:
        queues: dict[str, Any] = await gateway.runtime.broker.queue_depths()
    except Exception as exc:
        queues = {"error": type(exc).__name__}
    return json_response(
        StatsOut(
            provider=gateway.provider.name.value,
            messages=messages,
            queues=queues,
            outbox_pending=await gateway.runtime.outbox.pending(),
            sender_waiting=gateway.pacer.waiting(),
            poller=await gateway.poller.health() if gateway.poller else None,
        )
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/stats", stats, name="stats")
