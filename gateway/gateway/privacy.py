"""The gateway's part of data protection: erasing one phone, and what retention prunes.

**Erasure** -- ``POST /erase`` (``api/erasure.py``), ``python -m gateway erase PHONE``
(:func:`erase_from_cli`), and the
``contact_erasure`` queue, on which the agent service asks for it when a contact is erased there:

* ``message_logs`` rows of the phone keep only what deduplication needs: ``message_id`` (opaque)
  stays, so a Meta retry or a re-polled message of the erased contact is still a duplicate; the
  phone becomes the first 20 characters of its keyed hash, ``phone_masked`` becomes ``erased``,
  the provider's message id (a wamid encodes the number) and any error text are cleared;
* ``sandbox_outbox`` rows of the phone are deleted, and so is its ``contact_chains`` row (the
  next message of that phone, if any, starts a new chain);
* the files the phone sent (``media_files`` and the files in ``MEDIA_DIR``) are deleted;
* ``outbox`` rows whose body carries the phone are deleted, published or not: inbound messages,
  voice notes with their audio (the only media the gateway ever stores), delivery statuses;
* dead letters carrying the phone are deleted from every dead-letter queue (first, so that a
  retried erasure never skips them);
* an ``erasures`` row records the keyed hash, who asked and how many rows of each kind went.

The ignore list is left alone: a number the business blocked stays blocked.

**Retention** -- :func:`retention_rules`: published outbox rows after ``OUTBOX_RETENTION_H``,
consumed inbox ids after ``INBOX_RETENTION_DAYS``; ``message_logs`` and ``sandbox_outbox`` rows,
and the ``contact_chains`` heads of contacts silent for as long, after
``MESSAGE_LOG_RETENTION_DAYS`` (at least 8 days: Meta retries a webhook for 7, and the message log
is what recognises the retry).
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.db import tables
from gateway.media_store import MediaStore
from gateway.settings import GatewaySettings
from parley_shared.clock import Clock, SystemClock
from parley_shared.contracts import ContactErasure
from parley_shared.db import Session, SessionFactory, session_factory
from parley_shared.deadletters import purge_mentioning
from parley_shared.outbox import Inbox
from parley_shared.privacy import body_needle, delete_bodies_mentioning, record_erasure
from parley_shared.retention import Rule, kept, shared_rules
from parley_shared.topology import ERASURE

log = structlog.get_logger(__name__)
ERASED = "erased"


class GatewayPrivacy:
    def __init__(
        self, sessions: SessionFactory, clock: Clock, settings: GatewaySettings, inbox: Inbox, media: MediaStore
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.settings = settings
        self.inbox = inbox
        self.media = media

    async def erase(self, phone: str, requested_by: str) -> dict[str, int]:
        """Erase what the gateway holds about ``phone`` (E.164); rows removed or cleared, by kind."""
        dead_letters = await self._purge_dead_letters(phone)
        async with self.sessions() as session, session.begin():
            removed, files = await self._erase_rows(session, phone, requested_by, dead_letters)
        await self._delete_files(files)
        log.info("privacy.erased", requested_by=requested_by, **removed)
        return removed

    async def handle(self, request: ContactErasure) -> None:
        """The ``contact_erasure`` consumer: the agent service erased the contact; erase here too."""
        dead_letters = await self._purge_dead_letters(request.phone)
        async with self.sessions() as session, session.begin():
            if not await self.inbox.claim(session, ERASURE.name, request.message_id):
                return
            removed, files = await self._erase_rows(session, request.phone, request.requested_by, dead_letters)
        await self._delete_files(files)
        log.info("privacy.erased", requested_by=request.requested_by, **removed)

    async def _delete_files(self, keys: list[str]) -> None:
        for key in keys:
            await self.media.delete(key)

    async def _purge_dead_letters(self, phone: str) -> int:
        return await purge_mentioning(self.settings.amqp_url.get_secret_value(), body_needle(phone))

    async def _erase_rows(
        self, session: Session, phone: str, requested_by: str, dead_letters: int
    ) -> tuple[dict[str, int], list[str]]:
        """The rows erased by kind, and the keys of the files to delete once that committed."""
        digest = self.settings.erasure_hash(phone)
        logs, sandbox, chains, files = (
            tables.message_logs,
            tables.sandbox_outbox,
            tables.contact_chains,
            tables.media_files,
        )
        cleared = await session.execute(
            update(logs)
            .where(logs.c.phone == phone)
            .values(
                phone=digest[:20],
                phone_masked=ERASED,
                provider_message_id=None,
                error=None,
                updated_at=self.clock.now(),
            )
        )
        sandbox_rows = await session.scalar(select(func.count()).where(sandbox.c.phone == phone))
        await session.execute(delete(sandbox).where(sandbox.c.phone == phone))
        chain = await session.execute(delete(chains).where(chains.c.phone == phone))
        keys: list[str] = list(await session.scalars(select(files.c.key).where(files.c.phone == phone)))
        await session.execute(delete(files).where(files.c.phone == phone))
        removed = {
            "message_logs": int(cleared.rowcount or 0),
            "sandbox_outbox": int(sandbox_rows or 0),
            "contact_chains": int(chain.rowcount or 0),
            "media_files": len(keys),
            "outbox": await delete_bodies_mentioning(session, tables.outbox, phone),
            "dead_letters": dead_letters,
        }
        await record_erasure(
            session,
            tables.erasures,
            phone_hash=digest,
            requested_by=requested_by,
            removed=removed,
            now=self.clock.now(),
        )
        return removed, keys


async def erase_from_cli(settings: GatewaySettings, engine: AsyncEngine, phone: str) -> dict[str, Any]:
    """``python -m gateway erase PHONE``: the gateway's part, as ``POST /erase`` does."""
    sessions = session_factory(engine)
    clock = SystemClock()
    privacy = GatewayPrivacy(sessions, clock, settings, Inbox(tables.inbox, clock), MediaStore(settings.media_dir))
    removed = await privacy.erase(phone, requested_by="cli")
    return {"phone_hash": settings.erasure_hash(phone), "removed": removed}


def retention_rules(settings: GatewaySettings) -> list[Rule]:
    history = kept(days=settings.message_log_retention_days)
    logs, sandbox, chains = tables.message_logs, tables.sandbox_outbox, tables.contact_chains
    return [
        *shared_rules(tables.outbox, tables.inbox, settings),
        Rule("message_logs", logs, logs.c.id, logs.c.created_at, history),
        Rule("sandbox_outbox", sandbox, sandbox.c.id, sandbox.c.created_at, history),
        Rule("contact_chains", chains, chains.c.phone, chains.c.updated_at, history),
    ]
