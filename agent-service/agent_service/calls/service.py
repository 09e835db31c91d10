"""Booking scheduled calls (I/O edge). Slot rules live in ``agent_service.domain.call_slots``.

The conversation code calls :meth:`CallBooker.book` inside its turn transaction when the
model's decision is ``schedule_call``. The engine turns what the prospect said into an aware
datetime, or ``None`` when it was vague ("tomorrow afternoon"); either way, a time that cannot
be booked gets concrete slots proposed instead, with a ``reply_hint`` to add to the reply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from sqlalchemy import func, select, update

from agent_service.db.tables import scheduled_calls
from agent_service.domain.call_slots import CallRules, booked_text, proposal_text, propose, refusal
from parley_shared.db import Session, insert_ignore

log = structlog.get_logger(__name__)

CALL_STATUSES = ("pending", "confirmed", "cancelled", "done")


@dataclass(frozen=True)
class CallBooking:
    booked: bool
    call_id: int | None = None
    scheduled_at: datetime | None = None  # UTC
    proposed_slots: list[datetime] = field(default_factory=list)  # UTC, when not booked
    reply_hint: str | None = None  # text to add to the agent's reply, in the prospect's language
    reason: str = ""


class CallBooker:
    def __init__(self, rules: CallRules) -> None:
        self.rules = rules

    def normalise(self, when: datetime) -> datetime:
        """Aware and to the minute; a naive time is read as business-timezone local time."""
        if when.tzinfo is None:
            when = when.replace(tzinfo=self.rules.hours.tz)
        return when.astimezone(UTC).replace(second=0, microsecond=0)

    async def book(
        self,
        session: Session,
        *,
        contact_id: int,
        requested_at: datetime | None,
        turn_id: str,
        language: str,
        now: datetime,
        notes: str | None = None,
    ) -> CallBooking:
        """Book a call at ``requested_at`` (aware) if it is in the future and inside working hours;
        otherwise book nothing and propose concrete slots (``reply_hint`` says so to the prospect).
        Idempotent per ``turn_id``. A booking replaces the contact's other pending future calls."""
        hours = self.rules.hours
        existing = (
            await session.execute(
                select(scheduled_calls.c.id, scheduled_calls.c.scheduled_at).where(
                    scheduled_calls.c.source_turn_id == turn_id
                )
            )
        ).first()
        if existing is not None:
            return CallBooking(
                True, existing.id, existing.scheduled_at, reply_hint=booked_text(existing.scheduled_at, hours, language)
            )
        requested = self.normalise(requested_at) if requested_at is not None else None
        reason = "no_time_given" if requested is None else refusal(requested, now, self.rules)
        if reason is not None:
            slots = propose(now, self.rules, requested)
            log.info("call.slots_proposed", contact_id=contact_id, reason=reason, slots=len(slots))
            return CallBooking(
                False, proposed_slots=slots, reply_hint=proposal_text(slots, hours, language), reason=reason
            )
        assert requested is not None
        await insert_ignore(
            session,
            scheduled_calls,
            {
                "contact_id": contact_id,
                "scheduled_at": requested,
                "timezone": hours.tz.key,
                "status": "pending",
                "notes": notes,
                "source_turn_id": turn_id,
                "created_at": now,
                "updated_at": now,
            },
            ["source_turn_id"],
        )
        booked = await session.execute(select(scheduled_calls.c.id).where(scheduled_calls.c.source_turn_id == turn_id))
        call_id = int(booked.scalar_one())
        await session.execute(
            update(scheduled_calls)
            .where(
                scheduled_calls.c.contact_id == contact_id,
                scheduled_calls.c.id != call_id,
                scheduled_calls.c.status == "pending",
                scheduled_calls.c.scheduled_at > now,
            )
            .values(
                status="cancelled",
                notes=func.coalesce(scheduled_calls.c.notes + "\n", "") + f"replaced by call {call_id}",
                updated_at=now,
            )
        )
        log.info("call.booked", contact_id=contact_id, call_id=call_id)
        return CallBooking(
            True, call_id, requested, reply_hint=booked_text(requested, hours, language), reason="booked"
        )
