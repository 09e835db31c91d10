"""Human handoff: take a conversation over, write in it, hand it back.

* :func:`take_over` -- the AI goes silent for this contact (its messages are still recorded; a
  turn already running finds the takeover when it re-checks ownership before writing and stores
  its reply as ``suppressed``). Pending follow-ups are cancelled and the needs-human flag is
  cleared (a human has it now).
* :func:`send_operator_message` -- the text goes out as kind ``operator`` on
  ``outgoing_messages`` through the outbox. Writing implies a takeover: the AI and a manager
  never talk over each other. A ``client_message_id`` makes a retried request send once.
* :func:`hand_back` -- the AI answers the contact's next message again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.engine import RowMapping

from agent_service.actions import ContactKey, Desk, lock_contact
from agent_service.actions.audit import Action, Actor, record
from agent_service.db import repository as repo
from parley_shared.contracts import OutgoingKind, OutgoingMessage, new_id, stable_id
from parley_shared.db import Session
from parley_shared.topology import OUTGOING

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class OperatorSent:
    message_id: str
    status: str
    duplicate: bool  # this client_message_id was sent before: nothing new went out
    contact: RowMapping


def _holder(actor: Actor, owner_name: str | None) -> tuple[str | None, int | None]:
    """(owner_name, owner_manager_id) of a takeover: a console manager holds it in person; the API
    names whoever its caller says (or nobody)."""
    if actor.manager_id is not None:
        return owner_name or actor.name, actor.manager_id
    return owner_name, None


async def _take_over(
    session: Session, desk: Desk, contact: RowMapping, actor: Actor, owner_name: str | None
) -> tuple[RowMapping, bool]:
    """Hold the conversation for a human; returns the contact and whether anything changed."""
    now = desk.clock.now()
    name, manager_id = _holder(actor, owner_name)
    values: dict[str, Any] = {"owner": "human", "needs_human": False, "updated_at": now}
    if name is not None or manager_id is not None or contact["owner"] != "human":
        values |= {"owner_name": name, "owner_manager_id": manager_id}
    changed = any(contact[k] != v for k, v in values.items() if k != "updated_at")
    updated = await repo.update_contact(session, contact["id"], values)
    await desk.follow_ups.stop(session, contact["id"], "takeover", now)
    if changed:
        detail = {"from": contact["owner_name"] if contact["owner"] == "human" else "ai"}
        await record(session, actor, Action.TAKEOVER, contact_id=contact["id"], now=now, detail=detail)
    return updated, changed


async def take_over(desk: Desk, key: ContactKey, actor: Actor, *, owner_name: str | None = None) -> RowMapping:
    async with desk.sessions() as session, session.begin():
        updated, _ = await _take_over(session, desk, await lock_contact(session, key), actor, owner_name)
    log.info("handoff.takeover", contact_id=updated["id"], actor=actor.kind)
    desk.changed(updated["id"], "takeover", updated)
    return updated


async def hand_back(desk: Desk, key: ContactKey, actor: Actor) -> RowMapping:
    now = desk.clock.now()
    async with desk.sessions() as session, session.begin():
        contact = await lock_contact(session, key)
        updated = await repo.update_contact(
            session, contact["id"], {"owner": "ai", "owner_name": None, "owner_manager_id": None, "updated_at": now}
        )
        if contact["owner"] != "ai":
            await record(session, actor, Action.HANDBACK, contact_id=contact["id"], now=now)
    log.info("handoff.handback", contact_id=updated["id"], actor=actor.kind)
    desk.changed(updated["id"], "handback", updated)
    return updated


async def send_operator_message(
    desk: Desk,
    key: ContactKey,
    text: str,
    actor: Actor,
    *,
    owner_name: str | None = None,
    client_message_id: str | None = None,
) -> OperatorSent:
    """Send ``text`` to the contact as the manager (taking the conversation over if needed)."""
    now = desk.clock.now()
    async with desk.sessions() as session, session.begin():
        contact = await lock_contact(session, key)
        phone = contact["phone"]
        message_id = stable_id("operator", phone, client_message_id) if client_message_id else new_id()
        existing = await repo.message_by_id(session, message_id)
        if existing is None:
            name, manager_id = _holder(actor, owner_name)
            held_as_asked = contact["owner"] == "human" and (
                name is None or (contact["owner_name"], contact["owner_manager_id"]) == (name, manager_id)
            )
            if not held_as_asked:
                contact, _ = await _take_over(session, desk, contact, actor, name or contact["owner_name"])
            await repo.insert_message(
                session,
                {
                    "contact_id": contact["id"],
                    "direction": "out",
                    "kind": "operator",
                    "status": "queued",
                    "text": text,
                    "message_id": message_id,
                    "correlation_id": message_id,
                    "author": (name or actor.name)[:100],
                    "created_at": now,
                },
            )
            contact = await repo.update_contact(session, contact["id"], {"last_outbound_at": now, "updated_at": now})
            outgoing = OutgoingMessage(
                message_id=message_id, correlation_id=message_id, phone=phone, text=text, kind=OutgoingKind.OPERATOR
            )
            await desk.outbox.add(session, OUTGOING, outgoing, cause_id=repo.contact_cause(contact["id"]))
            detail = {"message_id": message_id, "characters": len(text)}
            await record(session, actor, Action.MESSAGE, contact_id=contact["id"], now=now, detail=detail)
    if existing is not None:
        return OperatorSent(message_id, existing["status"], True, contact)
    await desk.outbox.publish_after_commit(causes=[repo.contact_cause(contact["id"])])
    log.info("handoff.operator_message", contact_id=contact["id"], actor=actor.kind)
    desk.changed(contact["id"], "operator_message", contact)
    return OperatorSent(message_id, "queued", False, contact)
