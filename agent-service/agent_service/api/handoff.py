"""Human handoff over the JSON API (the rules: ``agent_service/actions/handoff.py``).

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

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent_service.actions import handoff
from agent_service.actions.audit import Actor
from agent_service.api.contacts import ContactOut
from agent_service.api.params import PHONE_PARAM, action_errors, parse_phone
from agent_service.context import AGENT
from parley_shared.contracts import MAX_TEXT
from parley_shared.http import json_response, read_model
from parley_shared.openapi import describe


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
    with action_errors():
        updated = await handoff.take_over(request.app[AGENT].desk, phone, Actor.api(), owner_name=body.manager)
    return json_response(ContactOut.model_validate(dict(updated)))


@describe(
    "Hand a conversation back to the AI",
    path_params=PHONE_PARAM,
    responses={200: ContactOut, 404: "No contact with this phone"},
    tags=("handoff",),
)
async def handback(request: web.Request) -> web.Response:
    phone = parse_phone(request)
    with action_errors():
        updated = await handoff.hand_back(request.app[AGENT].desk, phone, Actor.api())
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
    with action_errors():
        sent = await handoff.send_operator_message(
            request.app[AGENT].desk,
            phone,
            body.text,
            Actor.api(),
            owner_name=body.manager,
            client_message_id=body.client_message_id,
        )
    out = OperatorMessageOut(
        message_id=sent.message_id,
        status=sent.status,
        duplicate=sent.duplicate,
        contact=ContactOut.model_validate(dict(sent.contact)),
    )
    return json_response(out, status=200 if sent.duplicate else 202)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/contacts/{phone}/takeover", takeover)
    app.router.add_post("/contacts/{phone}/handback", handback)
    app.router.add_post("/contacts/{phone}/messages", operator_message)
