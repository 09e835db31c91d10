"""Meta WhatsApp Cloud API: sends through the Graph API, media through the two-step download.

Inbound messages arrive on the webhook (``api/webhooks.py``). A follow-up that carries a
``template`` is sent as that approved template (needed outside the 24-hour window); the
follow-up text fills the template's single body variable ``{{1}}``.
"""

from __future__ import annotations

from typing import Any

from gateway.providers.base import (
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
from parley_shared.clock import Clock
from parley_shared.contracts import MediaRef, OutgoingMessage, Provider
from parley_shared.phone import digits_only


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


def message_body(message: OutgoingMessage) -> dict[str, Any]:
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": digits_only(message.phone),
    }
    if message.template is not None:
        body["type"] = "template"
        body["template"] = {
            "name": message.template.name,
            "language": {"code": message.template.language},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": message.text}]}],
        }
    else:
        body["type"] = "text"
        body["text"] = {"body": message.text, "preview_url": False}
    return body


class MetaProvider(HttpProvider):
    name = Provider.META

    def __init__(self, settings: GatewaySettings, clock: Clock) -> None:
        super().__init__(
            clock=clock,
            timeout_s=settings.send_timeout_s,
            max_media_bytes=settings.max_media_bytes,
            media_hosts=settings.media_policy(),
        )
        self.graph_url = f"{settings.meta_graph_base_url.rstrip('/')}/{settings.meta_api_version}"
        self.phone_number_id = settings.meta_phone_number_id
        self._token = settings.meta_access_token.get_secret_value() if settings.meta_access_token else ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    async def send(self, message: OutgoingMessage) -> SendResult:
        answer = await self.send_request(
            "POST",
            f"{self.graph_url}/{self.phone_number_id}/messages",
            json=message_body(message),
            headers=self.headers,
        )
        if answer.status == 200 and isinstance(answer.body, dict):
            messages = answer.body.get("messages")
            if isinstance(messages, list) and messages and isinstance(messages[0], dict):
                wamid = messages[0].get("id")
                return SendResult(wamid if isinstance(wamid, str) else None)
        code, reason = graph_error(answer)
        raise SendError(self.failure_from(answer, code, f"meta: {reason}"))

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
            raise MediaError(str(exc), transient=True) from exc
        if answer.status != 200 or not isinstance(answer.body, dict):
            code, reason = graph_error(answer)
            failure = self.failure_from(answer, code, reason)
            raise MediaError(f"meta media lookup: {reason}", transient=failure.retryable)
        url = answer.body.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise MediaError("meta media lookup returned no url", transient=True)
        fetched = await self.fetch_file(url, headers=self.headers)
        mime = answer.body.get("mime_type")
        return Media(fetched.data, mime if isinstance(mime, str) else media.mime_type or fetched.mime_type)
