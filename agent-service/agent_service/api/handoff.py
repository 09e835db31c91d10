"""Human handoff: a manager takes a conversation over, writes in it, and hands it back.

* ``POST /contacts/{phone}/takeover`` -- the AI goes silent for this contact (its messages are
  still recorded); a turn already running finds the takeover when it re-checks ownership
  before writing, and stores its reply as ``suppressed``. Pending follow-ups are cancelled and
  the needs-human flag is cleared (a human has it now).
* ``POST /contacts/{phone}/messages`` -- an operator's text goes out as kind ``operator`` on
  ``outgoing_messages`` through the outbox. Writing implies a takeover: the AI and a manager
  never talk over each other. ``client_message_id`` makes a retried request send once.
* ``POST /contacts/{phone}/handback`` -- the AI answers the contact's next message again.
"""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent_service.api.contacts import ContactOut
from agent_service.api.params import PHONE_PARAM, contact_or_404, parse_phone
from agent_service.context import AGENT
from agent_service.db import repository as repo
from parley_shared.contracts import MAX_TEXT, OutgoingKind, OutgoingMessage, new_id, stable_id
from parley_shared.http import json_response, read_model
from parley_shared.openapi import describe
from parley_shared.topology import OUTGOING

log = structlog.get_logger(__name__)


class TakeoverIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    manager: str | None = Field(None, min_length=1, max_length=100, description="Who takes the conversation")


class OperatorMessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=MAX_TEXT)
    manager: str | None = Field(None, min_length=1, max_length=100)
    client_message_id: str | None = Field(
        None, min_length=1, max_length=100, description="Your id for this message: a retry with it sends once"
    )

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text is blank")
        return value


class OperatorMessageOut(BaseModel):
    message_id: str
    status: str
    duplicate: bool = Field(description="true: this client_message_id was sent before; nothing new was sent")
    contact: ContactOut


async def _take_over(session: Any, request: web.Request, contact: Any, manager: str | None) -> Any:
    runtime = request.app[AGENT].runtime
    now = runtime.clock.now()
    values: dict[str, Any] = {"owner": "human", "needs_human": False, "updated_at": now}
    if manager is not None or contact["owner"] != "human":
        values["owner_name"] = manager
    updated = await repo.update_contact(session, contact["id"], values)
    await request.app[AGENT].follow_ups.stop(session, contact["id"], "takeover", now)
    return updated


@describe(
    "Take a conversation over from the AI",
    body=TakeoverIn,
    path_params=PHONE_PARAM,
    responses={200: ContactOut, 404: "No contact with this phone"},
    tags=("handoff",),
)
async def takeover(request: web.Request) -> web.Response:
    phone = parse_phone(request)
    body = await read_model(request, TakeoverIn)
    async with request.app[AGENT].runtime.sessions() as session, session.begin():
        updated = await _take_over(session, request, await contact_or_404(session, phone), body.manager)
    log.info("handoff.takeover", contact_id=updated["id"])
    return json_response(ContactOut.model_validate(dict(updated)))


@describe(
    "Hand a conversation back to the AI",
    path_params=PHONE_PARAM,
    responses={200: ContactOut, 404: "No contact with this phone"},
    tags=("handoff",),
)
async def handback(request: web.Request) -> web.Response:
    phone = parse_phone(request)
    runtime = request.app[AGENT].runtime
    async with runtime.sessions() as session, session.begin():
        contact = await contact_or_404(session, phone)
        updated = await repo.update_contact(
            session, contact["id"], {"owner": "ai", "owner_name": None, "updated_at": runtime.clock.now()}
        )
    log.info("handoff.handback", contact_id=updated["id"])
    return json_response(ContactOut.model_validate(dict(updated)))


@describe(
    "Send an operator message (takes the conversation over)",
    body=OperatorMessageIn,
    path_params=PHONE_PARAM,
    responses={202: OperatorMessageOut, 200: OperatorMessageOut, 404: "No contact with this phone"},
    tags=("handoff",),
)
async def operator_message(request: web.Request) -> web.Response:
    phone = parse_phone(request)
    body = await read_model(request, OperatorMessageIn)
    runtime = request.app[AGENT].runtime
    now = runtime.clock.now()
    message_id = stable_id("operator", phone, body.client_message_id) if body.client_message_id else new_id()
    async with runtime.sessions() as session, session.begin():
        contact = await contact_or_404(session, phone)
        existing = await repo.message_by_id(session, message_id)
        if existing is None:
            if contact["owner"] != "human" or body.manager is not None:
                contact = await _take_over(session, request, contact, body.manager or contact["owner_name"])
            await repo.insert_message(
                session,
                {
                    "contact_id": contact["id"],
                    "direction": "out",
                    "kind": "operator",
                    "status": "queued",
                    "text": body.text,
                    "message_id": message_id,
                    "correlation_id": message_id,
                    "created_at": now,
                },
            )
            contact = await repo.update_contact(session, contact["id"], {"last_outbound_at": now, "updated_at": now})
            outgoing = OutgoingMessage(
                message_id=message_id,
                correlation_id=message_id,
                phone=phone,
                text=body.text,
                kind=OutgoingKind.OPERATOR,
            )
            await runtime.outbox.add(session, OUTGOING, outgoing, cause_id=repo.contact_cause(contact["id"]))
    if existing is None:
        await runtime.outbox.publish_after_commit(causes=[repo.contact_cause(contact["id"])])
        log.info("handoff.operator_message", contact_id=contact["id"])
    out = OperatorMessageOut(
        message_id=message_id,
        status=existing["status"] if existing is not None else "queued",
        duplicate=existing is not None,
        contact=ContactOut.model_validate(dict(contact)),
    )
    return json_response(out, status=200 if existing is not None else 202)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/contacts/{phone}/takeover", takeover)
    app.router.add_post("/contacts/{phone}/handback", handback)
    app.router.add_post("/contacts/{phone}/messages", operator_message)
