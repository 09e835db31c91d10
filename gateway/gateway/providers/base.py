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
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from gateway.domain.failures import Failure, FailureKind, classify_http, parse_retry_after
from gateway.domain.media_hosts import MediaHosts, same_origin
from parley_shared.clock import Clock
from parley_shared.contracts import MediaRef, OutgoingMessage, Provider
from parley_shared.untrusted import json_loads

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
    """A media file that could not be fetched: ``transient`` says whether another attempt (with a
    freshly resolved link) can help; ``code`` is the kind of failure, for the records and the
    metrics: ``not_found``, ``timeout``, ``too_large``, ``wrong_type``, ``refused``, ``failed``."""

    def __init__(self, reason: str, *, transient: bool, code: str = "failed") -> None:
        super().__init__(reason)
        self.transient = transient
        self.code = code


class BodyTooLarge(Exception):
    """An answer (declared or actually sent) longer than the limit its reader set."""


READ_CHUNK_BYTES = 64 * 1024
# The largest provider answer read (a send, a Graph lookup, an error): real ones are a few KiB.
MAX_ANSWER_BYTES = 4 * 1024 * 1024
# Where media may travel inside the JSON as base64 (4/3 of the bytes) plus the envelope.
BASE64_MEDIA_FACTOR = 1.4


async def read_limited(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, read to its end (``content.read(n)`` returns only what is buffered), or
    :class:`BodyTooLarge` as soon as it is declared or found to be longer than ``limit``.

    A body cut short of its ``Content-Length`` raises aiohttp's ``ClientPayloadError``: never a
    truncated body returned as if complete.
    """
    if response.content_length is not None and response.content_length > limit:
        raise BodyTooLarge(f"declared {response.content_length} bytes, limit {limit}")
    data = bytearray()
    async for chunk in response.content.iter_chunked(READ_CHUNK_BYTES):
        data += chunk
        if len(data) > limit:
            raise BodyTooLarge(f"more than {limit} bytes")
    return bytes(data)


MAX_REDIRECTS = 3
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class AddressRefused(OSError):
    """A media host name that resolves to no public address (see ``domain/media_hosts.py``)."""


class PublicAddressResolver(AbstractResolver):
    """aiohttp's resolver, keeping only the addresses the media policy allows: the address rule is
    applied to what the connection will really use, after DNS, not to the name in the URL."""

    def __init__(self, policy: MediaHosts) -> None:
        self.policy = policy
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        resolved = await self._inner.resolve(host, port, family)
        allowed = [entry for entry in resolved if self.policy.address_allowed(entry["host"])]
        if not allowed:
            raise AddressRefused(f"{host} resolves to no public address")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: Mapping[str, str]
    body: Any  # parsed JSON, or None


class WhatsAppProvider(abc.ABC):
    name: Provider
    # The most provider calls one account takes at once (``SEND_CONCURRENCY`` is capped by it).
    max_concurrent_sends: int | None = None

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Open connections (called once the service starts)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Close connections."""

    async def release_waiters(self) -> None:  # noqa: B027 - optional hook
        """Shutdown begins: answer the HTTP requests parked on this provider (long polls) now,
        so that the server does not wait for them before stopping."""

    @abc.abstractmethod
    async def send(self, message: OutgoingMessage, to: str | None = None) -> SendResult:
        """Deliver one outgoing message to the chat ``to`` (the provider's own chat id the contact
        wrote from; the message's address when the gateway knows none); raise :class:`SendError`."""

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
        raise MediaError("media too large", transient=False, code="too_large")
    return Media(data, media.mime_type or "audio/ogg")


class HttpProvider(WhatsAppProvider):
    """Shared aiohttp sessions, timeouts and error mapping for the HTTP providers.

    Two sessions: one for the provider's own API (its configured base URL), one for media files
    at URLs a provider's answer names, guarded by the media policy (``MEDIA_HOSTS``).
    """

    def __init__(self, *, clock: Clock, timeout_s: float, max_media_bytes: int, media_hosts: MediaHosts) -> None:
        self.clock = clock
        self.timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(timeout_s, 10.0))
        self.max_media_bytes = max_media_bytes
        self.media_hosts = media_hosts
        self._session: aiohttp.ClientSession | None = None
        self._media_session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            # No keep-alive: a pooled connection the server already closed fails a send with
            # "disconnected" before we can tell whether it arrived (an unknown outcome, never
            # retried). A fresh connection per call costs little at a few sends a minute.
            connector = aiohttp.TCPConnector(force_close=True)
            self._session = aiohttp.ClientSession(timeout=self.timeout, connector=connector)
        if self._media_session is None:
            resolver = PublicAddressResolver(self.media_hosts)
            media = aiohttp.TCPConnector(force_close=True, resolver=resolver)
            self._media_session = aiohttp.ClientSession(timeout=self.timeout, connector=media)

    async def close(self) -> None:
        for session in (self._session, self._media_session):
            if session is not None:
                await session.close()
        self._session = self._media_session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("provider not started")
        return self._session

    @property
    def media_session(self) -> aiohttp.ClientSession:
        if self._media_session is None:
            raise RuntimeError("provider not started")
        return self._media_session

    @property
    def media_answer_bytes(self) -> int:
        """The cap of an answer that may carry a media file as base64 (Wappi's ``file_b64``, poll pages)."""
        return max(MAX_ANSWER_BYTES, int(self.max_media_bytes * BASE64_MEDIA_FACTOR))

    async def send_request(self, method: str, url: str, **kwargs: Any) -> HttpAnswer:
        """A non-idempotent call (a send): an answer, or :class:`SendError` for network trouble.

        A connection that could not be opened is transient (nothing left); a timeout or a
        connection lost after the request went out is ambiguous (it may have been delivered), and
        so is an answer too large to read (its message id is in there).
        """
        try:
            return await self._request(method, url, **kwargs)
        except BodyTooLarge as exc:
            log.warning("provider.answer_too_large", call="send", detail=str(exc))
            raise SendError(Failure(FailureKind.AMBIGUOUS, "answer_too_large", f"provider answer {exc}")) from exc
        except aiohttp.ClientConnectorError as exc:
            raise SendError(Failure(FailureKind.TRANSIENT, "network", f"cannot connect: {type(exc).__name__}")) from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise SendError(
                Failure(FailureKind.AMBIGUOUS, "network", f"no answer from the provider: {type(exc).__name__}")
            ) from exc

    async def get_json(self, url: str, *, max_bytes: int = MAX_ANSWER_BYTES, **kwargs: Any) -> HttpAnswer:
        """An idempotent call (media lookups, polls): network trouble, or an answer over
        ``max_bytes``, is :class:`ProviderUnavailable`."""
        try:
            return await self._request("GET", url, max_bytes=max_bytes, **kwargs)
        except BodyTooLarge as exc:
            log.warning("provider.answer_too_large", call="get", detail=str(exc))
            raise ProviderUnavailable(f"provider answer {exc}") from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise ProviderUnavailable(f"provider unreachable: {type(exc).__name__}") from exc

    async def _request(self, method: str, url: str, *, max_bytes: int = MAX_ANSWER_BYTES, **kwargs: Any) -> HttpAnswer:
        """Every provider answer is read through here, never more than ``max_bytes`` of it."""
        async with self.session.request(method, url, **kwargs) as response:
            raw = await read_limited(response, max_bytes)
            body: Any = None
            if raw:
                try:
                    body = json_loads(raw)
                except ValueError:
                    body = None
            return HttpAnswer(response.status, dict(response.headers), body)

    async def fetch_file(self, url: str, *, headers: Mapping[str, str] | None = None) -> Media:
        """GET a media file at a URL a provider answered (bounded size, ``MEDIA_HOSTS`` only).

        Every URL, the first and each redirect, must pass the media policy before a connection is
        opened; ``headers`` (the token) never follow a redirect to another origin. A 403/404/410
        means the link expired: transient, resolve anew.
        """
        target = _url(url)
        for _ in range(MAX_REDIRECTS + 1):
            refusal = self.media_hosts.refusal(target)
            if refusal is not None:
                log.warning("provider.media_refused", host=target.host, reason=refusal)
                raise MediaError(f"media url refused: {refusal}", transient=False, code="refused")
            try:
                async with self.media_session.get(target, headers=headers, allow_redirects=False) as response:
                    if response.status in REDIRECT_STATUSES and "Location" in response.headers:
                        following = target.join(_url(response.headers["Location"]))
                        if not same_origin(target, following):
                            headers = None
                        target = following
                        continue
                    return await self._read_media(response)
            except aiohttp.ClientConnectorError as exc:
                if isinstance(exc.os_error, AddressRefused):
                    log.warning("provider.media_refused", host=target.host, reason="no public address")
                    raise MediaError(f"media url refused: {exc.os_error}", transient=False, code="refused") from exc
                raise MediaError(f"media download failed: {type(exc).__name__}", transient=True) from exc
            except TimeoutError as exc:
                raise MediaError("media download timed out", transient=True, code="timeout") from exc
            except aiohttp.ClientError as exc:
                raise MediaError(f"media download failed: {type(exc).__name__}", transient=True) from exc
        raise MediaError(f"media host redirected more than {MAX_REDIRECTS} times", transient=False)

    async def _read_media(self, response: aiohttp.ClientResponse) -> Media:
        if response.status in (403, 404, 410):
            raise MediaError(f"media link answered {response.status} (expired?)", transient=True, code="not_found")
        if response.status >= 500 or response.status == 429:
            raise MediaError(f"media host answered {response.status}", transient=True)
        if response.status >= 400 or response.status in REDIRECT_STATUSES:
            raise MediaError(f"media host answered {response.status}", transient=False)
        try:
            data = await read_limited(response, self.max_media_bytes)
        except BodyTooLarge:
            raise MediaError("media too large", transient=False, code="too_large") from None
        mime = response.headers.get("Content-Type", "application/octet-stream")
        return Media(data, mime)

    def failure_from(self, answer: HttpAnswer, code: str | None, reason: str) -> Failure:
        retry_after = parse_retry_after(answer.headers.get("Retry-After"), self.clock.now())
        return classify_http(answer.status, code, reason, retry_after)


def _url(text: str) -> URL:
    try:
        return URL(text)
    except ValueError:
        raise MediaError("media url is not a url", transient=False) from None
