"""Wappi (wappi.pro): polled for inbound messages, sends through its sync API.

Replies go to the chat the prospect wrote from. Wappi has no buttons: choices are sent as
numbered lines (a number typed back answers like a tap). Files go through its image and document
sends with the file as base64.

Every call carries ``profile_id`` and the raw token as ``Authorization`` (no "Bearer"). Calls to
one profile are serialised: concurrent calls have been reported to mix up responses.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Any
from urllib.parse import urlparse

from gateway.domain.admission import PayloadError
from gateway.domain.choices import numbered
from gateway.domain.wappi import WappiMessage, read_page
from gateway.providers.base import (
    HttpProvider,
    Media,
    MediaError,
    ProviderUnavailable,
    SendError,
    SendResult,
    inline_media,
)
from gateway.settings import GatewaySettings
from parley_shared.clock import Clock
from parley_shared.contracts import MediaRef, OutgoingMessage, Provider
from parley_shared.phone import digits_only


def recipient(to: str) -> str:
    """Wappi's ``recipient``: the digits of a number's chat (``79115576362``); a chat without a
    number (``…@lid``) by its whole chat id (*unconfirmed*: Wappi documents only numbers)."""
    if to.endswith(("@c.us", "@s.whatsapp.net")) or "@" not in to:
        return digits_only(to.split("@", 1)[0])
    return to


def request_body(message: OutgoingMessage, to: str | None = None) -> tuple[str, dict[str, Any]]:
    """(path under ``/api/sync/message/``, JSON body) of one send."""
    target = recipient(to or message.phone)
    media = message.media
    if media is not None and media.kind == "image":
        return "img/send", {"recipient": target, "caption": message.text, "b64_file": media.data_b64}
    if media is not None:
        body = {"recipient": target, "caption": message.text, "file_name": media.file_name, "b64_file": media.data_b64}
        return "document/send", body
    text = numbered(message.text, message.choices) if message.choices is not None else message.text
    return "send", {"recipient": target, "body": text}


def _detail(body: Any) -> str:
    if isinstance(body, dict):
        detail = body.get("detail") or body.get("message") or body.get("status")
        if isinstance(detail, str):
            return detail[:300]
    return "no detail"


class WappiProvider(HttpProvider):
    name = Provider.WAPPI
    # Wappi's rate limits are not documented and concurrent calls to one profile have been
    # reported to mix up responses: one call at a time.
    max_concurrent_sends = 1

    def __init__(self, settings: GatewaySettings, clock: Clock) -> None:
        super().__init__(
            clock=clock,
            timeout_s=settings.send_timeout_s,
            max_media_bytes=settings.max_media_bytes,
            media_hosts=settings.media_policy(),
        )
        self.base_url = settings.wappi_base_url.rstrip("/")
        self.profile_id = settings.wappi_profile_id
        self._token = settings.wappi_token.get_secret_value() if settings.wappi_token else ""
        self._lock = asyncio.Lock()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": self._token}

    def _params(self, **extra: Any) -> dict[str, str]:
        return {"profile_id": self.profile_id, **{k: str(v) for k, v in extra.items()}}

    # ---------------------------------------------------------------- polling
    async def fetch_page(self, *, limit: int, offset: int) -> tuple[list[WappiMessage], int]:
        """One newest-first page of the account's messages: (valid messages, items on the page)."""
        async with self._lock:
            answer = await self.get_json(
                f"{self.base_url}/api/sync/messages/all/get",
                params=self._params(limit=limit, offset=offset, order="desc"),
                headers=self.headers,
                max_bytes=self.media_answer_bytes,  # media messages may carry their file in ``body``
            )
        if answer.status == 429 or answer.status >= 500:
            raise ProviderUnavailable(f"wappi answered {answer.status}")
        if answer.status >= 400:
            raise PayloadError(f"wappi refused the poll ({answer.status}): {_detail(answer.body)}")
        return read_page(answer.body)

    # ---------------------------------------------------------------- sending
    async def send(self, message: OutgoingMessage, to: str | None = None) -> SendResult:
        """Text (choices as numbered lines: Wappi has no buttons), or an image or a document with its
        caption (``img/send``, ``document/send``, the file as base64)."""
        path, payload = request_body(message, to)
        async with self._lock:
            answer = await self.send_request(
                "POST",
                f"{self.base_url}/api/sync/message/{path}",
                params=self._params(),
                json=payload,
                headers=self.headers,
            )
        body = answer.body
        if answer.status == 200 and isinstance(body, dict) and body.get("status") == "done":
            provider_id = body.get("message_id")
            return SendResult(provider_id if isinstance(provider_id, str) else None)
        raise SendError(self.failure_from(answer, None, f"wappi: {_detail(body)}"))

    # ---------------------------------------------------------------- media
    async def download_media(self, media: MediaRef) -> Media:
        inline = inline_media(media, self.max_media_bytes)
        if inline is not None:
            return inline
        if not media.media_id:
            raise MediaError("no Wappi message id to download", transient=False)
        try:
            async with self._lock:
                answer = await self.get_json(
                    f"{self.base_url}/api/sync/message/media/download",
                    params=self._params(message_id=media.media_id),
                    headers=self.headers,
                    max_bytes=self.media_answer_bytes,  # ``file_b64``
                )
        except ProviderUnavailable as exc:
            timed_out = isinstance(exc.__cause__, TimeoutError)
            raise MediaError(str(exc), transient=True, code="timeout" if timed_out else "failed") from exc
        body = answer.body if isinstance(answer.body, dict) else {}
        if answer.status >= 400 or body.get("status") == "error":
            failure = self.failure_from(answer, None, _detail(body))
            found = "not_found" if answer.status == 404 else "failed"
            raise MediaError(f"wappi media: {failure.reason}", transient=failure.retryable, code=found)
        mime = body.get("mime_type") if isinstance(body.get("mime_type"), str) else None
        mime = mime or media.mime_type or "application/octet-stream"
        if isinstance(body.get("file_b64"), str):
            try:
                data = base64.b64decode(body["file_b64"], validate=True)
            except (binascii.Error, ValueError):
                raise MediaError("wappi media: file_b64 is not base64", transient=True) from None
            if len(data) > self.max_media_bytes:
                raise MediaError("media too large", transient=False)
            return Media(data, mime)
        link = body.get("file_link")
        if not isinstance(link, str) or not link.startswith(("http://", "https://")):
            raise MediaError("wappi media: neither file_link nor file_b64", transient=True)
        # The token goes only to Wappi's own host, never to a CDN.
        same_host = urlparse(link).netloc == urlparse(self.base_url).netloc
        fetched = await self.fetch_file(link, headers=self.headers if same_host else None)
        return Media(fetched.data, mime if mime != "application/octet-stream" else fetched.mime_type)
