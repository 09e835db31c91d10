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
   the conditional update match nothing: the touch is not sent. The touches sent are marked,
   recorded, staged and re-planned with one statement per step for the whole batch.
4. **Publish** after the commit (the outbox relay retries what fails). Campaign traffic goes to
   ``outgoing_campaign``, which the gateway serves after replies.

So each touch is sent at most once across replicas and restarts, and never while a stop
condition holds at the moment of sending.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from prometheus_client import Counter
from pydantic import ValidationError
from sqlalchemy import String, bindparam, func, null, or_, select, true, update
from sqlalchemy.engine import Row

from agent_service.db import repository as repo
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
from parley_shared.db import (
    Session,
    SessionFactory,
    UtcDateTime,
    dialect_name,
    insert_ignore,
    per_row,
    per_row_params,
)
from parley_shared.outbox import Outbox
from parley_shared.topology import outgoing_queue

log = structlog.get_logger(__name__)

TOUCHES = Counter("parley_follow_up_touches_total", "Follow-up touches by result", ["result"])
SKIP_NO_TEMPLATE = "meta_24h_window_without_template"
# Batches a round runs at once (each claims its own rows, like replicas do): one batch's database
# round trips overlap another's.
PARALLEL_BATCHES = 2

_f = follow_ups.c
# A later touch of a sequence moves to its new time, never earlier (built once; run for many rows).
_MOVE_LATER = (
    update(follow_ups)
    .where(
        _f.contact_id == bindparam("b_contact_id"),
        _f.sequence_no == bindparam("b_sequence_no"),
        _f.touch == bindparam("b_touch"),
        _f.status == "pending",
        _f.due_at < bindparam("b_due_at", type_=UtcDateTime),
    )
    .values(due_at=bindparam("b_due_at", type_=UtcDateTime), updated_at=bindparam("b_now", type_=UtcDateTime))
)


_earlier = follow_ups.alias("earlier")
# The claim: a batch of due touches, each a sequence's first pending one (after downtime several
# may be due, and the later ones wait to be re-planned from when the earlier one went out),
# leased to this batch's token. Built once; the time, token and size are parameters.
_DUE = (
    select(_f.id)
    .where(
        _f.status == "pending",
        _f.due_at <= bindparam("b_now", type_=UtcDateTime),
        or_(_f.claimed_until.is_(None), _f.claimed_until <= bindparam("b_now", type_=UtcDateTime)),
        ~select(_earlier.c.id)
        .where(
            _earlier.c.contact_id == _f.contact_id,
            _earlier.c.sequence_no == _f.sequence_no,
            _earlier.c.touch < _f.touch,
            _earlier.c.status == "pending",
        )
        .exists(),
    )
    .order_by(_f.due_at, _f.id)
    .limit(bindparam("b_limit"))
    .with_for_update(skip_locked=True)
)
_CLAIM = (
    update(follow_ups)
    .where(_f.id.in_(_DUE.scalar_subquery()))
    .values(
        claim_token=bindparam("b_token"),
        claimed_until=bindparam("b_until", type_=UtcDateTime),
        updated_at=bindparam("b_now", type_=UtcDateTime),
    )
    .returning(_f.id, _f.contact_id, _f.sequence_no, _f.touch, _f.strategy, _f.due_at)
)


@functools.lru_cache(maxsize=256)
def _mark_sent(count: int) -> Any:
    """Mark ``count`` claimed touches ``sent``, each with its message id, if still pending with our
    token: built and compiled once per count, every value a parameter (built per batch with the
    values inside, the ``CASE`` cost more than running the statement)."""
    message_ids = per_row(_f.id, count, "b_message_id", key_param="b_id", type_=String())
    now = bindparam("b_now", type_=UtcDateTime)
    return (
        update(follow_ups)
        .where(
            _f.id.in_(bindparam("b_ids", expanding=True)),
            _f.status == "pending",
            _f.claim_token == bindparam("b_token"),
        )
        .values(
            status="sent", sent_at=now, message_id=message_ids, claim_token=None, claimed_until=None, updated_at=now
        )
        .returning(_f.id)
    )


_WROTE_TO = (
    update(contacts)
    .where(contacts.c.id.in_(bindparam("b_ids", expanding=True)))
    .values(last_outbound_at=bindparam("b_now", type_=UtcDateTime), updated_at=bindparam("b_now", type_=UtcDateTime))
)


def _history_statements(limit: int) -> dict[str, Any]:
    """The read of the last ``limit`` messages with text of each of a batch's contacts, oldest
    first (built once per scheduler): on PostgreSQL a ``LATERAL`` read of each contact's newest
    rows (the index on contact and time, however long the history); on SQLite, which has no
    ``LATERAL``, a window over the batch's contacts."""
    m = messages.c
    ids: Any = bindparam("b_ids", expanding=True)
    newest_first = (m.created_at.desc(), m.id.desc())
    wanted = select(contacts.c.id.label("contact_id")).where(contacts.c.id.in_(ids)).subquery()
    recent = (
        select(m.direction, m.text, m.created_at, m.id)
        .where(m.contact_id == wanted.c.contact_id, m.text.is_not(None))
        .order_by(*newest_first)
        .limit(limit)
        .lateral()
    )
    rank = func.row_number().over(partition_by=m.contact_id, order_by=newest_first).label("rank")
    ranked = (
        select(m.contact_id, m.direction, m.text, rank).where(m.contact_id.in_(ids), m.text.is_not(None)).subquery()
    )
    return {
        "postgresql": select(wanted.c.contact_id, recent.c.direction, recent.c.text)
        .select_from(wanted.join(recent, true()))
        .order_by(wanted.c.contact_id, recent.c.created_at, recent.c.id),
        "sqlite": select(ranked.c.contact_id, ranked.c.direction, ranked.c.text)
        .where(ranked.c.rank <= limit)
        .order_by(ranked.c.contact_id, ranked.c.rank.desc()),
    }


def _ours(row_id: int, token: str) -> tuple[Any, ...]:
    """The row, if it is still ``pending`` under our claim (another replica may have taken it over)."""
    return (_f.id == row_id, _f.status == "pending", _f.claim_token == token)


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
        self._history = _history_statements(history_messages)

    # ---------------------------------------------------------------- the periodic job
    async def tick(self) -> None:
        """One round of the periodic job (every ``FOLLOW_UP_CHECK_INTERVAL_S``; a failure is logged
        by the job runner and the next round tries again)."""
        report = await self.run_due()
        if report.claimed:
            log.info("follow_up.round", sent=report.sent, skipped=report.skipped, cancelled=report.cancelled)

    # ---------------------------------------------------------------- one round
    async def run_due(self, now: datetime | None = None) -> RunReport:
        """Send every touch due at ``now`` (default: the clock), batch by batch; returns once the
        broker confirmed them (or the relay has them). Outside working hours nothing is sent:
        what fell due waits for the next opening. A batch's publish overlaps the next batch's
        claim and writing (the rows are committed in the outbox already)."""
        now = now or self.clock.now()
        report = RunReport()
        if not self.policy.hours.is_open(now):
            return report
        publishes: list[Awaitable[bool]] = []
        failures: list[Exception] = []

        async def claim_until_done() -> None:
            while not failures:  # a batch that failed stops the round: the next round tries again
                try:
                    batch, published = await self._run_batch(now)
                except Exception as exc:
                    failures.append(exc)
                    return
                report.add(batch)
                publishes.append(published)
                if batch.claimed < self.batch_size:
                    return

        await asyncio.gather(*(claim_until_done() for _ in range(PARALLEL_BATCHES)))
        # (Cancelled -- a stop -- the publishes are not waited for here: the outbox drains them.)
        await asyncio.gather(*publishes)
        if failures:
            raise failures[0]
        return report

    async def _run_batch(self, now: datetime) -> tuple[RunReport, Awaitable[bool]]:
        token = uuid.uuid4().hex
        rows = await self._claim(now, token)
        if not rows:
            return RunReport(), self.outbox.publish_after_commit()
        claimed = await self._write_all(rows, now)
        report = await self._finish(claimed, token, now)
        report.claimed = len(rows)
        published = self.outbox.publish_after_commit(ids=report.message_ids)
        if self.live is not None:  # the managers' screens show the touch in the thread
            for contact_id in report.contact_ids:
                self.live.changed(contact_id, "follow_up")
        return report, published

    async def _claim(self, now: datetime, token: str) -> list[Row[Any]]:
        params = {"b_now": now, "b_until": now + self.lease, "b_token": token, "b_limit": self.batch_size}
        async with self.sessions() as session, session.begin():
            return list((await session.execute(_CLAIM, params)).all())

    async def _write_all(self, rows: Sequence[Row[Any]], now: datetime) -> list[_Claimed]:
        ids = sorted({r.contact_id for r in rows})
        async with self.sessions() as session:
            people = {i: dict(c) for i, c in (await repo.contacts_by_id(session, ids)).items()}
            histories = await self._histories(session, ids) if self.writer.uses_history else {}

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

    async def _histories(self, session: Session, contact_ids: Sequence[int]) -> dict[int, list[tuple[str, str]]]:
        """The last ``history_messages`` messages with text of each contact, oldest first, in one
        statement for the whole batch (:func:`_history_statements`)."""
        if self.history_messages <= 0 or not contact_ids:
            return {}
        stmt = self._history["postgresql" if dialect_name(session) == "postgresql" else "sqlite"]
        rows = await session.execute(stmt, {"b_ids": list(contact_ids)})
        histories: dict[int, list[tuple[str, str]]] = {}
        for row in rows:
            histories.setdefault(row.contact_id, []).append((row.direction, row.text))
        return histories

    async def _finish(self, claimed: Sequence[_Claimed], token: str, now: datetime) -> RunReport:
        report = RunReport()
        async with self.sessions() as session, session.begin():
            ids = sorted({c.row.contact_id for c in claimed})
            current = {i: dict(c) for i, c in (await repo.contacts_by_id(session, ids, lock=True)).items()}
            calls = await upcoming_calls(session, ids, now)
            sendable: list[tuple[Row[Any], OutgoingMessage, FollowUpText]] = []
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
                to_send = await self._settle(session, item, contact, decision, token, now, report)
                if to_send is not None:
                    sendable.append((item.row, *to_send))
            await self._send(session, sendable, token, now, report)
        for name, count in (("sent", report.sent), ("skipped", report.skipped), ("cancelled", report.cancelled)):
            if count:
                TOUCHES.labels(name).inc(count)
        return report

    async def _settle(
        self,
        session: Session,
        item: _Claimed,
        contact: dict[str, Any] | None,
        decision: Eligibility,
        token: str,
        now: datetime,
        report: RunReport,
    ) -> tuple[OutgoingMessage, FollowUpText] | None:
        """What becomes of one claimed touch: handed back, cancelled or skipped here (rare, a
        statement each), or returned as the message to send and its text (the batch sends them
        together)."""
        row = item.row
        if contact is not None and decision.ok and item.text is None:  # eligible again meanwhile: next round
            await session.execute(
                update(follow_ups).where(*_ours(row.id, token)).values(claim_token=None, claimed_until=None)
            )
            report.lost += 1
            return None
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
            return None
        template = None
        if needs_template(ContactView.from_row(contact), now):
            if self.template is None:
                await self._skip(session, _ours(row.id, token), SKIP_NO_TEMPLATE, now, report)
                return None
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
            return outgoing, item.text
        except ValidationError:
            await self._skip(session, _ours(row.id, token), "invalid_message", now, report)
            return None

    async def _send(
        self,
        session: Session,
        sendable: Sequence[tuple[Row[Any], OutgoingMessage, FollowUpText]],
        token: str,
        now: datetime,
        report: RunReport,
    ) -> None:
        """Mark the batch's touches ``sent`` -- only those still ``pending`` with our token: a reply
        that cancelled one meanwhile, or another replica that took over an expired lease, leaves it
        out -- then record them, stage them in the outbox and keep the spacing of the late ones'
        later touches: one statement each for the whole batch."""
        if not sendable:
            return
        touches = [{"b_id": row.id, "b_message_id": outgoing.message_id} for row, outgoing, _ in sendable]
        params = {"b_ids": [row.id for row, _, _ in sendable], "b_token": token, "b_now": now}
        params.update(per_row_params(touches))
        marked = await session.execute(_mark_sent(len(sendable)), params)
        marked_ids: set[int] = set(marked.scalars())
        sent = [touch for touch in sendable if touch[0].id in marked_ids]
        report.lost += len(sendable) - len(sent)
        if not sent:
            return
        await self.outbox.add_many(
            session, [(outgoing_queue(outgoing), outgoing, outgoing.message_id) for _, outgoing, _ in sent]
        )
        # The conversation shows the touches; the contacts show when we last wrote.
        recorded = [
            {
                "contact_id": row.contact_id,
                "direction": "out",
                "kind": "follow_up",
                "status": "queued",
                "text": text.text,
                "message_id": outgoing.message_id,
                "correlation_id": outgoing.message_id,
                "knowledge_refs": text.knowledge_refs or null(),  # SQL NULL, not JSON null
                "model": text.model or text.engine,
                "created_at": now,
            }
            for row, outgoing, text in sent
        ]
        await insert_ignore(session, messages, recorded, ["message_id"])
        await session.execute(_WROTE_TO, {"b_ids": sorted({row.contact_id for row, _, _ in sent}), "b_now": now})
        await self._rebase(session, [row for row, _, _ in sent if now > row.due_at], now)
        for row, outgoing, _ in sent:
            report.sent += 1
            report.message_ids.append(outgoing.message_id)
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

    async def _rebase(self, session: Session, late: Sequence[Row[Any]], sent_at: datetime) -> None:
        """Touches sent late (downtime, closing time): keep the configured spacing to the touches
        after each (a touch only ever moves later) -- one statement, built once, run for all of
        them (the driver sends the rows together)."""
        moves = [
            {
                "b_contact_id": row.contact_id,
                "b_sequence_no": row.sequence_no,
                "b_touch": p.touch,
                "b_due_at": p.due_at,
                "b_now": sent_at,
            }
            for row in late
            for p in plan(
                self.policy,
                after=sent_at,
                contact_id=row.contact_id,
                sequence_no=row.sequence_no,
                first_touch=row.touch + 1,
            )
        ]
        if moves:
            await session.execute(_MOVE_LATER, moves)
