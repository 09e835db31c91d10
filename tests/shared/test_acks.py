"""Acknowledgements sent together, on the real RabbitMQ: one ``multiple`` ack for the handlers that
finish together, never covering a delivery whose handler still runs or that was requeued."""

from __future__ import annotations

import asyncio
from collections import Counter

import aio_pika
import pytest

from parley_shared.acks import ChannelAcks
from parley_shared.broker import Broker
from parley_shared.contracts import IncomingMessage
from parley_shared.topology import INCOMING
from tests.shared.test_delivery import FAST, incoming, wait_for


async def unsettled(amqp_url: str) -> int:
    """Messages left in ``incoming_messages`` once its consumers are gone (what was never acked)."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(INCOMING.name, passive=True)
        return int(declared.declaration_result.message_count or 0)
    finally:
        await connection.close()


async def test_handlers_finishing_together_share_one_ack_a_slow_or_failed_one_is_never_covered(
    amqp_url: str, publisher: Broker
) -> None:
    go, slow = asyncio.Event(), asyncio.Event()
    calls: Counter[str] = Counter()
    done: list[str] = []

    async def handle(message: IncomingMessage) -> None:
        calls[message.message_id] += 1
        await (slow if message.message_id == "in-10" else go).wait()
        if message.message_id == "in-15" and calls["in-15"] == 1:
            raise ValueError("fails once: requeued")
        done.append(message.message_id)

    consumer = Broker(amqp_url, service="test", retry=FAST)
    await consumer.connect()
    try:
        state = await consumer.consume(INCOMING, handle, prefetch=30)
        for i in range(20):
            await publisher.publish(INCOMING, incoming(i))
        await wait_for(lambda: sum(calls.values()) == 20)
        go.set()
        # in-15 is requeued and handled again; in-10 still waits: the others are acked meanwhile.
        await wait_for(lambda: len(done) == 19 and state.handled == 19)
        assert calls["in-15"] == 2 and "in-10" not in done
        acks = state.acks
        assert acks.acked == 19
        # in-0..in-9 finished together: one frame; those after in-10 each went alone (in-10 still
        # runs), so nothing waited for it.
        assert acks.frames < acks.acked and acks.frames <= 1 + 9 + 1
        slow.set()
        await wait_for(lambda: state.handled == 20)
        assert acks.acked == 20
    finally:
        await consumer.close()
    # Every message was settled once: nothing comes back when the consumer is gone.
    assert await unsettled(amqp_url) == 0
    assert calls == Counter({f"in-{i}": 2 if i == 15 else 1 for i in range(20)})


class _Channel:
    """The two calls :class:`ChannelAcks` makes, recorded."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, bool]] = []
        self.is_closed = False

    async def basic_ack(self, tag: int, multiple: bool = False, wait: bool = True) -> None:
        self.sent.append((tag, multiple))


async def test_the_multiple_ack_stops_at_the_first_delivery_still_running_or_never_seen() -> None:
    channel = _Channel()
    acks = ChannelAcks(channel)  # type: ignore[arg-type]
    for tag in (1, 2, 3, 4, 6):  # 5 was delivered but its callback has not run yet
        acks.delivered(tag)
    acks.settled(2)  # requeued on its own
    await asyncio.gather(acks.ack(1), acks.ack(3), acks.ack(6))
    # 1..3 asked or settled: one multiple ack up to 3; 4 still runs; 6 alone.
    assert channel.sent == [(3, True), (6, False)]
    acks.delivered(5)
    await asyncio.gather(acks.ack(4), acks.ack(5))
    assert channel.sent[2:] == [(5, True)] and acks.settled_upto == 6
    acks.delivered(7)
    await acks.ack(7)
    assert channel.sent[3:] == [(7, False)] and (acks.frames, acks.acked) == (4, 6)  # 2 was requeued


@pytest.mark.parametrize("error", [aio_pika.exceptions.ChannelInvalidStateError, asyncio.CancelledError])
async def test_acks_whose_write_fails_fail_their_callers_and_later_ones_go_alone(error: type[BaseException]) -> None:
    """A channel closed, or a connection dying under the write (aiormq then fails the pending
    write with CancelledError): every caller waiting gets an error, none waits for ever."""

    class Failing(_Channel):
        async def basic_ack(self, tag: int, multiple: bool = False, wait: bool = True) -> None:
            if not self.sent:
                self.sent.append((tag, multiple))
                raise error("connection lost")
            self.sent.append((tag, multiple))

    channel = Failing()
    acks = ChannelAcks(channel)  # type: ignore[arg-type]
    acks.delivered(1)
    acks.delivered(2)
    results = await asyncio.wait_for(asyncio.gather(acks.ack(1), acks.ack(2), return_exceptions=True), 5)
    assert all(isinstance(r, aio_pika.exceptions.ChannelInvalidStateError) for r in results), results
    assert results[0] is not results[1]  # an error of its own for each caller
    acks.delivered(3)
    await asyncio.wait_for(acks.ack(3), 5)
    assert channel.sent == [(2, True), (3, False)]
