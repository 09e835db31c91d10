"""Turns: one contact at a time, bursts buffered, any number of replicas.

The incoming consumer only records a message (``pending``) and sets the contact's
``turn_due_at`` to "now + ``BUFFER_WINDOW_S``". A turn starts when that moment has passed --
from an in-process timer the consumer schedules, or from the periodic sweeper (after a crash,
or for work another replica left). Either way it must first **claim the contact's lease**
(a conditional UPDATE): whoever wins, in whichever replica, runs the turn; everyone else
leaves it. Then, with no transaction open:

1. read the pending messages (in sending order) and the recent history;
2. let the :class:`~agent_service.sales.SalesAgent` moderate, retrieve, call the model and
   apply the grounding guard (under the ``MAX_CONCURRENT_TURNS`` semaphore);
3. in one transaction: re-check the lease (which locks the contact row) and the ownership --
   a takeover that landed during the model call wins and the reply is stored ``suppressed``
   -- mark the messages handled, store the reply with its passages, model, tokens and
   latency, update the contact, call the follow-up and call-booking hooks, stage the
   ``OutgoingMessage`` (``message_id = stable_id("reply", turn_id)``) in the outbox and give
   the lease back;
4. after the commit, publish (the outbox relay covers a failure) and, if messages arrived
   during the turn, schedule the next one. A contact's next turn cannot be claimed while
   anything said to it is still unpublished, so its replies reach the queue in order.

``turn_id = stable_id("turn", phone, <last message_id of the turn>)``: a turn redone after a
lost lease produces the same ids, so it can never send a second reply.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from agent_service import metrics
from agent_service.calls.service import CallBooker
from agent_service.db import repository as repo
from agent_service.domain.call_slots import slot_choices
from agent_service.domain.contact import ContactView
from agent_service.domain.moderation import ModerationPolicy
from agent_service.domain.ordering import Readiness, Waiting, missing_links, readiness
from agent_service.domain.turn_outcome import TurnOutcome, turn_outcome
from agent_service.domain.vocabulary import NON_CLIENT
from agent_service.engines.base import HistoryItem
from agent_service.followups.service import FollowUps
from agent_service.knowledge.media import FileToSend
from agent_service.live import LiveFeed
from agent_service.sales import InboundText, SalesAgent, TurnInput, TurnPlan
from parley_shared.batching import BATCH_MAX_SIZE, GroupCommit, transactions
from parley_shared.clock import Clock
from parley_shared.contracts import (
    MAX_CAPTION,
    MAX_TEXT,
    Choices,
    Contract,
    OutgoingKind,
    OutgoingMedia,
    OutgoingMessage,
    new_id,
    stable_id,
)
from parley_shared.db import Session, SessionFactory
from parley_shared.outbox import Outbox
from parley_shared.shutdown import Drains
from parley_shared.topology import OUTGOING, WorkQueue

log = structlog.get_logger(__name__)

TIMER_SLACK_S = 0.005
FAILED_TURN_RETRY_S = 5.0
SWEEP_BATCH = 1000
TURN_DB_SLOTS = 8  # of the engine's 20 pooled connections (parley_shared.db.create_engine)


@dataclass(frozen=True)
class _Loaded:
    pending: Sequence[Any]  # the messages this turn answers, in sending order
    past: Sequence[Any]
    first_texts: list[str]
    order: Readiness


@dataclass(frozen=True)
class _Claim:
    contact: ContactView
    token: str
    loaded: _Loaded


@dataclass(frozen=True)
class _Result:
    """A turn's plan, waiting to be written (``TurnRunner.commits``)."""

    contact_id: int
    phone: str  # the order contacts are locked in
    token: str
    turn_id: str
    pending: Sequence[Any]
    plan: TurnPlan | None
    held_until: datetime | None


@dataclass(frozen=True)
class _Turn:
    """A turn being written: its place in the batch, its result, the contact as it is now (lease
    re-checked), the outcome decided from it and the ids of the messages it answers."""

    index: int
    result: _Result
    contact: Any
    outcome: TurnOutcome
    ids: list[int]


@dataclass(frozen=True)
class TurnReport:
    contact_id: int
    turn_id: str | None
    outcome: str  # replied | suppressed | silent | non_client | nothing | waiting | lease_lost
    reply_message_id: str | None = None
    handled: int = 0
    next_due: datetime | None = None  # when the contact's next turn is due (messages still wait)
    live_kind: str | None = None  # what the managers' screens are told
    name: str | None = None
    needs_human: bool = False


def reply_id(turn_id: str) -> str:
    return stable_id("reply", turn_id)


class TurnRunner:
    def __init__(
        self,
        *,
        sessions: SessionFactory,
        outbox: Outbox,
        agent: SalesAgent,
        clock: Clock,
        follow_ups: FollowUps,
        booker: CallBooker,
        lease_s: float,
        max_concurrent: int,
        history_limit: int,
        moderation: ModerationPolicy,
        order_gap_wait_s: float,
        drains: Drains,
        live: LiveFeed | None = None,
        batch_size: int = BATCH_MAX_SIZE,
    ) -> None:
        self.sessions = sessions
        self.moderation = moderation
        self.live = live  # the managers' screens
        self.outbox = outbox
        self.agent = agent
        self.clock = clock
        self.follow_ups = follow_ups
        self.booker = booker
        self.lease = timedelta(seconds=lease_s)
        self.history_limit = history_limit
        self.order_gap_wait = timedelta(seconds=order_gap_wait_s)
        self.instance = f"{socket.gethostname()[:40]}:{os.getpid()}:{new_id()[:8]}"
        self._semaphore = asyncio.Semaphore(max_concurrent)
        self._db_slots = asyncio.Semaphore(TURN_DB_SLOTS)
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._running: set[int] = set()
        self._again: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False  # no new turn starts here once a stop began
        # Claims and results of turns that happen at about the same time share a transaction.
        self.claims: GroupCommit[int, _Claim | None] = transactions(
            self._claim_batch, name="turn_claims", drains=drains, max_size=batch_size
        )
        self.commits: GroupCommit[_Result, TurnReport] = transactions(
            self._commit_batch, name="turn_commits", drains=drains, max_size=batch_size
        )
        self.turns = 0
        self.failures = 0
        self.in_flight = 0

    @contextlib.asynccontextmanager
    async def _session(self, *, begin: bool = False) -> AsyncIterator[Session]:
        """A session for a turn step. Turns use at most ``TURN_DB_SLOTS`` connections at once, so the
        incoming consumer always finds one: a message is recorded promptly however many turns run,
        which keeps a contact's messages recorded in order across replicas."""
        async with self._db_slots, self.sessions() as session:
            if begin:
                async with session.begin():
                    yield session
            else:
                yield session

    # ------------------------------------------------------------------ triggering
    def schedule(self, contact_id: int, delay_s: float) -> None:
        """Run the contact's turn in ``delay_s`` (replacing an earlier timer for it)."""
        if self._stopping:
            return  # the turn stays due in the database: the sweeper (here or elsewhere) starts it
        loop = asyncio.get_running_loop()
        old = self._timers.pop(contact_id, None)
        if old is not None:
            old.cancel()
        self._timers[contact_id] = loop.call_later(max(0.0, delay_s) + TIMER_SLACK_S, self._fire, contact_id)

    def _fire(self, contact_id: int) -> None:
        self._timers.pop(contact_id, None)
        self.spawn(contact_id)

    def spawn(self, contact_id: int) -> None:
        """Start a turn task for the contact unless one is already running here (or a stop began)."""
        if self._stopping:
            return
        if contact_id in self._running:
            self._again.add(contact_id)  # look again when the running one ends
            return
        self._running.add(contact_id)
        task = asyncio.create_task(self._run(contact_id), name=f"turn:{contact_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, contact_id: int) -> None:
        try:
            async with self._semaphore:
                self.in_flight += 1
                try:
                    await self.run_turn(contact_id)
                finally:
                    self.in_flight -= 1
        except asyncio.CancelledError:
            raise
        except Exception:
            self.failures += 1
            metrics.TURN_FAILURES.inc()
            log.exception("turn.failed", contact_id=contact_id)
        finally:
            self._running.discard(contact_id)
        if contact_id in self._again:
            self._again.discard(contact_id)
            self.spawn(contact_id)

    async def sweep_once(self) -> int:
        """Start every due, unleased turn (crash recovery, other replicas' leftovers): the periodic
        job of every ``TURN_SWEEP_INTERVAL_S``."""
        async with self._session() as session:
            due = await repo.due_contacts(session, self.clock.now(), SWEEP_BATCH)
        for contact_id in due:
            self.spawn(contact_id)
        return len(due)

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop timers, let running turns finish for ``grace_s``, then cancel (their leases are released).
        No turn starts once the stop began -- not even the next one of a contact whose turn ends in
        the grace period -- so every turn is either finished or cancelled when this returns."""
        self._stopping = True
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        tasks = list(self._tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=grace_s)
        for task in tasks:
            task.cancel()
        if tasks:  # asyncio.wait, so that a cancel of this stop itself is not swallowed as a turn's
            await asyncio.wait(tasks)
        for task in tasks:  # (a turn's own failure was logged by _run: this only takes it off the task)
            if not task.cancelled():
                task.exception()

    async def idle(self, timeout_s: float = 30.0) -> None:
        """Wait until no timer or turn is pending here (tests)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self._timers or self._tasks:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("turns still running")
            await asyncio.sleep(0.01)

    # ------------------------------------------------------------------ one turn
    async def run_turn(self, contact_id: int) -> TurnReport | None:
        """Claim the contact's lease and run its turn; None when it is not due or someone else runs it."""
        claim = await self.claims.submit(contact_id)
        if claim is None:
            return None
        contact, token, loaded = claim.contact, claim.token, claim.loaded
        heartbeat = asyncio.create_task(self._keep_lease(contact_id, token))
        try:
            report = await self._turn(contact, token, loaded)
        except asyncio.CancelledError:  # shutting down: let another worker take it at once
            await asyncio.shield(self._give_up(contact_id, token, retry_in_s=0.0))
            raise
        except Exception:
            await self._give_up(contact_id, token, retry_in_s=FAILED_TURN_RETRY_S)
            raise
        finally:
            heartbeat.cancel()
        self.turns += 1
        return report

    async def _keep_lease(self, contact_id: int, token: str) -> None:
        """Renew the lease every third of its length while the turn runs (a slow model call). A
        renewal that fails (the database away for a moment) is logged; the next one tries again,
        and a lease that ran out meanwhile is caught by the re-check before anything is written."""
        interval = self.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            try:
                async with self._session(begin=True) as session:
                    if not await repo.renew_lease(session, contact_id, token, self.clock.now() + self.lease):
                        return
            except Exception as exc:
                log.warning("turn.lease_renewal_failed", contact_id=contact_id, error=type(exc).__name__)

    async def _give_up(self, contact_id: int, token: str, *, retry_in_s: float) -> None:
        """Hand the lease back after a failed or cancelled turn; if that fails too, the lease runs
        out by itself and the sweeper starts the turn again."""
        try:
            async with self._session(begin=True) as session:
                retry_at = self.clock.now() + timedelta(seconds=retry_in_s)
                await repo.release_turn(session, contact_id, token, retry_at=retry_at)
        except Exception as exc:
            log.warning("turn.release_failed", contact_id=contact_id, error=type(exc).__name__)

    async def _claim_batch(self, contact_ids: list[int]) -> list[_Claim | None]:
        """Claim the turns of contacts whose timers fired at about the same time, in one transaction
        (group commit): one statement claims them all (under one token), one reads their pending
        messages, one their histories, one (rarely) the earlier messages their chains name, one (when
        the moderator judges again) their first texts -- whatever the number of contacts."""
        now = self.clock.now()
        token = f"{self.instance}:{new_id()[:8]}"
        async with self._session(begin=True) as session:
            rows = await repo.claim_turns(session, contact_ids, token, now, now + self.lease)
            claimed = {cid: ContactView.from_row(row) for cid, row in rows.items()}
            ids = sorted(claimed)
            waiting = await repo.pending_messages_of(session, ids)
            orders = await self._in_order(session, waiting, now)
            excluded = [w["id"] for rows_ in waiting.values() for w in rows_]
            pasts = await repo.histories(session, ids, self.history_limit, exclude=excluded)
            # The first classification judges the pending messages themselves; later ones also the first texts.
            again = [
                cid
                for cid, contact in claimed.items()
                if orders[cid][0] and self.moderation.needs_classification(contact) and contact.classified_turns > 0
            ]
            first_texts = await repo.inbound_texts_of(session, again) if again else {}
        return [
            _Claim(
                claimed[cid],
                token,
                _Loaded(orders[cid][0], pasts[cid], first_texts.get(cid, []), orders[cid][1]),
            )
            if cid in claimed
            else None
            for cid in contact_ids
        ]

    async def _in_order(
        self, session: Session, waiting: dict[int, list[Any]], now: datetime
    ) -> dict[int, tuple[list[Any], Readiness]]:
        """Per contact, the waiting messages whose earlier messages have all arrived
        (``domain/ordering.py``), and its readiness."""
        chains = {
            cid: [Waiting(w["message_id"], w["previous_message_id"], w["created_at"]) for w in rows]
            for cid, rows in waiting.items()
        }
        links = set().union(*(missing_links(chain) for chain in chains.values())) if chains else set()
        found = await repo.recorded(session, links) if links else set()
        out: dict[int, tuple[list[Any], Readiness]] = {}
        for cid, chain in chains.items():
            order = readiness(chain, found, now=now, max_wait=self.order_gap_wait)
            if order.held:
                metrics.ORDER_GAPS.labels("held").inc()
                log.info("turn.order_gap_held", contact_id=cid, held=len(order.held), until=order.retry_at)
            if order.expired:
                metrics.ORDER_GAPS.labels("expired").inc()
                log.warning("turn.order_gap_expired", contact_id=cid, messages=len(order.expired))
            ready = set(order.ready)
            out[cid] = ([w for w in waiting[cid] if w["message_id"] in ready], order)
        return out

    async def _turn(self, contact: ContactView, token: str, loaded: _Loaded) -> TurnReport:
        pending, past, first_texts = loaded.pending, loaded.past, loaded.first_texts
        if not pending:
            retry_at = loaded.order.retry_at
            async with self._session(begin=True) as session:
                await repo.release_turn(session, contact.id, token, retry_at=retry_at)
            if retry_at is not None:  # an earlier message is on its way: look again when the wait ends
                self.schedule(contact.id, (retry_at - self.clock.now()).total_seconds())
                return TurnReport(contact.id, None, "waiting")
            return TurnReport(contact.id, None, "nothing")
        turn_id = stable_id("turn", contact.phone, pending[-1]["message_id"])
        plan: TurnPlan | None = None
        if self.moderation.ai_thinks(contact):  # to answer, or to draft for the manager who holds it
            turn = TurnInput(
                contact=contact,
                messages=[InboundText(p["text"], p["kind"], bool(p["transcribed"]), p["details"]) for p in pending],
                history=[HistoryItem(h["direction"], h["kind"], h["text"] or "") for h in past if h["text"]],
                first_texts=first_texts,
                now=self.clock.now(),
            )
            try:
                plan = await self.agent.plan(turn)
            except Exception as exc:  # a bug in an engine or the knowledge base must not block the contact
                log.exception("turn.plan_failed", contact_id=contact.id)
                plan = self.agent.fallback_plan(turn, f"{type(exc).__name__}: {exc}")
        result = _Result(contact.id, contact.phone, token, turn_id, pending, plan, loaded.order.retry_at)
        report = await self.commits.submit(result)
        self._after_commit(result, report)
        return report

    async def _commit_batch(self, results: list[_Result]) -> list[TurnReport]:
        """Write the results of turns that finished at about the same time in one transaction (group
        commit; :meth:`_write`), then publish every reply of the batch together. A turn whose
        result cannot be written fails alone (its lease is given back and the turn runs again):
        the batch is re-run item by item if it fails for a reason of its own."""
        async with self._session(begin=True) as session:
            written = await self._write(session, results, self.clock.now())
        replied = [report.contact_id for report in written if report.reply_message_id]
        if replied:
            async with self._db_slots:
                await self.outbox.publish_after_commit(causes=[repo.contact_cause(cid) for cid in replied])
        return written

    async def _write(self, session: Session, results: Sequence[_Result], now: datetime) -> list[TurnReport]:
        """The batch's results in its transaction, one statement per step for all of its turns:
        re-check the leases (locking the contacts in phone order, like every transaction that locks
        several contacts), decide each outcome from the contact as it is now
        (``domain/turn_outcome.py``), mark the messages, store the replies, update the contacts and
        give the leases back, stage the replies (each turn's file right after its reply) and plan
        the follow-ups of the contacts the AI replied to without handing over."""
        current = await repo.recheck_leases(session, [(r.contact_id, r.token) for r in results], now)
        reports: dict[int, TurnReport] = {}
        turns: list[_Turn] = []
        for index, result in enumerate(results):
            contact = current.get(result.contact_id)
            if contact is None:
                log.warning("turn.lease_lost", contact_id=result.contact_id)
                reports[index] = TurnReport(result.contact_id, result.turn_id, "lease_lost")
                continue
            plan = result.plan
            outcome = turn_outcome(
                ContactView.from_row(contact),
                planned=plan is not None,
                has_reply=plan is not None and plan.reply is not None,
                policy=self.moderation,
            )
            turns.append(_Turn(index, result, contact, outcome, [int(p["id"]) for p in result.pending]))
        status = {True: "handled", False: "silent"}
        marks = {i: (status[t.outcome is TurnOutcome.REPLIED], t.result.turn_id) for t in turns for i in t.ids}
        marked = await repo.mark_turn_messages(session, marks)
        if any(i not in marked for i in marks):
            raise RuntimeError("turn messages changed under the lease")
        stored: list[dict[str, Any]] = []  # the replies, then the files sent after them
        files: list[dict[str, Any]] = []
        staged: list[tuple[WorkQueue, Contract, str | None]] = []
        finished: list[tuple[int, str, dict[str, Any]]] = []
        stops: list[tuple[int, str]] = []
        for turn in turns:
            plan, contact_id, token = turn.result.plan, turn.result.contact_id, turn.result.token
            if turn.outcome is TurnOutcome.REPLIED:
                assert plan is not None
                text, choices = await self._book(session, turn, plan, now)
                stored.append(self._reply_row(turn, plan, text, "queued", now))
                changes = {**plan.contact_values, "last_outbound_at": now, "updated_at": now}
                finished.append((contact_id, token, changes))
                if plan.handoff:
                    stops.append((contact_id, "handoff"))
                last = turn.result.pending[-1]
                in_reply_to = [p["message_id"] for p in turn.result.pending][-200:]
                reply = reply_id(turn.result.turn_id)
                staged.append(self._outgoing(turn, last, reply, text, choices=choices, in_reply_to=in_reply_to))
                if plan.attachment is not None:
                    row, message = self._file(turn, last, plan.attachment, now)
                    files.append(row)
                    staged.append(message)
            elif turn.outcome is TurnOutcome.SUPPRESSED:
                assert plan is not None and plan.reply is not None
                stored.append(self._reply_row(turn, plan, plan.reply, "suppressed", now))
                finished.append((contact_id, token, {"updated_at": now}))
            elif turn.outcome is TurnOutcome.NON_CLIENT:
                assert plan is not None
                finished.append((contact_id, token, {**plan.contact_values, "updated_at": now}))
            else:
                finished.append((contact_id, token, {}))
        for rows in (stored, files):
            if rows:
                await repo.insert_messages(session, rows)
        await repo.finish_turns(session, finished)
        for turn in turns:
            if turn.result.held_until is not None:  # later messages wait for an earlier one still on its way
                await repo.postpone_turn(session, turn.result.contact_id, turn.result.held_until)
        updated = await repo.contacts_by_id(session, [t.result.contact_id for t in turns])
        stops += [
            (t.result.contact_id, "non_client")
            for t in turns
            if t.outcome is TurnOutcome.NON_CLIENT and updated[t.result.contact_id]["client_status"] == NON_CLIENT
        ]
        for contact_id, reason in stops:
            await self.follow_ups.stop(session, contact_id, reason, now)
        await self.outbox.add_many(session, staged)
        answered = [
            updated[t.result.contact_id]
            for t in turns
            if t.outcome is TurnOutcome.REPLIED and t.result.plan is not None and not t.result.plan.handoff
        ]
        await self.follow_ups.on_agent_messages(session, answered, now)
        for turn in turns:
            contact = updated[turn.result.contact_id]
            replied = turn.outcome is TurnOutcome.REPLIED
            handoff = replied and turn.result.plan is not None and turn.result.plan.handoff
            reports[turn.index] = TurnReport(
                turn.result.contact_id,
                turn.result.turn_id,
                turn.outcome.value,
                reply_id(turn.result.turn_id) if replied else None,
                len(turn.ids),
                next_due=contact["turn_due_at"],
                live_kind="handoff" if handoff else turn.outcome.value,
                name=contact["name"],
                needs_human=bool(contact["needs_human"]),
            )
        return [reports[index] for index in range(len(results))]

    def _after_commit(self, result: _Result, report: TurnReport) -> None:
        """The turn is written: arm its contact's next turn, count it, tell the managers' screens."""
        if report.outcome == "lease_lost":
            return
        if report.next_due is not None:
            self.schedule(result.contact_id, (report.next_due - self.clock.now()).total_seconds())
        metrics.TURNS.labels(report.outcome).inc()
        log.info("turn.done", contact_id=result.contact_id, outcome=report.outcome, messages=report.handled)
        if self.live is not None:
            self.live.changed(
                result.contact_id, report.live_kind or report.outcome, label=report.name, needs_human=report.needs_human
            )

    async def _book(self, session: Session, turn: _Turn, plan: TurnPlan, now: datetime) -> tuple[str, Choices | None]:
        """The reply's text and buttons: a requested call is booked (slots proposed instead are
        offered as buttons too, a tap books one)."""
        text = plan.reply or ""
        decision = plan.decision
        choices: Choices | None = None
        if decision is not None and decision.action == "schedule_call":
            booking = await self.booker.book(
                session,
                contact_id=turn.result.contact_id,
                requested_at=decision.proposed_call_time,
                turn_id=turn.result.turn_id,
                language=plan.language,
                now=now,
                notes=(turn.result.pending[-1]["text"] or "")[:500] or None,
            )
            if booking.reply_hint:
                text = f"{text}\n{booking.reply_hint}"
            choices = slot_choices(booking.proposed_slots, self.booker.rules.hours, plan.language)
        return text[:MAX_TEXT], choices

    @staticmethod
    def _reply_row(turn: _Turn, plan: TurnPlan, text: str, status: str, now: datetime) -> dict[str, Any]:
        return {
            "contact_id": turn.result.contact_id,
            "direction": "out",
            "kind": "reply",
            "status": status,
            "text": text,
            "message_id": reply_id(turn.result.turn_id),
            "correlation_id": turn.result.pending[-1]["correlation_id"],
            "turn_id": turn.result.turn_id,
            "knowledge_refs": plan.knowledge_refs,
            "model": plan.model,
            "tokens_in": plan.tokens_in,
            "tokens_out": plan.tokens_out,
            "latency_ms": plan.latency_ms,
            "error": _reply_error(plan),
            "created_at": now,
        }

    def _file(
        self, turn: _Turn, last: Any, file: FileToSend, now: datetime
    ) -> tuple[dict[str, Any], tuple[WorkQueue, Contract, str | None]]:
        """The file a turn sends after its reply (the price list, a product picture): its message row
        and its outbox entry."""
        media = OutgoingMedia(
            kind=file.kind,  # type: ignore[arg-type]
            file_name=file.file_name,
            mime_type=file.mime_type,
            data_b64=base64.b64encode(file.data).decode(),
            sha256=hashlib.sha256(file.data).hexdigest(),
        )
        message_id = stable_id("file", turn.result.turn_id)
        caption = file.title[:MAX_CAPTION] or file.file_name
        row = {
            "contact_id": turn.result.contact_id,
            "direction": "out",
            "kind": "reply",
            "status": "queued",
            "text": caption,
            "message_id": message_id,
            "correlation_id": last["correlation_id"],
            "turn_id": turn.result.turn_id,
            "media": {
                "kind": file.kind,
                "file_name": file.file_name,
                "mime_type": file.mime_type,
                "size": len(file.data),
            },
            "created_at": now,
        }
        return row, self._outgoing(turn, last, message_id, caption, media=media)

    @staticmethod
    def _outgoing(
        turn: _Turn, last: Any, message_id: str, text: str, **content: Any
    ) -> tuple[WorkQueue, Contract, str | None]:
        """One message of the turn for ``outgoing_messages`` (staged in the outbox, published after
        the commit in order)."""
        message = OutgoingMessage(
            message_id=message_id,
            correlation_id=last["correlation_id"] or turn.result.turn_id,
            phone=turn.contact["phone"],
            text=text,
            kind=OutgoingKind.REPLY,
            **content,
        )
        return OUTGOING, message, repo.contact_cause(turn.result.contact_id)


def _reply_error(plan: TurnPlan) -> str | None:
    if plan.engine_error:
        return plan.engine_error[:500]
    if plan.ungrounded:
        return ("ungrounded: " + ", ".join(plan.ungrounded))[:500]
    return None
