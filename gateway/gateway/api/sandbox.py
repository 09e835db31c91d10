"""Sandbox provider routes (registered only with ``WHATSAPP_PROVIDER=sandbox``; bearer token like
every management route).

* ``POST /sandbox/inbound`` ``{"from", "text" | "voice_base64", "name"?, "id"?, "mime_type"?}`` ->
  202 ``{"message_id", "status"}``: the message enters the same ingest path as a real one
  (``status`` is ``published``, ``duplicate`` for an ``id`` seen before, or ``ignored``).
* ``GET /sandbox/outbox?to=&after=&limit=&wait=`` -> ``{"messages": [...], "next_cursor"}``: what
  the sender delivered, oldest first, after the cursor; ``wait`` (seconds, at most 30) holds the
  request open until something arrives (long polling for chat clients).
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.context import GATEWAY
from gateway.domain.admission import InboundEvent
from gateway.providers.sandbox import Delivered, SandboxProvider
from parley_shared.contracts import MAX_INLINE_MEDIA_B64, MAX_TEXT, MediaRef, MessageKind, Provider, new_id
from parley_shared.db import SQL_INT_MAX
from parley_shared.http import HTTPError, json_response, read_model, read_query
from parley_shared.openapi import describe
from parley_shared.phone import PhoneError, typed_address

MAX_WAIT_S = 30


class SandboxInbound(BaseModel):
    """A message "from WhatsApp": text, or a voice note as base64 audio."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str = Field(alias="from", min_length=1, max_length=64, description="The prospect's phone, any format")
    text: str | None = Field(default=None, max_length=MAX_TEXT * 4)
    name: str | None = Field(default=None, max_length=200, description="The prospect's profile name")
    id: str | None = Field(default=None, min_length=1, max_length=200, description="Provider message id (dedupe)")
    voice_base64: str | None = Field(default=None, min_length=1, max_length=MAX_INLINE_MEDIA_B64)
    mime_type: str = Field(default="audio/ogg", min_length=1, max_length=200, description="Of voice_base64")

    @model_validator(mode="after")
    def _one_body(self) -> SandboxInbound:
        has_text = self.text is not None and bool(self.text.strip())
        if has_text == (self.voice_base64 is not None):
            raise ValueError("send either a non-empty text or voice_base64")
        return self


class InboundAccepted(BaseModel):
    """What became of the message."""

    message_id: str | None
    status: Literal["published", "duplicate", "ignored", "skipped"]


class OutboxQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: str | None = Field(default=None, max_length=64, description="Only messages to this phone (any format)")
    after: int = Field(
        default=0, ge=0, le=SQL_INT_MAX, description="Cursor: only messages after it (next_cursor of the last call)"
    )
    limit: int = Field(default=100, ge=1, le=500)
    wait: int = Field(default=0, ge=0, le=MAX_WAIT_S, description="Seconds to wait for a message when none is there")


class OutboxPage(BaseModel):
    """Delivered messages, oldest first."""

    messages: list[Delivered]
    next_cursor: int


def _sandbox(request: web.Request) -> SandboxProvider:
    provider = request.app[GATEWAY].provider
    assert isinstance(provider, SandboxProvider)
    return provider


def _phone(request: web.Request, value: str, field: str) -> str:
    try:
        return typed_address(value, request.app[GATEWAY].settings.phone_default_region)
    except PhoneError as exc:
        raise HTTPError(400, f"{field} is not a phone number: {exc}") from None


@describe(
    "Receive a sandbox message as if it came from WhatsApp",
    body=SandboxInbound,
    responses={202: InboundAccepted, 400: "Invalid message"},
    tags=("sandbox",),
)
async def inbound(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    body = await read_model(request, SandboxInbound)
    phone = _phone(request, body.from_, "from")
    media = None
    if body.voice_base64 is not None:
        try:
            base64.b64decode(body.voice_base64, validate=True)
        except (binascii.Error, ValueError):
            raise HTTPError(400, "voice_base64 is not valid base64") from None
        media = MediaRef(inline_b64=body.voice_base64, mime_type=body.mime_type)
    event = InboundEvent(
        provider=Provider.SANDBOX,
        provider_message_id=body.id or new_id(),
        sender=phone,
        kind=MessageKind.VOICE if media else MessageKind.TEXT,
        sent_at=gateway.runtime.clock.now(),
        text=body.text,
        media=media,
        contact_name=body.name,
    )
    outcome = await gateway.ingestor.submit(event)
    return json_response(InboundAccepted(message_id=outcome.message_id, status=outcome.status), status=202)  # type: ignore[arg-type]


@describe(
    "Messages the sandbox delivered (long polling with wait)",
    query=OutboxQuery,
    responses={200: OutboxPage, 400: "Invalid query"},
    tags=("sandbox",),
)
async def outbox(request: web.Request) -> web.Response:
    sandbox = _sandbox(request)
    query = await read_query(request, OutboxQuery)
    to = _phone(request, query.to, "to") if query.to else None
    deadline = time.monotonic() + query.wait
    while True:
        version = sandbox.version
        messages = await sandbox.outbox(to=to, after=query.after, limit=query.limit)
        remaining = deadline - time.monotonic()
        if messages or remaining <= 0 or sandbox.stopping:
            break
        await sandbox.wait_for_delivery(version, remaining)
    page = OutboxPage(
        messages=messages,
        next_cursor=messages[-1].cursor if messages else query.after,
    )
    return json_response(page)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/sandbox/inbound", inbound, name="sandbox-inbound")
    app.router.add_get("/sandbox/outbox", outbox, name="sandbox-outbox")
