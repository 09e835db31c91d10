"""Outbound rows of ``message_logs``: one per outgoing message id, the sender's memory.

Status life cycle::

    queued -> sending -> sent -> delivered -> read
                 |  \\-> retry_wait -> sending ...      (transient failure, certainly not sent)
                 |-> failed                            (permanent, or retries exhausted)
                 \\-> unknown                           (interrupted mid-call: never re-sent)

``sending`` is committed before the provider call, so a crash during the call leaves a row that
a redelivery reports as ``unknown`` instead of sending again. Every terminal outcome stages a
:class:`DeliveryStatus` for ``delivery_status`` in the same transaction (outbox).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Row

from gateway import chains, metrics
from gateway.db import tables
from gateway.domain.admission import StatusEvent
from parley_shared.batching import GroupCommit, transactions
from parley_shared.contracts import Choices, DeliveryState, DeliveryStatus, OutgoingMessage, Provider, stable_id
from parley_shared.db import Session, insert_ignore
from parley_shared.phone import mask_phone
from parley_shared.service import Runtime
from parley_shared.topology import STATUS

log = structlog.get_logger(__name__)

OUTBOUND = "outbound"


class OutStatus(enum.StrEnum):
    QUEUED = "queued"
    RETRY_WAIT = "retry_wait"
    SENDING = "sending"
    UNKNOWN = "unknown"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


DONE = frozenset({OutStatus.SENT, OutStatus.DELIVERED, OutStatus.READ, OutStatus.FAILED, OutStatus.UNKNOWN})
# How far along a message is; a provider status only ever moves it forward.
_RANK = {
    OutStatus.QUEUED: 0,
    OutStatus.RETRY_WAIT: 0,
    OutStatus.SENDING: 1,
    OutStatus.UNKNOWN: 1,
    OutStatus.SENT: 2,
    OutStatus.DELIVERED: 3,
    OutStatus.READ: 4,
}


def status_applies(current: OutStatus, new: DeliveryState) -> bool:
    """Does a provider-reported state move the row on? (Webhooks arrive late and out of order.)"""
    if current is OutStatus.FAILED:
        return False
    if new is DeliveryState.FAILED:
        return current in (OutStatus.SENDING, OutStatus.UNKNOWN, OutStatus.SENT)
    return _RANK[OutStatus(new.value)] > _RANK[current]


def status_message_id(outgoing_message_id: str, state: DeliveryState) -> str:
    """One status message per (message, state): the sender and a webhook never report it twice."""
    return stable_id("status", outgoing_message_id, state.value)


@dataclass(frozen=True)
class OutboundRow:
    message_id: str
    correlation_id: str | None
    phone: str
    provider: str
    status: OutStatus
    provider_message_id: str | None


# Built once (building a statement costs more CPU than running it); values travel as parameters,
# and parameters named after columns become SET columns of the UPDATE.
_THIS_OUTBOUND = (tables.message_logs.c.direction == OUTBOUND) & (
    tables.message_logs.c.message_id == bindparam("b_message_id")
)
_SELECT_OUTBOUND_MANY = select(tables.message_logs).where(
    tables.message_logs.c.direction == OUTBOUND,
    tables.message_logs.c.message_id.in_(bindparam("b_message_ids", expanding=True)),
)
_UPDATE_OUTBOUND = update(tables.message_logs).where(_THIS_OUTBOUND)
_START_SENDING = (
    update(tables.message_logs)
    .where(
        tables.message_logs.c.direction == OUTBOUND,
        tables.message_logs.c.message_id.in_(bindparam("b_message_ids", expanding=True)),
        tables.message_logs.c.status.in_([OutStatus.QUEUED.value, OutStatus.RETRY_WAIT.value]),
    )
    .values(status=OutStatus.SENDING.value)
    .returning(tables.message_logs.c.message_id)
)


@dataclass(frozen=True)
class _Outcome:
    """A send's terminal outcome, as the finishing batch writes it."""

    params: dict[str, Any]
    payload: DeliveryStatus
    phone: str
    choices: Choices | None
    status: OutStatus


class OutboundLog:
    def __init__(self, runtime: Runtime, provider: Provider) -> None:
        self.runtime = runtime
        self.provider = provider
        batch = runtime.settings.batch_max_size
        self.group_commit: GroupCommit[_Outcome, None] = transactions(
            self._finish_batch, name="outbound_outcomes", drains=runtime.drains, max_size=batch
        )
        self.starts: GroupCommit[str, bool] = transactions(
            self._start_batch, name="outbound_starts", drains=runtime.drains, max_size=batch
        )
        self.claims: GroupCommit[OutgoingMessage, tuple[OutboundRow, chains.Known | None]] = transactions(
            self._claim_batch, name="outbound_claims", drains=runtime.drains, max_size=batch
        )

    async def claim(self, message: OutgoingMessage) -> tuple[OutboundRow, chains.Known | None]:
        """The row for ``message`` (created as ``queued`` the first time) and what the gateway knows
        of its recipient (the chat to answer, the last inbound time); the messages delivered at
        about the same time share a transaction (group commit)."""
        return await self.claims.submit(message)

    async def _claim_batch(self, batch: list[OutgoingMessage]) -> list[tuple[OutboundRow, chains.Known | None]]:
        """One statement creates the rows of every first delivery, one reads those seen before, one
        what is known of the recipients."""
        t = tables.message_logs
        now = self.runtime.clock.now()
        rows = [
            {
                "direction": OUTBOUND,
                "provider": self.provider.value,
                "provider_message_id": None,
                "message_id": message.message_id,
                "correlation_id": message.correlation_id,
                "phone": message.phone,
                "phone_masked": mask_phone(message.phone),
                "kind": message.kind.value,
                "status": OutStatus.QUEUED.value,
                "created_at": now,
                "updated_at": now,
            }
            for message in {m.message_id: m for m in batch}.values()
        ]
        rows.sort(key=lambda row: str(row["message_id"]))  # one lock order for concurrent batches
        async with self.runtime.sessions() as session, session.begin():
            result = await insert_ignore(session, t, rows, ["direction", "message_id"], returning=["message_id"])
            created: set[str] = set(result.scalars())
            seen = sorted({m.message_id for m in batch} - created)
            existing = {}
            if seen:
                found = await session.execute(_SELECT_OUTBOUND_MANY, {"b_message_ids": seen})
                existing = {row.message_id: _row(row) for row in found}
            recipients = await chains.known(session, [m.phone for m in batch])
        out: list[tuple[OutboundRow, chains.Known | None]] = []
        for message in batch:
            row = existing.get(message.message_id) or OutboundRow(  # a first delivery: the row is what we wrote
                message.message_id, message.correlation_id, message.phone, self.provider.value, OutStatus.QUEUED, None
            )
            out.append((row, recipients.get(message.phone)))
        return out

    async def start_sending(self, message_id: str) -> bool:
        """Compare-and-set ``queued``/``retry_wait`` -> ``sending``, committed before it returns: True
        if this caller owns the send. The sends starting at about the same time share the
        transaction (group commit); of two copies of one message in a batch, the first owns it."""
        return await self.starts.submit(message_id)

    async def _start_batch(self, message_ids: list[str]) -> list[bool]:
        async with self.runtime.sessions() as session, session.begin():
            params = {"b_message_ids": sorted(set(message_ids)), "updated_at": self.runtime.clock.now()}
            started = set((await session.execute(_START_SENDING, params)).scalars())
        owned: list[bool] = []
        for message_id in message_ids:
            owned.append(message_id in started)
            started.discard(message_id)
        return owned

    async def set_status(self, message_id: str, status: OutStatus, *, error: str | None = None) -> None:
        """Record progress in its own committed transaction (``sending`` must be durable before the call)."""
        async with self.runtime.sessions() as session, session.begin():
            now = self.runtime.clock.now()
            params = {"b_message_id": message_id, "status": status.value, "error": error, "updated_at": now}
            await session.execute(_UPDATE_OUTBOUND, params)

    async def finish(
        self,
        message: OutgoingMessage,
        status: OutStatus,
        *,
        provider_message_id: str | None = None,
        error_code: str | None = None,
        error_reason: str | None = None,
    ) -> str:
        """Terminal outcome + its DeliveryStatus, in one transaction (shared with the outcomes recorded
        at about the same time: group commit); returns the status message id."""
        state = DeliveryState.SENT if status is OutStatus.SENT else DeliveryState.FAILED
        now = self.runtime.clock.now()
        payload = DeliveryStatus(
            message_id=status_message_id(message.message_id, state),
            correlation_id=message.correlation_id,
            outgoing_message_id=message.message_id,
            phone=message.phone,
            status=state,
            provider=self.provider,
            provider_message_id=provider_message_id,
            error_code=error_code,
            error_reason=error_reason,
            occurred_at=now,
        )
        error = f"{error_code}: {error_reason}" if error_code or error_reason else None
        params = {
            "b_message_id": message.message_id,
            "status": status.value,
            "provider_message_id": provider_message_id,
            "error": error,
            "updated_at": now,
        }
        await self.group_commit.submit(_Outcome(params, payload, message.phone, message.choices, status))
        metrics.DELIVERY_STATUSES.labels(self.provider.value, state.value).inc()
        return payload.message_id

    async def _finish_batch(self, batch: list[_Outcome]) -> list[None]:
        """The outcomes, their delivery statuses and, for each contact sent to, the options of the
        latest message sent (a number typed back picks one): one transaction, one statement of each
        kind. Rows in message-id order: a concurrent batch (or a provider's status webhook) then
        locks the same rows in the same order instead of deadlocking."""
        ordered = sorted(batch, key=lambda item: str(item.params["b_message_id"]))
        latest = {item.phone: item.choices for item in batch if item.status is OutStatus.SENT}  # in sending order
        async with self.runtime.sessions() as session, session.begin():
            await session.execute(_UPDATE_OUTBOUND, [item.params for item in ordered])
            await self.runtime.outbox.add_many(
                session, [(STATUS, item.payload, item.payload.outgoing_message_id) for item in ordered]
            )
            await chains.remember_choices(session, latest, self.runtime.clock.now())
        return [None] * len(batch)

    async def apply_provider_statuses(self, session: Session, events: Sequence[StatusEvent]) -> list[str]:
        """Delivery statuses a provider reported (Meta webhook), in the caller's transaction."""
        t = tables.message_logs
        staged = []
        for event in events:
            found = (
                await session.execute(
                    select(t).where(
                        t.c.direction == OUTBOUND,
                        t.c.provider == event.provider.value,
                        t.c.provider_message_id == event.provider_message_id,
                    )
                )
            ).first()
            if found is None:
                log.info("status.unknown_message", provider=event.provider.value, state=event.state.value)
                continue
            row = _row(found)
            if not status_applies(row.status, event.state):
                continue
            error = f"{event.error_code}: {event.error_reason}" if event.error_code or event.error_reason else None
            await session.execute(
                update(t)
                .where(t.c.id == found.id)
                .values(status=event.state.value, error=error, updated_at=self.runtime.clock.now())
            )
            payload = DeliveryStatus(
                message_id=status_message_id(row.message_id, event.state),
                correlation_id=row.correlation_id or row.message_id,
                outgoing_message_id=row.message_id,
                phone=row.phone,
                status=event.state,
                provider=event.provider,
                provider_message_id=event.provider_message_id,
                error_code=event.error_code,
                error_reason=event.error_reason,
                occurred_at=event.occurred_at,
            )
            if await self.runtime.outbox.add(session, STATUS, payload, cause_id=row.message_id):
                staged.append(payload.message_id)
                metrics.DELIVERY_STATUSES.labels(event.provider.value, event.state.value).inc()
        return staged


def _row(row: Row[Any]) -> OutboundRow:
    return OutboundRow(
        message_id=row.message_id,
        correlation_id=row.correlation_id,
        phone=row.phone,
        provider=row.provider,
        status=OutStatus(row.status),
        provider_message_id=row.provider_message_id,
    )
