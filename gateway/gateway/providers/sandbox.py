"""The sandbox provider: no WhatsApp at all. Inbound messages are POSTed to ``/sandbox/inbound``;
"sending" stores the message in ``sandbox_outbox``, read back over ``GET /sandbox/outbox``.

Like Wappi it has no buttons: choices are stored as numbered lines of the text (and, for the
reader, as they were offered). A file sent is kept in the media store like a prospect's
(``GET /media/{key}``), and the outbox shows its kind, name, type and size.

It powers the demo's terminal chat, the chat simulator and black-box tests, and it goes through
the same ingest path, queues, sender, pacing and logs as the real providers.

The sends that arrive together are stored in one transaction (a group commit), one transaction
at a time: rows are committed in the order of their ids, so a reader paging by cursor
(``after``) never passes over a row that commits later. A store that meets the database away
is a transient send failure: the sender retries it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from gateway.db import tables
from gateway.domain.choices import numbered
from gateway.domain.failures import Failure, FailureKind, classify_http
from gateway.media_store import MediaStore, record_file
from gateway.providers.base import Media, MediaError, SendError, SendResult, WhatsAppProvider, inline_media
from parley_shared.batching import BATCH_MAX_SIZE, GroupCommit, transactions
from parley_shared.broker import is_transient
from parley_shared.clock import Clock
from parley_shared.contracts import Choices, MediaRef, OutgoingMessage, Provider, stable_id
from parley_shared.db import SessionFactory, insert_ignore
from parley_shared.shutdown import Drains


class SentFile(BaseModel):
    """A file the sandbox "sent": fetch it at ``GET /media/{key}``."""

    kind: str
    file_name: str
    mime_type: str
    size: int
    key: str


class Delivered(BaseModel):
    """One message the sandbox "delivered" (``GET /sandbox/outbox``)."""

    model_config = ConfigDict(frozen=True)

    cursor: int
    message_id: str
    provider_message_id: str
    correlation_id: str
    to: str
    text: str
    kind: str
    in_reply_to: list[str]
    sent_at: datetime
    media: SentFile | None = None
    choices: Choices | None = None


@dataclass(frozen=True)
class _Send:
    """One message to store, with its file already kept."""

    message: OutgoingMessage
    text: str
    file: SentFile | None


class SandboxProvider(WhatsAppProvider):
    name = Provider.SANDBOX

    def __init__(
        self,
        sessions: SessionFactory,
        clock: Clock,
        max_media_bytes: int,
        *,
        store: MediaStore,
        drains: Drains,
        batch_max_size: int = BATCH_MAX_SIZE,
        failure_rate: float = 0.0,
        retry_after_s: float = 0.0,
    ) -> None:
        self.sessions = sessions
        # One batch at a time: the outbox's ids are committed in order (see the module's doc).
        self.stores: GroupCommit[_Send, int] = transactions(
            self._store_batch, name="sandbox_store", drains=drains, max_size=batch_max_size, max_batches=1
        )
        self.store = store
        self.clock = clock
        self.max_media_bytes = max_media_bytes
        self._delivered = asyncio.Condition()
        self.version = 0  # bumped on every delivery (long polling compares it)
        self.stopping = False  # shutdown began: long polls answer at once
        self.parked = 0  # long polls waiting for a delivery right now
        self.failure_rate = failure_rate
        self.retry_after_s = retry_after_s
        self.send_calls = 0
        self.refused = 0

    def _inject_429(self) -> None:
        """Test fault injection (``SANDBOX_SEND_429_RATE``): answer 429 to that share of the send
        calls, spread evenly and deterministically (call n fails when floor(n * rate) steps up), before
        anything is stored, so the sender's retry path meets a real "certainly not delivered"."""
        self.send_calls += 1
        if self.failure_rate <= 0:
            return
        if int(self.send_calls * self.failure_rate) > int((self.send_calls - 1) * self.failure_rate):
            self.refused += 1
            retry_after = self.retry_after_s or None
            raise SendError(classify_http(429, None, "sandbox: injected 429 (SANDBOX_SEND_429_RATE)", retry_after))

    async def send(self, message: OutgoingMessage, to: str | None = None) -> SendResult:
        """Store the message once per message id (a repeat finds the stored one)."""
        self._inject_429()
        sent = await self._keep_file(message) if message.media is not None else None
        text = numbered(message.text, message.choices) if message.choices is not None else message.text
        try:
            cursor = await self.stores.submit(_Send(message, text, sent))
        except Exception as exc:
            if not is_transient(exc):
                raise
            # The database was away: like a provider's 503 -- the store is one message id, so a
            # retry after a commit whose answer was lost finds the stored row.
            reason = f"sandbox: the store failed ({type(exc).__name__}); not stored"
            raise SendError(Failure(FailureKind.TRANSIENT, "sandbox_store", reason)) from exc
        async with self._delivered:
            self.version += 1
            self._delivered.notify_all()
        return SendResult(f"sandbox-{cursor}")

    async def _store_batch(self, batch: list[_Send]) -> list[int]:
        """One insert for every message of the batch; the cursor of each (the stored one for a repeat)."""
        t = tables.sandbox_outbox
        now = self.clock.now()
        rows = [
            {
                "message_id": send.message.message_id,
                "correlation_id": send.message.correlation_id,
                "phone": send.message.phone,
                "text": send.text,
                "kind": send.message.kind.value,
                "in_reply_to": json.dumps(list(send.message.in_reply_to)),
                "created_at": now,
                "media": send.file.model_dump_json() if send.file is not None else None,
                "choices": send.message.choices.model_dump_json() if send.message.choices is not None else None,
            }
            for send in batch
        ]
        async with self.sessions() as session, session.begin():
            for send in batch:
                if send.file is not None:
                    media = send.message.media
                    ref = MediaRef(
                        mime_type=send.file.mime_type,
                        size=send.file.size,
                        file_name=send.file.file_name,
                        sha256=media.sha256 if media else None,
                    )
                    await record_file(
                        session,
                        key=send.file.key,
                        phone=send.message.phone,
                        direction="outbound",
                        message_id=send.message.message_id,
                        kind=send.file.kind,
                        ref=ref,
                        now=now,
                    )
            inserted = await insert_ignore(session, t, rows, ["message_id"], returning=["message_id", "id"])
            stored: dict[str, int] = {row.message_id: row.id for row in inserted}
            repeats = [send.message.message_id for send in batch if send.message.message_id not in stored]
            if repeats:  # sent before: the stored ones
                query = select(t.c.message_id, t.c.id).where(t.c.message_id.in_(repeats))
                stored.update({row.message_id: row.id for row in await session.execute(query)})
        return [int(stored[send.message.message_id]) for send in batch]

    async def _keep_file(self, message: OutgoingMessage) -> SentFile:
        media = message.media
        assert media is not None
        try:
            data = base64.b64decode(media.data_b64, validate=True)
        except (binascii.Error, ValueError):
            raise SendError(Failure(FailureKind.PERMANENT, "bad_media", "the file is not valid base64")) from None
        key = stable_id("sandbox-file", message.message_id)
        await self.store.write(key, data)
        return SentFile(kind=media.kind, file_name=media.file_name, mime_type=media.mime_type, size=len(data), key=key)

    async def download_media(self, media: MediaRef) -> Media:
        inline = inline_media(media, self.max_media_bytes)
        if inline is None:
            raise MediaError("the sandbox only has inline media", transient=False)
        return inline

    async def outbox(self, *, to: str | None, after: int, limit: int) -> list[Delivered]:
        t = tables.sandbox_outbox
        query = select(t).where(t.c.id > after).order_by(t.c.id).limit(limit)
        if to is not None:
            query = query.where(t.c.phone == to)
        async with self.sessions() as session:
            rows = (await session.execute(query)).all()
        return [
            Delivered(
                cursor=r.id,
                provider_message_id=f"sandbox-{r.id}",
                message_id=r.message_id,
                correlation_id=r.correlation_id,
                to=r.phone,
                text=r.text,
                kind=r.kind,
                in_reply_to=json.loads(r.in_reply_to),
                sent_at=r.created_at,
                media=SentFile.model_validate_json(r.media) if r.media else None,
                choices=Choices.model_validate_json(r.choices) if r.choices else None,
            )
            for r in rows
        ]

    async def wait_for_delivery(self, since_version: int, timeout_s: float) -> None:
        """Return once anything was delivered after ``since_version`` (or after ``timeout_s``, or
        when shutdown begins)."""
        async with self._delivered:
            self.parked += 1
            try:
                await asyncio.wait_for(
                    self._delivered.wait_for(lambda: self.version != since_version or self.stopping), timeout_s
                )
            except TimeoutError:
                return
            finally:
                self.parked -= 1

    async def release_waiters(self) -> None:
        self.stopping = True
        async with self._delivered:
            self._delivered.notify_all()
