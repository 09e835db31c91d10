"""Scheduled calls: pending and upcoming calls by day (in the business's time zone), confirm,
cancel or move them. Each call links to its conversation.

The actions call ``agent_service.actions.calls`` (the same function as ``PATCH /scheduled-calls``);
a new time is read in the business's time zone and must fall inside working hours.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from itertools import groupby
from typing import Any

from aiohttp import web
from sqlalchemy import or_

from agent_service.actions import ActionError, NotBookable, NotFound
from agent_service.actions import calls as call_actions
from agent_service.actions.calls import CallPatch, calls_with_contacts
from agent_service.console.conversation import actor_of, form_of, updated
from agent_service.console.web import console_of, is_htmx, render
from agent_service.db.tables import scheduled_calls
from parley_shared.db import SQL_INT_MAX

LIMIT = 500


async def calls_context(request: web.Request) -> dict[str, Any]:
    console = console_of(request)
    tz = console.tz
    now = console.desk.clock.now()
    today = datetime.combine(now.astimezone(tz).date(), time(0), tzinfo=tz)
    c = scheduled_calls.c
    stmt = (
        calls_with_contacts()
        .where(
            or_(
                c.status == "pending",  # pending ones even when their time passed: still to settle
                (c.status == "confirmed") & (c.scheduled_at >= today),
            )
        )
        .order_by(c.scheduled_at, c.id)
        .limit(LIMIT)
    )
    async with console.sessions() as session:
        rows = (await session.execute(stmt)).mappings().all()
    days = [(day, list(items)) for day, items in groupby(rows, key=lambda r: r["scheduled_at"].astimezone(tz).date())]
    return {"days": days, "today": today.date(), "tomorrow": (today + timedelta(days=1)).date(), "now": now}


async def page(request: web.Request) -> web.Response:
    return await render("calls.html", request, await calls_context(request))


async def list_fragment(request: web.Request) -> web.Response:
    return await render("_calls_list.html", request, await calls_context(request))


def call_id_of(request: web.Request) -> int:
    raw = request.match_info["call_id"]
    if not raw.isdigit() or not 0 < int(raw) <= SQL_INT_MAX:
        raise NotFound("no such call")
    return int(raw)


async def _answer(request: web.Request, row: Any) -> web.StreamResponse:
    """The calls page's list, or the conversation's parts -- whichever page the action came from."""
    if request.headers.get("HX-Target") == "calls-list" or (
        not is_htmx(request) and "/console/calls" in request.headers.get("Referer", "")
    ):
        if not is_htmx(request):
            raise web.HTTPSeeOther("/console/calls")
        return await list_fragment(request)
    return await updated(request, int(row["contact_id"]))


async def _change(request: web.Request, patch: CallPatch) -> web.StreamResponse:
    row = await call_actions.update_call(console_of(request).desk, call_id_of(request), patch, actor_of(request))
    return await _answer(request, row)


async def confirm(request: web.Request) -> web.StreamResponse:
    return await _change(request, CallPatch(status="confirmed"))


async def cancel(request: web.Request) -> web.StreamResponse:
    return await _change(request, CallPatch(status="cancelled"))


async def reschedule(request: web.Request) -> web.StreamResponse:
    form = await form_of(request)
    raw = form.get("when", "").strip()
    try:
        local = datetime.fromisoformat(raw)
    except ValueError:
        raise ActionError("Give the new date and time.") from None
    tz = console_of(request).tz
    when = local.replace(tzinfo=tz) if local.tzinfo is None else local
    try:
        return await _change(request, CallPatch(scheduled_at=when))
    except NotBookable as exc:
        slots = ", ".join(s.astimezone(tz).strftime("%a %d %b %H:%M") for s in exc.proposed_slots[:3])
        reason = exc.reason.replace("_", " ")
        raise ActionError(f"That time cannot be booked ({reason}). Free slots: {slots}.") from None


def add_routes(app: web.Application) -> None:
    app.router.add_get("/calls", page, name="calls")
    app.router.add_get("/calls/list", list_fragment, name="calls_list")
    app.router.add_post("/calls/{call_id}/confirm", confirm)
    app.router.add_post("/calls/{call_id}/cancel", cancel)
    app.router.add_post("/calls/{call_id}/reschedule", reschedule)
