"""The audit trail: who did what to which conversation, and when (``audit_log``).

Written by every action in its own transaction; read by the console's contact timeline.
The bearer-token API acts as ``api``; the console acts as the signed-in manager.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import RowMapping

from agent_service.db.tables import audit_log
from parley_shared.db import Session


class Action(enum.StrEnum):
    TAKEOVER = "takeover"
    MESSAGE = "message"
    HANDBACK = "handback"
    CLASSIFICATION = "classification"
    OUTCOME = "outcome"
    NOTES = "notes"
    CALL_CONFIRMED = "call_confirmed"
    CALL_CANCELLED = "call_cancelled"
    CALL_DONE = "call_done"
    CALL_REOPENED = "call_reopened"
    CALL_RESCHEDULED = "call_rescheduled"
    CALL_NOTES = "call_notes"
    FOLLOW_UPS_CANCELLED = "follow_ups_cancelled"
    FOLLOW_UPS_RESUMED = "follow_ups_resumed"


@dataclass(frozen=True)
class Actor:
    """Who acts: a console manager (id and display name) or the bearer-token API."""

    kind: str  # manager | api
    name: str
    manager_id: int | None = None

    @classmethod
    def api(cls) -> Actor:
        return cls("api", "api")

    @classmethod
    def manager(cls, manager_id: int, name: str) -> Actor:
        return cls("manager", name, manager_id)


async def record(
    session: Session,
    actor: Actor,
    action: Action,
    *,
    contact_id: int | None,
    now: datetime,
    detail: Mapping[str, Any] | None = None,
) -> None:
    await session.execute(
        audit_log.insert().values(
            contact_id=contact_id,
            actor_kind=actor.kind,
            manager_id=actor.manager_id,
            actor_name=actor.name[:100],
            action=action.value,
            detail=dict(detail) if detail else None,
            created_at=now,
        )
    )


async def for_contact(session: Session, contact_id: int, limit: int = 200) -> Sequence[RowMapping]:
    """The contact's audit entries, oldest first (the latest ``limit``)."""
    a = audit_log.c
    rows = (
        (await session.execute(select(audit_log).where(a.contact_id == contact_id).order_by(a.id.desc()).limit(limit)))
        .mappings()
        .all()
    )
    return list(reversed(rows))
