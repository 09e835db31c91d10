"""A manager stops or resumes a contact's follow-ups (the timing rules are in ``followups/``)."""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from sqlalchemy.engine import RowMapping

from agent_service.actions import ContactKey, Desk, lock_contact
from agent_service.actions.audit import Action, Actor, record
from agent_service.domain.followup_policy import StopReason

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class FollowUpChange:
    contact: RowMapping  # as it was before the change
    cancelled: int  # pending touches cancelled
    stopped: bool  # follow-ups stopped for this contact after the change


async def cancel(desk: Desk, key: ContactKey, actor: Actor, *, permanent: bool = True) -> FollowUpChange:
    """Cancel the pending touches; ``permanent``: no new sequence until resumed."""
    now = desk.clock.now()
    async with desk.sessions() as session, session.begin():
        contact = await lock_contact(session, key)
        cancelled = await desk.follow_ups.stop(session, contact["id"], StopReason.MANAGER, now, permanent=permanent)
        detail = {"cancelled": cancelled, "permanent": permanent}
        await record(session, actor, Action.FOLLOW_UPS_CANCELLED, contact_id=contact["id"], now=now, detail=detail)
    log.info("follow_up.cancelled_by_manager", contact_id=contact["id"], cancelled=cancelled, permanent=permanent)
    desk.changed(contact["id"], "follow_ups", contact)
    return FollowUpChange(contact, cancelled, permanent or bool(contact["follow_ups_stopped"]))


async def resume(desk: Desk, key: ContactKey, actor: Actor) -> FollowUpChange:
    """Allow follow-ups again: the AI's next message starts a sequence if the contact is eligible."""
    now = desk.clock.now()
    async with desk.sessions() as session, session.begin():
        contact = await lock_contact(session, key)
        await desk.follow_ups.resume(session, contact["id"], now)
        await record(session, actor, Action.FOLLOW_UPS_RESUMED, contact_id=contact["id"], now=now)
    desk.changed(contact["id"], "follow_ups", contact)
    return FollowUpChange(contact, 0, False)
