"""``GET /contacts/{phone}``: one contact and its conversation (newest messages last).

``{phone}`` is E.164 with or without the plus (encode ``+`` as ``%2B``); other formats are
normalised. Older messages page with ``?before=<message id>``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from agent_service.api.contacts import ContactOut, parse_phone
from agent_service.db import repository as repo
from agent_service.db import tables
from parley_shared.http import HTTPError, json_response, read_query
from parley_shared.openapi import describe
from parley_shared.service import RUNTIME

MAX_MESSAGES = 500


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
    sent_at: datetime | None
    created_at: datetime


class Conversation(BaseModel):
    contact: ContactOut
    messages: list[MessageOut]
    older_before: int | None = Field(description="Pass as ?before= for older messages; null when there are none")


class ConversationQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(100, ge=1, le=MAX_MESSAGES)
    before: int | None = Field(None, ge=1, description="Only messages with a smaller id")


@describe(
    "One contact with its conversation",
    query=ConversationQuery,
    path_params={"phone": "E.164 (other formats are normalised; encode + as %2B)"},
    responses={200: Conversation, 404: "No contact with this phone"},
    tags=("contacts",),
)
async def get_conversation(request: web.Request) -> web.Response:
    phone = parse_phone(request)
    query = await read_query(request, ConversationQuery)
    m = tables.messages.c
    async with request.app[RUNTIME].sessions() as session:
        contact = await repo.contact_by_phone(session, phone)
        if contact is None:
            raise HTTPError(404, "no contact with this phone")
        stmt = select(tables.messages).where(m.contact_id == contact["id"])
        if query.before is not None:
            stmt = stmt.where(m.id < query.before)
        rows = (await session.execute(stmt.order_by(m.id.desc()).limit(query.limit + 1))).mappings().all()
    more = len(rows) > query.limit
    rows = list(reversed(rows[: query.limit]))
    return json_response(
        Conversation(
            contact=ContactOut.model_validate(dict(contact)),
            messages=[MessageOut.model_validate(dict(r)) for r in rows],
            older_before=rows[0]["id"] if more and rows else None,
        )
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/contacts/{phone}", get_conversation)
