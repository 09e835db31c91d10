"""The agent service's part of data protection: erasing one contact, and what retention prunes.

**Erasure** -- ``POST /contacts/{phone}/erase`` (``api/erasure.py``) and
``python -m agent_service erase PHONE`` (:func:`erase_from_cli`). In one transaction:

* the contact, its messages, follow-up touches and scheduled calls are deleted;
* outbox rows whose body carries the phone (replies, follow-ups, operator messages; published or
  not: nothing more is sent to an erased contact) are deleted;
* an ``erasures`` row records the phone's keyed hash (``ERASURE_KEY``), who asked (the API
  token's name, or ``cli``) and how many rows of each kind went;
* a :class:`~parley_shared.contracts.ContactErasure` is staged for the gateway
  (``contact_erasure`` queue): the gateway then clears its message log, its outbox bodies (voice
  notes' audio included) and the dead letters that carry the phone (``gateway/privacy.py``).

Why a message and not a second call: the request travels through the outbox like every other
effect, so it reaches the gateway even if the gateway or the broker is down at that moment, once,
and the manager makes one request. The erasure message itself names the phone; its outbox row
is deleted as soon as the broker confirmed it (otherwise retention removes it once published).
Consumed message ids stay in the inbox (opaque ``uuid5``): a redelivered message of the erased
contact is still recognised. A message of that phone already in ``incoming_messages`` when the
erasure runs is recorded after it: erase again if that matters.

**Retention** -- :func:`retention_rules`: published outbox rows after ``OUTBOX_RETENTION_H``,
consumed inbox ids after ``INBOX_RETENTION_DAYS``, conversation messages after
``MESSAGE_RETENTION_DAYS`` (``0``, the default: kept).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_service.db import tables
from agent_service.settings import AgentSettings
from parley_shared.broker import Broker, BrokerUnavailable
from parley_shared.clock import Clock, SystemClock
from parley_shared.contracts import ContactErasure, new_id
from parley_shared.db import Session, SessionFactory, session_factory
from parley_shared.outbox import Outbox
from parley_shared.privacy import delete_bodies_mentioning, record_erasure
from parley_shared.retention import Rule, kept, shared_rules
from parley_shared.shutdown import Drains
from parley_shared.topology import ERASURE

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Erased:
    removed: dict[str, int]
    phone_hash: str
    gateway_request: str  # the ContactErasure's message id


class AgentPrivacy:
    def __init__(self, sessions: SessionFactory, clock: Clock, settings: AgentSettings, outbox: Outbox) -> None:
        self.sessions = sessions
        self.clock = clock
        self.settings = settings
        self.outbox = outbox

    async def erase(self, phone: str, requested_by: str) -> Erased:
        """Erase the contact ``phone`` (E.164) here and stage the gateway's part (commit included)."""
        request = ContactErasure(message_id=new_id(), correlation_id=new_id(), phone=phone, requested_by=requested_by)
        digest = self.settings.erasure_hash(phone)
        async with self.sessions() as session, session.begin():
            removed = await self._erase_rows(session, phone)
            await record_erasure(
                session,
                tables.erasures,
                phone_hash=digest,
                requested_by=requested_by,
                removed=removed,
                now=self.clock.now(),
            )
            await self.outbox.add(session, ERASURE, request)
        log.info("privacy.erased", requested_by=requested_by, **removed)
        return Erased(removed, digest, request.message_id)

    async def send_to_gateway(self, erased: Erased) -> bool:
        """Publish the gateway's part now and drop its outbox row (it names the phone). False: the
        broker did not confirm; the relay publishes it later and retention removes the row."""
        if not await self.outbox.publish_after_commit(ids=[erased.gateway_request]):
            return False
        outbox = tables.outbox
        async with self.sessions() as session, session.begin():
            await session.execute(
                delete(outbox).where(outbox.c.message_id == erased.gateway_request, outbox.c.published_at.is_not(None))
            )
        return True

    async def _erase_rows(self, session: Session, phone: str) -> dict[str, int]:
        c = tables.contacts.c
        contact_id = await session.scalar(select(c.id).where(c.phone == phone))
        removed = {"contacts": 0, "messages": 0, "follow_ups": 0, "scheduled_calls": 0}
        if contact_id is not None:
            for name, table in (
                ("messages", tables.messages),
                ("follow_ups", tables.follow_ups),
                ("scheduled_calls", tables.scheduled_calls),
            ):
                removed[name] = int(
                    await session.scalar(select(func.count()).where(table.c.contact_id == contact_id)) or 0
                )
                await session.execute(delete(table).where(table.c.contact_id == contact_id))
            await session.execute(delete(tables.contacts).where(c.id == contact_id))
            removed["contacts"] = 1
        removed["outbox"] = await delete_bodies_mentioning(session, tables.outbox, phone)
        return removed


def retention_rules(settings: AgentSettings) -> list[Rule]:
    m = tables.messages
    return [
        *shared_rules(tables.outbox, tables.inbox, settings),
        Rule("messages", m, m.c.id, m.c.created_at, kept(days=settings.message_retention_days)),
    ]


async def erase_from_cli(settings: AgentSettings, engine: AsyncEngine, phone: str) -> dict[str, Any]:
    """``python -m agent_service erase PHONE``: as the route does; the gateway's part is published if
    the broker answers within a few seconds, else the running service's outbox relay sends it."""
    sessions = session_factory(engine)
    broker = Broker(settings.amqp_url.get_secret_value(), service="agent-service-cli", startup_timeout_s=5)
    drains = Drains()
    outbox = Outbox(tables.outbox, sessions, broker, drains=drains)
    privacy = AgentPrivacy(sessions, SystemClock(), settings, outbox)
    try:
        erased = await privacy.erase(phone, requested_by="cli")
        try:
            await broker.connect()
        except BrokerUnavailable:
            sent = False
        else:
            sent = await privacy.send_to_gateway(erased)
    finally:
        await drains.drain_all(5)
        await broker.close()
    return {"phone_hash": erased.phone_hash, "removed": erased.removed, "gateway": "sent" if sent else "queued"}
