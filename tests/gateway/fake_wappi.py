"""A fake Wappi API (aiohttp) speaking the real shapes (``shared/reference/providers.md``).

Point the gateway at it with ``WAPPI_BASE_URL=fake.url``. It holds an account's messages and
serves them newest-first with ``limit``/``offset``; it checks the raw ``Authorization`` token and
``profile_id`` like Wappi does; it records sends and serves media by link or base64.

Hooks for tests:

* ``fake.on_page = async def (offset: int) -> None`` runs before a page is served (add messages
  mid-poll to shift pages, or block on an event to "crash" the gateway mid-poll);
* ``fake.send_responder = async def (call: dict) -> tuple[status, body, headers] | None``;
  a send call records ``recipient``, ``body``, the ``path`` it was posted to, and for image and
  document sends (``img/send``, ``document/send``) ``caption``, ``file_name`` and ``b64_file``;
* ``fake.expire_links_once`` -- media ids whose first file link answers 404 (expired).
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from tests.support.fake_http import FakeHTTPServer

SendReply = tuple[int, dict[str, Any], dict[str, str]]


def wappi_message(
    message_id: str,
    sender: str,
    time: int,
    *,
    body: str = "",
    type: str = "chat",
    from_me: bool = False,
    name: str = "Prospect",
    caption: str = "",
    mimetype: str | None = None,
) -> dict[str, Any]:
    """One message as ``messages/all/get`` returns it (``sender`` is a digits phone or a group id)."""
    chat_id = sender if "@" in sender else f"{sender}@c.us"
    message: dict[str, Any] = {
        "id": message_id,
        "type": type,
        "from": "77000000000@c.us" if from_me else chat_id,
        "to": chat_id if from_me else "77000000000@c.us",
        "fromMe": from_me,
        "senderName": name,
        "time": time,
        "body": body,
        "chatId": chat_id,
        "isForwarded": False,
        "isReply": False,
        "caption": caption,
        "isDeleted": False,
    }
    if mimetype:
        message["mimetype"] = mimetype
    return message


class FakeWappi(FakeHTTPServer):
    def __init__(self, *, token: str = "wappi-token", profile_id: str = "profile-1") -> None:  # noqa: S107
        self.token = token
        self.profile_id = profile_id
        self.messages: list[dict[str, Any]] = []
        self.media: dict[str, tuple[bytes, str]] = {}
        self.media_as_base64: set[str] = set()
        self.expire_links_once: set[str] = set()
        self.sent: list[dict[str, Any]] = []
        self.page_requests: list[tuple[int, int]] = []
        self.media_requests: list[str] = []
        self.on_page: Callable[[int], Awaitable[None]] | None = None
        self.send_responder: Callable[[dict[str, Any]], Awaitable[SendReply | None]] | None = None
        self._ids = itertools.count(1)
        self._links: dict[str, tuple[str, bool]] = {}  # link token -> (message id, expired)

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/api/sync/messages/all/get", self._messages)
        app.router.add_post("/api/sync/message/send", self._send)
        app.router.add_post("/api/sync/message/img/send", self._send)
        app.router.add_post("/api/sync/message/document/send", self._send)
        app.router.add_get("/api/sync/message/media/download", self._media)
        app.router.add_get("/files/{link}", self._file)

    # ---------------------------------------------------------------- shared checks
    def _refuse(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != self.token:
            return web.json_response({"status": "error", "detail": "Unauthorized"}, status=401)
        if request.query.get("profile_id") != self.profile_id:
            return web.json_response({"status": "error", "detail": "Profile not found"}, status=400)
        return None

    # ---------------------------------------------------------------- routes
    async def _messages(self, request: web.Request) -> web.Response:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        limit = int(request.query.get("limit", "20"))
        offset = int(request.query.get("offset", "0"))
        self.page_requests.append((limit, offset))
        if self.on_page is not None:
            await self.on_page(offset)
        # newest first; messages of the same second keep a stable (reverse insertion) order
        ordered = [m for _, m in sorted(enumerate(self.messages), key=lambda p: (p[1]["time"], p[0]), reverse=True)]
        page = ordered[offset : offset + limit]
        return web.json_response(
            {"status": "done", "timestamp": 1720780615, "messages": page, "total_count": len(self.messages)}
        )

    async def _send(self, request: web.Request) -> web.Response:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        body = await request.json()
        call = {"recipient": body.get("recipient"), "body": body.get("body"), "path": request.path}
        for key in ("caption", "file_name", "b64_file"):  # image and document sends
            if key in body:
                call[key] = body[key]
        if self.send_responder is not None:
            reply = await self.send_responder(call)
            if reply is not None:
                status, payload, headers = reply
                return web.json_response(payload, status=status, headers=headers)
        self.sent.append(call)
        return web.json_response({"status": "done", "message_id": f"3EB0{next(self._ids):06d}", "task_id": "t"})

    async def _media(self, request: web.Request) -> web.Response:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        message_id = request.query.get("message_id", "")
        self.media_requests.append(message_id)
        if message_id not in self.media:
            return web.json_response({"status": "error", "detail": "Message not found"}, status=404)
        data, mime = self.media[message_id]
        answer: dict[str, Any] = {"status": "done", "file_name": f"{message_id}.ogg", "media_type": "ptt"}
        answer["mime_type"] = mime
        if message_id in self.media_as_base64:
            answer["file_b64"] = base64.b64encode(data).decode()
        else:
            link = f"l{next(self._ids)}"
            expired = message_id in self.expire_links_once
            self.expire_links_once.discard(message_id)
            self._links[link] = (message_id, expired)
            answer["file_link"] = f"{self.url}/files/{link}"
            answer["file_link_expire"] = 1720780615
        return web.json_response(answer)

    async def _file(self, request: web.Request) -> web.Response:
        found = self._links.get(request.match_info["link"])
        if found is None or found[1]:
            return web.Response(status=404, text="expired")
        data, mime = self.media[found[0]]
        return web.Response(body=data, content_type=mime.split(";")[0])
