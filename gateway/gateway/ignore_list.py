"""The ignore list: numbers whose messages are logged as ``ignored`` and never published.

Two sources: ``IGNORED_NUMBERS`` (configuration, re-applied at every start) and the API
(``/ignore-list``). A number in the configuration is ignored even before the start-up sync has
written it to the table, because :meth:`IgnoreList.phones` always adds the configured set.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select

from gateway.db import tables
from parley_shared.clock import Clock
from parley_shared.db import Session, SessionFactory, insert_ignore

SOURCE_CONFIG = "config"
SOURCE_API = "api"


@dataclass(frozen=True)
class IgnoredNumber:
    phone: str
    note: str | None
    source: str
    created_at: datetime


class IgnoreList:
    def __init__(self, sessions: SessionFactory, clock: Clock, configured: set[str]) -> None:
        self.sessions = sessions
        self.clock = clock
        self.configured = frozenset(configured)

    async def phones(self, session: Session) -> frozenset[str]:
        stored: frozenset[str] = frozenset(await session.scalars(select(tables.ignored_numbers.c.phone)))
        return self.configured | stored

    async def sync_configured(self) -> None:
        """Write the configured numbers (source ``config``); drop config rows no longer configured."""
        t = tables.ignored_numbers
        async with self.sessions() as session, session.begin():
            await session.execute(
                delete(t).where(t.c.source == SOURCE_CONFIG, t.c.phone.not_in(sorted(self.configured)))
            )
            if self.configured:
                now = self.clock.now()
                rows = [{"phone": p, "note": None, "source": SOURCE_CONFIG, "created_at": now} for p in self.configured]
                await insert_ignore(session, t, rows, ["phone"])

    async def list(self) -> list[IgnoredNumber]:
        t = tables.ignored_numbers
        async with self.sessions() as session:
            rows = (await session.execute(select(t).order_by(t.c.created_at, t.c.phone))).all()
        return [IgnoredNumber(r.phone, r.note, r.source, r.created_at) for r in rows]

    async def add(self, phone: str, note: str | None) -> bool:
        """True when the number was added, False when it was already on the list."""
        t = tables.ignored_numbers
        async with self.sessions() as session, session.begin():
            values = {"phone": phone, "note": note, "source": SOURCE_API, "created_at": self.clock.now()}
            result = await insert_ignore(session, t, values, ["phone"])
            return bool(result.rowcount)

    async def remove(self, phone: str) -> bool:
        t = tables.ignored_numbers
        async with self.sessions() as session, session.begin():
            result = await session.execute(delete(t).where(t.c.phone == phone))
            return bool(result.rowcount)
