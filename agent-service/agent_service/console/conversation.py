"""One conversation: the live thread, the composer, the contact panel, and the actions on them.

``GET /console/c/{id}`` is the page; ``.../thread`` and ``.../panel`` its two live parts (the
page reloads them when an event for this contact arrives). The actions (take over, reply, hand
back, override the classification or the outcome, cancel or resume follow-ups) call
``agent_service.actions`` -- the same functions as the JSON API -- as the signed-in manager, and
answer with both parts refreshed (htmx out-of-band swaps) or, without htmx, a redirect back.

While the manager holds the conversation, the AI's suppressed draft for the latest message is
offered above the composer (never sent unless the manager sends it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping

from agent_service.actions import ActionError, NotFound, handoff
from agent_service.actions import contacts as contact_actions
from agent_service.actions import follow_ups as follow_up_actions
from agent_service.actions.audit import Actor, for_contact
from agent_service.actions.contacts import ContactPatch
from agent_service.console.web import console_of, is_htmx, manager_of, render
from agent_service.db import repository as repo
from agent_service.db import tables
from agent_service.domain.vocabulary import CATEGORIES, OUTCOMES
from parley_shared.contracts import MAX_TEXT
from parley_shared.db import SQL_INT_MAX, Session, dialect_name

THREAD_PAGE = 100
PANEL_ROWS = 50


@dataclass(frozen=True)
class Entry:
    """One line of the timeline: a message or an audit entry."""

    at: datetime
    message: RowMapping | None = None
    audit: RowMapping | None = None
    passages: tuple[dict[str, Any], ...] = ()


def contact_id_of(request: web.Request) -> int:
    raw = request.match_info["contact_id"]
    if not raw.isdigit() or not 0 < int(raw) <= SQL_INT_MAX:
        raise NotFound("no such conversation")
    return int(raw)


def actor_of(request: web.Request) -> Actor:
    manager = manager_of(request)
    return Actor.manager(manager.id, manager.display_name)


async def load_contact(session: Session, contact_id: int) -> RowMapping:
    row = (await session.execute(select(tables.contacts).where(tables.contacts.c.id == contact_id))).mappings().first()
    if row is None:
        raise NotFound("no such conversation")
    return row


async def mark_read(session: Session, manager_id: int, contact_id: int, message_id: int, now: datetime) -> None:
    """This manager has seen the conversation up to ``message_id`` (the inbox's unread counts)."""
    module = postgresql if dialect_name(session) == "postgresql" else sqlite
    r = tables.manager_reads
    stmt = module.insert(r).values(
        manager_id=manager_id, contact_id=contact_id, last_read_message_id=message_id, read_at=now
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["manager_id", "contact_id"],
        set_={"last_read_message_id": stmt.excluded.last_read_message_id, "read_at": stmt.excluded.read_at},
        where=r.c.last_read_message_id < stmt.excluded.last_read_message_id,
    )
    await session.execute(stmt)


def suggestion(rows: list[RowMapping], contact: RowMapping) -> RowMapping | None:
    """The AI's draft to offer: the latest message is a suppressed reply, and a manager holds the contact."""
    if contact["owner"] != "human":
        return None
    for row in reversed(rows):
        if row["direction"] == "in" or row["kind"] in ("reply", "operator"):
            return row if row["kind"] == "reply" and row["status"] == "suppressed" else None
    return None


def passages_of(request: web.Request, row: RowMapping) -> tuple[dict[str, Any], ...]:
    knowledge = console_of(request).knowledge
    found = []
    for ref in row["knowledge_refs"] or []:
        if not isinstance(ref, dict):
            continue
        passage = knowledge.passage(str(ref.get("chunk"))) if knowledge is not None else None
        found.append(
            {
                "doc": str(ref.get("doc", "")),
                "page": ref.get("page"),
                "chunk": str(ref.get("chunk", "")),
                "text": passage.text if passage is not None else None,
            }
        )
    return tuple(found)


async def thread_context(request: web.Request, contact_id: int) -> dict[str, Any]:
    from_id = request.query.get("from", "")
    before = request.query.get("before", "")
    m = tables.messages.c
    console = console_of(request)
    manager = manager_of(request)
    async with console.sessions() as session, session.begin():
        contact = await load_contact(session, contact_id)
        stmt = select(tables.messages).where(m.contact_id == contact_id)
        if from_id.isdigit() and int(from_id) <= SQL_INT_MAX:  # keep the older messages already on screen
            stmt = stmt.where(m.id >= int(from_id)).order_by(m.id.desc()).limit(THREAD_PAGE * 10)
        else:
            if before.isdigit() and int(before) <= SQL_INT_MAX:
                stmt = stmt.where(m.id < int(before))
            stmt = stmt.order_by(m.id.desc()).limit(THREAD_PAGE + 1)
        rows = list((await session.execute(stmt)).mappings().all())
        more = not from_id and len(rows) > THREAD_PAGE
        rows = list(reversed(rows[:THREAD_PAGE] if more else rows))
        audit = await for_contact(session, contact_id)
        if rows and not before:
            await mark_read(session, manager.id, contact_id, int(rows[-1]["id"]), console.desk.clock.now())
    first_at = rows[0]["created_at"] if rows and more else None
    entries = [Entry(r["created_at"], message=r, passages=passages_of(request, r)) for r in rows]
    entries += [Entry(a["created_at"], audit=a) for a in audit if first_at is None or a["created_at"] >= first_at]
    entries.sort(key=lambda e: (e.at, 0 if e.message is not None else 1))
    return {
        "contact": contact,
        "entries": entries,
        "older_before": rows[0]["id"] if more and rows else None,
        "first_id": rows[0]["id"] if rows else None,
        "suggestion": suggestion(rows, contact),
        "partial": bool(before),
    }


async def panel_context(request: web.Request, contact_id: int) -> dict[str, Any]:
    async with console_of(request).sessions() as session:
        contact = await load_contact(session, contact_id)
        touches_list = await repo.contact_touches(session, contact_id, PANEL_ROWS)
        calls_list = await repo.contact_calls(session, contact_id, PANEL_ROWS)
    return {
        "contact": contact,
        "touches": touches_list,
        "pending_touches": sum(1 for t in touches_list if t["status"] == "pending"),
        "calls": calls_list,
        "outcomes": OUTCOMES,
        "categories": CATEGORIES,
    }


async def page(request: web.Request) -> web.Response:
    contact_id = contact_id_of(request)
    context = await thread_context(request, contact_id)
    context |= await panel_context(request, contact_id)
    return await render("conversation.html", request, context)


async def thread_fragment(request: web.Request) -> web.Response:
    context = await thread_context(request, contact_id_of(request))
    template = "_entries.html" if context["partial"] else "_thread.html"
    return await render(template, request, context)


async def panel_fragment(request: web.Request) -> web.Response:
    return await render("_panel.html", request, await panel_context(request, contact_id_of(request)))


async def updated(request: web.Request, contact_id: int, flash: str | None = None) -> web.StreamResponse:
    """After an action: both live parts refreshed (htmx), or back to the page."""
    if not is_htmx(request):
        raise web.HTTPSeeOther(f"/console/c/{contact_id}")
    context = await thread_context(request, contact_id)
    context |= await panel_context(request, contact_id)
    context["flash"] = flash
    return await render("_conversation_update.html", request, context)


async def form_of(request: web.Request) -> dict[str, str]:
    form = await request.post()
    return {k: v for k, v in form.items() if isinstance(v, str)}


# ---------------------------------------------------------------------------- actions


async def take_over(request: web.Request) -> web.StreamResponse:
    contact_id = contact_id_of(request)
    await handoff.take_over(console_of(request).desk, contact_id, actor_of(request))
    return await updated(request, contact_id)


async def hand_back(request: web.Request) -> web.StreamResponse:
    contact_id = contact_id_of(request)
    await handoff.hand_back(console_of(request).desk, contact_id, actor_of(request))
    return await updated(request, contact_id)


async def reply(request: web.Request) -> web.StreamResponse:
    contact_id = contact_id_of(request)
    form = await form_of(request)
    text = form.get("text", "")
    if not text.strip():
        raise ActionError("Write something first.")
    if len(text) > MAX_TEXT:
        raise ActionError(f"A message has at most {MAX_TEXT} characters ({len(text)} given).")
    client_id = form.get("client_message_id") or None
    await handoff.send_operator_message(
        console_of(request).desk,
        contact_id,
        text,
        actor_of(request),
        client_message_id=client_id[:100] if client_id else None,
    )
    response = await updated(request, contact_id)
    response.headers["HX-Trigger"] = "parley:sent"
    return response


async def classify(request: web.Request) -> web.StreamResponse:
    contact_id = contact_id_of(request)
    form = await form_of(request)
    values: dict[str, Any] = {}
    if form.get("client_status"):
        values["client_status"] = form["client_status"]
        values["reason"] = form.get("reason", "").strip() or None
        if form.get("client_category"):
            values["client_category"] = form["client_category"]
    if form.get("outcome"):
        values["outcome"] = form["outcome"]
    try:
        patch = ContactPatch.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors(include_url=False))
        raise ActionError(problems) from None
    await contact_actions.override(console_of(request).desk, contact_id, patch, actor_of(request))
    return await updated(request, contact_id)


async def cancel_follow_ups(request: web.Request) -> web.StreamResponse:
    contact_id = contact_id_of(request)
    await follow_up_actions.cancel(console_of(request).desk, contact_id, actor_of(request), permanent=True)
    return await updated(request, contact_id)


async def resume_follow_ups(request: web.Request) -> web.StreamResponse:
    contact_id = contact_id_of(request)
    await follow_up_actions.resume(console_of(request).desk, contact_id, actor_of(request))
    return await updated(request, contact_id)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/c/{contact_id}", page, name="conversation")
    app.router.add_get("/c/{contact_id}/thread", thread_fragment, name="thread")
    app.router.add_get("/c/{contact_id}/panel", panel_fragment, name="panel")
    app.router.add_post("/c/{contact_id}/takeover", take_over)
    app.router.add_post("/c/{contact_id}/handback", hand_back)
    app.router.add_post("/c/{contact_id}/reply", reply)
    app.router.add_post("/c/{contact_id}/classification", classify)
    app.router.add_post("/c/{contact_id}/follow-ups/cancel", cancel_follow_ups)
    app.router.add_post("/c/{contact_id}/follow-ups/resume", resume_follow_ups)
