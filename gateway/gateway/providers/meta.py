"""Meta WhatsApp Cloud API: sends through the Graph API, media through the two-step download.

Inbound messages arrive on the webhook (``api/webhooks.py``). A follow-up that carries a
``template`` is sent as that approved template (needed outside the 24-hour window); the
follow-up text fills the template's single body variable ``{{1}}``. A file is uploaded once
(``POST /{phone number id}/media``) and sent by its media id, reused by content while Meta keeps
it (``gateway/uploads.py``); a WebP image is converted first (Meta refuses WebP images). Choices
go as reply buttons or a list (``interactive``).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import aiohttp

from gateway import metrics
from gateway.domain.choices import numbered
from gateway.domain.failures import Failure, FailureKind
from gateway.images import ImageError, without_webp
from gateway.providers.base import (
    BodyTooLarge,
    HttpAnswer,
    HttpProvider,
    Media,
    MediaError,
    ProviderUnavailable,
    SendError,
    SendResult,
    inline_media,
)
from gateway.settings import GatewaySettings
from gateway.uploads import UploadedMedia
from parley_shared.clock import Clock
from parley_shared.contracts import Choices, MediaRef, OutgoingMedia, OutgoingMessage, Provider
from parley_shared.phone import digits_only

# Graph errors saying a media id is no longer usable: the upload is forgotten and made again.
STALE_MEDIA_CODES = frozenset({"131053", "131052"})


def graph_error(answer: HttpAnswer) -> tuple[str | None, str]:
    """(code, readable reason) from a Graph API error body."""
    error = answer.body.get("error") if isinstance(answer.body, dict) else None
    if not isinstance(error, dict):
        return None, f"graph answered {answer.status}"
    code = error.get("code")
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    message = details or error.get("message") or error.get("title") or f"graph answered {answer.status}"
    code_text = str(code) if isinstance(code, int | str) and not isinstance(code, bool) else None
    return code_text, str(message)[:500]


MAX_BUTTON_BODY = 1024  # an interactive message's body; longer text goes with numbered options


def recipient_digits(to: str) -> str:
    """What Graph expects in ``to``: the wa_id digits of the chat (never a number rebuilt)."""
    return digits_only(to.split("@", 1)[0])


def message_body(message: OutgoingMessage, to: str | None = None, media_id: str | None = None) -> dict[str, Any]:
    """The Graph API body of one message: a template, a file (by its uploaded ``media_id``),
    reply buttons or a list, or text."""
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": recipient_digits(to or message.phone),
    }
    if message.template is not None:
        body["type"] = "template"
        body["template"] = {
            "name": message.template.name,
            "language": {"code": message.template.language},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": message.text}]}],
        }
    elif message.media is not None and media_id is not None:
        kind = message.media.kind
        section: dict[str, Any] = {"id": media_id, "caption": message.text}
        if kind == "document":
            section["filename"] = message.media.file_name
        body["type"] = kind
        body[kind] = section
    elif message.choices is not None and len(message.text) <= MAX_BUTTON_BODY:
        body["type"] = "interactive"
        body["interactive"] = interactive(message.text, message.choices)
    else:
        text = numbered(message.text, message.choices) if message.choices is not None else message.text
        body["type"] = "text"
        body["text"] = {"body": text, "preview_url": False}
    return body


def interactive(text: str, choices: Choices) -> dict[str, Any]:
    """Reply buttons (up to 3) or a list (up to 10 rows), as Graph shapes them."""
    if choices.style == "buttons":
        buttons = [{"type": "reply", "reply": {"id": o.id, "title": o.title}} for o in choices.options]
        return {"type": "button", "body": {"text": text}, "action": {"buttons": buttons}}
    rows = []
    for option in choices.options:
        row = {"id": option.id, "title": option.title}
        if option.description:
            row["description"] = option.description
        rows.append(row)
    return {
        "type": "list",
        "body": {"text": text},
        "action": {
            "button": choices.button or "Options",
            "sections": [{"title": choices.button or "Options", "rows": rows}],
        },
    }


class MetaProvider(HttpProvider):
    name = Provider.META

    def __init__(self, settings: GatewaySettings, clock: Clock, uploads: UploadedMedia | None = None) -> None:
        super().__init__(
            clock=clock,
            timeout_s=settings.send_timeout_s,
            max_media_bytes=settings.max_media_bytes,
            media_hosts=settings.media_policy(),
        )
        self.graph_url = f"{settings.meta_graph_base_url.rstrip('/')}/{settings.meta_api_version}"
        self.phone_number_id = settings.meta_phone_number_id
        self._token = settings.meta_access_token.get_secret_value() if settings.meta_access_token else ""
        self.uploads = uploads

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    async def send(self, message: OutgoingMessage, to: str | None = None) -> SendResult:
        media_id = (
            await self._media_id(message.media) if message.media is not None and message.template is None else None
        )
        answer = await self.send_request(
            "POST",
            f"{self.graph_url}/{self.phone_number_id}/messages",
            json=message_body(message, to, media_id),
            headers=self.headers,
        )
        if answer.status == 200 and isinstance(answer.body, dict):
            messages = answer.body.get("messages")
            if isinstance(messages, list) and messages and isinstance(messages[0], dict):
                wamid = messages[0].get("id")
                return SendResult(wamid if isinstance(wamid, str) else None)
        code, reason = graph_error(answer)
        if (
            media_id is not None
            and code in STALE_MEDIA_CODES
            and self.uploads is not None
            and message.media is not None
        ):
            await self.uploads.forget(message.media.sha256)  # the next attempt uploads it again
        raise SendError(self.failure_from(answer, code, f"meta: {reason}"))

    async def _media_id(self, media: OutgoingMedia) -> str:
        """The media id to send the file by: an upload of the same content still valid, or a new one
        (nothing is sent to the prospect by an upload, so a failed one is simply tried again)."""
        if self.uploads is not None:
            known = await self.uploads.media_id(media.sha256)
            if known is not None:
                metrics.MEDIA_UPLOADS.labels("reused").inc()
                return known
        try:
            data = base64.b64decode(media.data_b64, validate=True)
        except (binascii.Error, ValueError):
            raise SendError(Failure(FailureKind.PERMANENT, "bad_media", "the file is not valid base64")) from None
        mime, file_name = media.mime_type, media.file_name
        if media.kind == "image":
            try:
                data, mime, file_name = await without_webp(data, mime, file_name)
            except ImageError as exc:
                raise SendError(Failure(FailureKind.PERMANENT, "bad_media", str(exc))) from None
        form = aiohttp.FormData()
        form.add_field("messaging_product", "whatsapp")
        form.add_field("type", mime)
        form.add_field("file", data, filename=file_name, content_type=mime)
        try:
            answer = await self._request(
                "POST", f"{self.graph_url}/{self.phone_number_id}/media", data=form, headers=self.headers
            )
        except (TimeoutError, aiohttp.ClientError, BodyTooLarge) as exc:
            # An upload that went wrong delivered nothing to anyone: another attempt is safe.
            raise SendError(
                Failure(FailureKind.TRANSIENT, "upload", f"media upload failed: {type(exc).__name__}")
            ) from exc
        uploaded = answer.body.get("id") if answer.status == 200 and isinstance(answer.body, dict) else None
        if not isinstance(uploaded, str) or not uploaded:
            code, reason = graph_error(answer)
            failure = self.failure_from(answer, code, f"meta upload: {reason}")
            if failure.kind is FailureKind.AMBIGUOUS:
                failure = Failure(FailureKind.TRANSIENT, failure.code, failure.reason, failure.retry_after_s)
            raise SendError(failure)
        metrics.MEDIA_UPLOADS.labels("uploaded").inc()
        if self.uploads is not None:
            await self.uploads.remember(media.sha256, uploaded)
        return uploaded

    async def download_media(self, media: MediaRef) -> Media:
        """Step 1: the media id gives a short-lived URL; step 2: GET it with the same token."""
        inline = inline_media(media, self.max_media_bytes)
        if inline is not None:
            return inline
        if not media.media_id:
            raise MediaError("no Meta media id to download", transient=False)
        try:
            answer = await self.get_json(f"{self.graph_url}/{media.media_id}", headers=self.headers)
        except ProviderUnavailable as exc:
            timed_out = isinstance(exc.__cause__, TimeoutError)
            raise MediaError(str(exc), transient=True, code="timeout" if timed_out else "failed") from exc
        if answer.status != 200 or not isinstance(answer.body, dict):
            code, reason = graph_error(answer)
            failure = self.failure_from(answer, code, reason)
            found = "not_found" if answer.status in (400, 404) else "failed"
            raise MediaError(f"meta media lookup: {reason}", transient=failure.retryable, code=found)
        url = answer.body.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise MediaError("meta media lookup returned no url", transient=True)
        fetched = await self.fetch_file(url, headers=self.headers)
        mime = answer.body.get("mime_type")
        return Media(fetched.data, mime if isinstance(mime, str) else media.mime_type or fetched.mime_type)
