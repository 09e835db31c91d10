"""What the gateway knows of each contact, and each contact's messages as one chain.

Keyed by the contact's address (E.164, or a LID chat id), ``contact_chains`` holds:

* the provider and the provider's own **chat id** the contact last wrote from: replies go exactly
  there (:func:`recipient`), never to a number rebuilt from the address;
* when it **last wrote** (``last_inbound_at``): outside Meta's 24-hour customer-service window a
  free-form message is not attempted (``domain/window.py``);
* the **options** of the latest message sent to it (:func:`remember_choices`): a number typed back
  picks one as if it had been tapped (``domain/choices.py``);
* the head of its **chain** (below); a customer's number change moves all of it to the new
  number (:func:`rekey`).

Every message the gateway publishes for a contact carries the id of the one it published for
that contact just before (``previous_message_id``). Messages can reach the agent in another order
than they were published -- a handler retried after a database error, a copy redelivered after a
lost channel, two agent replicas, a voice note still being transcribed -- and the agent uses the
link to notice that an earlier message is still on its way and wait for it, instead of answering
the later one first.

The head of each chain lives in ``contact_chains`` and moves in the same transaction that stages
the messages, so a batch rolled back and retried links its messages again the same way. Rows are
locked in phone order: concurrent batches never deadlock, and two batches for one contact are
linked one after the other.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from gateway.db.tables import contact_chains
from parley_shared.contracts import Choices
from parley_shared.db import Session, dialect_name, insert_ignore

_HEADS = (
    select(contact_chains.c.phone, contact_chains.c.last_message_id)
    .where(contact_chains.c.phone.in_(bindparam("b_phones", expanding=True)))
    .order_by(contact_chains.c.phone)
    .with_for_update()
)
_ADVANCE = (
    update(contact_chains)
    .where(contact_chains.c.phone == bindparam("b_phone"))
    .values(last_message_id=bindparam("b_last"), updated_at=bindparam("b_now"))
)


async def link(session: Session, messages: Sequence[tuple[str, str]], now: datetime) -> list[str | None]:
    """For ``(phone, message_id)`` pairs in publishing order: each message's predecessor in its
    contact's chain (None for a contact's first). Moves the chains' heads past them."""
    if not messages:
        return []
    phones = sorted({phone for phone, _ in messages})
    await insert_ignore(
        session, contact_chains, [{"phone": p, "last_message_id": None, "updated_at": now} for p in phones], ["phone"]
    )
    heads: dict[str, str | None] = {
        row.phone: row.last_message_id for row in await session.execute(_HEADS, {"b_phones": phones})
    }
    previous: list[str | None] = []
    for phone, message_id in messages:
        previous.append(heads[phone])
        heads[phone] = message_id
    await session.execute(_ADVANCE, [{"b_phone": p, "b_last": heads[p], "b_now": now} for p in phones])
    return previous


@dataclass(frozen=True)
class Seen:
    """A contact wrote: from which chat of which provider, and when (the provider's time)."""

    address: str
    provider: str
    chat_id: str
    sent_at: datetime


async def record_inbound(session: Session, seen: Sequence[Seen], now: datetime) -> None:
    """Remember each contact's chat id and provider and move its last inbound time forward (a late
    message never moves it back). One statement; rows in address order (no deadlocks)."""
    latest: dict[str, Seen] = {}
    for item in seen:
        if item.address not in latest or item.sent_at >= latest[item.address].sent_at:
            latest[item.address] = item
    if not latest:
        return
    rows = [
        {
            "phone": item.address,
            "last_message_id": None,
            "updated_at": now,
            "provider": item.provider,
            "chat_id": item.chat_id,
            "last_inbound_at": item.sent_at,
        }
        for _, item in sorted(latest.items())
    ]
    stmt = _upsert(dialect_name(session), ("provider", "chat_id", "last_inbound_at"), newer_only=True)
    await session.execute(stmt, rows)


@functools.cache
def _upsert(dialect: str, columns: tuple[str, ...], *, newer_only: bool = False) -> Any:
    """``INSERT ... ON CONFLICT (phone) DO UPDATE`` of ``columns`` and ``updated_at`` for rows given
    as parameters, built once per dialect and columns. ``newer_only``: a row whose
    ``last_inbound_at`` is older than the stored one moves nothing back."""
    module: Any = postgresql if dialect == "postgresql" else sqlite
    stmt = module.insert(contact_chains)
    newer = stmt.excluded.last_inbound_at >= func.coalesce(
        contact_chains.c.last_inbound_at, stmt.excluded.last_inbound_at
    )
    return stmt.on_conflict_do_update(
        index_elements=["phone"],
        set_={name: stmt.excluded[name] for name in (*columns, "updated_at")},
        where=newer if newer_only else None,
    )


@dataclass(frozen=True)
class Known:
    """What the gateway knows of one contact (None fields: never heard of)."""

    address: str
    provider: str | None = None
    chat_id: str | None = None
    last_inbound_at: datetime | None = None
    choices: Choices | None = None


def _choices(raw: str | None) -> Choices | None:
    if not raw:
        return None
    try:
        return Choices.model_validate(json.loads(raw))
    except ValueError:
        return None


async def known(session: Session, addresses: Sequence[str]) -> dict[str, Known]:
    """What the gateway knows of these contacts, by address (absent: nothing)."""
    if not addresses:
        return {}
    rows = await session.execute(_KNOWN, {"b_phones": sorted(set(addresses))})
    return {r.phone: Known(r.phone, r.provider, r.chat_id, r.last_inbound_at, _choices(r.choices)) for r in rows}


# Built once (building a statement costs more CPU than running it).
_KNOWN = select(
    contact_chains.c.phone,
    contact_chains.c.provider,
    contact_chains.c.chat_id,
    contact_chains.c.last_inbound_at,
    contact_chains.c.choices,
).where(contact_chains.c.phone.in_(bindparam("b_phones", expanding=True)))


async def remember_choices(session: Session, latest: Mapping[str, Choices | None], now: datetime) -> None:
    """The options of the latest message sent to each address (None: that message offered none);
    one statement for all of them, in address order (the lock order of every batch)."""
    if not latest:
        return
    rows = [
        {
            "phone": address,
            "last_message_id": None,
            "updated_at": now,
            "choices": choices.model_dump_json() if choices is not None else None,
        }
        for address, choices in sorted(latest.items())
    ]
    await session.execute(_upsert(dialect_name(session), ("choices",)), rows)


async def rekey(session: Session, old: str, new: str, now: datetime) -> bool:
    """The customer changed number: what the gateway knows of ``old`` now belongs to ``new`` (its
    chain goes on there). False when ``new`` is known already (nothing is merged; logged by the caller)."""
    t = contact_chains
    if old == new:
        return True
    exists = await session.scalar(select(t.c.phone).where(t.c.phone == new))
    if exists is not None:
        return False
    moved = await session.execute(update(t).where(t.c.phone == old).values(phone=new, chat_id=None, updated_at=now))
    if not moved.rowcount:  # type: ignore[attr-defined]
        await insert_ignore(session, t, {"phone": new, "last_message_id": None, "updated_at": now}, ["phone"])
    return True


def recipient(address: str, known: Known | None) -> str:
    """The chat a message to ``address`` goes to: the provider's own chat id the contact last wrote
    from, else the address itself (a number as E.164, a LID chat as its id)."""
    if known is not None and known.chat_id:
        return known.chat_id
    return address
