"""Each contact's messages as one chain, in the order the gateway publishes them.

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

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, select, update

from gateway.db.tables import contact_chains
from parley_shared.db import Session, insert_ignore

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
