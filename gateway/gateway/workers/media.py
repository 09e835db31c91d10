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

from gateway.media import MediaKeeper, already_forwarded, forward
from parley_shared.contracts import InboundMedia
from parley_shared.service import Runtime
from parley_shared.topology import MEDIA

log = structlog.get_logger(__name__)


class MediaWorker:
    def __init__(self, *, runtime: Runtime, keeper: MediaKeeper) -> None:
        self.runtime = runtime
        self.keeper = keeper

    async def handle(self, request: InboundMedia) -> None:
        if await already_forwarded(self.runtime, request.message_id):
            return
        message = request.message
        assert message.media is not None
        kept = await self.keeper.keep(message.message_id, message.kind, message.media)
        final = message.model_copy(update={"media": kept.ref})
        await forward(
            self.runtime,
            queue=MEDIA.name,
            request_id=request.message_id,
            message=final,
            kept=kept,
            status="queued",
            error=kept.ref.error,
        )
