"""Consuming ``delivery_status``: what became of a reply or operator message (idempotent).

A status only moves a message forward (queued < sent < delivered < read; ``failed`` unless it
was already delivered), so redeliveries and out-of-order statuses change nothing.

A message refused because Meta's 24-hour customer-service window is closed (the gateway's
``outside_24h_window``, or Meta's own 131047) flags the contact for a manager with the reason:
only an approved template can reach the prospect until they write again.

After the commit each status that moved a message is a live event for the managers' screens
(``status``; ``handoff`` when it flagged the contact).
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from agent_service.db import repository as repo
from agent_service.live import LiveFeed
from parley_shared.batching import BATCH_MAX_SIZE, GroupCommit, transactions
from parley_shared.contracts import DeliveryStatus
from parley_shared.db import SessionFactory
from parley_shared.shutdown import Drains

log = structlog.get_logger(__name__)
WINDOW_CLOSED = frozenset({"outside_24h_window", "131047"})


@dataclass(frozen=True)
class _Applied:
    contact_id: int | None  # None: nothing moved
    flagged: bool = False


class StatusHandler:
    def __init__(
        self,
        sessions: SessionFactory,
        drains: Drains,
        live: LiveFeed | None = None,
        *,
        batch_size: int = BATCH_MAX_SIZE,
    ) -> None:
        self.sessions = sessions
        self.live = live
        # Statuses delivered at about the same time share a transaction (each message's in delivery order).
        self.group_commit: GroupCommit[DeliveryStatus, _Applied] = transactions(
            self._apply, name="delivery_statuses", drains=drains, max_size=batch_size
        )

    async def __call__(self, status: DeliveryStatus) -> None:
        applied = await self.group_commit.submit(status)
        log.debug("delivery.status", status=status.status.value, changed=applied.contact_id is not None)
        if self.live is not None and applied.contact_id is not None:
            if applied.flagged:
                self.live.changed(applied.contact_id, "handoff", needs_human=True)
            else:
                self.live.changed(applied.contact_id, "status")

    async def _apply(self, batch: list[DeliveryStatus]) -> list[_Applied]:
        changed: dict[int, _Applied] = {}
        # In message order (stable: one message's statuses keep their delivery order), so that two
        # batches running at once lock the same rows in the same order and cannot deadlock.
        ordered = sorted(range(len(batch)), key=lambda i: batch[i].outgoing_message_id)
        async with self.sessions() as session, session.begin():
            for index in ordered:
                status = batch[index]
                error = None
                if status.error_code or status.error_reason:
                    error = f"{status.error_code or ''} {status.error_reason or ''}".strip()
                contact_id = await repo.apply_delivery_status(
                    session,
                    message_id=status.outgoing_message_id,
                    status=status.status.value,
                    error=error,
                    occurred_at=status.occurred_at,
                )
                flagged = False
                if contact_id is not None and status.error_code in WINDOW_CLOSED:
                    reason = "not delivered: Meta's 24-hour window is closed (" + (status.error_reason or "")
                    await repo.flag_contact(session, contact_id, (reason[:497] + ")")[:500])
                    flagged = True
                changed[index] = _Applied(contact_id, flagged)
        return [changed[i] for i in range(len(batch))]
