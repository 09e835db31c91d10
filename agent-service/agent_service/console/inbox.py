"""The inbox: conversations, latest activity first, with filters, search and unread counts.

``GET /console/inbox`` is the page; ``GET /console/inbox/list`` the list alone (the page reloads
it when a live event arrives); ``GET /console/badge`` the header's needs-a-human count (also the
tab title's). The filters are the contacts API's (``api/contacts.py``) plus "held by me" and
"held by others".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal
from urllib.parse import urlencode

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.engine import RowMapping

from agent_service.api.contacts import ContactFilters, CursorError, decode_cursor, encode_cursor, fetch_page
from agent_service.console.web import console_of, manager_of, render
from agent_service.db.tables import contacts, manager_reads, messages
from agent_service.domain.vocabulary import ProspectOutcome
from parley_shared.db import Session, TupleRows

PAGE = 50
PREVIEW = 140
SHOW = ("all", "needs_human", "mine", "others", "ai", "non_clients")
SHOW_LABELS = {
    "all": "All",
    "needs_human": "Needs a human",
    "mine": "Held by me",
    "others": "Held by others",
    "ai": "With the AI",
    "non_clients": "Non-clients",
}


class InboxQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    show: Literal["all", "needs_human", "mine", "others", "ai", "non_clients"] = "all"
    outcome: Literal[""] | ProspectOutcome = ""
    q: str = Field("", max_length=100)
    cursor: str | None = Field(None, max_length=200)

    @field_validator("q")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    def filters(self) -> ContactFilters:
        values: dict[str, Any] = {}
        if self.show == "needs_human":
            values["needs_human"] = True
        elif self.show == "ai":
            values["owner"] = "ai"
        elif self.show == "non_clients":
            values["is_client"] = False
        if self.outcome:
            values["outcome"] = self.outcome
        if self.q:
            values["q"] = self.q
        return ContactFilters(**values)

    def held_clauses(self, manager_id: int) -> list[ColumnElement[bool]]:
        c = contacts.c
        if self.show == "mine":
            return [c.owner == "human", c.owner_manager_id == manager_id]
        if self.show == "others":
            return [c.owner == "human", or_(c.owner_manager_id.is_(None), c.owner_manager_id != manager_id)]
        return []

    def query_string(self, **changes: Any) -> str:
        values = {"show": self.show, "outcome": self.outcome, "q": self.q, **changes}
        return urlencode({k: v for k, v in values.items() if v and not (k == "show" and v == "all")})


def read_query(request: web.Request) -> InboxQuery:
    try:
        return InboxQuery.model_validate(dict(request.query))
    except ValidationError:
        return InboxQuery()


async def last_messages(session: Session, contact_ids: Sequence[int]) -> dict[int, RowMapping]:
    """Each contact's latest message (the inbox's preview line)."""
    if not contact_ids:
        return {}
    m = messages.c
    latest = select(func.max(m.id)).where(m.contact_id.in_(contact_ids)).group_by(m.contact_id)
    stmt = select(m.id, m.contact_id, m.direction, m.kind, m.status, m.text, m.created_at).where(m.id.in_(latest))
    return {row["contact_id"]: row for row in (await session.execute(stmt)).mappings()}


async def unread_counts(session: Session, manager_id: int, contact_ids: Sequence[int]) -> dict[int, int]:
    """Prospect messages this manager has not seen yet, per conversation."""
    if not contact_ids:
        return {}
    m, r = messages.c, manager_reads.c
    joined = messages.outerjoin(manager_reads, and_(r.contact_id == m.contact_id, r.manager_id == manager_id))
    stmt = (
        select(m.contact_id, func.count())
        .select_from(joined)
        .where(
            m.contact_id.in_(contact_ids),
            m.direction == "in",
            m.id > func.coalesce(r.last_read_message_id, 0),
        )
        .group_by(m.contact_id)
    )
    counts: TupleRows = (await session.execute(stmt)).all()
    return {int(cid): int(n) for cid, n in counts}


async def needs_human_count(session: Session) -> int:
    return int(await session.scalar(select(func.count()).where(contacts.c.needs_human.is_(True))) or 0)


def preview(row: Mapping[str, Any] | None) -> str:
    if row is None:
        return ""
    text = " ".join((row["text"] or "").split())
    return text[:PREVIEW] + ("…" if len(text) > PREVIEW else "")


async def inbox_context(request: web.Request) -> dict[str, Any]:
    query = read_query(request)
    manager = manager_of(request)
    try:
        after = decode_cursor(query.cursor) if query.cursor else None
    except CursorError:
        after = None
    async with console_of(request).sessions() as session:
        held = query.held_clauses(manager.id)
        rows, next_position = await fetch_page(session, query.filters(), after, PAGE, extra=held)
        ids = [int(r["id"]) for r in rows]
        last = await last_messages(session, ids)
        unread = await unread_counts(session, manager.id, ids)
        needs = await needs_human_count(session)
    return {
        "query": query,
        "rows": rows,
        "last": last,
        "unread": unread,
        "needs_count": needs,
        "show_labels": SHOW_LABELS,
        "next_cursor": encode_cursor(*next_position) if next_position else None,
        "list_src": "/console/inbox/list" + ("?" + query.query_string() if query.query_string() else ""),
        "preview": preview,
    }


async def page(request: web.Request) -> web.Response:
    return await render("inbox.html", request, await inbox_context(request))


async def list_fragment(request: web.Request) -> web.Response:
    return await render("_inbox_list.html", request, await inbox_context(request))


async def badge(request: web.Request) -> web.Response:
    async with console_of(request).sessions() as session:
        count = await needs_human_count(session)
    return await render("_badge.html", request, {"needs_count": count})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/inbox", page, name="inbox")
    app.router.add_get("/inbox/list", list_fragment, name="inbox_list")
    app.router.add_get("/badge", badge, name="badge")
