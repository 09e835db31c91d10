"""A fake Meta Graph API (aiohttp) and builders for signed WhatsApp Cloud API webhooks.

Point the gateway at it with ``META_GRAPH_BASE_URL=fake.url``. It checks the Bearer token and
the phone number id, records every send (with the injected clock's time when given one), and
serves media through the real two-step download (``GET /{ver}/{media_id}`` -> ``url``, then
``GET url`` with the same Bearer token).

* ``fake.responder = async def (call: SendCall) -> GraphReply | None``: an error answer, or None
  for the normal success;
* ``fake.expire_urls_once`` -- media ids whose first URL answers 404;
* ``fake.file_delay_s`` -- how long a media file takes to start coming (a slow host);
* ``fake.uploads`` -- the files uploaded (``POST /{ver}/{phone_id}/media``, multipart with
  ``messaging_product``, ``type`` and ``file``), each answered with a new media id.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from parley_shared.clock import Clock
from tests.support.fake_http import FakeHTTPServer


@dataclass
class SendCall:
    body: dict[str, Any]
    at: datetime | None

    @property
    def to(self) -> str:
        return str(self.body.get("to"))

    @property
    def text(self) -> str | None:
        return (self.body.get("text") or {}).get("body")


@dataclass
class Upload:
    media_id: str
    mime_type: str
    file_name: str
    data: bytes


@dataclass
class GraphReply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def error(cls, status: int, code: int, message: str = "error", **headers: str) -> GraphReply:
        body = {
            "error": {
                "message": message,
                "type": "OAuthException",
                "code": code,
                "error_data": {"messaging_product": "whatsapp", "details": message},
                "fbtrace_id": "Afake",
            }
        }
        return cls(status, body, dict(headers))


class FakeMeta(FakeHTTPServer):
    def __init__(
        self,
        *,
        access_token: str = "meta-token",  # noqa: S107 - a fake
        phone_number_id: str = "1234567890",
        version: str = "v21.0",
        clock: Clock | None = None,
    ) -> None:
        self.access_token = access_token
        self.phone_number_id = phone_number_id
        self.version = version
        self.clock = clock
        self.sends: list[SendCall] = []  # accepted sends
        self.attempts: list[SendCall] = []  # every send request, accepted or not
        self.responder: Callable[[SendCall], Awaitable[GraphReply | None]] | None = None
        self.media: dict[str, tuple[bytes, str]] = {}
        self.expire_urls_once: set[str] = set()
        self.media_lookups: list[str] = []
        self.file_delay_s = 0.0
        self.uploads: list[Upload] = []
        self._ids = itertools.count(1)
        self._urls: dict[str, tuple[str, bool]] = {}

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{version}/{phone_id}/messages", self._send)
        app.router.add_post("/{version}/{phone_id}/media", self._upload)
        app.router.add_get("/{version}/{media_id}", self._media)
        app.router.add_get("/lookaside/{token}", self._file)

    def _unauthorised(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bearer {self.access_token}":
            reply = GraphReply.error(401, 190, "Invalid OAuth access token")
            return web.json_response(reply.body, status=reply.status)
        if request.match_info.get("version") not in (None, self.version):
            return web.json_response(GraphReply.error(400, 100, "Unknown version").body, status=400)
        return None

    async def _send(self, request: web.Request) -> web.Response:
        refused = self._unauthorised(request)
        if refused is not None:
            return refused
        if request.match_info["phone_id"] != self.phone_number_id:
            return web.json_response(GraphReply.error(400, 100, "Unknown phone number id").body, status=400)
        call = SendCall(await request.json(), self.clock.now() if self.clock else None)
        self.attempts.append(call)
        if self.responder is not None:
            reply = await self.responder(call)
            if reply is not None:
                return web.json_response(reply.body, status=reply.status, headers=reply.headers)
        self.sends.append(call)
        wamid = f"wamid.fake{next(self._ids):06d}"
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": call.to, "wa_id": call.to}],
                "messages": [{"id": wamid}],
            }
        )

    async def _upload(self, request: web.Request) -> web.Response:
        refused = self._unauthorised(request)
        if refused is not None:
            return refused
        form = await request.post()
        file = form.get("file")
        if form.get("messaging_product") != "whatsapp" or not isinstance(file, web.FileField):
            return web.json_response(GraphReply.error(400, 100, "Invalid parameter").body, status=400)
        media_id = f"upload-{next(self._ids)}"
        data = file.file.read()
        self.uploads.append(Upload(media_id, str(form.get("type")), file.filename, data))
        self.media[media_id] = (data, str(form.get("type")))
        return web.json_response({"id": media_id})

    async def _media(self, request: web.Request) -> web.Response:
        refused = self._unauthorised(request)
        if refused is not None:
            return refused
        media_id = request.match_info["media_id"]
        self.media_lookups.append(media_id)
        if media_id not in self.media:
            return web.json_response(GraphReply.error(404, 100, "Unsupported get request").body, status=404)
        data, mime = self.media[media_id]
        token = f"t{next(self._ids)}"
        expired = media_id in self.expire_urls_once
        self.expire_urls_once.discard(media_id)
        self._urls[token] = (media_id, expired)
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "url": f"{self.url}/lookaside/{token}",
                "mime_type": mime,
                "sha256": hashlib.sha256(data).hexdigest(),
                "file_size": len(data),
                "id": media_id,
            }
        )

    async def _file(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.access_token}":
            return web.Response(status=401)
        found = self._urls.get(request.match_info["token"])
        if found is None or found[1]:
            return web.Response(status=404)
        if self.file_delay_s:
            await asyncio.sleep(self.file_delay_s)
        data, mime = self.media[found[0]]
        return web.Response(body=data, content_type=mime.split(";")[0])


# ---------------------------------------------------------------------------- webhooks
def sign(app_secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def envelope(
    *,
    messages: Sequence[dict[str, Any]] = (),
    statuses: Sequence[dict[str, Any]] = (),
    contacts: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": "1234567890"},
    }
    if contacts:
        value["contacts"] = list(contacts)
    if messages:
        value["messages"] = list(messages)
    if statuses:
        value["statuses"] = list(statuses)
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA_ID", "changes": [{"value": value, "field": "messages"}]}],
    }


def contact(wa_id: str, name: str) -> dict[str, Any]:
    return {"profile": {"name": name}, "wa_id": wa_id}


def meta_message(
    wamid: str, wa_id: str, kind: str, section: dict[str, Any], timestamp: int | None = None
) -> dict[str, Any]:
    """One inbound message of type ``kind`` whose ``kind`` section is ``section``, sent at
    ``timestamp`` (Unix seconds; now by default: the gateway skips messages older than 7 days)."""
    sent = int(time.time()) if timestamp is None else timestamp
    return {"from": wa_id, "id": wamid, "timestamp": str(sent), "type": kind, kind: section}


def text_message(wamid: str, wa_id: str, text: str, timestamp: int | None = None) -> dict[str, Any]:
    return meta_message(wamid, wa_id, "text", {"body": text}, timestamp)


def audio_message(wamid: str, wa_id: str, media_id: str, timestamp: int | None = None) -> dict[str, Any]:
    section = {"id": media_id, "mime_type": "audio/ogg; codecs=opus", "sha256": "x", "voice": True}
    return meta_message(wamid, wa_id, "audio", section, timestamp)


def status(
    wamid: str, state: str, recipient: str, *, code: int | None = None, timestamp: int = 1749416400
) -> dict[str, Any]:
    item: dict[str, Any] = {"id": wamid, "status": state, "timestamp": str(timestamp), "recipient_id": recipient}
    if code is not None:
        item["errors"] = [
            {
                "code": code,
                "title": "Re-engagement message",
                "message": "Re-engagement message",
                "error_data": {"details": "Message failed to send because more than 24 hours have passed"},
            }
        ]
    return item


def body_bytes(payload: dict[str, Any]) -> bytes:
    """As Meta sends it: compact JSON with ASCII-escaped unicode."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=True).encode()
