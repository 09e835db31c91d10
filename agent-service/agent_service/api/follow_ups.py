"""Managers' follow-up API: the touches waiting to go out, and stopping or resuming a contact's follow-ups.

* ``GET /follow-ups/active`` -- pending touches, soonest first, with the contact's phone and the
  due time in UTC and in the business timezone.
* ``DELETE /contacts/{phone}/follow-ups`` -- cancel the pending touches; by default also stop
  follow-ups for this contact for good (``?permanent=false``: only the current sequence).
* ``POST /contacts/{phone}/follow-ups/resume`` -- allow follow-ups again (the next AI message
  starts a sequence).
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from agent_service.actions import follow_ups as follow_ups_actions
from agent_service.actions.audit import Actor
from agent_service.api.params import PHONE_PARAM, action_errors, parse_phone, query_phone, region
from agent_service.context import AGENT
from agent_service.db.tables import contacts, follow_ups
from parley_shared.db import SQL_INT_MAX
from parley_shared.http import json_response, read_query
from parley_shared.openapi import describe

PAGE_MAX = 500


class ActiveQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: str | None = Field(None, max_length=40, description="Only this contact's touches")
    limit: int = Field(100, ge=1, le=PAGE_MAX, description=f"Page size (1..{PAGE_MAX})")
    offset: int = Field(0, ge=0, le=SQL_INT_MAX, description="Rows to skip")


class ActiveTouch(BaseModel):
    id: int
    contact_id: int
    phone: str = Field(description="E.164")
    name: str | None
    sequence_no: int
    touch: int
    strategy: str = Field(description="reminder | value_proposition | social_proof | urgency | farewell")
    due_at: datetime = Field(description="UTC")
    due_at_local: datetime = Field(description="The same instant in the business timezone")
    being_sent: bool = Field(description="A scheduler has claimed it and is writing the text right now")


class ActivePage(BaseModel):
    """Pending touches, soonest first."""

    items: list[ActiveTouch]
    total: int
    timezone: str


class CancelQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    permanent: bool = Field(True, description="Also stop future sequences until resumed (false: only this one)")


class FollowUpState(BaseModel):
    """A contact's follow-up state after the change."""

    phone: str
    cancelled: int = Field(description="Pending touches cancelled by this request")
    follow_ups_stopped: bool


@describe("Pending follow-up touches", query=ActiveQuery, responses={200: ActivePage}, tags=("follow-ups",))
async def active(request: web.Request) -> web.Response:
    query = await read_query(request, ActiveQuery)
    runtime = request.app[AGENT].runtime
    hours = request.app[AGENT].follow_ups.policy.hours
    now = runtime.clock.now()
    conditions = [follow_ups.c.status == "pending"]
    if query.phone is not None:
        conditions.append(contacts.c.phone == query_phone(query.phone, region(request)))
    base = select(follow_ups, contacts.c.phone, contacts.c.name).join(
        contacts, contacts.c.id == follow_ups.c.contact_id
    )
    async with runtime.sessions() as session:
        total = await session.scalar(select(func.count()).select_from(base.where(*conditions).subquery()))
        rows = (
            await session.execute(
                base.where(*conditions)
                .order_by(follow_ups.c.due_at, follow_ups.c.id)
                .limit(query.limit)
                .offset(query.offset)
            )
        ).mappings()
        items = [
            ActiveTouch(
                id=r["id"],
                contact_id=r["contact_id"],
                phone=r["phone"],
                name=r["name"],
                sequence_no=r["sequence_no"],
                touch=r["touch"],
                strategy=r["strategy"],
                due_at=r["due_at"],
                due_at_local=hours.local(r["due_at"]),
                being_sent=r["claimed_until"] is not None and r["claimed_until"] > now,
            )
            for r in rows
        ]
    return json_response(ActivePage(items=items, total=int(total or 0), timezone=hours.tz.key))


@describe(
    "Cancel a contact's follow-ups",
    description="Cancels the pending touches. With permanent=true (the default) the contact gets no new "
    "sequence until POST /contacts/{phone}/follow-ups/resume.",
    query=CancelQuery,
    path_params=PHONE_PARAM,
    responses={200: FollowUpState, 404: "No contact with this phone"},
    tags=("follow-ups",),
)
async def cancel(request: web.Request) -> web.Response:
    phone = parse_phone(request)
    query = await read_query(request, CancelQuery)
    with action_errors():
        change = await follow_ups_actions.cancel(request.app[AGENT].desk, phone, Actor.api(), permanent=query.permanent)
    return json_response(FollowUpState(phone=phone, cancelled=change.cancelled, follow_ups_stopped=change.stopped))


@describe(
    "Allow follow-ups for a contact again",
    description="Clears follow_ups_stopped; the AI's next message starts a new sequence if the contact is eligible.",
    path_params=PHONE_PARAM,
    responses={200: FollowUpState, 404: "No contact with this phone"},
    tags=("follow-ups",),
)
async def resume(request: web.Request) -> web.Response:
    phone = parse_phone(request)
    with action_errors():
        await follow_ups_actions.resume(request.app[AGENT].desk, phone, Actor.api())
    return json_response(FollowUpState(phone=phone, cancelled=0, follow_ups_stopped=False))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/follow-ups/active", active)
    app.router.add_delete("/contacts/{phone}/follow-ups", cancel)
    app.router.add_post("/contacts/{phone}/follow-ups/resume", resume)
