"""Consuming ``incoming_messages``: record the message, then let a turn answer it.

Every kind is recorded with what it carries (a file's type, size, name and the gateway's key; the
structured content of a tap, a place, contact cards, an order, a referral). Events are recorded
``silent`` and land on the message they name (``domain/kinds.py``): a reaction, an edit (the text
is corrected, so a turn that has not run yet answers the corrected text), a revoke (deleted, and
no longer waiting for an answer); an event that arrives before its message is applied when the
message is recorded. A number change moves the contact to its new number with its history; the
first ad or post a contact came from is kept on it (analytics).

The handler is one short transaction -- shared with the messages delivered at about the same
time (group commit, one statement per step for all of them) -- claim the message id in the
inbox (a redelivery changes nothing), upsert the contact, store the message as ``pending`` (or ``silent`` when a
manager holds the contact or it is a settled non-client: recorded, never answered by the AI),
push the contact's ``turn_due_at`` to now + ``BUFFER_WINDOW_S`` (in the same upsert; for a silent
message the sweeper later finds nothing pending and clears it) and tell the follow-ups that
the prospect wrote. After the commit it arms the contact's turn timer; the broker acks. No
model call ever happens while a message is unacknowledged.

Messages of one contact are recorded one at a time in delivery order (a per-phone lock), so
their ids follow the queue order even with a large prefetch; turns read them in sending order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog

from agent_service.db import repository as repo
from agent_service.domain.contact import ContactView
from agent_service.domain.kinds import details_of, is_silent, media_of, text_of
from agent_service.domain.moderation import ModerationPolicy
from agent_service.followups.service import FollowUps
from agent_service.live import LiveFeed
from parley_shared.batching import BATCH_MAX_SIZE, GroupCommit, transactions
from parley_shared.clock import Clock
from parley_shared.contracts import IncomingMessage
from parley_shared.db import Session, SessionFactory
from parley_shared.outbox import Inbox
from parley_shared.shutdown import Drains
from parley_shared.topology import INCOMING

log = structlog.get_logger(__name__)

Recorded = tuple[int | None, str | None]  # (contact id, message status); (None, None) for a duplicate


def _phone(message: IncomingMessage) -> str:
    return message.phone


class KeyedLocks:
    """One asyncio lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    async def acquire(self, key: str) -> None:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            await lock.acquire()
        except BaseException:
            self._forget(key)
            raise

    def release(self, key: str) -> None:
        self._locks[key][0].release()
        self._forget(key)

    def _forget(self, key: str) -> None:
        lock, users = self._locks[key]
        if users <= 1:
            del self._locks[key]
        else:
            self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


class IncomingHandler:
    def __init__(
        self,
        *,
        sessions: SessionFactory,
        inbox: Inbox,
        clock: Clock,
        follow_ups: FollowUps,
        schedule: Callable[[int, float], None],
        drains: Drains,
        window_s: float,
        moderation: ModerationPolicy,
        live: LiveFeed | None = None,
        batch_size: int = BATCH_MAX_SIZE,
    ) -> None:
        self.sessions = sessions
        self.moderation = moderation
        self.live = live  # the managers' screens
        self.inbox = inbox
        self.clock = clock
        self.follow_ups = follow_ups
        self.schedule = schedule
        self.window_s = window_s
        self._locks = KeyedLocks()
        self.group_commit: GroupCommit[IncomingMessage, Recorded] = transactions(
            self._record_batch, name="incoming_record", drains=drains, max_size=batch_size
        )

    async def __call__(self, message: IncomingMessage) -> None:
        await self._locks.acquire(message.phone)
        try:
            contact_id, status = await self.group_commit.submit(message)
        finally:
            self._locks.release(message.phone)
        if contact_id is not None and status == "pending":
            self.schedule(contact_id, self.window_s)
        if contact_id is not None and self.live is not None:
            self.live.changed(contact_id, "message_in", label=message.contact_name)

    async def _record_batch(self, batch: list[IncomingMessage]) -> list[Recorded]:
        """Record messages delivered at about the same time in one transaction (group commit).

        A contact's messages never share a batch (the per-phone lock; a copy of a message is
        recorded once), so each batch upserts a contact once. A batch that fails for a reason of
        its own (not the database being away) is recorded message by message, so that one bad
        message cannot fail the others."""
        async with self.sessions() as session, session.begin():
            return await self._record(session, batch)

    async def _record(self, session: Session, batch: list[IncomingMessage]) -> list[Recorded]:
        now = self.clock.now()
        claimed = await self.inbox.claim_many(session, INCOMING.name, [m.message_id for m in batch])
        # Each claimed id once (the broker holds a copy while its message's handler runs, so two
        # copies should never share a batch: kept as a guard); by phone, so that replicas'
        # upserts lock contacts in one order.
        fresh = sorted({m.message_id: m for m in reversed(batch) if m.message_id in claimed}.values(), key=_phone)
        if len(fresh) < len(batch):
            log.info("incoming.duplicate", count=len(batch) - len(fresh))
        contacts = await repo.upsert_contacts(
            session,
            [
                {
                    "phone": m.phone,
                    "name": m.contact_name,
                    "provider": m.provider.value,
                    "chat_id": m.chat_id,
                    "referral": m.referral.model_dump(exclude_none=True) if m.referral else None,
                    "ad_source_id": m.referral.source_id if m.referral else None,
                }
                for m in fresh
            ],
            now=now,
            turn_due_at=now + timedelta(seconds=self.window_s),
        )
        rows = []
        recorded: dict[str, Recorded] = {}
        for message in fresh:
            contact = contacts[message.phone]
            status = "silent" if is_silent(message) else self.moderation.inbound_status(ContactView.from_row(contact))
            rows.append(
                {
                    "contact_id": contact["id"],
                    "direction": "in",
                    "kind": message.kind.value,
                    "status": status,
                    "text": text_of(message),
                    "caption": message.caption,
                    "media": media_of(message),
                    "details": details_of(message),
                    "target_message_id": message.target_message_id,
                    "message_id": message.message_id,
                    "provider_message_id": message.provider_message_id,
                    "previous_message_id": message.previous_message_id,
                    "correlation_id": message.correlation_id,
                    "transcribed": message.transcribed,
                    "error": message.transcription_error,
                    "sent_at": message.sent_at,
                    "created_at": now,
                }
            )
            recorded[message.message_id] = (int(contact["id"]), status)
        if rows:
            await repo.insert_messages(session, rows)
            # Events (reactions, edits, revokes) land on their messages, whichever arrived first.
            targets = {m.target_message_id for m in fresh if m.target_message_id}
            await repo.apply_events(session, [*targets, *(m.message_id for m in fresh)], now)
            for message in fresh:
                if message.system is not None and message.system.new_phone is not None:
                    await self._number_changed(
                        session, int(contacts[message.phone]["id"]), message.system.new_phone, now
                    )
            # A reaction or a notice is no reply: pending follow-ups go on.
            replied = {m.phone for m in fresh if not is_silent(m)}
            await self.follow_ups.on_inbound(session, [c for p, c in contacts.items() if p in replied], now)
        log.debug("incoming.recorded", messages=len(rows))
        return [recorded.get(m.message_id, (None, None)) for m in batch]

    async def _number_changed(self, session: Session, contact_id: int, new_phone: str, now: datetime) -> None:
        """The customer changed number: the contact carries on under the new one, history and all."""
        if await repo.change_phone(session, contact_id, new_phone, now):
            log.info("incoming.number_changed", contact_id=contact_id, new_phone=new_phone)
            return
        log.warning("incoming.number_change_conflict", contact_id=contact_id, new_phone=new_phone)
        reason = f"changed number to {new_phone}, which already has a conversation here: merge by hand"
        await repo.update_contact(
            session, contact_id, {"needs_human": True, "needs_human_reason": reason[:500], "updated_at": now}
        )
