"""``GET /contacts/{phone}``: one contact, its conversation (newest messages last), its follow-up
touches and scheduled calls.

``{phone}`` is E.164 with or without the plus (encode ``+`` as ``%2B``); other formats are
normalised. Older messages page with ``?before=<message id>``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from agent_service.api.contacts import ContactOut
from agent_service.api.params import PHONE_PARAM, contact_or_404, parse_phone
from agent_service.context import AGENT
from agent_service.db import repository as repo
from agent_service.db import tables
from parley_shared.db import SQL_INT_MAX
from parley_shared.http import json_response, read_query
from parley_shared.openapi import describe

MAX_MESSAGES = 500
MAX_ROWS = 50


class MessageOut(BaseModel):
    id: int
    direction: str = Field(description="in | out")
    kind: str = Field(description="in: text, voice, image ...; out: reply, follow_up, operator")
    status: str = Field(
        description="in: pending, handled, silent; out: queued, sent, delivered, read, failed, suppressed"
    )
    text: str | None
    message_id: str
    correlation_id: str | None
    turn_id: str | None
    transcribed: bool
    knowledge_refs: list[dict[str, Any]] | None = Field(description="Passages a reply used: doc, page, chunk")
    model: str | None
    tokens_in: int | None
    tokens_out: int | None
    latency_ms: int | None
    error: str | None
    author: str | None = Field(None, description="Operator messages: the manager who wrote it (or api)")
    sent_at: datetime | None
    created_at: datetime
    caption: str | None = None
    media: dict[str, Any] | None = Field(
        None,
        description="A file: mime_type, size, file_name, sha256, stored (the gateway serves it at GET /media/{stored}) "
        "or error (why it could not be kept)",
    )
    details: dict[str, Any] | None = Field(
        None,
        description="The structured content of the kind: interactive (a tap; a flow's answers in data), location, "
        "contacts, order, referral, system, unsupported, reaction",
    )
    target_message_id: str | None = Field(None, description="A reaction, an edit or a revoke: the message it is about")
    reaction: str | None = Field(None, description="The prospect's reaction to this message")
    edited_at: datetime | None = Field(
        None, description="The prospect corrected this message (text is the corrected one)"
    )
    deleted_at: datetime | None = Field(None, description="The prospect deleted this message (not given to the model)")


class TouchOut(BaseModel):
    id: int
    sequence_no: int
    touch: int
    strategy: str
    due_at: datetime
    status: str = Field(description="pending | sent | cancelled | skipped")
    reason: str | None
    replied: bool
    sent_at: datetime | None


class ContactCallOut(BaseModel):
    id: int
    scheduled_at: datetime = Field(description="UTC")
    timezone: str
    status: str = Field(description="pending | confirmed | cancelled | done")
    notes: str | None
    created_at: datetime


class Conversation(BaseModel):
    """A contact, its messages (oldest first), its follow-up touches and its scheduled calls."""

    contact: ContactOut
    messages: list[MessageOut]
    older_before: int | None = Field(description="Pass as ?before= for older messages; null when there are none")
    follow_ups: list[TouchOut] = Field(description="The touches of the contact's latest sequences, newest first")
    calls: list[ContactCallOut] = Field(description="Scheduled calls, latest first")


class ConversationQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(100, ge=1, le=MAX_MESSAGES)
    before: int | None = Field(None, ge=1, le=SQL_INT_MAX, description="Only messages with a smaller id")


@describe(
    "One contact with its conversation",
    query=ConversationQuery,
    path_params=PHONE_PARAM,
    responses={200: Conversation, 404: "No contact with this phone"},
    tags=("contacts",),
)
async def get_conversation(request: web.Request) -> web.Response:
    phone = parse_phone(request)
    query = await read_query(request, ConversationQuery)
    m = tables.messages.c
    async with request.app[AGENT].runtime.sessions() as session:
        contact = await contact_or_404(session, phone)
        stmt = select(tables.messages).where(m.contact_id == contact["id"])
        if query.before is not None:
            stmt = stmt.where(m.id < query.before)
        rows = (await session.execute(stmt.order_by(m.id.desc()).limit(query.limit + 1))).mappings().all()
        touches = await repo.contact_touches(session, contact["id"], MAX_ROWS)
        calls = await repo.contact_calls(session, contact["id"], MAX_ROWS)
        follow_ups = [TouchOut.model_validate(dict(t)) for t in touches]
        booked = [ContactCallOut.model_validate(dict(c)) for c in calls]
    more = len(rows) > query.limit
    rows = list(reversed(rows[: query.limit]))
    return json_response(
        Conversation(
            contact=ContactOut.model_validate(dict(contact)),
            messages=[MessageOut.model_validate(dict(r)) for r in rows],
            older_before=rows[0]["id"] if more and rows else None,
            follow_ups=follow_ups,
            calls=booked,
        )
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/contacts/{phone}", get_conversation)
