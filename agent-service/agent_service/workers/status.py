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
        """One statement per round: a message's first status in the batch goes in the first round,
        its second in the second, and so on, so its statuses apply in delivery order (a batch
        rarely holds two of one message: usually one round). Each statement locks its rows in
        message-id order; the first round's already hold every row a later round touches."""
        rounds: list[list[int]] = []
        seen: dict[str, int] = {}
        for index, status in enumerate(batch):
            k = seen.get(status.outgoing_message_id, 0)
            seen[status.outgoing_message_id] = k + 1
            if k == len(rounds):
                rounds.append([])
            rounds[k].append(index)
        changed: dict[int, _Applied] = {}
        async with self.sessions() as session, session.begin():
            for indexes in rounds:
                moves = [_move(batch[i]) for i in indexes]
                moved = await repo.apply_delivery_statuses(session, moves)
                for index in indexes:
                    status = batch[index]
                    contact_id = moved.get(status.outgoing_message_id)
                    flagged = False
                    if contact_id is not None and status.error_code in WINDOW_CLOSED:
                        reason = "not delivered: Meta's 24-hour window is closed (" + (status.error_reason or "")
                        await repo.flag_contact(session, contact_id, (reason[:497] + ")")[:500])
                        flagged = True
                    changed[index] = _Applied(contact_id, flagged)
        return [changed[i] for i in range(len(batch))]


def _move(status: DeliveryStatus) -> repo.StatusMove:
    error = None
    if status.error_code or status.error_reason:
        error = f"{status.error_code or ''} {status.error_reason or ''}".strip()
    return repo.StatusMove(status.outgoing_message_id, status.status.value, error, status.occurred_at)
