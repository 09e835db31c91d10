"""Files prospects send: ``inbound_media`` -> fetch and keep -> ``incoming_messages``.

An image, video, document or sticker is published to the agent only once its file is kept
(``gateway/media.py``: downloaded with retries, checked, written to the media store) -- or could
not be: then the message goes on with ``media.error`` saying why (not found, timed out, too
large, wrong type, refused), so the agent still answers the prospect. The message keeps its
place in the contact's chain: the agent waits for it before answering what came after.

Idempotent: the request id is claimed in the inbox in the transaction that stages the message and
records the file.
"""

from __future__ import annotations

import structlog
from sqlalchemy import select, update

from gateway import metrics
from gateway.db import tables
from gateway.ingest import INBOUND
from gateway.media import MediaKeeper
from gateway.media_store import record_file
from parley_shared.contracts import InboundMedia
from parley_shared.service import Runtime
from parley_shared.topology import INCOMING, MEDIA

log = structlog.get_logger(__name__)


class MediaWorker:
    def __init__(self, *, runtime: Runtime, keeper: MediaKeeper) -> None:
        self.runtime = runtime
        self.keeper = keeper

    async def handle(self, request: InboundMedia) -> None:
        if await self._already_done(request.message_id):
            return
        message = request.message
        assert message.media is not None
        kept = await self.keeper.keep(message.message_id, message.kind, message.media)
        final = message.model_copy(update={"media": kept.ref})
        now = self.runtime.clock.now()
        async with self.runtime.sessions() as session, session.begin():
            if not await self.runtime.inbox.claim(session, MEDIA.name, request.message_id):
                return
            await self.runtime.outbox.add(session, INCOMING, final, cause_id=request.message_id)
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
                .values(status="queued", error=kept.ref.error, updated_at=now)
            )
        metrics.PUBLISHED.labels(message.provider.value, INCOMING.name).inc()
        await self.runtime.outbox.publish_after_commit(ids=[final.message_id])

    async def _already_done(self, message_id: str) -> bool:
        inbox = self.runtime.inbox.table
        async with self.runtime.sessions() as session:
            found = await session.scalar(select(inbox.c.message_id).where(inbox.c.message_id == message_id))
        return found is not None
