"""SQL of the conversation: contacts, messages and the per-contact turn lease (both dialects).

Every function runs in the caller's session and transaction. The statements that decide who
may do what are single conditional ``UPDATE ... RETURNING`` statements, atomic on PostgreSQL
and SQLite alike: claiming a turn lease, and re-checking it (which also locks the contact row)
right before a turn's result is written.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, bindparam, case, cast, func, literal, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping, ScalarResult

from agent_service.db.tables import contacts, follow_ups, messages, outbox, scheduled_calls
from agent_service.domain.kinds import EVENT_KINDS
from parley_shared.db import Session, TupleRows, UtcDateTime, dialect_name, per_row, per_row_params

c = contacts.c
m = messages.c


async def upsert_contacts(
    session: Session,
    people: Sequence[Mapping[str, Any]],
    *,
    now: datetime,
    turn_due_at: datetime | None = None,
) -> dict[str, RowMapping]:
    """Create each contact (``phone``, ``name``, ``provider``, and optionally ``chat_id``,
    ``referral``, ``ad_source_id``; a phone at most once) on its first message or refresh it (name,
    provider, chat id, last inbound time, and the turn's due time when given; the first referral
    stays), in one statement. Returns the contacts as they are now, by phone."""
    if not people:
        return {}
    stmt = _upsert_contact_statement(dialect_name(session), turn_due_at is not None)
    values = [
        {
            "phone": p["phone"],
            "name": p["name"],
            "provider": p["provider"],
            "chat_id": p.get("chat_id"),
            "referral": p.get("referral"),
            "ad_source_id": p.get("ad_source_id"),
            "first_seen_at": now,
            "last_inbound_at": now,
            "created_at": now,
            "updated_at": now,
            "turn_due_at": turn_due_at,
        }
        for p in people
    ]
    rows = (await session.execute(stmt, values)).mappings().all()
    return {row["phone"]: row for row in rows}


@functools.cache
def _upsert_contact_statement(dialect: str, refresh_due: bool) -> Any:
    """Built once per dialect (statement building costs more CPU than running it); values are parameters."""
    module = postgresql if dialect == "postgresql" else sqlite
    stmt = module.insert(contacts)
    refreshed: dict[str, Any] = {
        "name": func.coalesce(stmt.excluded.name, c.name),
        "provider": func.coalesce(stmt.excluded.provider, c.provider),
        "chat_id": func.coalesce(stmt.excluded.chat_id, c.chat_id),
        "referral": func.coalesce(c.referral, stmt.excluded.referral),  # the first ad or post stays
        "ad_source_id": func.coalesce(c.ad_source_id, stmt.excluded.ad_source_id),
        "last_inbound_at": stmt.excluded.last_inbound_at,
        "updated_at": stmt.excluded.updated_at,
    }
    if refresh_due:
        refreshed["turn_due_at"] = stmt.excluded.turn_due_at
    return stmt.on_conflict_do_update(index_elements=["phone"], set_=refreshed).returning(*contacts.c)


async def contact_by_phone(session: Session, phone: str) -> RowMapping | None:
    return (await session.execute(select(contacts).where(c.phone == phone))).mappings().first()


async def update_contact(session: Session, contact_id: int, values: Mapping[str, Any]) -> RowMapping:
    stmt = update(contacts).where(c.id == contact_id).values(**values).returning(*contacts.c)
    return (await session.execute(stmt)).mappings().one()


_INSERT_MESSAGE = messages.insert()


async def insert_message(session: Session, values: Mapping[str, Any]) -> None:
    await session.execute(_INSERT_MESSAGE, dict(values))


async def insert_messages(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Several messages (every row with the same keys), one executemany."""
    await session.execute(_INSERT_MESSAGE, [dict(r) for r in rows])


async def message_by_id(session: Session, message_id: str) -> RowMapping | None:
    return (await session.execute(select(messages).where(m.message_id == message_id))).mappings().first()


async def contact_touches(session: Session, contact_id: int, limit: int) -> list[RowMapping]:
    """The follow-up touches of the contact's latest sequences, newest sequence first."""
    f = follow_ups.c
    stmt = select(follow_ups).where(f.contact_id == contact_id).order_by(f.sequence_no.desc(), f.touch).limit(limit)
    return list((await session.execute(stmt)).mappings().all())


async def contact_calls(session: Session, contact_id: int, limit: int) -> list[RowMapping]:
    """The contact's scheduled calls, latest first."""
    k = scheduled_calls.c
    stmt = select(scheduled_calls).where(k.contact_id == contact_id).order_by(k.scheduled_at.desc()).limit(limit)
    return list((await session.execute(stmt)).mappings().all())


# ---------------------------------------------------------------------------- turns


def contact_cause(contact_id: int) -> str:
    """The outbox cause of everything said to one contact (replies, operator messages)."""
    return f"contact:{contact_id}"


_UNPUBLISHED_FOR_ROW = (
    select(outbox.c.id)
    .where(outbox.c.cause_id == literal("contact:") + cast(c.id, String), outbox.c.published_at.is_(None))
    .exists()
)
_LOCK_IN_PHONE_ORDER = (
    select(contacts.c.id)
    .where(contacts.c.id.in_(bindparam("b_ids", expanding=True)))
    .order_by(contacts.c.phone)
    .with_for_update()
)
_CLAIM_TURNS = (
    update(contacts)
    .where(
        c.id.in_(_LOCK_IN_PHONE_ORDER.scalar_subquery()),
        c.turn_due_at.is_not(None),
        c.turn_due_at <= bindparam("b_now"),
        or_(c.turn_lease_until.is_(None), c.turn_lease_until < bindparam("b_now")),
        ~_UNPUBLISHED_FOR_ROW,
    )
    .values(turn_lease_owner=bindparam("b_token"), turn_lease_until=bindparam("b_until"))
    .returning(*contacts.c)
)


async def claim_turns(
    session: Session, contact_ids: Sequence[int], token: str, now: datetime, lease_until: datetime
) -> dict[int, RowMapping]:
    """Take the turn leases of these contacts (one statement for all, one token): a contact is
    claimed if its messages are due, nobody holds its lease, and everything said to it before has
    been published -- so replies leave in order even when the outbox relay, not the turn, publishes
    one of them. Returns those claimed now, by id.

    Rows are locked in phone order, like every statement that locks several contacts (recording a
    batch of messages, writing a batch of turns, sending follow-ups): two transactions never wait
    for each other in a circle."""
    if not contact_ids:
        return {}
    params = {"b_ids": sorted(contact_ids), "b_now": now, "b_token": token, "b_until": lease_until}
    rows = (await session.execute(_CLAIM_TURNS, params)).mappings().all()
    return {int(row["id"]): row for row in rows}


_OWN_LEASE = (c.id == bindparam("b_contact_id")) & (c.turn_lease_owner == bindparam("b_token"))
# The contacts whose leases we still hold, locked in phone order (a lease taken over while we
# waited for the lock drops out: the condition is checked again on the locked row).
_HELD_IN_PHONE_ORDER = (
    select(contacts.c.id)
    .where(tuple_(c.id, c.turn_lease_owner).in_(bindparam("b_leases", expanding=True)))
    .order_by(contacts.c.phone)
    .with_for_update()
)
_RECHECK_LEASES = (
    update(contacts)
    .where(c.id.in_(_HELD_IN_PHONE_ORDER.scalar_subquery()))
    .values(turn_lease_until=bindparam("b_now"))
    .returning(*contacts.c)
)
_RENEW_LEASE = update(contacts).where(_OWN_LEASE).values(turn_lease_until=bindparam("b_until"))
# ``turn_due_at`` kept only while the contact still has pending messages.
_DUE_WHILE_WAITING = case(
    (
        select(func.count())
        .select_from(messages)
        .where(m.contact_id == bindparam("b_contact_id"), m.status == "pending")
        .scalar_subquery()
        > 0,
        c.turn_due_at,
    ),
    else_=None,
)
_FINISH_TURN = (
    update(contacts)
    .where(_OWN_LEASE)
    .values(turn_lease_owner=None, turn_lease_until=None, turn_due_at=_DUE_WHILE_WAITING)
)
_RELEASE_TURN = update(contacts).where(_OWN_LEASE).values(turn_lease_owner=None, turn_lease_until=None)
_CONTACTS_BY_ID = select(contacts).where(c.id.in_(bindparam("b_ids", expanding=True)))
_LOCK_CONTACTS_BY_ID = _CONTACTS_BY_ID.order_by(c.phone).with_for_update()


async def recheck_leases(session: Session, leases: Sequence[tuple[int, str]], now: datetime) -> dict[int, RowMapping]:
    """The contacts as they are now, by id, of those ``(contact id, token)`` leases we still hold:
    one statement for a batch of turns. Being an UPDATE, it locks the rows (in phone order) until
    the transaction ends, so a takeover either happened before (and the contact is left out) or
    waits."""
    if not leases:
        return {}
    params = {"b_leases": sorted(set(leases)), "b_now": now}
    rows = (await session.execute(_RECHECK_LEASES, params)).mappings().all()
    return {int(row["id"]): row for row in rows}


async def renew_lease(session: Session, contact_id: int, token: str, until: datetime) -> bool:
    result = await session.execute(_RENEW_LEASE, {"b_contact_id": contact_id, "b_token": token, "b_until": until})
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def finish_turns(session: Session, turns: Sequence[tuple[int, str, Mapping[str, Any]]]) -> None:
    """Write each turn's ``(contact id, token, contact changes)`` and give its lease back (after the
    turns' messages were marked; the leases re-checked in this transaction). One executemany per
    set of changed columns."""
    # Keys of the changes that are not bound parameters of the statement become SET columns.
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for contact_id, token, values in turns:
        by_columns.setdefault(tuple(sorted(values)), []).append(
            {**values, "b_contact_id": contact_id, "b_token": token}
        )
    for params in by_columns.values():
        await session.execute(_FINISH_TURN, params)


async def contacts_by_id(session: Session, contact_ids: Sequence[int], *, lock: bool = False) -> dict[int, RowMapping]:
    """These contacts as they are now, by id (one statement). ``lock``: locked until the
    transaction ends, in phone order like every statement that locks several contacts (the lock
    waits for a turn in flight on the same contact; SQLite, one writer at a time, has none)."""
    if not contact_ids:
        return {}
    statement = _LOCK_CONTACTS_BY_ID if lock else _CONTACTS_BY_ID
    rows = (await session.execute(statement, {"b_ids": sorted(set(contact_ids))})).mappings().all()
    return {int(row["id"]): row for row in rows}


async def release_turn(session: Session, contact_id: int, token: str, *, retry_at: datetime | None = None) -> None:
    """Give the lease back; ``turn_due_at`` stays set only while messages still wait.

    ``retry_at``: the turn failed -- try again no earlier than this.
    """
    if retry_at is not None:
        await session.execute(_RELEASE_TURN, {"b_contact_id": contact_id, "b_token": token, "turn_due_at": retry_at})
    else:
        await session.execute(_FINISH_TURN, {"b_contact_id": contact_id, "b_token": token})


async def due_contacts(session: Session, now: datetime, limit: int) -> list[int]:
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


_RANKED = (
    select(messages, func.row_number().over(partition_by=m.contact_id, order_by=m.id.desc()).label("rank"))
    .where(
        m.contact_id.in_(bindparam("b_ids", expanding=True)),
        m.status != "suppressed",
        m.deleted_at.is_(None),  # what the prospect deleted is not given to the model
        m.id.not_in(bindparam("b_exclude", expanding=True)),
    )
    .subquery()
)
_HISTORIES = (
    select(*(_RANKED.c[col.name] for col in messages.c))
    .where(_RANKED.c.rank <= bindparam("b_limit"))
    .order_by(_RANKED.c.contact_id, _RANKED.c.id.desc())
)
_RANKED_TEXTS = (
    select(m.contact_id, m.text, func.row_number().over(partition_by=m.contact_id, order_by=m.id).label("rank"))
    .where(
        m.contact_id.in_(bindparam("b_ids", expanding=True)),
        m.direction == "in",
        m.text.is_not(None),
        m.deleted_at.is_(None),
    )
    .subquery()
)
_INBOUND_TEXTS_OF_MANY = (
    select(_RANKED_TEXTS.c.contact_id, _RANKED_TEXTS.c.text)
    .where(_RANKED_TEXTS.c.rank <= bindparam("b_limit"))
    .order_by(_RANKED_TEXTS.c.contact_id, _RANKED_TEXTS.c.rank)
)


_PENDING_OF_MANY = (
    select(messages)
    .where(m.contact_id.in_(bindparam("b_ids", expanding=True)), m.status == "pending")
    .order_by(m.contact_id, m.sent_at, m.created_at, m.id)
)


async def pending_messages_of(session: Session, contact_ids: Sequence[int]) -> dict[int, list[RowMapping]]:
    """:func:`pending_messages` for many contacts in one statement, by contact id."""
    out: dict[int, list[RowMapping]] = {cid: [] for cid in contact_ids}
    if contact_ids:
        for row in (await session.execute(_PENDING_OF_MANY, {"b_ids": sorted(contact_ids)})).mappings():
            out[int(row["contact_id"])].append(row)
    return out


async def histories(
    session: Session, contact_ids: Sequence[int], limit: int, *, exclude: Sequence[int] = ()
) -> dict[int, list[RowMapping]]:
    """:func:`history` for many contacts in one statement (a window over each contact's messages)."""
    out: dict[int, list[RowMapping]] = {cid: [] for cid in contact_ids}
    if limit <= 0 or not contact_ids:
        return out
    params = {"b_ids": sorted(contact_ids), "b_exclude": list(exclude), "b_limit": limit}
    for row in (await session.execute(_HISTORIES, params)).mappings():
        out[int(row["contact_id"])].append(row)
    for rows in out.values():
        rows.reverse()  # oldest first
    return out


async def inbound_texts_of(session: Session, contact_ids: Sequence[int], limit: int = 10) -> dict[int, list[str]]:
    """:func:`inbound_texts` for many contacts in one statement."""
    out: dict[int, list[str]] = {cid: [] for cid in contact_ids}
    if contact_ids:
        params = {"b_ids": sorted(contact_ids), "b_limit": limit}
        texts: TupleRows = await session.execute(_INBOUND_TEXTS_OF_MANY, params)
        for contact_id, text in texts:
            if text:
                out[int(contact_id)].append(text)
    return out


_RECORDED = select(m.message_id).where(m.message_id.in_(bindparam("b_ids", expanding=True)))


async def recorded(session: Session, message_ids: Sequence[str] | set[str]) -> set[str]:
    """Which of ``message_ids`` are recorded (any contact, any status)."""
    if not message_ids:
        return set()
    return set((await session.execute(_RECORDED, {"b_ids": sorted(message_ids)})).scalars())


_POSTPONE_TURN = update(contacts).where(c.id == bindparam("b_contact_id")).values(turn_due_at=bindparam("b_at"))


async def postpone_turn(session: Session, contact_id: int, at: datetime) -> None:
    """Make the contact's next turn due at ``at`` (messages still wait after this turn)."""
    await session.execute(_POSTPONE_TURN, {"b_contact_id": contact_id, "b_at": at})


async def mark_turn_messages(session: Session, marks: Mapping[int, tuple[str, str | None]]) -> set[int]:
    """Move pending messages to their turn's ``(status, turn id)``, by message id: one statement
    for a batch of turns. Returns the ids that were still pending."""
    if not marks:
        return set()
    rows = [{"b_id": i, "b_status": status, "b_turn_id": turn_id} for i, (status, turn_id) in marks.items()]
    params = {"b_ids": sorted(marks), **per_row_params(rows)}
    still: ScalarResult[Any] = (await session.execute(_mark_turn_messages(len(marks)), params)).scalars()
    return {int(i) for i in still}


@functools.lru_cache(maxsize=256)
def _mark_turn_messages(count: int) -> Any:
    return (
        update(messages)
        .where(m.id.in_(bindparam("b_ids", expanding=True)), m.status == "pending")
        .values(
            status=per_row(m.id, count, "b_status", key_param="b_id", type_=String()),
            turn_id=per_row(m.id, count, "b_turn_id", key_param="b_id", type_=String()),
        )
        .returning(m.id)
    )


# ---------------------------------------------------------------------------- events on messages

_EVENTS = (
    select(m.id, m.contact_id, m.kind, m.details, m.target_message_id, m.created_at)
    .where(m.target_message_id.in_(bindparam("b_targets", expanding=True)), m.kind.in_(sorted(EVENT_KINDS)))
    .order_by(m.id)
)
_ON_TARGET = (m.message_id == bindparam("b_target")) & (m.contact_id == bindparam("b_contact_id"))
_REACT = update(messages).where(_ON_TARGET).values(reaction=bindparam("b_reaction"))
_EDIT = (
    update(messages)
    .where(_ON_TARGET, m.direction == "in")
    .values(text=bindparam("b_text"), edited_at=bindparam("b_at", type_=UtcDateTime()))
)
_REVOKE = (
    update(messages)
    .where(_ON_TARGET, m.direction == "in")
    .values(
        deleted_at=bindparam("b_at", type_=UtcDateTime()),
        status=case((m.status == "pending", "silent"), else_=m.status),  # nothing left to answer
    )
)


async def apply_events(session: Session, targets: Sequence[str], now: datetime) -> int:
    """Apply the reactions, edits and revokes recorded for these message ids, oldest first (the last
    word wins; applying them again changes nothing). Only on the same contact's messages."""
    if not targets:
        return 0
    rows = (await session.execute(_EVENTS, {"b_targets": sorted(set(targets))})).mappings().all()
    for event in rows:
        details = event["details"] or {}
        params: dict[str, Any] = {"b_target": event["target_message_id"], "b_contact_id": event["contact_id"]}
        if event["kind"] == "reaction":
            await session.execute(_REACT, {**params, "b_reaction": details.get("reaction") or None})
        elif event["kind"] == "edit" and details.get("text"):
            await session.execute(_EDIT, {**params, "b_text": details["text"], "b_at": event["created_at"]})
        elif event["kind"] == "revoke":
            await session.execute(_REVOKE, {**params, "b_at": event["created_at"]})
    return len(rows)


async def change_phone(session: Session, contact_id: int, new_phone: str, now: datetime) -> bool:
    """The contact's address becomes ``new_phone`` (its history stays with it); False when another
    contact has that address already."""
    taken = await session.scalar(select(c.id).where(c.phone == new_phone))
    if taken is not None and taken != contact_id:
        return False
    await session.execute(
        update(contacts).where(c.id == contact_id).values(phone=new_phone, chat_id=None, updated_at=now)
    )
    return True


# ---------------------------------------------------------------------------- delivery status

STATUS_RANK = {"queued": 0, "sent": 1, "delivered": 2, "read": 3}


# The outbound messages a batch of statuses is about, locked in message-id order (every batch
# locks them in the same order, so two batches running at once never wait for each other in a
# circle).
_OUTBOUND_IN_ID_ORDER = (
    select(m.id)
    .where(m.message_id.in_(bindparam("b_ids", expanding=True)), m.direction == "out")
    .order_by(m.message_id)
    .with_for_update()
)


# How far along a message is; a reported status moves it on from a lower rank only (``failed``
# from queued or sent); a failed message never moves.
_RANK_NOW = case(STATUS_RANK, value=m.status, else_=99)


def _moves_from_below(status: str) -> int:
    """The rank a message must be below for ``status`` to move it on."""
    return STATUS_RANK["delivered"] if status == "failed" else STATUS_RANK[status]


@functools.lru_cache(maxsize=256)
def _apply_statuses(count: int) -> Any:
    """The UPDATE for ``count`` messages, one status each, with the values as parameters: built and
    compiled once per count (a statement built per call cost more than running it)."""

    def per_message(name: str, type_: Any = None) -> Any:
        return per_row(m.message_id, count, name, key_param="b_id", type_=type_)

    return (
        update(messages)
        .where(m.id.in_(_OUTBOUND_IN_ID_ORDER.scalar_subquery()), _RANK_NOW < per_message("b_below", Integer()))
        .values(
            status=per_message("b_status", String()),
            sent_at=func.coalesce(m.sent_at, per_message("b_at", UtcDateTime())),
            error=func.coalesce(per_message("b_error", String()), m.error),
        )
        .returning(m.message_id, m.contact_id)
    )


async def flag_contact(session: Session, contact_id: int, reason: str) -> None:
    """A manager must act on this contact (``needs_human``, with the reason)."""
    await session.execute(
        update(contacts).where(c.id == contact_id).values(needs_human=True, needs_human_reason=reason)
    )


@dataclass(frozen=True)
class StatusMove:
    """A reported status of one outbound message, as the status handler applies it."""

    message_id: str
    status: str
    error: str | None
    occurred_at: datetime


async def apply_delivery_statuses(session: Session, moves: Sequence[StatusMove]) -> dict[str, int]:
    """Move outbound messages forward (queued < sent < delivered < read; failed unless delivered),
    one status per message (distinct ``message_id``s), in one statement: the contact of each
    message that moved, by message id. The rows are locked in message-id order."""
    if not moves:
        return {}
    by_id = {move.message_id: move for move in moves}
    if len(by_id) != len(moves):
        raise ValueError("one status per message in a statement")
    values = [
        {
            "b_id": move.message_id,
            "b_status": move.status,
            "b_at": move.occurred_at,
            "b_below": _moves_from_below(move.status),
            "b_error": move.error[:500] if move.error else None,
        }
        for move in moves
    ]
    params = {"b_ids": sorted(by_id), **per_row_params(values)}
    moved: TupleRows = await session.execute(_apply_statuses(len(moves)), params)
    return {str(message_id): int(contact_id) for message_id, contact_id in moved}
