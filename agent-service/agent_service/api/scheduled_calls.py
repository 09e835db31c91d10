"""Managers' scheduled-calls API.

* ``GET /scheduled-calls`` -- calls by time, filtered by status, time range and contact.
* ``PATCH /scheduled-calls/{id}`` -- confirm, cancel or close a call, edit its notes, or move it
  (the new time is checked like a booking: in the future and inside working hours, or a 422
  with proposed slots). ``cancelled`` and ``done`` are final.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

import structlog
from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select, update

from agent_service.api.params import QueryDatetime, query_phone
from agent_service.context import AGENT
from agent_service.db.tables import contacts, scheduled_calls
from agent_service.domain.call_slots import propose, refusal
from parley_shared.db import SQL_INT_MAX
from parley_shared.http import HTTPError, json_response, read_model, read_query
from parley_shared.openapi import describe

log = structlog.get_logger(__name__)

Status = Literal["pending", "confirmed", "cancelled", "done"]
FINAL = ("cancelled", "done")
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


class CallPatch(BaseModel):
    """Fields left out are unchanged; ``notes: null`` clears the notes."""

    model_config = ConfigDict(extra="forbid")

    status: Status | None = None
    notes: str | None = Field(None, max_length=10_000)
    scheduled_at: AwareDatetime | None = Field(None, description="New time (checked against working hours)")

    @model_validator(mode="after")
    def _something(self) -> CallPatch:
        if not self.model_fields_set & {"status", "notes", "scheduled_at"}:
            raise ValueError("nothing to change: give status, notes or scheduled_at")
        if "status" in self.model_fields_set and self.status is None:
            raise ValueError("status cannot be null")
        if "scheduled_at" in self.model_fields_set and self.scheduled_at is None:
            raise ValueError("scheduled_at cannot be null")
        return self


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


def _select() -> Any:
    joined = scheduled_calls.join(contacts, contacts.c.id == scheduled_calls.c.contact_id)
    return select(scheduled_calls, contacts.c.phone, contacts.c.name).select_from(joined)


@describe("List scheduled calls", query=CallsQuery, responses={200: CallPage}, tags=("calls",))
async def list_calls(request: web.Request) -> web.Response:
    query = await read_query(request, CallsQuery)
    c = scheduled_calls.c
    stmt = _select()
    if query.status is not None:
        stmt = stmt.where(c.status == query.status)
    if query.from_ is not None:
        stmt = stmt.where(c.scheduled_at >= query.from_)
    if query.to is not None:
        stmt = stmt.where(c.scheduled_at < query.to)
    if query.phone is not None:
        stmt = stmt.where(contacts.c.phone == query_phone(query.phone))
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
    runtime = request.app[AGENT].runtime
    booker = request.app[AGENT].booker
    now = runtime.clock.now()
    c = scheduled_calls.c
    async with runtime.sessions() as session, session.begin():
        current = (await session.execute(select(scheduled_calls).where(c.id == call_id).with_for_update())).first()
        if current is None:
            raise HTTPError(404, "no such call")
        if current.status in FINAL and patch.model_fields_set & {"status", "scheduled_at"}:
            raise HTTPError(409, f"the call is {current.status}; only its notes can change")
        values: dict[str, Any] = {"updated_at": now}
        if patch.status is not None:
            values["status"] = patch.status
        if "notes" in patch.model_fields_set:
            values["notes"] = patch.notes
        if patch.scheduled_at is not None:
            when = booker.normalise(patch.scheduled_at)
            reason = refusal(when, now, booker.rules)
            if reason is not None:
                slots = propose(now, booker.rules, when)
                raise HTTPError(422, f"not bookable: {reason}", proposed_slots=[s.isoformat() for s in slots])
            values |= {"scheduled_at": when, "timezone": booker.rules.hours.tz.key}
        await session.execute(update(scheduled_calls).where(c.id == call_id).values(values))
        row = (await session.execute(_select().where(c.id == call_id))).mappings().one()
    log.info("call.updated", call_id=call_id, fields=sorted(patch.model_fields_set))
    return json_response(_out(row))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/scheduled-calls", list_calls)
    app.router.add_patch("/scheduled-calls/{id}", patch_call)
