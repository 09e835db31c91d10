"""Fetching and keeping the files prospects send: the keeper the media worker and the
transcriber share (the store itself is ``gateway/media_store.py``).

* :class:`MediaKeeper` -- download a message's file through its provider (every attempt resolves
  the provider's link anew: an expired link is simply fetched again), check it
  (``MAX_MEDIA_BYTES``, ``domain/media_policy.py``), write it, and say what became of it as the
  :class:`MediaRef` the agent records: ``stored``, ``size``, ``sha256``, ``mime_type`` -- or
  ``error``, a clear reason (not found, timed out, too large, wrong type, refused). A file that
  could not be kept never stops its message: the prospect still gets an answer.

Each kept file has a ``media_files`` row (:func:`gateway.media_store.record_file`, written by the
caller in the transaction that publishes the message): managers fetch it at ``GET /media/{key}``;
erasing a contact deletes its files.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from sqlalchemy import update

from gateway import metrics
from gateway.db import tables
from gateway.domain.media_policy import base_type, refusal
from gateway.ingest import INBOUND
from gateway.media_store import MediaStore, record_file
from gateway.providers.base import Media, MediaError, WhatsAppProvider
from parley_shared.contracts import IncomingMessage, MediaRef, MessageKind
from parley_shared.retry import Backoff
from parley_shared.service import Runtime
from parley_shared.topology import INCOMING

log = structlog.get_logger(__name__)
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Kept:
    """What became of a message's file: the reference to publish, and the file when it was kept."""

    ref: MediaRef
    media: Media | None


class MediaKeeper:
    def __init__(
        self,
        *,
        provider: WhatsAppProvider,
        store: MediaStore,
        attempts: int,
        backoff_s: float,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.provider = provider
        self.store = store
        self.attempts = attempts
        self.backoff = Backoff(first_s=backoff_s, max_s=30.0, attempts=attempts)
        self.sleep = sleep

    async def download(self, media: MediaRef) -> Media:
        """The file, with retries: each attempt resolves the provider's link anew."""
        fetched: Media = await self.backoff.call(
            lambda: self.provider.download_media(media),
            name="media.download",
            retry_if=lambda exc: isinstance(exc, MediaError) and exc.transient,
            sleep=self.sleep,
        )
        return fetched

    async def keep(self, key: str, kind: MessageKind, media: MediaRef) -> Kept:
        """Fetch, check and write the file of the message ``key``; never raises for the file's sake."""
        provider = self.provider.name.value
        bare = media.model_copy(update={"inline_b64": None})
        try:
            fetched = await self.download(media)
        except MediaError as exc:
            metrics.MEDIA.labels(provider, exc.code).inc()
            log.warning("media.download_failed", code=exc.code, reason=str(exc), message_id=key)
            return Kept(bare.model_copy(update={"error": f"{exc.code}: {exc}"[:500]}), None)
        mime = base_type(
            fetched.mime_type if base_type(fetched.mime_type) != "application/octet-stream" else media.mime_type
        )
        problem = refusal(kind, mime, fetched.data)
        if problem is not None:
            metrics.MEDIA.labels(provider, "wrong_type").inc()
            log.warning("media.refused", code="wrong_type", reason=problem, message_id=key)
            return Kept(
                bare.model_copy(update={"error": f"wrong_type: {problem}"[:500], "size": len(fetched.data)}), None
            )
        await self.store.write(key, fetched.data)
        metrics.MEDIA.labels(provider, "kept").inc()
        ref = bare.model_copy(
            update={
                "stored": key,
                "size": len(fetched.data),
                "sha256": hashlib.sha256(fetched.data).hexdigest(),
                "mime_type": media.mime_type or mime,
            }
        )
        return Kept(ref, Media(fetched.data, mime))


async def already_forwarded(runtime: Runtime, request_id: str) -> bool:
    """Whether a media or voice request was handled before (its inbox row exists): a redelivered
    copy need not download the file again."""
    async with runtime.sessions() as session:
        return await runtime.inbox.seen(session, request_id)


async def forward(
    runtime: Runtime,
    *,
    queue: str,
    request_id: str,
    message: IncomingMessage,
    kept: Kept,
    status: str,
    error: str | None,
) -> bool:
    """The end of the media worker's and the transcriber's work, in one transaction: the request
    claimed in the inbox, ``message`` staged for ``incoming_messages``, the kept file recorded and
    the inbound log row given its ``status``; published after the commit. False (nothing written)
    if it was handled before."""
    now = runtime.clock.now()
    async with runtime.sessions() as session, session.begin():
        if not await runtime.inbox.claim(session, queue, request_id):
            return False
        await runtime.outbox.add(session, INCOMING, message, cause_id=request_id)
        if kept.ref.stored is not None:
            await record_file(
                session,
                key=kept.ref.stored,
                phone=message.phone,
                direction=INBOUND,
                message_id=message.message_id,
                kind=message.kind.value,
                ref=kept.ref,
                now=now,
            )
        t = tables.message_logs
        await session.execute(
            update(t)
            .where(t.c.direction == INBOUND, t.c.message_id == message.message_id)
            .values(status=status, error=error, updated_at=now)
        )
    metrics.PUBLISHED.labels(message.provider.value, INCOMING.name).inc()
    await runtime.outbox.publish_after_commit(ids=[message.message_id])
    return True
