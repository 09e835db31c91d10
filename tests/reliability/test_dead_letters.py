"""Poison messages and the dead-letter command (``python -m parley_shared.deadletters``), on the real
RabbitMQ and the real agent service: a malformed payload and a message that hit the delivery limit
are listed with their reasons; the chosen one is requeued (clean of the dead-letter bookkeeping)
and answered; the other is purged."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aio_pika
import pytest

from parley_shared import deadletters
from parley_shared.topology import INCOMING
from tests.agent.conversation_support import inbound, running_agent
from tests.reliability.chaos import wait_until
from tests.support import infra


async def _crash_loop(url: str, queue: str, times: int) -> None:
    """A consumer that dies on the message every time (no ack): RabbitMQ dead-letters it at the limit."""
    for _ in range(times):
        connection = await aio_pika.connect(url)
        channel = await connection.channel()
        message = await (await channel.get_queue(queue, ensure=False)).get(fail=False, timeout=2)
        await connection.close()
        if message is None:
            return


async def cli(argv: list[str]) -> int:
    """The command as an operator runs it (its own event loop, in a thread)."""
    return await asyncio.to_thread(deadletters.main, argv)


async def _dlq_count(url: str) -> int:
    return (await infra.queue_counts(url, INCOMING.dead_letter_queue))[0]


async def test_poison_goes_to_its_dlq_with_a_reason_and_the_command_lists_requeues_and_purges(
    amqp_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    crasher = inbound("+77015550001", "Hello, do you sell office chairs?", key="dl-crasher")
    # 1. (no agent yet) a message that kills its consumer every time -> RabbitMQ dead-letters it
    publisher = await aio_pika.connect(amqp_url)
    channel = await publisher.channel(publisher_confirms=True)
    exchange = await channel.get_exchange("parley", ensure=False)

    async def publish(body: bytes, message_id: str) -> None:
        await exchange.publish(
            aio_pika.Message(body, message_id=message_id, correlation_id="c-" + message_id, headers={"x-trace": "t1"}),
            routing_key=INCOMING.routing_key,
            mandatory=True,
        )

    await publish(crasher.encode(), crasher.message_id)
    await _crash_loop(amqp_url, INCOMING.name, INCOMING.delivery_limit + 2)
    await wait_until(lambda: _has(amqp_url, 1), timeout=10, what="the crasher dead-lettered")

    # 2. a malformed payload (wrong phone) -> the agent's consumer dead-letters it with the reason
    await publish(b'{"schema":"incoming_message","v":1,"phone":"nope"}', "dl-junk")
    await publisher.close()
    async with running_agent(amqp_url, f"sqlite+aiosqlite:///{tmp_path}/agent.db") as agent:
        await wait_until(lambda: _has(amqp_url, 2), timeout=15, what="the malformed payload dead-lettered")
        letters = {d.message_id: d for d in await deadletters.list_dead_letters(amqp_url, ["incoming_messages"])}
        assert set(letters) == {crasher.message_id, "dl-junk"}
        assert letters[crasher.message_id].reason == "rabbitmq: delivery_limit"
        assert letters["dl-junk"].reason.startswith("malformed:") and "phone" in letters["dl-junk"].reason
        assert "nope" not in letters["dl-junk"].reason  # the reason names the field, never echoes the value
        assert all(d.queue == "incoming_messages" and d.body is None for d in letters.values())
        # listing is not consuming: both are still there, in place
        assert await _dlq_count(amqp_url) == 2

        # 3. requeue the chosen one (the bug that killed its consumer is "fixed"): it is answered
        report = await deadletters.requeue(amqp_url, "incoming_messages.dlq", [crasher.message_id])
        assert (report.chosen, report.seen, report.missing) == (1, 2, ())
        reply = (await agent.replies.wait_for(1, phone=crasher.phone))[0]
        assert crasher.message_id in reply.in_reply_to
        left = await deadletters.list_dead_letters(amqp_url, ["incoming_messages"])
        assert [d.message_id for d in left] == ["dl-junk"]

        # 4. the CLI: list as JSON, an id that is not there, then purge the junk
        assert await cli(["--url", amqp_url, "list", "--queue", "incoming_messages", "--json"]) == 0
        listed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
        assert [(d["message_id"], d["queue"]) for d in listed] == [("dl-junk", "incoming_messages")]
        assert await cli(["--url", amqp_url, "requeue", "--queue", "incoming_messages", "--id", "nope"]) == 1
        assert "not found" in capsys.readouterr().err
        assert await cli(["--url", amqp_url, "purge", "--queue", "incoming_messages", "--all"]) == 0
        assert "1 of 1 dead letter(s) purged" in capsys.readouterr().out
        assert await _dlq_count(amqp_url) == 0
        assert await cli(["--url", amqp_url, "list"]) == 0
        assert "no dead letters" in capsys.readouterr().out
        assert await cli(["--url", amqp_url, "list", "--queue", "nowhere"]) == 2


async def _has(url: str, n: int) -> bool:
    return await _dlq_count(url) >= n


async def test_a_requeued_copy_keeps_its_identity_but_not_the_dead_letter_bookkeeping(amqp_url: str) -> None:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        dlx = await channel.get_exchange("parley.dead-letter", ensure=False)
        headers = {
            "x-parley-error": "permanent: boom",
            "x-parley-queue": "incoming_messages",
            "x-parley-service": "agent",
            "x-parley-dead-lettered-at": 1767225600,
            "x-first-death-reason": "rejected",
            "x-delivery-count": 3,
            "x-trace": "keep-me",
        }
        for i in range(3):
            body = inbound("+77015550002", f"hello {i}", key=f"dl-copy-{i}").encode()
            await dlx.publish(
                aio_pika.Message(
                    body, message_id=f"m{i}", correlation_id=f"c{i}", type="incoming_message", headers=headers
                ),
                routing_key=INCOMING.dead_letter_queue,
            )
        listed = await deadletters.list_dead_letters(amqp_url, ["incoming_messages.dlq"], with_body=True)
        assert [d.message_id for d in listed] == ["m0", "m1", "m2"]
        assert listed[0].reason == "permanent: boom" and listed[0].dead_lettered_at == "2026-01-01T00:00:00+00:00"
        assert listed[0].body is not None and "hello 0" in listed[0].body

        report = await deadletters.requeue(amqp_url, "incoming_messages", ["m0", "m2"])
        assert (report.chosen, report.seen) == (2, 3)
        queue = await channel.get_queue(INCOMING.name, ensure=False)
        copies = []
        for _ in range(2):
            message = await queue.get(timeout=5)
            await message.ack()
            copies.append(message)
        assert [(m.message_id, m.correlation_id, m.type) for m in copies] == [
            ("m0", "c0", "incoming_message"),
            ("m2", "c2", "incoming_message"),
        ]
        for m in copies:
            assert m.headers["x-trace"] == "keep-me" and m.headers["x-parley-requeued"] == 1
            assert not {k for k in m.headers if k.startswith(("x-parley-error", "x-first-death", "x-death"))}
            assert m.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert [d.message_id for d in await deadletters.list_dead_letters(amqp_url, ["incoming_messages"])] == ["m1"]
        with pytest.raises(deadletters.DeadLetterError):
            await deadletters.requeue(amqp_url, "incoming_messages", [])
    finally:
        await connection.close()
