"""Outbound rows of ``message_logs``: one per outgoing message id, the sender's memory.

Status life cycle::

    sending -> sent -> delivered -> read
       |  \\-> retry_wait -> sending ...      (transient failure, certainly not sent)
       |-> failed                            (permanent, or retries exhausted)
       \\-> unknown                           (interrupted mid-call: never re-sent)
    queued -> failed                         (refused: Meta's 24-hour window is closed)

A row is created when the message's turn comes (:meth:`OutboundLog.claim`), already ``sending``
where the message may go. ``sending`` is committed before the provider call, so a crash during
the call leaves a row that a redelivery reports as ``unknown`` instead of sending again. Every
terminal outcome stages a :class:`DeliveryStatus` for ``delivery_status`` in the same
transaction (outbox).
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
from gateway.domain import window
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


@dataclass(frozen=True)
class Claim:
    """What one delivery of a message found when it claimed the send."""

    send: bool  # it owns the send: the row is ``sending``, committed
    status: OutStatus  # the row's status before the claim (``queued`` for a first delivery)
    contact: chains.Known | None  # what the gateway knows of the recipient
    refused: str | None = None  # why the message may not go (Meta's window); it was not started


# Built once (building a statement costs more CPU than running it); values travel as parameters,
# and parameters named after columns become SET columns of the UPDATE.
_THIS_OUTBOUND = (tables.message_logs.c.direction == OUTBOUND) & (
    tables.message_logs.c.message_id == bindparam("b_message_id")
)
_LOCK_OUTBOUND_MANY = (
    select(tables.message_logs.c.message_id, tables.message_logs.c.status)
    .where(
        tables.message_logs.c.direction == OUTBOUND,
        tables.message_logs.c.message_id.in_(bindparam("b_message_ids", expanding=True)),
    )
    .order_by(tables.message_logs.c.message_id)
    .with_for_update()
)
_UPDATE_OUTBOUND = update(tables.message_logs).where(_THIS_OUTBOUND)
_STARTABLE = (OutStatus.QUEUED, OutStatus.RETRY_WAIT)
_START_SENDING = (
    update(tables.message_logs)
    .where(
        tables.message_logs.c.direction == OUTBOUND,
        tables.message_logs.c.message_id.in_(bindparam("b_message_ids", expanding=True)),
        tables.message_logs.c.status.in_([s.value for s in _STARTABLE]),
    )
    .values(status=OutStatus.SENDING.value)
    .returning(tables.message_logs.c.message_id)
)


@dataclass(frozen=True)
class _Outcome:
    """A send's terminal outcome, as the writing batch records it."""

    params: dict[str, Any]
    payload: DeliveryStatus
    phone: str
    choices: Choices | None
    status: OutStatus


@dataclass(frozen=True)
class _ClaimOf:
    """A message whose turn came: claim its send."""

    message: OutgoingMessage


@dataclass(frozen=True)
class _StartOf:
    """A retry: compare-and-set the message's row to ``sending``."""

    message_id: str


_Write = _Outcome | _ClaimOf | _StartOf


class OutboundLog:
    def __init__(self, runtime: Runtime, provider: Provider) -> None:
        self.runtime = runtime
        self.provider = provider
        # The sender's writes -- claims, retries' starts, outcomes -- share one group commit: at a
        # message rate where each kind alone would mostly get a transaction of its own, the claim
        # of one message and the outcome of another made meanwhile share one.
        self.writes: GroupCommit[_Write, Claim | bool | None] = transactions(
            self._write_batch, name="outbound_writes", drains=runtime.drains, max_size=runtime.settings.batch_max_size
        )

    async def _write_batch(self, batch: list[_Write]) -> list[Claim | bool | None]:
        """One transaction: the outcomes first (so a copy claimed in the same batch finds its message
        done), then the claims, then the retries' starts; one statement of each kind."""
        outcomes = [w for w in batch if isinstance(w, _Outcome)]
        claims = [w.message for w in batch if isinstance(w, _ClaimOf)]
        starts = [w.message_id for w in batch if isinstance(w, _StartOf)]
        async with self.runtime.sessions() as session, session.begin():
            if outcomes:
                await self._finish(session, outcomes)
            claimed = iter(await self._claim(session, claims) if claims else [])
            started = iter(await self._start(session, starts) if starts else [])
        return [
            None if isinstance(w, _Outcome) else next(claimed) if isinstance(w, _ClaimOf) else next(started)
            for w in batch
        ]

    async def claim(self, message: OutgoingMessage) -> Claim:
        """Claim the send of ``message`` when its turn came: the row (created the first time) moves
        to ``sending`` -- committed before this returns, so before the provider call -- unless the
        message is done, being sent, or may not go (Meta's window; the row then stays ``queued``).
        Also what the gateway knows of the recipient (the chat to answer, the last inbound time).
        The sender's writes made at about the same time share a transaction (group commit); of two
        copies of one message in a batch, the first owns the send."""
        claim = await self.writes.submit(_ClaimOf(message))
        assert isinstance(claim, Claim)
        return claim

    async def _claim(self, session: Session, batch: list[OutgoingMessage]) -> list[Claim]:
        """One statement reads the recipients, one creates the rows of every first delivery (already
        ``sending`` where the message may go); for a message seen before, one locks its row and one
        starts those waiting to be (re)sent."""
        t = tables.message_logs
        now = self.runtime.clock.now()
        unique = {m.message_id: m for m in batch}
        recipients = await chains.known(session, [m.phone for m in batch])
        refused: dict[str, str] = {}
        for message_id, message in unique.items():
            contact = recipients.get(message.phone)
            reason = window.refusal(
                self.provider.value,
                template=message.template is not None,
                last_inbound_at=contact.last_inbound_at if contact else None,
                now=now,
            )
            if reason is not None:
                refused[message_id] = reason
        rows = [
            {
                "direction": OUTBOUND,
                "provider": self.provider.value,
                "provider_message_id": None,
                "message_id": message_id,
                "correlation_id": message.correlation_id,
                "phone": message.phone,
                "phone_masked": mask_phone(message.phone),
                "kind": message.kind.value,
                "status": (OutStatus.QUEUED if message_id in refused else OutStatus.SENDING).value,
                "created_at": now,
                "updated_at": now,
            }
            for message_id, message in sorted(unique.items())  # one lock order for concurrent batches
        ]
        result = await insert_ignore(session, t, rows, ["direction", "message_id"], returning=["message_id"])
        created: set[str] = set(result.scalars())
        owned = created - refused.keys()
        seen = sorted(unique.keys() - created)
        before = dict.fromkeys(created, OutStatus.QUEUED)
        if seen:
            found = await session.execute(_LOCK_OUTBOUND_MANY, {"b_message_ids": seen})
            before.update((row.message_id, OutStatus(row.status)) for row in found)
            restart = [i for i in seen if before.get(i) in _STARTABLE and i not in refused]
            if restart:
                await session.execute(_START_SENDING, {"b_message_ids": restart, "updated_at": now})
                owned.update(restart)
        out: list[Claim] = []
        for message in batch:
            message_id = message.message_id
            contact = recipients.get(message.phone)
            if message_id in owned:
                out.append(Claim(True, before[message_id], contact))
                owned.discard(message_id)  # a second copy in the batch finds it being sent
                before[message_id] = OutStatus.SENDING
            elif message_id in refused and before.get(message_id) in _STARTABLE:
                out.append(Claim(False, before[message_id], contact, refused[message_id]))
            else:
                out.append(Claim(False, before.get(message_id, OutStatus.SENDING), contact))
        return out

    async def start_sending(self, message_id: str) -> bool:
        """Compare-and-set ``queued``/``retry_wait`` -> ``sending`` (a retry after a transient
        failure), committed before it returns: True if this caller owns the send. It shares the
        transaction of the sender's writes made at about the same time (group commit); of two
        copies of one message in a batch, the first owns it."""
        started = await self.writes.submit(_StartOf(message_id))
        assert isinstance(started, bool)
        return started

    async def _start(self, session: Session, message_ids: list[str]) -> list[bool]:
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
        await self.writes.submit(_Outcome(params, payload, message.phone, message.choices, status))
        metrics.DELIVERY_STATUSES.labels(self.provider.value, state.value).inc()
        return payload.message_id

    async def _finish(self, session: Session, batch: list[_Outcome]) -> None:
        """The outcomes, their delivery statuses and, for each contact sent to, the options of the
        latest message sent (a number typed back picks one): one statement of each kind. Rows in
        message-id order: a concurrent batch (or a provider's status webhook) then locks the same
        rows in the same order instead of deadlocking."""
        ordered = sorted(batch, key=lambda item: str(item.params["b_message_id"]))
        latest = {item.phone: item.choices for item in batch if item.status is OutStatus.SENT}  # in sending order
        await session.execute(_UPDATE_OUTBOUND, [item.params for item in ordered])
        await self.runtime.outbox.add_many(
            session, [(STATUS, item.payload, item.payload.outgoing_message_id) for item in ordered]
        )
        await chains.remember_choices(session, latest, self.runtime.clock.now())

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
