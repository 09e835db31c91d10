"""``POST /contacts/{phone}/erase``: erase one contact, here and at the gateway (``agent_service/privacy.py``)."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from agent_service.api.contacts import PHONE_PARAM, parse_phone
from agent_service.context import AGENT
from parley_shared.http import API_CLIENT, json_response
from parley_shared.openapi import describe


class ErasedOut(BaseModel):
    phone_hash: str = Field(description="HMAC-SHA256 of the phone under ERASURE_KEY: all that is kept of it")
    removed: dict[str, int] = Field(
        description="Rows deleted here: contacts, messages, follow_ups, scheduled_calls, outbox"
    )
    gateway: str = Field(
        description="sent: the gateway's part is on the contact_erasure queue; queued: the outbox relay sends it"
    )


@describe(
    "Erase a contact: its conversation, follow-ups, calls and queued messages, here and at the gateway",
    path_params=PHONE_PARAM,
    responses={200: ErasedOut, 400: "Not a phone number"},
    tags=("privacy",),
)
async def erase(request: web.Request) -> web.Response:
    phone = parse_phone(request)
    privacy = request.app[AGENT].privacy
    erased = await privacy.erase(phone, requested_by=request.get(API_CLIENT, "open"))
    sent = await privacy.send_to_gateway(erased)
    out = ErasedOut(phone_hash=erased.phone_hash, removed=erased.removed, gateway="sent" if sent else "queued")
    return json_response(out)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/contacts/{phone}/erase", erase)
