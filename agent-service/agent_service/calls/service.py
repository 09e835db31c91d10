"""Booking scheduled calls (I/O edge). Slot rules live in ``agent_service.domain``.

STATUS: interface only -- the follow-up/calls issue fills it in. Until then nothing is booked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True)
class CallBooking:
    booked: bool
    call_id: int | None = None
    scheduled_at: datetime | None = None  # UTC
    proposed_slots: list[datetime] = field(default_factory=list)  # UTC, when not booked
    reply_hint: str | None = None  # text to add to the agent's reply, in the prospect's language
    reason: str = ""


class CallBooker:
    async def book(
        self,
        session: AsyncSession,
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
        Idempotent per ``turn_id``."""
        return CallBooking(booked=False, reason="call booking not implemented yet")
