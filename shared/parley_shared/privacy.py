"""Erasure of one contact, the parts both services share.

Each service erases its own rows (``gateway/privacy.py``, ``agent_service/privacy.py``); what they
have in common is here:

* :func:`phone_hash` -- HMAC-SHA256 of the phone under ``ERASURE_KEY``: what is kept of an erased
  phone (in the ``erasures`` audit table; the gateway's message log keeps its first 20 characters
  where the phone was). Without the key it cannot be turned back into a number or matched
  against a list of numbers; with it, an operator can answer "was +7701... erased?".
* :func:`erasures_table` -- one row per erasure: the hash, who asked (the API token's name, or
  ``cli``), when, and how many rows of each kind went. Never the phone.
* :func:`delete_bodies_mentioning` -- outbox rows whose body carries the phone (published or not:
  a message to or about an erased contact is not sent any more).

Message ids are kept where a service deduplicates on them (the inbox, the gateway's message
log): they are opaque (``uuid5`` of provider ids), and without them a redelivered or retried
message of the erased contact would be taken for a new one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, Text, delete, insert, select

from parley_shared.db import Session, UtcDateTime

SCAN_BATCH = 500


def erasures_table(metadata: MetaData) -> Table:
    return Table(
        "erasures",
        metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        Column("phone_hash", String(64), nullable=False, index=True),
        Column("requested_by", String(60), nullable=False),
        Column("removed", Text, nullable=False),  # JSON {what: rows}
        Column("erased_at", UtcDateTime, nullable=False),
    )


def phone_hash(key: str, phone: str) -> str:
    return hmac.new(key.encode(), phone.encode(), hashlib.sha256).hexdigest()


def body_needle(phone: str) -> bytes:
    """How a contract body names the phone (``Contract.encode``: compact JSON)."""
    return json.dumps({"phone": phone}, separators=(",", ":"))[1:-1].encode()


async def delete_bodies_mentioning(session: Session, table: Table, phone: str) -> int:
    """Delete the rows of ``table`` (an outbox) whose ``body`` carries ``phone``; how many went."""
    needle = body_needle(phone)
    removed, after = 0, -1
    while True:
        rows = (
            await session.execute(
                select(table.c.id, table.c.body).where(table.c.id > after).order_by(table.c.id).limit(SCAN_BATCH)
            )
        ).all()
        if not rows:
            return removed
        after = rows[-1].id
        ids = [row.id for row in rows if needle in bytes(row.body)]
        if ids:
            await session.execute(delete(table).where(table.c.id.in_(ids)))
            removed += len(ids)


async def record_erasure(
    session: Session, table: Table, *, phone_hash: str, requested_by: str, removed: Mapping[str, int], now: datetime
) -> None:
    await session.execute(
        insert(table).values(
            phone_hash=phone_hash,
            requested_by=requested_by[:60],
            removed=json.dumps(dict(removed), sort_keys=True),
            erased_at=now,
        )
    )
