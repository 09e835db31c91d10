"""``GET /console/events``: the live stream (server-sent events) of one manager's screen.

Every event is ``event: contact`` with JSON data ``{"contact_id", "kind", "needs_human", "label"}``
and an id made of its time in milliseconds; the page reloads what the event touches from the
database. The events come from every replica through RabbitMQ (``agent_service/live.py``).

A stream survives a replica restart: on shutdown every stream is closed, the browser reconnects
(to another replica or to this one restarted) and sends the last id it saw (``Last-Event-ID``, or
``?last_event_id=`` when the page had to open a new connection). The stream then catches up from
the database: an event for each conversation changed since then (a handoff among them raises its
notification), and a ``resync`` that makes the page reload its view.

While it runs, the stream checks every ``RECHECK_S`` that the account may still use the console
(a disabled account's stream ends).
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

from aiohttp import web
from aiohttp_sse import EventSourceResponse
from sqlalchemy import select

from agent_service.console.web import console_of, manager_of
from agent_service.db.tables import contacts
from agent_service.live import event_id, parse_event_id
from parley_shared.contracts import LiveEvent

CATCH_UP_MARGIN = timedelta(seconds=5)  # clocks of replicas and events reordered on the way
CATCH_UP_MAX = 200
RECHECK_S = 30.0
WAKE_S = 5.0  # how often an idle stream looks whether its browser is still there
PING_S = 15.0
SEND_TIMEOUT_S = 30.0


def _data(event: LiveEvent) -> str:
    return json.dumps(
        {
            "contact_id": event.contact_id,
            "kind": event.kind,
            "needs_human": event.needs_human,
            "label": event.label,
        },
        ensure_ascii=True,
    )


async def _catch_up(request: web.Request, since_ms: int) -> list[LiveEvent]:
    console = console_of(request)
    since = datetime.fromtimestamp(since_ms / 1000, tz=UTC) - CATCH_UP_MARGIN
    c = contacts.c
    stmt = (
        select(c.id, c.name, c.needs_human, c.updated_at)
        .where(c.updated_at >= since)
        .order_by(c.updated_at)
        .limit(CATCH_UP_MAX)
    )
    async with console.sessions() as session:
        rows = (await session.execute(stmt)).all()
    events = [
        LiveEvent(
            contact_id=row.id,
            kind="handoff" if row.needs_human else "changed",
            at=row.updated_at,
            label=row.name,
            needs_human=bool(row.needs_human),
        )
        for row in rows
    ]
    return [*events, console.live.resync_event()]


async def stream(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    manager = manager_of(request)
    last = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
    since_ms = parse_event_id(last)
    if console.live.closing:  # this replica is stopping: the browser retries (elsewhere, or here restarted)
        return web.Response(status=503, text="restarting", headers={"Retry-After": "1"})
    subscriber = console.live.subscribe()
    serial = 0
    response = EventSourceResponse(ping_interval=PING_S)
    # A stream's connection is never reused: a browser reconnecting over it during shutdown would
    # open a stream nobody ends.
    response.force_close()
    response.headers["Connection"] = "close"
    try:
        await response.prepare(request)
        await response.send("ok", event="ready", retry=2000)

        async def send(events: list[LiveEvent]) -> None:
            """A batch in one write (the data is one line of JSON: no line breaks to split)."""
            nonlocal serial
            frames = []
            for event in events:
                serial += 1
                frames.append(f"id: {event_id(event.at, serial)}\r\nevent: contact\r\ndata: {_data(event)}\r\n\r\n")
            async with asyncio.timeout(SEND_TIMEOUT_S):  # a stalled browser is dropped, not waited for
                await response.write("".join(frames).encode())

        if since_ms is not None:
            await send(await _catch_up(request, since_ms))
        checked = time.monotonic()
        while response.is_connected():
            events = await subscriber.get(timeout=WAKE_S)
            if events is None:  # shutting down
                break
            if subscriber.resync_needed:
                subscriber.resync_needed = False
                events = [*events, console.live.resync_event()]
            if time.monotonic() - checked >= RECHECK_S:
                account = await console.accounts.get(manager.id)
                if account is None or not account.active or account.session_epoch != manager.session_epoch:
                    break
                checked = time.monotonic()
            if events:
                await send(events)
    except (ConnectionResetError, OSError):  # the browser went away (or stalled: a send timed out)
        pass
    finally:
        console.live.unsubscribe(subscriber)
        if response.prepared:
            response.stop_streaming()
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/events", stream, name="events")
