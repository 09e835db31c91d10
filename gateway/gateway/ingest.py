"""The one ingestion path every provider uses (Wappi poller, Meta webhook, sandbox).

For a batch of :class:`InboundEvent` values, in ONE transaction:

1. decide each event (:func:`gateway.domain.events.admit`): own messages, group chats and
   non-phones are skipped; the phone becomes E.164;
2. log it in ``message_logs`` (direction ``inbound``, ``message_id = stable_id("in", provider,
   provider message id)``); the unique key ``(direction, message_id)`` turns a message seen
   twice (webhook retry, overlapping polls, a restart) into a no-op;
3. numbers on the ignore list are logged with status ``ignored`` and go no further;
4. the rest are staged in the outbox: voice notes for ``voice_transcription``, everything else
   for ``incoming_messages``;
5. an optional ``within`` callback joins the same transaction (the poller advances its cursor there).

After the commit the staged messages are published at once; if that fails (broker away, crash)
the outbox relay publishes them later. Nothing acknowledged to a provider can be lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from gateway import metrics
from gateway.db import tables
from gateway.domain.events import InboundEvent, StatusEvent, Verdict, admit, inbound_message_id, to_contract
from gateway.ignore_list import IgnoreList
from gateway.outbound import OutboundLog
from parley_shared.db import insert_ignore
from parley_shared.phone import mask_phone
from parley_shared.service import Runtime
from parley_shared.topology import VOICE

log = structlog.get_logger(__name__)

INBOUND = "inbound"
STATUS_QUEUED = "queued"  # staged for incoming_messages
STATUS_TRANSCRIBING = "transcribing"  # staged for voice_transcription
STATUS_IGNORED = "ignored"


@dataclass(frozen=True)
class Outcome:
    """What became of one event: ``published``, ``duplicate``, ``ignored`` or ``skipped``."""

    status: str
    message_id: str | None = None
    reason: str | None = None


@dataclass
class IngestReport:
    outcomes: list[Outcome] = field(default_factory=list)
    staged: list[str] = field(default_factory=list)  # outbox message ids
    status_ids: list[str] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)


class Ingestor:
    def __init__(self, runtime: Runtime, ignore_list: IgnoreList, outbound: OutboundLog) -> None:
        self.runtime = runtime
        self.ignore_list = ignore_list
        self.outbound = outbound
        self._background: set[asyncio.Task[None]] = set()

    async def ingest(
        self,
        events: Sequence[InboundEvent],
        *,
        statuses: Sequence[StatusEvent] = (),
        within: Callable[[AsyncSession], Awaitable[None]] | None = None,
    ) -> IngestReport:
        """Log and stage ``events`` (and apply delivery ``statuses``) in one transaction; commit."""
        report = IngestReport()
        async with self.runtime.sessions() as session, session.begin():
            ignored = await self.ignore_list.phones(session) if events else frozenset()
            for event in events:
                report.outcomes.append(await self._one(session, event, ignored, report))
            if statuses:
                report.status_ids = await self.outbound.apply_provider_statuses(session, statuses)
            if within is not None:
                await within(session)
        return report

    async def _one(
        self, session: AsyncSession, event: InboundEvent, ignored: frozenset[str], report: IngestReport
    ) -> Outcome:
        provider = event.provider.value
        metrics.RECEIVED.labels(provider).inc()
        admission = admit(event, ignored)
        if admission.verdict is Verdict.SKIPPED:
            metrics.SKIPPED.labels(provider, admission.reason or "other").inc()
            return Outcome("skipped", reason=admission.reason)
        assert admission.phone is not None
        message_id = inbound_message_id(event.provider, event.provider_message_id)
        now = self.runtime.clock.now()
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
        if not (await insert_ignore(session, tables.message_logs, row, ["direction", "message_id"])).rowcount:
            metrics.DUPLICATES.labels(provider).inc()
            return Outcome("duplicate", message_id)
        if status == STATUS_IGNORED:
            metrics.IGNORED.labels(provider).inc()
            log.info("ingest.ignored", provider=provider, phone=admission.phone, message_id=message_id)
            return Outcome("ignored", message_id, admission.reason)
        await self.runtime.outbox.add(session, queue, payload, cause_id=message_id)
        report.staged.append(payload.message_id)
        metrics.PUBLISHED.labels(provider, queue.name).inc()
        return Outcome("published", message_id)

    # ---------------------------------------------------------------- after the commit
    async def publish(self, report: IngestReport) -> None:
        """Publish what the committed batch staged; on failure the outbox relay takes over."""
        ids = [*report.staged, *report.status_ids]
        if not ids:
            return
        try:
            await self.runtime.outbox.publish_ids(ids)
        except Exception as exc:
            log.warning("ingest.publish_deferred", error=type(exc).__name__, count=len(ids))
            self.runtime.outbox.wake()

    def publish_soon(self, report: IngestReport) -> None:
        """Publish in the background (the HTTP answer does not wait for the broker)."""
        if not report.staged and not report.status_ids:
            return
        task = asyncio.create_task(self.publish(report))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def drain(self) -> None:
        """Wait for background publishing (at shutdown)."""
        if self._background:
            with contextlib.suppress(Exception):
                await asyncio.wait(list(self._background), timeout=10)
