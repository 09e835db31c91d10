"""What a manager does to a conversation, whether from the console or over the JSON API.

One function per action (take over, write, hand back, override a classification or outcome,
confirm / cancel / move a call, cancel / resume follow-ups), each in one transaction that also
writes the audit trail (``audit.py``), then -- after the commit -- publishes what it staged and
tells the managers' screens (:meth:`Desk.changed`). The JSON routes (``api/``) and the console
pages (``console/``) only parse their input and translate :class:`ActionError` into their
answers; the rules live here, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.engine import RowMapping

from agent_service.calls.service import CallBooker
from agent_service.db import tables
from agent_service.followups.service import FollowUps
from agent_service.live import LiveFeed
from parley_shared.clock import Clock
from parley_shared.db import Session, SessionFactory
from parley_shared.outbox import Outbox

ContactKey = int | str  # a contact's id, or its phone in E.164


class ActionError(Exception):
    """An action that cannot be done as asked (the message says why, for a manager)."""


class NotFound(ActionError):
    pass


class Conflict(ActionError):
    pass


class NotBookable(ActionError):
    def __init__(self, reason: str, proposed_slots: list[datetime]) -> None:
        super().__init__(f"not bookable: {reason}")
        self.reason = reason
        self.proposed_slots = proposed_slots


@dataclass(frozen=True)
class Desk:
    """What the actions need: the database, the outbox, the clock, the follow-up and call rules,
    and the live events of the managers' screens."""

    sessions: SessionFactory
    outbox: Outbox
    clock: Clock
    follow_ups: FollowUps
    booker: CallBooker
    live: LiveFeed | None = None

    def changed(self, contact_id: int | None, kind: str, contact: Any = None) -> None:
        """Tell the managers' screens (after the commit)."""
        if self.live is not None:
            label = (contact.get("name") or None) if contact is not None else None
            needs_human = bool(contact.get("needs_human")) if contact is not None else False
            self.live.changed(contact_id, kind, label=label, needs_human=needs_human)


def contact_where(key: ContactKey) -> ColumnElement[bool]:
    c = tables.contacts.c
    return c.id == key if isinstance(key, int) else c.phone == key


async def lock_contact(session: Session, key: ContactKey) -> RowMapping:
    """The contact, its row locked until the transaction ends; :class:`NotFound` if there is none."""
    stmt = select(tables.contacts).where(contact_where(key)).with_for_update()
    row = (await session.execute(stmt)).mappings().first()
    if row is None:
        raise NotFound("no contact with this phone" if isinstance(key, str) else "no such contact")
    return row
