"""A manager's changes to a scheduled call: confirm, cancel, close, annotate, move.

A new time is checked like a booking (in the future and inside working hours; otherwise
:class:`NotBookable` with proposed slots). ``cancelled`` and ``done`` are final: only the notes
of such a call can change.
"""

from __future__ import annotations

from typing import Any, Literal

import structlog
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select, update
from sqlalchemy.engine import RowMapping

from agent_service.actions import Conflict, Desk, NotBookable, NotFound
from agent_service.actions.audit import Action, Actor, record
from agent_service.db.tables import contacts, scheduled_calls
from agent_service.domain.call_slots import propose, refusal

log = structlog.get_logger(__name__)

Status = Literal["pending", "confirmed", "cancelled", "done"]
FINAL = ("cancelled", "done")
_STATUS_ACTION = {
    "confirmed": Action.CALL_CONFIRMED,
    "cancelled": Action.CALL_CANCELLED,
    "done": Action.CALL_DONE,
    "pending": Action.CALL_REOPENED,
}


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


def calls_with_contacts() -> Any:
    """Scheduled calls joined with their contact's phone and name."""
    joined = scheduled_calls.join(contacts, contacts.c.id == scheduled_calls.c.contact_id)
    return select(scheduled_calls, contacts.c.phone, contacts.c.name).select_from(joined)


async def update_call(desk: Desk, call_id: int, patch: CallPatch, actor: Actor) -> RowMapping:
    now = desk.clock.now()
    booker = desk.booker
    c = scheduled_calls.c
    async with desk.sessions() as session, session.begin():
        current = (await session.execute(select(scheduled_calls).where(c.id == call_id).with_for_update())).first()
        if current is None:
            raise NotFound("no such call")
        if current.status in FINAL and patch.model_fields_set & {"status", "scheduled_at"}:
            raise Conflict(f"the call is {current.status}; only its notes can change")
        values: dict[str, Any] = {"updated_at": now}
        audit: list[tuple[Action, dict[str, Any]]] = []
        if patch.status is not None:
            values["status"] = patch.status
            if patch.status != current.status:
                audit.append((_STATUS_ACTION[patch.status], {"call_id": call_id, "from": current.status}))
        if "notes" in patch.model_fields_set:
            values["notes"] = patch.notes
            audit.append((Action.CALL_NOTES, {"call_id": call_id}))
        if patch.scheduled_at is not None:
            when = booker.normalise(patch.scheduled_at)
            reason = refusal(when, now, booker.rules)
            if reason is not None:
                raise NotBookable(reason, propose(now, booker.rules, when))
            values |= {"scheduled_at": when, "timezone": booker.rules.hours.tz.key}
            detail = {"call_id": call_id, "from": current.scheduled_at.isoformat(), "to": when.isoformat()}
            audit.append((Action.CALL_RESCHEDULED, detail))
        await session.execute(update(scheduled_calls).where(c.id == call_id).values(values))
        for action, detail in audit:
            await record(session, actor, action, contact_id=current.contact_id, now=now, detail=detail)
        row = (await session.execute(calls_with_contacts().where(c.id == call_id))).mappings().one()
    log.info("call.updated", call_id=call_id, fields=sorted(patch.model_fields_set), actor=actor.kind)
    desk.changed(row["contact_id"], "call", None)
    return row
