"""Wappi poller: every ``POLL_INTERVAL_S`` read the account newest-first down to the cursor.

One poll = page through ``messages/all/get`` until a message older than the persisted cursor
shows up (or a short page ends the list), then ingest the new messages oldest-first and advance
the cursor **in the same transaction**. A crash or restart anywhere in a poll therefore leaves
either nothing or everything committed: the next poll neither replays nor skips. Messages seen
twice (pages shifting while read, overlapping polls) are deduplicated by id, and again by the
unique key of ``message_logs``.

A message's time comes from the sender's phone, so a late one can be older than messages
already read: each poll reads ``WAPPI_CURSOR_OVERLAP_S`` further back and skips the ids it
remembers from that window. On the very first poll (no cursor yet) messages older than
``WAPPI_INITIAL_LOOKBACK_S`` are history, not new conversation, and are not forwarded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from gateway import metrics
from gateway.db import tables
from gateway.domain.admission import InboundEvent, PayloadError, SkippedItem
from gateway.domain.wappi import Cursor, PollBatch, to_event
from gateway.ingest import Ingestor, count_skipped
from gateway.providers.wappi import WappiProvider
from gateway.settings import GatewaySettings
from parley_shared.db import Session, dialect_name
from parley_shared.retry import Backoff
from parley_shared.service import Runtime

log = structlog.get_logger(__name__)
PROVIDER = "wappi"
MAX_BACKOFF_S = 60.0  # longest pause between polls while they keep failing


@dataclass(frozen=True)
class PollResult:
    pages: int
    new: int
    published: int
    duplicates: int
    ignored: int
    skipped: int


class WappiPoller:
    def __init__(
        self,
        *,
        runtime: Runtime,
        provider: WappiProvider,
        ingestor: Ingestor,
        settings: GatewaySettings,
    ) -> None:
        self.runtime = runtime
        self.provider = provider
        self.ingestor = ingestor
        self.settings = settings
        self.last_poll_at: datetime | None = None
        self.last_error: str | None = None
        self.polls = 0

    def backoff(self) -> Backoff:
        """Between failed polls: twice the interval, doubling up to a minute (the provider or the
        database is away)."""
        interval = self.settings.poll_interval_s
        return Backoff(first_s=interval * 2, max_s=max(interval, MAX_BACKOFF_S))

    async def poll(self) -> None:
        """One poll as the periodic job: a failure is recorded for /health and the metrics, then
        raised for the job runner to log and back off."""
        try:
            await self.poll_once()
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {str(exc)[:200]}"
            metrics.POLLS.labels(PROVIDER, "error").inc()
            raise

    async def poll_once(self) -> PollResult:
        cursor = await self._load_cursor()
        batch = PollBatch(cursor)
        limit = self.settings.wappi_page_size
        offset = pages = 0
        while True:
            page, count = await self.provider.fetch_page(limit=limit, offset=offset)
            pages += 1
            if count > len(page):  # items without an id or a time: nothing to take, but never unseen
                metrics.SKIPPED.labels(PROVIDER, "malformed").inc(count - len(page))
                log.warning("poller.malformed_items", count=count - len(page), offset=offset)
            batch.add_page(page)
            if batch.reached_cursor or count < limit:
                break
            if pages >= self.settings.wappi_max_pages:
                log.warning("poller.max_pages_reached", pages=pages, hint="older unread messages are not fetched")
                break
            offset += count
        events: list[InboundEvent] = []
        not_forwarded: list[SkippedItem] = []
        for message in batch.in_order():
            try:
                event = to_event(message)
            except (PayloadError, ValueError) as exc:
                event = SkippedItem("malformed", message.id, None, str(exc)[:200])
            if isinstance(event, SkippedItem):
                not_forwarded.append(event)
            else:
                events.append(event)
        count_skipped(PROVIDER, not_forwarded)
        skipped = len(not_forwarded)
        next_cursor = batch.next_cursor()
        published = duplicates = ignored = 0
        if batch.new:

            async def advance(session: Session) -> None:
                await self._save_cursor(session, next_cursor)

            report = await self.ingestor.ingest(events, within=advance)
            if report.published is not None:
                await report.published
            published, duplicates, ignored = (report.count(s) for s in ("published", "duplicate", "ignored"))
            skipped += report.count("skipped")
        self.polls += 1
        self.last_poll_at = self.runtime.clock.now()
        self.last_error = None
        metrics.POLLS.labels(PROVIDER, "ok").inc()
        result = PollResult(pages, len(batch.new), published, duplicates, ignored, skipped)
        if batch.new:
            log.info("poller.polled", **result.__dict__)
        return result

    # ---------------------------------------------------------------- cursor
    async def _load_cursor(self) -> Cursor:
        t = tables.provider_cursors
        async with self.runtime.sessions() as session:
            row = (
                await session.execute(
                    select(t.c.cursor_time, t.c.cursor_ids).where(
                        t.c.provider == PROVIDER, t.c.account == self.provider.profile_id
                    )
                )
            ).first()
        overlap = int(self.settings.wappi_cursor_overlap_s)
        if row is not None:
            return Cursor.decode(row.cursor_time, row.cursor_ids, overlap)
        floor = self.runtime.clock.now().timestamp() - self.settings.wappi_initial_lookback_s
        return Cursor.initial(int(floor), overlap)

    async def _save_cursor(self, session: Session, cursor: Cursor) -> None:
        t = tables.provider_cursors
        values: dict[str, Any] = {
            "provider": PROVIDER,
            "account": self.provider.profile_id,
            "cursor_time": cursor.time,
            "cursor_ids": cursor.encode_seen(),
            "updated_at": self.runtime.clock.now(),
        }
        module = postgresql if dialect_name(session) == "postgresql" else sqlite
        stmt = module.insert(t).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["provider", "account"],
            set_={k: stmt.excluded[k] for k in ("cursor_time", "cursor_ids", "updated_at")},
            where=t.c.cursor_time <= stmt.excluded.cursor_time,  # never backwards (two pollers racing)
        )
        await session.execute(stmt)

    async def health(self) -> dict[str, Any]:
        return {
            "ok": self.last_error is None,
            "last_poll_at": self.last_poll_at.isoformat() if self.last_poll_at else None,
            "polls": self.polls,
            "last_error": self.last_error,
        }
