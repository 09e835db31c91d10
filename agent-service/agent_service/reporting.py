"""Reporting requests (``GET /analytics``, ``GET /contacts/export.csv``) kept from starving the bot.

A 366-day analytics query over 200,000 messages holds a connection for a while: twenty at once
took every connection of the shared pool, and a prospect's reply waited behind them (0.6 s became
8.3 s). So reporting

* runs on its **own small pool** (``REPORTING_MAX_CONCURRENT`` connections, no overflow): the
  pool turns, consumers and the outbox relay use is never touched;
* runs at most ``REPORTING_MAX_CONCURRENT`` requests at once per replica: one more is answered
  ``429`` with ``Retry-After`` at once, not queued;
* on PostgreSQL, has each statement cancelled after ``REPORTING_STATEMENT_TIMEOUT_S`` (a ``503``
  that says to narrow the period);
* caches each analytics answer for ``ANALYTICS_CACHE_S`` per period (a dashboard that many
  managers keep open costs one query), by the service's clock.

``bench/reporting.py`` measures a prospect's reply time during a reporting storm.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Hashable
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.exc import DBAPIError

from agent_service.settings import AgentSettings
from parley_shared.db import Session, SessionFactory, create_engine, session_factory
from parley_shared.http import HTTPError

log = structlog.get_logger(__name__)
CACHE_ENTRIES = 64
QUERY_CANCELED = "57014"  # PostgreSQL: statement_timeout (or a cancel request) ended the statement


class Reporting:
    def __init__(self, settings: AgentSettings) -> None:
        self.max_concurrent = settings.reporting_max_concurrent
        self.timeout_s = settings.reporting_statement_timeout_s
        self.cache_ttl = timedelta(seconds=settings.analytics_cache_s)
        self.engine = create_engine(
            settings.database_url,
            pool_size=self.max_concurrent,
            max_overflow=0,
            statement_timeout_s=self.timeout_s,
        )
        self.sessions: SessionFactory = session_factory(self.engine)
        self.running = 0
        self.refused = 0
        self._cache: OrderedDict[Hashable, tuple[datetime, Any]] = OrderedDict()

    async def close(self) -> None:
        await self.engine.dispose()

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """One of the ``REPORTING_MAX_CONCURRENT`` places, or 429 with ``Retry-After`` when all are taken."""
        if self.running >= self.max_concurrent:
            self.refused += 1
            log.info("reporting.busy", running=self.running, refused=self.refused)
            raise HTTPError(
                429,
                f"{self.running} reports are running (REPORTING_MAX_CONCURRENT); try again shortly",
                headers={"Retry-After": str(max(1, min(30, round(self.timeout_s / 10))))},
            )
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        """A place (:meth:`slot`) and a connection of the reporting pool; a statement cancelled by
        ``REPORTING_STATEMENT_TIMEOUT_S`` becomes a 503."""
        async with self.slot():
            try:
                async with self.sessions() as session:
                    yield session
            except DBAPIError as exc:
                if getattr(exc.orig, "sqlstate", None) != QUERY_CANCELED:
                    raise
                log.warning("reporting.statement_timeout", timeout_s=self.timeout_s)
                raise HTTPError(
                    503,
                    f"the report took longer than {self.timeout_s:g} s (REPORTING_STATEMENT_TIMEOUT_S); "
                    "narrow the period",
                    headers={"Retry-After": "5"},
                ) from None

    def cached(self, key: Hashable, now: datetime) -> Any | None:
        entry = self._cache.get(key)
        if entry is None or now - entry[0] >= self.cache_ttl:
            return None
        return entry[1]

    def remember(self, key: Hashable, value: Any, now: datetime) -> None:
        if self.cache_ttl <= timedelta(0):
            return
        self._cache[key] = (now, value)
        self._cache.move_to_end(key)
        while len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)
