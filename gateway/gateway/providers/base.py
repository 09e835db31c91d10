"""The provider interface every WhatsApp provider implements, and the HTTP plumbing they share.

A provider sends text (:meth:`Provider.send`), fetches media (:meth:`Provider.download_media`)
and reports its own health. Receiving differs by provider (Wappi is polled by
``workers/poller.py``, Meta pushes to ``api/webhooks.py``, the sandbox is posted to by
``api/sandbox.py``) but every path ends in the same :class:`gateway.ingest.Ingestor`.

Errors are typed: :class:`SendError` carries a :class:`~gateway.domain.failures.Failure` that says
whether the sender may retry; :class:`MediaError` says whether another download attempt (with a
freshly resolved link) can help.
"""

from __future__ import annotations

import abc
import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog

from gateway.domain.failures import Failure, FailureKind, classify_http, parse_retry_after
from parley_shared.clock import Clock
from parley_shared.contracts import MediaRef, OutgoingMessage, Provider

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str | None


class SendError(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(f"{failure.kind.value} {failure.code}: {failure.reason}")
        self.failure = failure


@dataclass(frozen=True)
class Media:
    data: bytes
    mime_type: str


class ProviderUnavailable(Exception):
    """The provider could not be reached (an idempotent call may simply be tried again)."""


class MediaError(Exception):
    def __init__(self, reason: str, *, transient: bool) -> None:
        super().__init__(reason)
        self.transient = transient


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: Mapping[str, str]
    body: Any  # parsed JSON, or None


class WhatsAppProvider(abc.ABC):
    name: Provider

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open connections (called once the service starts)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Close connections."""

    async def release_waiters(self) -> None:  # noqa: B027 - optional hook
        """Shutdown begins: answer the HTTP requests parked on this provider (long polls) now,
        so that the server does not wait for them before stopping."""

    @abc.abstractmethod
    async def send(self, message: OutgoingMessage) -> SendResult:
        """Deliver one outgoing message; raise :class:`SendError`."""

    @abc.abstractmethod
    async def download_media(self, media: MediaRef) -> Media:
        """Fetch a media file, resolving a fresh link each call; raise :class:`MediaError`."""

    async def health(self) -> dict[str, Any]:
        return {"ok": True, "provider": self.name.value}


def inline_media(media: MediaRef, max_bytes: int) -> Media | None:
    """Media carried inline (the sandbox's ``voice_base64``), or None when it travels by reference."""
    if not media.inline_b64:
        return None
    try:
        data = base64.b64decode(media.inline_b64, validate=True)
    except (binascii.Error, ValueError):
        raise MediaError("inline media is not valid base64", transient=False) from None
    if len(data) > max_bytes:
        raise MediaError("media too large", transient=False)
    return Media(data, media.mime_type or "audio/ogg")


class HttpProvider(WhatsAppProvider):
    """Shared aiohttp session, timeouts and error mapping for the HTTP providers."""

    def __init__(self, *, clock: Clock, timeout_s: float, max_media_bytes: int) -> None:
        self.clock = clock
        self.timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(timeout_s, 10.0))
        self.max_media_bytes = max_media_bytes
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            # No keep-alive: a pooled connection the server already closed fails a send with
            # "disconnected" before we can tell whether it arrived (an unknown outcome, never
            # retried). A fresh connection per call costs little at a few sends a minute.
            connector = aiohttp.TCPConnector(force_close=True)
            self._session = aiohttp.ClientSession(timeout=self.timeout, connector=connector)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("provider not started")
        return self._session

    async def send_request(self, method: str, url: str, **kwargs: Any) -> HttpAnswer:
        """A non-idempotent call (a send): an answer, or :class:`SendError` for network trouble.

        A connection that could not be opened is transient (nothing left); a timeout or a
        connection lost after the request went out is ambiguous (it may have been delivered).
        """
        try:
            return await self._request(method, url, **kwargs)
        except aiohttp.ClientConnectorError as exc:
            raise SendError(Failure(FailureKind.TRANSIENT, "network", f"cannot connect: {type(exc).__name__}")) from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise SendError(
                Failure(FailureKind.AMBIGUOUS, "network", f"no answer from the provider: {type(exc).__name__}")
            ) from exc

    async def get_json(self, url: str, **kwargs: Any) -> HttpAnswer:
        """An idempotent call (media lookups, polls): network trouble is :class:`ProviderUnavailable`."""
        try:
            return await self._request("GET", url, **kwargs)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise ProviderUnavailable(f"provider unreachable: {type(exc).__name__}") from exc

    async def _request(self, method: str, url: str, **kwargs: Any) -> HttpAnswer:
        async with self.session.request(method, url, **kwargs) as response:
            raw = await response.read()
            body: Any = None
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
            return HttpAnswer(response.status, dict(response.headers), body)

    async def fetch_file(self, url: str, *, headers: Mapping[str, str] | None = None) -> Media:
        """GET a media file (bounded size). A 403/404/410 means the link expired: transient, resolve anew."""
        try:
            async with self.session.get(url, headers=headers) as response:
                if response.status in (403, 404, 410):
                    raise MediaError(f"media link answered {response.status} (expired?)", transient=True)
                if response.status >= 500 or response.status == 429:
                    raise MediaError(f"media host answered {response.status}", transient=True)
                if response.status >= 400:
                    raise MediaError(f"media host answered {response.status}", transient=False)
                if (response.content_length or 0) > self.max_media_bytes:
                    raise MediaError("media too large", transient=False)
                data = await response.content.read(self.max_media_bytes + 1)
                if len(data) > self.max_media_bytes:
                    raise MediaError("media too large", transient=False)
                mime = response.headers.get("Content-Type", "application/octet-stream")
                return Media(data, mime)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise MediaError(f"media download failed: {type(exc).__name__}", transient=True) from exc

    def failure_from(self, answer: HttpAnswer, code: str | None, reason: str) -> Failure:
        retry_after = parse_retry_after(answer.headers.get("Retry-After"), self.clock.now())
        return classify_http(answer.status, code, reason, retry_after)
