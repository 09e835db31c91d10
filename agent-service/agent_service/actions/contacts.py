"""A manager's override of a contact: client status (with a reason), outcome, notes.

A client-status override is recorded with ``classified_by = manager``, which the moderator never
overwrites. Marking a non-client, or a definitive outcome (agreed, declined), cancels the pending
follow-ups and stops follow-ups for good (until resumed).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select, update
from sqlalchemy.engine import RowMapping

from agent_service.actions import ContactKey, Desk, lock_contact
from agent_service.actions.audit import Action, Actor, record
from agent_service.db import tables
from agent_service.domain.followup_policy import StopReason
from agent_service.domain.vocabulary import ClientCategory, ProspectOutcome, Verdict

log = structlog.get_logger(__name__)


class ContactPatch(BaseModel):
    """A manager's override. Fields left out are unchanged; ``notes: null`` clears the notes."""

    model_config = ConfigDict(extra="forbid")

    client_status: Verdict | None = None
    client_category: ClientCategory | None = Field(
        None, description="With client_status: prospect for clients; spam, personal, ... for non-clients"
    )
    reason: str | None = Field(None, min_length=1, max_length=500, description="Why (required with client_status)")
    outcome: ProspectOutcome | None = None
    notes: str | None = Field(None, max_length=10_000)

    @model_validator(mode="after")
    def _consistent(self) -> ContactPatch:
        given = self.model_fields_set
        if not given & {"client_status", "outcome", "notes"}:
            raise ValueError("nothing to change: give client_status, outcome or notes")
        if "client_status" in given and self.client_status is None:
            raise ValueError("client_status cannot be null")
        if "outcome" in given and self.outcome is None:
            raise ValueError("outcome cannot be null")
        if self.client_status is None and (self.reason is not None or self.client_category is not None):
            raise ValueError("reason and client_category go with client_status")
        if self.client_status is not None and self.reason is None:
            raise ValueError("client_status needs a reason")
        if self.client_status == "client" and self.client_category not in (None, "prospect"):
            raise ValueError("a client's category is prospect")
        if self.client_status == "non_client" and self.client_category == "prospect":
            raise ValueError("a non-client's category cannot be prospect")
        return self


def _values(patch: ContactPatch, now: datetime) -> dict[str, Any]:
    values: dict[str, Any] = {"updated_at": now}
    if patch.client_status is not None:
        values |= {
            "client_status": patch.client_status,
            "client_category": patch.client_category or ("prospect" if patch.client_status == "client" else "other"),
            "classification_reason": patch.reason,
            "classification_confidence": 1.0,
            "classified_by": "manager",
        }
    if patch.outcome is not None:
        values["outcome"] = patch.outcome
    if "notes" in patch.model_fields_set:
        values["notes"] = patch.notes
    return values


def follow_up_stop_reason(patch: ContactPatch) -> StopReason | None:
    """Why a manager's override ends the contact's follow-ups for good (None: it does not)."""
    if patch.client_status == "non_client":
        return StopReason.NON_CLIENT
    if patch.outcome is not None and patch.outcome in (StopReason.AGREED, StopReason.DECLINED):
        return StopReason(patch.outcome)
    return None


async def override(desk: Desk, key: ContactKey, patch: ContactPatch, actor: Actor) -> RowMapping:
    now = desk.clock.now()
    c = tables.contacts.c
    async with desk.sessions() as session, session.begin():
        before = await lock_contact(session, key)
        contact_id = before["id"]
        values = _values(patch, now)
        await session.execute(update(tables.contacts).where(c.id == contact_id).values(values))
        stop_reason = follow_up_stop_reason(patch)
        if stop_reason is not None:
            await desk.follow_ups.stop(session, contact_id, stop_reason, now, permanent=True)
        if patch.client_status is not None:
            detail = {
                "from": before["client_status"],
                "to": values["client_status"],
                "category": values["client_category"],
                "reason": patch.reason,
            }
            await record(session, actor, Action.CLASSIFICATION, contact_id=contact_id, now=now, detail=detail)
        if patch.outcome is not None:
            detail = {"from": before["outcome"], "to": patch.outcome}
            await record(session, actor, Action.OUTCOME, contact_id=contact_id, now=now, detail=detail)
        if "notes" in patch.model_fields_set:
            await record(session, actor, Action.NOTES, contact_id=contact_id, now=now)
        row = (await session.execute(select(tables.contacts).where(c.id == contact_id))).mappings().one()
    log.info("contacts.overridden", contact_id=contact_id, fields=sorted(patch.model_fields_set), actor=actor.kind)
    desk.changed(contact_id, "override", row)
    return row
