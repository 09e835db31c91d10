"""Found by the fault suite: a RabbitMQ connection force-closed while the sender was inside a
provider call cancelled the handler, left the message ``sending``, and its redelivery was then
dead-lettered as ``unknown_outcome`` -- a reply lost to a broker blip. A send in progress must
finish, and the redelivered copy must share its outcome: sent once, reported once, no dead letter.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from aiohttp.test_utils import TestClient

from parley_shared.contracts import OutgoingKind, OutgoingMessage
from parley_shared.topology import OUTGOING, STATUS
from tests.gateway.helpers import eventually, meta_settings, prospects_wrote, publish, queue_size, running, take
from tests.support import infra
from tests.support.fake_meta import FakeMeta, GraphReply, SendCall


async def _attached(client: TestClient) -> bool:
    health = await (await client.get("/health")).json()
    broker = health["checks"]["broker"]
    return bool(broker["connected"] and broker["consumers"][OUTGOING.name]["attached"])


async def test_a_send_in_flight_survives_a_forced_close_of_every_amqp_connection(amqp_url: str, tmp_path: Path) -> None:
    graph = await FakeMeta().start()
    inside, release = asyncio.Event(), asyncio.Event()

    async def slow_provider(_call: SendCall) -> GraphReply | None:
        inside.set()
        await release.wait()
        return None  # accepted

    graph.responder = slow_provider
    settings = meta_settings(amqp_url, f"sqlite+aiosqlite:///{tmp_path}/g.db", graph, send_rate_per_min=6000)
    message = OutgoingMessage(
        message_id="reply-1", correlation_id="c-1", phone="+77010000001", text="hello", kind=OutgoingKind.REPLY
    )
    await prospects_wrote(settings.database_url, [message.phone], datetime.now(UTC))  # Meta's window is open
    try:
        async with running(settings) as client:
            await publish(amqp_url, OUTGOING, [message])
            await asyncio.wait_for(inside.wait(), timeout=10)
            await infra.close_all_connections()  # the provider call is still open
            await eventually(lambda: _attached(client), what="the sender to re-consume")
            release.set()
            statuses = await take(amqp_url, STATUS.name, 1)
            assert [(s["outgoing_message_id"], s["status"]) for s in statuses] == [("reply-1", "sent")]
            assert len(graph.attempts) == 1 and len(graph.sends) == 1
            await eventually(lambda: _settled(amqp_url), what="the redelivered copy to be acknowledged")
            assert await queue_size(amqp_url, OUTGOING.dead_letter_queue) == 0
    finally:
        await graph.close()


async def _settled(url: str) -> bool:
    table = await asyncio.to_thread(_queue_table)
    return table[OUTGOING.name]["ready"] == 0 and table[OUTGOING.name]["unacked"] == 0


def _queue_table() -> dict[str, dict[str, int]]:
    from tests.reliability.chaos import queue_table

    return queue_table(infra.VHOST)
