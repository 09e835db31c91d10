"""Erasure of one contact across both services: the agent's route erases its rows and asks the
gateway over ``contact_erasure``; the gateway clears its message log, sandbox outbox, outbox bodies
and the dead letters that carry the phone. Only a keyed hash and opaque message ids stay, and a
retried message of the erased contact is still a duplicate. The other prospect is untouched."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
from sqlalchemy import select

from agent_service.db import tables as agent_tables
from gateway.db import tables as gateway_tables
from parley_shared.contracts import IncomingMessage, Provider
from parley_shared.db import create_engine
from parley_shared.deadletters import list_dead_letters
from parley_shared.privacy import phone_hash
from parley_shared.settings import DEVELOPMENT_ERASURE_KEY
from parley_shared.topology import DEAD_LETTER_EXCHANGE, INCOMING
from tests.agent.conversation_support import AUTH as AGENT_AUTH
from tests.e2e.test_conversation_e2e import Chat, stack
from tests.gateway.helpers import eventually

ERASED = "+77010000031"
KEPT = "+77010000032"


async def dead_letter(amqp_url: str, phone: str, message_id: str) -> None:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        exchange = await channel.get_exchange(DEAD_LETTER_EXCHANGE, ensure=False)
        now = datetime.now(UTC)
        body = IncomingMessage(
            message_id=message_id,
            correlation_id=message_id,
            phone=phone,
            provider=Provider.SANDBOX,
            provider_message_id=message_id,
            text="my order, dead-lettered",
            sent_at=now,
            received_at=now,
        ).encode()
        await exchange.publish(aio_pika.Message(body, message_id=message_id), routing_key=INCOMING.dead_letter_queue)
    finally:
        await connection.close()


async def everything_in(database_url: str, tables: Any) -> str:
    """Every row of every table of a database, as text (to look for what must be gone)."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            dump = []
            for table in tables.metadata.sorted_tables:
                for row in await conn.execute(select(table)):
                    dump.append(repr(tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)))
            return "\n".join(dump)
    finally:
        await engine.dispose()


async def test_erasing_a_contact_clears_both_services_and_the_dead_letters(
    amqp_url: str, database_url: str, tmp_path: Path
) -> None:
    gateway_db = f"sqlite+aiosqlite:///{tmp_path}/gateway.db"
    async with stack(amqp_url, tmp_path, database_url, "komfortoffice") as (gateway, agent):
        erased, kept = Chat(gateway, ERASED), Chat(gateway, KEPT)
        first = await erased.write(text="Hello! How much is the ErgoPro 300 chair?", name="Aigerim", id="erase-1")
        await erased.read()
        await kept.write(text="Hello! Do you deliver?", name="Dana", id="keep-1")
        await kept.read()
        await dead_letter(amqp_url, ERASED, "dead-erased")
        await dead_letter(amqp_url, KEPT, "dead-kept")

        response = await agent.post(f"/contacts/{ERASED}/erase", headers=AGENT_AUTH)
        assert response.status == 200, await response.text()
        report = await response.json()
        assert report["gateway"] == "sent" and report["phone_hash"] == phone_hash(DEVELOPMENT_ERASURE_KEY, ERASED)
        assert report["removed"]["contacts"] == 1 and report["removed"]["messages"] >= 2

        async def gateway_done() -> bool:
            return "erased" in await everything_in(gateway_db, gateway_tables)

        await eventually(gateway_done, what="the gateway's part of the erasure")
        assert (await agent.get(f"/contacts/{ERASED}", headers=AGENT_AUTH)).status == 404
        assert (await agent.get(f"/contacts/{KEPT}", headers=AGENT_AUTH)).status == 200

        # A retry of the erased contact's message is still recognised (its id was kept, opaque).
        again = await erased.write(text="Hello! How much is the ErgoPro 300 chair?", name="Aigerim", id="erase-1")
        assert again["status"] == "duplicate" and again["message_id"] == first["message_id"]

    letters = {d.message_id for d in await list_dead_letters(amqp_url, [INCOMING.name])}
    assert letters == {"dead-kept"}
    digits = ERASED.lstrip("+")
    for url, tables in ((gateway_db, gateway_tables), (database_url, agent_tables)):
        dump = await everything_in(url, tables)
        assert digits not in dump and "Aigerim" not in dump and "ErgoPro" not in dump, url
        assert KEPT.lstrip("+") in dump  # the other prospect is all there
        assert phone_hash(DEVELOPMENT_ERASURE_KEY, ERASED) in dump  # the erasures row: the hash, never the phone
