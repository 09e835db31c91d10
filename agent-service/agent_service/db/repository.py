"""SQL of the conversation: contacts, messages and the per-contact turn lease (both dialects).

Every function runs in the caller's session and transaction. The statements that decide who
may do what are single conditional ``UPDATE ... RETURNING`` statements, atomic on PostgreSQL
and SQLite alike: claiming a turn lease, and re-checking it (which also locks the contact row)
right before a turn's result is written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from agent_service.db.tables import contacts, messages, outbox
from parley_shared.db import dialect_name

c = contacts.c
m = messages.c


async def upsert_contact(
    session: AsyncSession,
    *,
    phone: str,
    name: str | None,
    provider: str | None,
    now: datetime,
    turn_due_at: datetime | None = None,
) -> RowMapping:
    """Create the contact on its first message or refresh it (name, provider, last inbound time,
    and the turn's due time when given)."""
    module = postgresql if dialect_name(session) == "postgresql" else sqlite
    stmt = module.insert(contacts).values(
        phone=phone,
        name=name,
        provider=provider,
        first_seen_at=now,
        last_inbound_at=now,
        created_at=now,
        updated_at=now,
        turn_due_at=turn_due_at,
    )
    refreshed: dict[str, Any] = {
        "name": func.coalesce(stmt.excluded.name, c.name),
        "provider": func.coalesce(stmt.excluded.provider, c.provider),
        "last_inbound_at": stmt.excluded.last_inbound_at,
        "updated_at": stmt.excluded.updated_at,
    }
    if turn_due_at is not None:
        refreshed["turn_due_at"] = stmt.excluded.turn_due_at
    stmt = stmt.on_conflict_do_update(index_elements=["phone"], set_=refreshed).returning(*contacts.c)
    return (await session.execute(stmt)).mappings().one()


async def contact_by_phone(session: AsyncSession, phone: str) -> RowMapping | None:
    return (await session.execute(select(contacts).where(c.phone == phone))).mappings().first()


async def update_contact(session: AsyncSession, contact_id: int, values: Mapping[str, Any]) -> RowMapping:
    stmt = update(contacts).where(c.id == contact_id).values(**values).returning(*contacts.c)
    return (await session.execute(stmt)).mappings().one()


async def insert_message(session: AsyncSession, values: Mapping[str, Any]) -> None:
    await session.execute(messages.insert().values(**values))


async def message_by_id(session: AsyncSession, message_id: str) -> RowMapping | None:
    return (await session.execute(select(messages).where(m.message_id == message_id))).mappings().first()


# ---------------------------------------------------------------------------- turns


def contact_cause(contact_id: int) -> str:
    """The outbox cause of everything said to one contact (replies, operator messages)."""
    return f"contact:{contact_id}"


async def claim_turn(
    session: AsyncSession, contact_id: int, token: str, now: datetime, lease_until: datetime
) -> RowMapping | None:
    """Take the contact's turn lease if its messages are due, nobody holds it, and everything
    said to the contact before has been published (else None) -- so replies leave in order even
    when the outbox relay, not the turn, publishes one of them."""
    unpublished = (
        select(outbox.c.id)
        .where(outbox.c.cause_id == contact_cause(contact_id), outbox.c.published_at.is_(None))
        .exists()
    )
    stmt = (
        update(contacts)
        .where(
            c.id == contact_id,
            c.turn_due_at.is_not(None),
            c.turn_due_at <= now,
            or_(c.turn_lease_until.is_(None), c.turn_lease_until < now),
            ~unpublished,
        )
        .values(turn_lease_owner=token, turn_lease_until=lease_until)
        .returning(*contacts.c)
    )
    return (await session.execute(stmt)).mappings().first()


async def recheck_lease(session: AsyncSession, contact_id: int, token: str, now: datetime) -> RowMapping | None:
    """The contact as it is now, if we still hold its lease. Being an UPDATE, it locks the row
    until the transaction ends, so a takeover either happened before (and we see it) or waits."""
    stmt = (
        update(contacts)
        .where(c.id == contact_id, c.turn_lease_owner == token)
        .values(turn_lease_until=now)
        .returning(*contacts.c)
    )
    return (await session.execute(stmt)).mappings().first()


async def renew_lease(session: AsyncSession, contact_id: int, token: str, until: datetime) -> bool:
    result = await session.execute(
        update(contacts).where(c.id == contact_id, c.turn_lease_owner == token).values(turn_lease_until=until)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _due_while_waiting(contact_id: int) -> Any:
    """``turn_due_at`` kept only while the contact still has pending messages."""
    waiting = (
        select(func.count())
        .select_from(messages)
        .where(m.contact_id == contact_id, m.status == "pending")
        .scalar_subquery()
    )
    return case((waiting > 0, c.turn_due_at), else_=None)


async def finish_turn(session: AsyncSession, contact_id: int, token: str, values: Mapping[str, Any]) -> RowMapping:
    """Write the turn's contact changes and give the lease back, in one statement (after the
    turn's messages were marked). Returns the contact as it is now."""
    stmt = (
        update(contacts)
        .where(c.id == contact_id, c.turn_lease_owner == token)
        .values(**values, turn_lease_owner=None, turn_lease_until=None, turn_due_at=_due_while_waiting(contact_id))
        .returning(*contacts.c)
    )
    return (await session.execute(stmt)).mappings().one()


async def release_turn(session: AsyncSession, contact_id: int, token: str, *, retry_at: datetime | None = None) -> None:
    """Give the lease back; ``turn_due_at`` stays set only while messages still wait.

    ``retry_at``: the turn failed -- try again no earlier than this.
    """
    values: dict[str, Any] = {"turn_lease_owner": None, "turn_lease_until": None}
    values["turn_due_at"] = retry_at if retry_at is not None else _due_while_waiting(contact_id)
    await session.execute(update(contacts).where(c.id == contact_id, c.turn_lease_owner == token).values(**values))


async def due_contacts(session: AsyncSession, now: datetime, limit: int) -> list[int]:
    """Contacts whose turn is due and not leased (the sweeper's work list)."""
    stmt = (
        select(c.id)
        .where(
            c.turn_due_at.is_not(None),
            c.turn_due_at <= now,
            or_(c.turn_lease_until.is_(None), c.turn_lease_until < now),
        )
        .order_by(c.turn_due_at)
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())


async def pending_messages(session: AsyncSession, contact_id: int) -> Sequence[RowMapping]:
    """The contact's unanswered inbound messages in the order they were sent."""
    stmt = (
        select(messages)
        .where(m.contact_id == contact_id, m.status == "pending")
        .order_by(m.sent_at, m.created_at, m.id)
    )
    return (await session.execute(stmt)).mappings().all()


async def history(
    session: AsyncSession, contact_id: int, limit: int, *, exclude: Sequence[int] = ()
) -> list[RowMapping]:
    """The last ``limit`` messages of the conversation (oldest first), without ``exclude``."""
    if limit <= 0:
        return []
    stmt = select(messages).where(m.contact_id == contact_id, m.status != "suppressed")
    if exclude:
        stmt = stmt.where(m.id.not_in(list(exclude)))
    stmt = stmt.order_by(m.id.desc()).limit(limit)
    rows = (await session.execute(stmt)).mappings().all()
    return list(reversed(rows))


async def inbound_texts(session: AsyncSession, contact_id: int, limit: int = 10) -> list[str]:
    """The contact's first inbound texts (what the moderator judges), oldest first."""
    stmt = (
        select(m.text)
        .where(m.contact_id == contact_id, m.direction == "in", m.text.is_not(None))
        .order_by(m.id)
        .limit(limit)
    )
    return [t for t in (await session.execute(stmt)).scalars() if t]


async def mark_messages(session: AsyncSession, ids: Sequence[int], status: str, turn_id: str | None) -> int:
    """Move pending messages to ``status``; returns how many were still pending."""
    stmt = (
        update(messages).where(and_(m.id.in_(list(ids)), m.status == "pending")).values(status=status, turn_id=turn_id)
    )
    result = await session.execute(stmt)
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------- delivery status

STATUS_RANK = {"queued": 0, "sent": 1, "delivered": 2, "read": 3}


async def apply_delivery_status(
    session: AsyncSession, *, message_id: str, status: str, error: str | None, occurred_at: datetime
) -> bool:
    """Move an outbound message forward (queued < sent < delivered < read; failed unless delivered)."""
    if status == "failed":
        earlier = ["queued", "sent"]
    else:
        earlier = [s for s, rank in STATUS_RANK.items() if rank < STATUS_RANK[status]]
    values: dict[str, Any] = {"status": status, "sent_at": func.coalesce(m.sent_at, occurred_at)}
    if error:
        values["error"] = error[:500]
    result = await session.execute(
        update(messages).where(m.message_id == message_id, m.direction == "out", m.status.in_(earlier)).values(**values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
