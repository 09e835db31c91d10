"""Consuming ``delivery_status``: what became of a reply or operator message (idempotent).

A status only moves a message forward (queued < sent < delivered < read; ``failed`` unless it
was already delivered), so redeliveries and out-of-order statuses change nothing.
"""

from __future__ import annotations

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_service.db import repository as repo
from parley_shared.contracts import DeliveryStatus

log = structlog.get_logger(__name__)


class StatusHandler:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def __call__(self, status: DeliveryStatus) -> None:
        error = None
        if status.error_code or status.error_reason:
            error = f"{status.error_code or ''} {status.error_reason or ''}".strip()
        async with self.sessions() as session, session.begin():
            changed = await repo.apply_delivery_status(
                session,
                message_id=status.outgoing_message_id,
                status=status.status.value,
                error=error,
                occurred_at=status.occurred_at,
            )
        log.debug("delivery.status", status=status.status.value, changed=changed)
