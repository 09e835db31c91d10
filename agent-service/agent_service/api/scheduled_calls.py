"""Managers' scheduled-calls API.

* ``GET /scheduled-calls`` -- calls by time, filtered by status, time range and contact.
* ``PATCH /scheduled-calls/{id}`` -- confirm, cancel or close a call, edit its notes, or move it
  (the new time is checked like a booking: in the future and inside working hours, or a 422
  with proposed slots). ``cancelled`` and ``done`` are final.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from agent_service.actions import calls as calls_actions
from agent_service.actions.audit import Actor
from agent_service.actions.calls import CallPatch, Status, calls_with_contacts
from agent_service.api.params import QueryDatetime, action_errors, query_phone, region
from agent_service.context import AGENT
from agent_service.db.tables import contacts, scheduled_calls
from parley_shared.db import SQL_INT_MAX
from parley_shared.http import HTTPError, json_response, read_model, read_query
from parley_shared.openapi import describe

PAGE_MAX = 500


class CallsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    status: Status | None = None
    from_: QueryDatetime | None = Field(None, alias="from", description="scheduled_at >= this (ISO 8601 with offset)")
    to: QueryDatetime | None = Field(None, description="scheduled_at < this (ISO 8601 with offset)")
    phone: str | None = Field(None, max_length=40, description="Only this contact's calls")
    limit: int = Field(100, ge=1, le=PAGE_MAX)
    offset: int = Field(0, ge=0, le=SQL_INT_MAX)


class CallOut(BaseModel):
    id: int
    contact_id: int
    phone: str = Field(description="E.164")
    name: str | None
    scheduled_at: datetime = Field(description="UTC")
    scheduled_at_local: datetime = Field(description="The same instant in the call's timezone")
    timezone: str
    status: str = Field(description="pending | confirmed | cancelled | done")
    notes: str | None
    created_at: datetime
    updated_at: datetime


class CallPage(BaseModel):
    """Scheduled calls, earliest first."""

    items: list[CallOut]


def _out(row: Any) -> CallOut:
    return CallOut(
        id=row["id"],
        contact_id=row["contact_id"],
        phone=row["phone"],
        name=row["name"],
        scheduled_at=row["scheduled_at"],
        scheduled_at_local=row["scheduled_at"].astimezone(ZoneInfo(row["timezone"])),
        timezone=row["timezone"],
        status=row["status"],
        notes=row["notes"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


@describe("List scheduled calls", query=CallsQuery, responses={200: CallPage}, tags=("calls",))
async def list_calls(request: web.Request) -> web.Response:
    query = await read_query(request, CallsQuery)
    c = scheduled_calls.c
    stmt = calls_with_contacts()
    if query.status is not None:
        stmt = stmt.where(c.status == query.status)
    if query.from_ is not None:
        stmt = stmt.where(c.scheduled_at >= query.from_)
    if query.to is not None:
        stmt = stmt.where(c.scheduled_at < query.to)
    if query.phone is not None:
        stmt = stmt.where(contacts.c.phone == query_phone(query.phone, region(request)))
    stmt = stmt.order_by(c.scheduled_at, c.id).limit(query.limit).offset(query.offset)
    async with request.app[AGENT].runtime.sessions() as session:
        rows = (await session.execute(stmt)).mappings().all()
    return json_response(CallPage(items=[_out(r) for r in rows]))


@describe(
    "Confirm, cancel, close, annotate or move a scheduled call",
    body=CallPatch,
    path_params={"id": "The call's id"},
    responses={
        200: CallOut,
        404: "No such call",
        409: "The call is already cancelled or done",
        422: "The new time is not bookable (the body lists proposed slots)",
    },
    tags=("calls",),
)
async def patch_call(request: web.Request) -> web.Response:
    try:
        call_id = int(request.match_info["id"])
    except ValueError:
        raise HTTPError(400, "the call id must be an integer") from None
    if not 0 < call_id <= SQL_INT_MAX:
        raise HTTPError(404, "no such call")
    patch = await read_model(request, CallPatch)
    with action_errors():
        row = await calls_actions.update_call(request.app[AGENT].desk, call_id, patch, Actor.api())
    return json_response(_out(row))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/scheduled-calls", list_calls)
    app.router.add_patch("/scheduled-calls/{id}", patch_call)
