"""Retention: rows older than their service keeps them are deleted, periodically.

Each service lists its :class:`Rule` values (``gateway/privacy.py``, ``agent_service/privacy.py``):
published outbox rows after ``OUTBOX_RETENTION_H`` (their bodies hold phones, texts and, for
voice notes, the audio), consumed inbox ids after ``INBOX_RETENTION_DAYS`` (the window in which
a redelivered or requeued message is still recognised), and each service's own history.

:meth:`Retention.prune_once` runs as a periodic job of each service (``runtime.add_periodic``,
every ``RETENTION_INTERVAL_S``); each round deletes in batches of ``batch_size`` rows, one short
transaction per batch, so it never holds a lock for long.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Column, ColumnElement, Table, delete, select

from parley_shared.clock import Clock
from parley_shared.db import SessionFactory
from parley_shared.settings import CommonSettings

log = structlog.get_logger("parley.retention")


@dataclass(frozen=True)
class Rule:
    """Rows of ``table`` whose ``column`` is older than ``keep`` (and that match ``where``) go."""

    name: str
    table: Table
    key: Column[Any]  # what a batch is deleted by (the primary key)
    column: Column[datetime]
    keep: timedelta | None  # None: kept for ever
    where: ColumnElement[bool] | None = None


class Retention:
    def __init__(
        self,
        sessions: SessionFactory,
        clock: Clock,
        rules: Sequence[Rule],
        *,
        batch_size: int = 1000,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.rules = [rule for rule in rules if rule.keep is not None]
        self.batch_size = batch_size

    async def prune_once(self, now: datetime | None = None) -> dict[str, int]:
        """Delete what is past its retention at ``now`` (default: the clock); rows per rule."""
        now = now or self.clock.now()
        pruned: dict[str, int] = {}
        for rule in self.rules:
            assert rule.keep is not None
            condition = rule.column < now - rule.keep
            if rule.where is not None:
                condition = condition & rule.where
            chosen = select(rule.key).where(condition).limit(self.batch_size)
            total = 0
            while True:
                async with self.sessions() as session, session.begin():
                    keys: list[Any] = list((await session.execute(chosen)).scalars())
                    if keys:
                        await session.execute(delete(rule.table).where(rule.key.in_(keys)))
                total += len(keys)
                if len(keys) < self.batch_size:
                    break
            pruned[rule.name] = total
        if any(pruned.values()):
            log.info("retention.pruned", **pruned)
        return pruned


def kept(*, days: float = 0.0, hours: float = 0.0) -> timedelta | None:
    """A retention setting as a :class:`Rule`'s ``keep``: ``0`` means kept for ever (None)."""
    keep = timedelta(days=days, hours=hours)
    return keep if keep > timedelta(0) else None


def shared_rules(outbox: Table, inbox: Table, settings: CommonSettings) -> list[Rule]:
    """The rules every service has: published outbox rows (``OUTBOX_RETENTION_H``), consumed
    inbox ids (``INBOX_RETENTION_DAYS``)."""
    published = outbox.c.published_at
    return [
        Rule("outbox", outbox, outbox.c.id, published, kept(hours=settings.outbox_retention_h), published.is_not(None)),
        Rule("inbox", inbox, inbox.c.message_id, inbox.c.processed_at, kept(days=settings.inbox_retention_days)),
    ]
