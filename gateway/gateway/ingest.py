"""The one ingestion path every provider uses (Wappi poller, Meta webhook, sandbox).

For a batch of :class:`InboundEvent` values, in ONE transaction:

1. decide each event (:func:`gateway.domain.admission.admit`): own messages, group chats and
   what is neither a number nor a LID chat are skipped -- counted and logged with the masked
   sender and the provider id (:func:`count_skipped`, which the webhook and the poller use for
   what their parsers skip); the sender becomes its address (E.164 as the provider gave it, or
   the LID chat id); NUL characters are removed from every string (PostgreSQL refuses them: the
   message would fail every attempt to store it); a typed number that picks one of the options
   the contact was offered becomes that tap (``domain/choices.py``); a reaction, an edit or a
   revoke learns the ``message_id`` of the message it is about;
2. log it in ``message_logs`` (direction ``inbound``, ``message_id = stable_id("in", provider,
   provider message id)``); the unique key ``(direction, message_id)`` turns a message seen
   twice (webhook retry, overlapping polls, a restart) into a no-op;
3. numbers on the ignore list are logged with status ``ignored`` and go no further;
4. the rest are staged in the outbox: voice notes for ``voice_transcription``, images, videos,
   documents and stickers for ``inbound_media`` (the file is fetched and kept first), everything
   else for ``incoming_messages``, each naming the contact's previous message; the contact's chat
   id and last inbound time are remembered, and a number change moves what the gateway knows of
   the contact to the new number (``gateway/chains.py``);
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
from sqlalchemy import select

from gateway import chains, metrics
from gateway.db import tables
from gateway.domain.admission import (
    TARGETED_KINDS,
    InboundEvent,
    SkippedItem,
    StatusEvent,
    Verdict,
    admit,
    chat_id_of,
    inbound_message_id,
    to_contract,
    without_nul,
)
from gateway.domain.choices import as_tap, typed_number
from gateway.ignore_list import IgnoreList
from gateway.outbound import OutboundLog
from parley_shared.batching import GroupCommit, transactions
from parley_shared.contracts import Contract, InboundMedia, Provider
from parley_shared.db import Session, TupleRows, insert_ignore
from parley_shared.phone import mask_phone
from parley_shared.service import Runtime
from parley_shared.topology import MEDIA, VOICE, WorkQueue

log = structlog.get_logger(__name__)

INBOUND = "inbound"
STATUS_QUEUED = "queued"  # staged for incoming_messages
STATUS_TRANSCRIBING = "transcribing"  # staged for voice_transcription
STATUS_FETCHING = "fetching"  # staged for inbound_media (the file is fetched and kept first)
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
    skipped: list[tuple[str, SkippedItem]] = field(default_factory=list)  # counted and logged after the commit

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    def tally(self, counter: PromCounter, *labels: str) -> None:
        self.tallies.append((counter, labels))

    def skip(self, provider: str, item: SkippedItem) -> None:
        self.skipped.append((provider, item))


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
        self.group_commit: GroupCommit[InboundEvent, Ingested] = transactions(
            self._ingest_and_publish,
            name="inbound_ingest",
            drains=runtime.drains,
            max_size=runtime.settings.batch_max_size,
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
        for provider, item in report.skipped:
            count_skipped(provider, [item])
        report.published = self.runtime.outbox.publish_after_commit(ids=[*report.staged, *report.status_ids])
        return report

    async def _log_and_stage(
        self, session: Session, events: Sequence[InboundEvent], ignored: frozenset[str], report: IngestReport
    ) -> list[Ingested]:
        """One statement logs every admitted event (a message seen before is a no-op), one stages them."""
        now = self.runtime.clock.now()
        admitted: list[tuple[InboundEvent, str, Verdict]] = []
        outcomes: list[Ingested | int] = []  # an Ingested, or the index of an admitted event
        for received in events:
            event = without_nul(received)
            provider = event.provider.value
            report.tally(metrics.RECEIVED, provider)
            admission = admit(event, ignored)
            if admission.verdict is Verdict.SKIPPED:
                reason = admission.reason or "other"
                report.skip(provider, SkippedItem(reason, event.provider_message_id, event.sender))
                outcomes.append(Ingested("skipped", reason=reason))
                continue
            assert admission.phone is not None
            outcomes.append(len(admitted))
            admitted.append((event, admission.phone, admission.verdict))
        admitted = await self._read_taps(session, admitted)
        targets = await self._targets(session, [event for event, _, _ in admitted])
        items: list[_Admitted] = []
        for event, phone, verdict in admitted:
            message_id = inbound_message_id(event.provider, event.provider_message_id)
            target = targets.get(event.target) if event.target else None
            queue, payload = to_contract(event, phone, now, target_message_id=target)
            if verdict is Verdict.IGNORED:
                status = STATUS_IGNORED
            else:
                status = {VOICE.name: STATUS_TRANSCRIBING, MEDIA.name: STATUS_FETCHING}.get(queue.name, STATUS_QUEUED)
            row: dict[str, object] = {
                "direction": INBOUND,
                "provider": event.provider.value,
                "provider_message_id": event.provider_message_id,
                "message_id": message_id,
                "correlation_id": payload.correlation_id,
                "phone": phone,
                "phone_masked": mask_phone(phone),
                "kind": event.kind.value,
                "status": status,
                "created_at": now,
                "updated_at": now,
            }
            items.append(_Admitted(event, row, queue, payload, "ignore_list" if verdict is Verdict.IGNORED else None))
        logged: set[object] = set()
        if items:
            keys = ["direction", "message_id"]
            # In message-id order, so that concurrent batches insert (and lock) the same keys in one order.
            rows = sorted((a.row for a in items), key=lambda row: str(row["message_id"]))
            result = await insert_ignore(session, tables.message_logs, rows, keys, returning=keys)
            logged = {message_id for _, message_id in result.all()}
        staged: list[tuple[WorkQueue, Contract, str]] = []
        chain: list[tuple[str, str]] = []  # (address, message id) of each staged message
        seen: list[chains.Seen] = []
        moves: list[tuple[str, str]] = []  # number changes: (old address, new address)
        final: list[Ingested] = []
        for outcome in outcomes:
            if isinstance(outcome, Ingested):
                final.append(outcome)
                continue
            item = items[outcome]
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
            address = str(item.row["phone"])
            staged.append((item.queue, item.payload, message_id))
            chain.append((address, message_id))
            seen.append(chains.Seen(address, provider, chat_id_of(item.event), item.event.sent_at))
            system = item.event.system
            if system is not None and system.new_phone is not None:
                moves.append((address, system.new_phone))
            report.staged.append(item.payload.message_id)
            report.tally(metrics.PUBLISHED, provider, item.queue.name)
            report.tally(metrics.INBOUND_KINDS, provider, item.event.kind.value)
            final.append(Ingested("published", message_id))
        await chains.record_inbound(session, seen, now)
        # Each staged message names its contact's previous one (in this batch's order).
        previous = await chains.link(session, chain, now)
        linked = [
            (queue, _chained(payload, before), message_id)
            for (queue, payload, message_id), before in zip(staged, previous, strict=True)
        ]
        for old, new in moves:  # after the notice took its place in the old number's chain
            if not await chains.rekey(session, old, new, now):
                log.warning("ingest.number_change_to_a_known_contact", phone=old, new_phone=new)
        await self.runtime.outbox.add_many(session, linked)
        return final

    async def _read_taps(
        self, session: Session, admitted: list[tuple[InboundEvent, str, Verdict]]
    ) -> list[tuple[InboundEvent, str, Verdict]]:
        """A text that is one of the numbers offered to its contact becomes the tap it stands for."""
        typed = [phone for event, phone, _ in admitted if typed_number(event.text) is not None]
        if not typed:
            return admitted
        known = await chains.known(session, typed)
        return [
            (as_tap(event, known[phone].choices) if phone in known else event, phone, verdict)
            for event, phone, verdict in admitted
        ]

    async def _targets(self, session: Session, events: Sequence[InboundEvent]) -> dict[str, str]:
        """The ``message_id`` of each message a reaction, an edit or a revoke names (by provider id):
        ours (a reply the prospect reacted to) or theirs; one never seen gets the id it will have
        as an inbound message."""
        wanted = {(e.provider.value, e.target) for e in events if e.kind in TARGETED_KINDS and e.target}
        if not wanted:
            return {}
        t = tables.message_logs
        found: dict[str, str] = {}
        for provider in sorted({p for p, _ in wanted}):
            ids = sorted(target for p, target in wanted if p == provider)
            rows: TupleRows = await session.execute(
                select(t.c.provider_message_id, t.c.message_id).where(
                    t.c.provider == provider, t.c.provider_message_id.in_(ids)
                )
            )
            found.update({pmid: message_id for pmid, message_id in rows})
            for target in ids:
                found.setdefault(target, inbound_message_id(Provider(provider), target))
        return found


def _chained(payload: Contract, previous: str | None) -> Contract:
    """The payload naming its contact's previous message (a file's message inside its request)."""
    if isinstance(payload, InboundMedia):
        return payload.model_copy(
            update={"message": payload.message.model_copy(update={"previous_message_id": previous})}
        )
    return payload.model_copy(update={"previous_message_id": previous})


def count_skipped(provider: str, items: Sequence[SkippedItem]) -> None:
    """Count and log what a provider delivered that is not forwarded: nothing goes without a trace."""
    for item in items:
        metrics.SKIPPED.labels(provider, item.reason).inc()
        log.info("ingest.skipped", provider=provider, **item.log_fields())
