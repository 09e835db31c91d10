"""The one ingestion path every provider uses (Wappi poller, Meta webhook, sandbox).

For a batch of :class:`InboundEvent` values, in ONE transaction:

1. decide each event (:func:`gateway.domain.admission.admit`): own messages, group chats and
   non-phones are skipped; the phone becomes E.164;
2. log it in ``message_logs`` (direction ``inbound``, ``message_id = stable_id("in", provider,
   provider message id)``); the unique key ``(direction, message_id)`` turns a message seen
   twice (webhook retry, overlapping polls, a restart) into a no-op;
3. numbers on the ignore list are logged with status ``ignored`` and go no further;
4. the rest are staged in the outbox: voice notes for ``voice_transcription``, everything else
   for ``incoming_messages``, each naming the contact's previous message (``gateway/chains.py``);
5. an optional ``within`` callback joins the same transaction (the poller advances its cursor there).

Each step is one statement for the whole batch. After the commit the staged messages are
published at once (``Outbox.publish_after_commit``; the report's ``published`` says when the
broker confirmed them -- the Wappi poller waits for it, the Meta webhook answers Meta first); if
that fails (broker away, crash) the outbox relay publishes them later. Nothing acknowledged to a
provider can be lost.

A single event (a sandbox POST) goes through :meth:`Ingestor.submit`: the events submitted at
about the same time share one batch (group commit, ``parley_shared.batching``), so a burst of
requests costs a few transactions instead of one each.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import structlog
from prometheus_client import Counter as PromCounter

from gateway import chains, metrics
from gateway.db import tables
from gateway.domain.admission import InboundEvent, StatusEvent, Verdict, admit, inbound_message_id, to_contract
from gateway.ignore_list import IgnoreList
from gateway.outbound import OutboundLog
from parley_shared.batching import GroupCommit
from parley_shared.broker import is_transient
from parley_shared.contracts import Contract
from parley_shared.db import Session, insert_ignore
from parley_shared.phone import mask_phone
from parley_shared.service import Runtime
from parley_shared.topology import VOICE, WorkQueue

log = structlog.get_logger(__name__)

INBOUND = "inbound"
STATUS_QUEUED = "queued"  # staged for incoming_messages
STATUS_TRANSCRIBING = "transcribing"  # staged for voice_transcription
STATUS_IGNORED = "ignored"


@dataclass(frozen=True)
class Ingested:
    """What became of one event: ``published``, ``duplicate``, ``ignored`` or ``skipped``."""

    status: str
    message_id: str | None = None
    reason: str | None = None


@dataclass
class IngestReport:
    outcomes: list[Ingested] = field(default_factory=list)
    staged: list[str] = field(default_factory=list)  # outbox message ids
    status_ids: list[str] = field(default_factory=list)
    published: Awaitable[bool] | None = None  # the publish after the commit (True once confirmed)
    # Metric increments, counted once the transaction committed: a batch that rolls back (and is
    # retried, or re-run item by item) is not counted twice.
    tallies: list[tuple[PromCounter, tuple[str, ...]]] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    def tally(self, counter: PromCounter, *labels: str) -> None:
        self.tallies.append((counter, labels))


@dataclass(frozen=True)
class _Admitted:
    """An event that passed admission: its log row and, unless ignored, what to stage."""

    event: InboundEvent
    row: dict[str, object]
    queue: WorkQueue
    payload: Contract
    reason: str | None


class Ingestor:
    def __init__(self, runtime: Runtime, ignore_list: IgnoreList, outbound: OutboundLog) -> None:
        self.runtime = runtime
        self.ignore_list = ignore_list
        self.outbound = outbound
        self.group_commit: GroupCommit[InboundEvent, Ingested] = GroupCommit(
            self._ingest_and_publish,
            name="inbound_ingest",
            drains=runtime.drains,
            max_batches=2,
            retry_alone=lambda exc: not is_transient(exc),
        )

    async def submit(self, event: InboundEvent) -> Ingested:
        """Ingest and publish one event (an HTTP request's), sharing a transaction with the events
        submitted at about the same time (group commit); returns what became of it."""
        return await self.group_commit.submit(event)

    async def _ingest_and_publish(self, events: list[InboundEvent]) -> list[Ingested]:
        report = await self.ingest(events)
        if report.published is not None:
            await report.published
        return report.outcomes

    async def ingest(
        self,
        events: Sequence[InboundEvent],
        *,
        statuses: Sequence[StatusEvent] = (),
        within: Callable[[Session], Awaitable[None]] | None = None,
    ) -> IngestReport:
        """Log and stage ``events`` (and apply delivery ``statuses``) in one transaction, commit, and
        start publishing what it staged (``report.published``)."""
        report = IngestReport()
        async with self.runtime.sessions() as session, session.begin():
            if events:
                ignored = await self.ignore_list.phones(session)
                report.outcomes = await self._log_and_stage(session, events, ignored, report)
            if statuses:
                report.status_ids = await self.outbound.apply_provider_statuses(session, statuses)
            if within is not None:
                await within(session)
        for counter, labels in report.tallies:
            counter.labels(*labels).inc()
        report.published = self.runtime.outbox.publish_after_commit(ids=[*report.staged, *report.status_ids])
        return report

    async def _log_and_stage(
        self, session: Session, events: Sequence[InboundEvent], ignored: frozenset[str], report: IngestReport
    ) -> list[Ingested]:
        """One statement logs every admitted event (a message seen before is a no-op), one stages them."""
        now = self.runtime.clock.now()
        outcomes: list[Ingested | _Admitted] = []
        for event in events:
            provider = event.provider.value
            report.tally(metrics.RECEIVED, provider)
            admission = admit(event, ignored)
            if admission.verdict is Verdict.SKIPPED:
                report.tally(metrics.SKIPPED, provider, admission.reason or "other")
                outcomes.append(Ingested("skipped", reason=admission.reason))
                continue
            assert admission.phone is not None
            message_id = inbound_message_id(event.provider, event.provider_message_id)
            queue, payload = to_contract(event, admission.phone, now)
            if admission.verdict is Verdict.IGNORED:
                status = STATUS_IGNORED
            else:
                status = STATUS_TRANSCRIBING if queue is VOICE else STATUS_QUEUED
            row = {
                "direction": INBOUND,
                "provider": provider,
                "provider_message_id": event.provider_message_id,
                "message_id": message_id,
                "correlation_id": payload.correlation_id,
                "phone": admission.phone,
                "phone_masked": mask_phone(admission.phone),
                "kind": event.kind.value,
                "status": status,
                "created_at": now,
                "updated_at": now,
            }
            outcomes.append(_Admitted(event, row, queue, payload, admission.reason))
        admitted = [o for o in outcomes if isinstance(o, _Admitted)]
        logged: set[object] = set()
        if admitted:
            keys = ["direction", "message_id"]
            # In message-id order, so that concurrent batches insert (and lock) the same keys in one order.
            rows = sorted((a.row for a in admitted), key=lambda row: str(row["message_id"]))
            result = await insert_ignore(session, tables.message_logs, rows, keys, returning=keys)
            logged = {message_id for _, message_id in result.all()}
        staged: list[tuple[WorkQueue, Contract, str]] = []
        chain: list[tuple[str, str]] = []  # (phone, message id) of each staged message
        final: list[Ingested] = []
        for item in outcomes:
            if not isinstance(item, _Admitted):
                final.append(item)
                continue
            provider, message_id = item.event.provider.value, str(item.row["message_id"])
            if message_id not in logged:  # seen before (or twice in this batch: the first one counts)
                report.tally(metrics.DUPLICATES, provider)
                final.append(Ingested("duplicate", message_id))
                continue
            logged.discard(message_id)
            if item.row["status"] == STATUS_IGNORED:
                report.tally(metrics.IGNORED, provider)
                log.info("ingest.ignored", provider=provider, phone=item.row["phone"], message_id=message_id)
                final.append(Ingested("ignored", message_id, item.reason))
                continue
            staged.append((item.queue, item.payload, message_id))
            chain.append((str(item.row["phone"]), message_id))
            report.staged.append(item.payload.message_id)
            report.tally(metrics.PUBLISHED, provider, item.queue.name)
            final.append(Ingested("published", message_id))
        # Each staged message names its contact's previous one (in this batch's order).
        previous = await chains.link(session, chain, now)
        linked = [
            (queue, payload.model_copy(update={"previous_message_id": before}), message_id)
            for (queue, payload, message_id), before in zip(staged, previous, strict=True)
        ]
        await self.runtime.outbox.add_many(session, linked)
        return final
