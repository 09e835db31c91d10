"""Sending due follow-up touches: rows, not timers.

A periodic job (``parley_shared.periodic``) calls :meth:`FollowUpScheduler.tick`. Each round, inside working
hours only:

1. **Claim** a batch of due ``pending`` rows by giving them a lease (``claim_token``,
   ``claimed_until``) in a short transaction; on PostgreSQL the rows are picked with
   ``FOR UPDATE SKIP LOCKED``, so replicas take disjoint batches. A lease that runs out (the
   replica died) makes the row claimable again.
2. **Write** the texts outside any transaction (template or Gemini; this may take seconds).
3. **Finish** in one transaction: lock the contacts, re-check the stop conditions against the
   contact as it is *now*, then per row either cancel it (a stop condition holds), skip it
   (Meta's 24-hour window without a template), or -- only if the row is still ``pending`` with
   *our* token -- mark it ``sent``, record the message and stage an ``OutgoingMessage``
   (``kind=follow_up``, ``message_id=stable_id("followup", row id)``) in the outbox. A reply
   that cancelled the row meanwhile, or another replica that took over an expired lease, makes
   the conditional update match nothing: the touch is not sent.
4. **Publish** after the commit (the outbox relay retries what fails). Campaign traffic goes to
   ``outgoing_campaign``, which the gateway serves after replies.

So each touch is sent at most once across replicas and restarts, and never while a stop
condition holds at the moment of sending.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from prometheus_client import Counter
from pydantic import ValidationError
from sqlalchemy import and_, case, literal, null, or_, select, update
from sqlalchemy.engine import Row

from agent_service.db.tables import contacts, follow_ups, messages
from agent_service.domain.contact import ContactView
from agent_service.domain.followup_policy import (
    Eligibility,
    FollowUpPolicy,
    StopReason,
    Strategy,
    eligibility,
    needs_template,
    plan,
)
from agent_service.followups.service import upcoming_calls
from agent_service.followups.text import FollowUpText, FollowUpWriter, TouchContext
from agent_service.live import LiveFeed
from parley_shared.clock import Clock
from parley_shared.contracts import OutgoingKind, OutgoingMessage, TemplateRef, stable_id
from parley_shared.db import Session, SessionFactory, UtcDateTime, dialect_name, insert_ignore
from parley_shared.outbox import Outbox
from parley_shared.topology import outgoing_queue

log = structlog.get_logger(__name__)

TOUCHES = Counter("parley_follow_up_touches_total", "Follow-up touches by result", ["result"])
SKIP_NO_TEMPLATE = "meta_24h_window_without_template"


@dataclass
class RunReport:
    claimed: int = 0
    sent: int = 0
    skipped: int = 0
    cancelled: int = 0
    lost: int = 0  # claimed, then cancelled or taken over before it could be sent
    message_ids: list[str] = field(default_factory=list)
    contact_ids: list[int] = field(default_factory=list)  # of the touches sent

    def add(self, other: RunReport) -> None:
        self.claimed += other.claimed
        self.sent += other.sent
        self.skipped += other.skipped
        self.cancelled += other.cancelled
        self.lost += other.lost
        self.message_ids += other.message_ids
        self.contact_ids += other.contact_ids


@dataclass(frozen=True)
class _Claimed:
    row: Row[Any]
    contact: dict[str, Any]
    text: FollowUpText | None  # None: not written (the contact was already ineligible at claim time)


class FollowUpScheduler:
    def __init__(
        self,
        *,
        sessions: SessionFactory,
        outbox: Outbox,
        policy: FollowUpPolicy,
        writer: FollowUpWriter,
        clock: Clock,
        template: TemplateRef | None = None,
        batch_size: int = 50,
        lease: timedelta = timedelta(minutes=5),
        history_messages: int = 12,
        concurrency: int = 8,
        live: LiveFeed | None = None,
    ) -> None:
        self.sessions = sessions
        self.live = live
        self.outbox = outbox
        self.policy = policy
        self.writer = writer
        self.clock = clock
        self.template = template
        self.batch_size = batch_size
        self.lease = lease
        self.history_messages = history_messages
        self._writing = asyncio.Semaphore(concurrency)

    # ---------------------------------------------------------------- the periodic job
    async def tick(self) -> None:
        """One round of the periodic job (every ``FOLLOW_UP_CHECK_INTERVAL_S``; a failure is logged
        by the job runner and the next round tries again)."""
        report = await self.run_due()
        if report.claimed:
            log.info("follow_up.round", sent=report.sent, skipped=report.skipped, cancelled=report.cancelled)

    # ---------------------------------------------------------------- one round
    async def run_due(self, now: datetime | None = None) -> RunReport:
        """Send every touch due at ``now`` (default: the clock), batch by batch. Outside working
        hours nothing is sent: what fell due waits for the next opening."""
        now = now or self.clock.now()
        report = RunReport()
        if not self.policy.hours.is_open(now):
            return report
        while True:
            batch = await self.run_batch(now)
            report.add(batch)
            if batch.claimed < self.batch_size:
                return report

    async def run_batch(self, now: datetime) -> RunReport:
        token = uuid.uuid4().hex
        rows = await self._claim(now, token)
        if not rows:
            return RunReport()
        claimed = await self._write_all(rows, now)
        report = await self._finish(claimed, token, now)
        report.claimed = len(rows)
        await self.outbox.publish_after_commit(ids=report.message_ids)
        if self.live is not None:  # the managers' screens show the touch in the thread
            for contact_id in report.contact_ids:
                self.live.changed(contact_id, "follow_up")
        return report

    async def _claim(self, now: datetime, token: str) -> list[Row[Any]]:
        t = follow_ups
        due = (
            select(t.c.id)
            .where(
                t.c.status == "pending",
                t.c.due_at <= now,
                or_(t.c.claimed_until.is_(None), t.c.claimed_until <= now),
            )
            .order_by(t.c.due_at, t.c.id)
            .limit(self.batch_size)
            .with_for_update(skip_locked=True)
        )
        stmt = (
            update(t)
            .where(t.c.id.in_(due.scalar_subquery()))
            .values(claim_token=token, claimed_until=now + self.lease, updated_at=now)
            .returning(t.c.id, t.c.contact_id, t.c.sequence_no, t.c.touch, t.c.strategy, t.c.due_at)
        )
        async with self.sessions() as session, session.begin():
            return list((await session.execute(stmt)).all())

    async def _write_all(self, rows: Sequence[Row[Any]], now: datetime) -> list[_Claimed]:
        ids = sorted({r.contact_id for r in rows})
        async with self.sessions() as session:
            found = (await session.execute(select(contacts).where(contacts.c.id.in_(ids)))).mappings().all()
            people = {c["id"]: dict(c) for c in found}
            histories = {cid: await self._history(session, cid) for cid in ids} if self.writer.uses_history else {}

        async def write(row: Row[Any]) -> _Claimed:
            contact = people.get(row.contact_id, {})
            if not contact or not eligibility(ContactView.from_row(contact), enabled=self.policy.enabled).ok:
                return _Claimed(row, contact, None)
            ctx = TouchContext(
                contact_id=row.contact_id,
                touch=row.touch,
                strategy=Strategy(row.strategy),
                name=contact.get("name"),
                language=contact.get("language"),
                history=histories.get(row.contact_id, []),
            )
            async with self._writing:
                return _Claimed(row, contact, await self.writer.write(ctx))

        return list(await asyncio.gather(*(write(r) for r in rows)))

    async def _history(self, session: Session, contact_id: int) -> list[tuple[str, str]]:
        if self.history_messages <= 0:
            return []
        m = messages
        recent = (
            await session.execute(
                select(m.c.direction, m.c.text)
                .where(m.c.contact_id == contact_id, m.c.text.is_not(None))
                .order_by(m.c.created_at.desc(), m.c.id.desc())
                .limit(self.history_messages)
            )
        ).all()
        return [(r.direction, r.text) for r in reversed(recent)]

    async def _finish(self, claimed: Sequence[_Claimed], token: str, now: datetime) -> RunReport:
        report = RunReport()
        async with self.sessions() as session, session.begin():
            ids = sorted({c.row.contact_id for c in claimed})
            # In phone order, like every transaction that locks several contacts.
            query = select(contacts).where(contacts.c.id.in_(ids)).order_by(contacts.c.phone)
            if dialect_name(session) == "postgresql":
                query = query.with_for_update()  # wait for a turn in flight on the same contact
            current = {c["id"]: dict(c) for c in (await session.execute(query)).mappings().all()}
            calls = await upcoming_calls(session, ids, now)
            recorded: list[dict[str, Any]] = []
            for item in claimed:
                contact = current.get(item.row.contact_id)
                decision = (
                    eligibility(
                        ContactView.from_row(contact),
                        enabled=self.policy.enabled,
                        call_booked=item.row.contact_id in calls,
                    )
                    if contact
                    else Eligibility(False, StopReason.NON_CLIENT)  # gone (erased) since it was claimed
                )
                await self._finish_one(session, item, contact, decision, token, now, report, recorded)
            if recorded:  # the conversation shows the touches; the contacts show when we last wrote
                await insert_ignore(session, messages, recorded, ["message_id"])
                await session.execute(
                    update(contacts)
                    .where(contacts.c.id.in_({r["contact_id"] for r in recorded}))
                    .values(last_outbound_at=now, updated_at=now)
                )
        for name, count in (("sent", report.sent), ("skipped", report.skipped), ("cancelled", report.cancelled)):
            if count:
                TOUCHES.labels(name).inc(count)
        return report

    async def _finish_one(
        self,
        session: Session,
        item: _Claimed,
        contact: dict[str, Any] | None,
        decision: Eligibility,
        token: str,
        now: datetime,
        report: RunReport,
        recorded: list[dict[str, Any]],
    ) -> None:
        row = item.row
        ours = (follow_ups.c.id == row.id, follow_ups.c.status == "pending", follow_ups.c.claim_token == token)
        if contact is not None and decision.ok and item.text is None:  # eligible again meanwhile: next round
            await session.execute(update(follow_ups).where(*ours).values(claim_token=None, claimed_until=None))
            report.lost += 1
            return
        if contact is None or not decision.ok or item.text is None:
            reason = str(decision.reason or StopReason.STOPPED)
            result = await session.execute(
                update(follow_ups)
                .where(follow_ups.c.contact_id == row.contact_id, follow_ups.c.status == "pending")
                .values(status="cancelled", reason=reason, claim_token=None, claimed_until=None, updated_at=now)
            )
            report.cancelled += int(result.rowcount or 0)  # type: ignore[attr-defined]
            if contact is not None and decision.final and not contact.get("follow_ups_stopped"):
                await session.execute(
                    update(contacts)
                    .where(contacts.c.id == row.contact_id)
                    .values(follow_ups_stopped=True, follow_ups_stop_reason=reason, updated_at=now)
                )
                contact["follow_ups_stopped"] = True
            return
        template = None
        if needs_template(ContactView.from_row(contact), now):
            if self.template is None:
                await self._skip(session, ours, SKIP_NO_TEMPLATE, now, report)
                return
            template = self.template
        message_id = stable_id("followup", str(row.id))
        try:
            outgoing = OutgoingMessage(
                message_id=message_id,
                correlation_id=message_id,
                created_at=now,
                phone=contact["phone"],
                text=item.text.text,
                kind=OutgoingKind.FOLLOW_UP,
                follow_up_touch=row.touch,
                template=template,
            )
        except ValidationError:
            await self._skip(session, ours, "invalid_message", now, report)
            return
        marked = await session.execute(
            update(follow_ups)
            .where(*ours)
            .values(
                status="sent", sent_at=now, message_id=message_id, claim_token=None, claimed_until=None, updated_at=now
            )
        )
        if not marked.rowcount:  # type: ignore[attr-defined]
            report.lost += 1  # cancelled by a reply, or our lease ran out and another replica took it
            return
        await self.outbox.add(session, outgoing_queue(outgoing), outgoing, cause_id=message_id)
        recorded.append(
            {
                "contact_id": row.contact_id,
                "direction": "out",
                "kind": "follow_up",
                "status": "queued",
                "text": item.text.text,
                "message_id": message_id,
                "correlation_id": message_id,
                "knowledge_refs": item.text.knowledge_refs or null(),  # SQL NULL, not JSON null
                "model": item.text.model or item.text.engine,
                "created_at": now,
            }
        )
        if now > row.due_at:
            await self._rebase(session, row, now)
        report.sent += 1
        report.message_ids.append(message_id)
        report.contact_ids.append(row.contact_id)

    async def _skip(
        self, session: Session, ours: tuple[Any, ...], reason: str, now: datetime, report: RunReport
    ) -> None:
        result = await session.execute(
            update(follow_ups)
            .where(*ours)
            .values(status="skipped", reason=reason, claim_token=None, claimed_until=None, updated_at=now)
        )
        report.skipped += int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def _rebase(self, session: Session, row: Row[Any], sent_at: datetime) -> None:
        """Sent late (downtime, closing time): keep the configured spacing to the touches after it
        (a touch only ever moves later)."""
        later = plan(
            self.policy,
            after=sent_at,
            contact_id=row.contact_id,
            sequence_no=row.sequence_no,
            first_touch=row.touch + 1,
        )
        if not later:
            return
        t = follow_ups.c
        moved = case(
            *[
                (and_(t.touch == p.touch, t.due_at < literal(p.due_at, UtcDateTime)), literal(p.due_at, UtcDateTime))
                for p in later
            ],
            else_=t.due_at,
        )
        await session.execute(
            update(follow_ups)
            .where(
                t.contact_id == row.contact_id,
                t.sequence_no == row.sequence_no,
                t.touch > row.touch,
                t.status == "pending",
            )
            .values(due_at=moved, updated_at=sent_at)
        )
