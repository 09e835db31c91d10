"""Follow-up rows: the hooks the conversation code calls, and what managers do over the API.

Timing and eligibility are pure functions in ``agent_service.domain.followup_policy``; the
periodic sending lives in ``agent_service.followups.scheduler``.

The conversation code (turn handling) calls the hooks **inside its own transaction**, passing
the session and the contact row as it stands after the turn's update, so a touch is planned or
cancelled atomically with the message that causes it:

* :meth:`FollowUps.on_inbound` -- the prospect wrote: pending touches are cancelled and the last
  touch sent is marked ``replied``.
* :meth:`FollowUps.on_agent_messages` -- the AI replied: a new sequence is planned for each
  contact that is eligible; a definitive yes or no stops follow-ups for good.
* :meth:`FollowUps.stop` -- handoff, takeover, reclassification, a manager's request.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import RowMapping, and_, bindparam, func, select, update

from agent_service.db.tables import contacts, follow_ups, scheduled_calls
from agent_service.domain.contact import ContactView
from agent_service.domain.followup_policy import FollowUpPolicy, StopReason, eligibility, plan
from parley_shared.db import Session

log = structlog.get_logger(__name__)


def _call_ahead(now: Any) -> Any:
    """A pending or confirmed call still ahead of ``now`` (no touches before it)."""
    c = scheduled_calls.c
    return and_(c.status.in_(("pending", "confirmed")), c.scheduled_at > now)


async def upcoming_calls(session: Session, contact_ids: Sequence[int], now: datetime) -> set[int]:
    """Which of these contacts have a pending or confirmed call still ahead (no touches before it)."""
    c = scheduled_calls.c
    rows = await session.execute(
        select(c.contact_id).where(c.contact_id.in_(list(contact_ids)), _call_ahead(now)).distinct()
    )
    return set(rows.scalars())


# The hooks' statements, built once (building costs more CPU than running them); values are parameters.
_f = follow_ups.c
_CANCEL_PENDING = (
    update(follow_ups)
    .where(_f.contact_id.in_(bindparam("b_ids", expanding=True)), _f.status == "pending")
    .values(status="cancelled", claim_token=None, claimed_until=None)
)
_latest = follow_ups.alias("latest")
_LAST_SENT = (
    select(_f.id, _f.contact_id, _f.replied)
    .where(
        _f.contact_id.in_(bindparam("b_ids", expanding=True)),
        _f.sequence_no
        == select(func.max(_latest.c.sequence_no)).where(_latest.c.contact_id == _f.contact_id).scalar_subquery(),
        _f.status == "sent",
        _f.sent_at <= bindparam("b_now"),
    )
    .order_by(_f.contact_id, _f.touch.desc())
)
# In one statement for many contacts: has each a call ahead (then no touches before it), and its
# last sequence number.
_SEQUENCE_STATES = select(
    contacts.c.id,
    select(scheduled_calls.c.id)
    .where(scheduled_calls.c.contact_id == contacts.c.id, _call_ahead(bindparam("b_now")))
    .exists()
    .label("call_ahead"),
    select(func.max(_f.sequence_no)).where(_f.contact_id == contacts.c.id).scalar_subquery().label("last_sequence"),
).where(contacts.c.id.in_(bindparam("b_ids", expanding=True)))
_MARK_REPLIED = update(follow_ups).where(_f.id.in_(bindparam("b_ids", expanding=True))).values(replied=True)


class FollowUps:
    def __init__(self, policy: FollowUpPolicy) -> None:
        self.policy = policy

    # ---------------------------------------------------------------- hooks (caller's transaction)
    async def on_inbound(self, session: Session, contacts: Sequence[RowMapping], now: datetime) -> None:
        """These prospects wrote: cancel the pending touches of their current sequences (and note
        the replies). One statement each for all of them (the incoming consumer records a batch)."""
        ids = [int(contact["id"]) for contact in contacts]
        await self._mark_replied(session, ids, now)
        await self._cancel_pending(session, ids, StopReason.REPLIED, now)
        for contact in contacts:
            decision = eligibility(ContactView.from_row(contact), enabled=self.policy.enabled)
            if decision.final:
                await self._stop_for_good(session, contact, decision.reason or StopReason.STOPPED, now)

    async def on_agent_messages(self, session: Session, contacts: Sequence[RowMapping], now: datetime) -> None:
        """The AI just replied to these contacts (the replies are staged in this transaction): start
        a new sequence for each that is eligible. One statement each for all of them (the turn
        writer commits a batch of turns), one more per contact stopped for good.

        Each contact row carries its turn's outcome, owner and client status; ineligible contacts
        (non-clients, held by a human, definitive yes/no, follow-ups disabled) get none.
        """
        ids = [int(contact["id"]) for contact in contacts]
        if not ids:
            return
        await self._cancel_pending(session, ids, StopReason.SUPERSEDED, now)
        states = {row.id: row for row in await session.execute(_SEQUENCE_STATES, {"b_ids": ids, "b_now": now})}
        rows: list[dict[str, Any]] = []
        planned: list[tuple[int, int, str]] = []  # logged once written
        for contact in contacts:
            contact_id = int(contact["id"])
            state = states[contact_id]
            decision = eligibility(
                ContactView.from_row(contact), enabled=self.policy.enabled, call_booked=bool(state.call_ahead)
            )
            if decision.final:
                await self._stop_for_good(session, contact, decision.reason or StopReason.STOPPED, now)
                continue
            if not decision.ok:
                log.debug("follow_up.not_planned", contact_id=contact_id, reason=decision.reason)
                continue
            sequence_no = int(state.last_sequence or 0) + 1
            touches = plan(self.policy, after=now, contact_id=contact_id, sequence_no=sequence_no)
            planned.append((contact_id, sequence_no, touches[0].due_at.isoformat()))
            rows += [
                {
                    "contact_id": contact_id,
                    "sequence_no": sequence_no,
                    "touch": t.touch,
                    "strategy": t.strategy.value,
                    "due_at": t.due_at,
                    "status": "pending",
                    "created_at": now,
                    "updated_at": now,
                }
                for t in touches
            ]
        if rows:
            await session.execute(follow_ups.insert(), rows)
        for contact_id, sequence_no, first_due in planned:
            log.info("follow_up.planned", contact_id=contact_id, sequence_no=sequence_no, first_due=first_due)

    async def stop(
        self, session: Session, contact_id: int, reason: str, now: datetime, *, permanent: bool = False
    ) -> int:
        """Cancel the contact's pending touches (handoff, takeover, non-client, manager's request).

        With ``permanent`` the contact is also marked ``follow_ups_stopped``: no new sequence
        starts until :meth:`resume`. Without it a new sequence may start after the AI's next
        message, if the contact is eligible again then (e.g. after a handback).
        Returns how many touches were cancelled.
        """
        cancelled = await self._cancel_pending(session, [contact_id], reason, now)
        if permanent:
            await session.execute(
                update(contacts)
                .where(contacts.c.id == contact_id)
                .values(follow_ups_stopped=True, follow_ups_stop_reason=reason[:200], updated_at=now)
            )
        return cancelled

    async def resume(self, session: Session, contact_id: int, now: datetime) -> None:
        """Allow follow-ups again (a manager's decision); the next AI message starts a sequence."""
        await session.execute(
            update(contacts)
            .where(contacts.c.id == contact_id)
            .values(follow_ups_stopped=False, follow_ups_stop_reason=None, updated_at=now)
        )

    # ---------------------------------------------------------------- helpers
    async def _cancel_pending(self, session: Session, contact_ids: Sequence[int], reason: str, now: datetime) -> int:
        params = {"b_ids": list(contact_ids), "reason": str(reason)[:200], "updated_at": now}
        result = await session.execute(_CANCEL_PENDING, params)
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def _mark_replied(self, session: Session, contact_ids: Sequence[int], now: datetime) -> None:
        """A reply counts for the last touch sent in each contact's latest sequence (once)."""
        rows = (await session.execute(_LAST_SENT, {"b_ids": list(contact_ids), "b_now": now})).all()
        by_contact: dict[int, list[Any]] = {}
        for row in rows:  # highest touch first
            by_contact.setdefault(row.contact_id, []).append(row)
        replied = [touches[0].id for touches in by_contact.values() if not any(r.replied for r in touches)]
        if replied:
            await session.execute(_MARK_REPLIED, {"b_ids": replied, "updated_at": now})

    async def _stop_for_good(self, session: Session, contact: RowMapping, reason: str, now: datetime) -> None:
        await self.stop(session, int(contact["id"]), reason, now, permanent=True)
        if not contact.get("follow_ups_stopped"):
            log.info("follow_up.stopped", contact_id=contact["id"], reason=str(reason))
