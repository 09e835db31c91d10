"""``POST /erase``: erase what the gateway holds about one phone (``gateway/privacy.py``).

The agent service's ``POST /contacts/{phone}/erase`` erases a contact in both services (it asks the
gateway over the ``contact_erasure`` queue); this route is the gateway's part alone, for a phone
the agent never knew (an ignored number, a group) or a gateway run without the agent.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from gateway.context import GATEWAY
from parley_shared.http import API_CLIENT, HTTPError, json_response, read_model
from parley_shared.openapi import describe
from parley_shared.phone import PhoneError, typed_address


class EraseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: str = Field(min_length=1, max_length=64, description="The number, any format")


class ErasedOut(BaseModel):
    phone_hash: str = Field(description="HMAC-SHA256 of the phone under ERASURE_KEY: all that is kept of it")
    removed: dict[str, int] = Field(
        description="message_logs (cleared, ids kept for deduplication), sandbox_outbox, contact_chains, outbox, "
        "dead_letters"
    )


@describe(
    "Erase what the gateway holds about one phone",
    body=EraseIn,
    responses={200: ErasedOut, 400: "Not a phone number"},
    tags=("privacy",),
)
async def erase(request: web.Request) -> web.Response:
    body = await read_model(request, EraseIn)
    gateway = request.app[GATEWAY]
    try:
        phone = typed_address(body.phone, gateway.settings.phone_default_region)
    except PhoneError as exc:
        raise HTTPError(400, f"invalid phone: {exc}") from None
    removed = await gateway.privacy.erase(phone, requested_by=request.get(API_CLIENT, "open"))
    return json_response(ErasedOut(phone_hash=gateway.settings.erasure_hash(phone), removed=removed))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/erase", erase, name="erase")
