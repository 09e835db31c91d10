"""The sender on the real RabbitMQ against the fake Graph API, paced by an injected clock.

Done-when (issue 3): 60 outgoing messages (40 campaign, 20 replies) go out at 20/minute by the
injected clock, replies first, none twice, with one provider 429 and one permanent failure
handled as specified (retried after Retry-After; reported on delivery_status and dead-lettered).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.exc import OperationalError

from gateway.context import GATEWAY
from gateway.settings import GatewaySettings
from gateway.workers.sender import AccountPacer
from parley_shared.clock import ManualClock
from parley_shared.contracts import OutgoingKind, OutgoingMessage
from parley_shared.topology import CAMPAIGN, OUTGOING, STATUS
from tests.gateway.helpers import (
    FakeSleep,
    eventually,
    meta_settings,
    prospects_wrote,
    publish,
    queue_size,
    running,
    take,
    take_messages,
)
from tests.support.fake_meta import FakeMeta, GraphReply, SendCall

PREFETCH = 4


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def graph(clock: ManualClock) -> AsyncIterator[FakeMeta]:
    fake = await FakeMeta(clock=clock).start()
    yield fake
    await fake.close()


def sender_settings(amqp_url: str, database_url: str, graph: FakeMeta, **extra: Any) -> GatewaySettings:
    values: dict[str, Any] = {"send_rate_per_min": 20, "send_backoff_base_s": 2, "campaign_prefetch": PREFETCH, **extra}
    return meta_settings(amqp_url, database_url, graph, **values)


def outgoing(name: str, n: int, kind: OutgoingKind) -> OutgoingMessage:
    return OutgoingMessage(
        message_id=name,
        correlation_id=f"c-{name}",
        phone=f"+7701{n:07d}",
        text=f"message {name}",
        kind=kind,
    )


async def handled(client: TestClient, queue: str) -> int:
    health = await (await client.get("/health")).json()
    consumer = health["checks"]["broker"]["consumers"][queue]
    return int(consumer["handled"] + consumer["dead_lettered"])


async def test_sixty_messages_paced_replies_first_none_twice_with_a_429_and_a_permanent_failure(
    amqp_url: str, database_url: str, graph: FakeMeta, clock: ManualClock
) -> None:
    replies = [outgoing(f"r{i:02d}", i, OutgoingKind.REPLY) for i in range(20)]
    campaign = [outgoing(f"f{i:02d}", 100 + i, OutgoingKind.FOLLOW_UP) for i in range(40)]
    throttled: set[str] = set()

    async def responder(call: SendCall) -> GraphReply | None:
        if call.text == "message r05" and "r05" not in throttled:
            throttled.add("r05")
            return GraphReply.error(429, 130429, "Rate limit hit", **{"Retry-After": "10"})
        if call.text == "message f07":
            return GraphReply.error(400, 131047, "Re-engagement message: more than 24 hours have passed")
        return None

    graph.responder = responder
    # Campaign traffic is queued first; the replies come after it.
    await publish(amqp_url, CAMPAIGN, campaign)
    await publish(amqp_url, OUTGOING, replies)
    sleep = FakeSleep(clock)
    sleep.hold()  # the first token needs a wait: hold it until the backlog is in the buffer
    started = clock.now()
    # One provider call at a time (a Wappi profile's way): the exact order below is then the line's.
    # Concurrent calls are tested on their own below.
    settings = sender_settings(amqp_url, database_url, graph, send_concurrency=1)
    await prospects_wrote(database_url, [m.phone for m in replies + campaign], clock.now())
    async with running(settings, clock=clock, sleep=sleep) as client:
        pacer = client.app[GATEWAY].pacer

        async def backlog() -> bool:
            return pacer.waiting() == {"replies": 20, "campaign": PREFETCH}

        await eventually(backlog, what="20 replies and the campaign prefetch waiting")
        sleep.release()
        statuses = await take(amqp_url, STATUS.name, 60, timeout=60)
        [dead] = await take_messages(amqp_url, CAMPAIGN.dead_letter_queue, 1)

        # Redelivered copies of a sent and of a failed message change nothing.
        await publish(amqp_url, OUTGOING, [replies[0]])
        await publish(amqp_url, CAMPAIGN, [campaign[7]])
        await eventually(lambda: _handled_at_least(client, OUTGOING.name, 21), what="the copy of r00 handled")
        await eventually(lambda: _handled_at_least(client, CAMPAIGN.name, 41), what="the copy of f07 handled")
        assert await queue_size(amqp_url, STATUS.name) == 0
        assert await queue_size(amqp_url, CAMPAIGN.dead_letter_queue) == 0
        metrics = await (await client.get("/metrics")).text()

    # None twice: 61 requests = 60 messages + the one retry after the 429; 59 accepted, all distinct.
    assert len(graph.attempts) == 61
    accepted = [c.text for c in graph.sends]
    assert len(accepted) == len(set(accepted)) == 59
    assert "message f07" not in accepted

    # Replies first: the first 21 requests (20 replies and the retried one) are all replies.
    order = [c.text.split()[-1] for c in graph.attempts if c.text]
    assert all(name.startswith("r") for name in order[:21]) and all(name.startswith("f") for name in order[21:])
    assert order[:21] == [f"r{i:02d}" for i in range(6)] + [f"r{i:02d}" for i in range(5, 20)]

    # 20 a minute by the injected clock: evenly 3 s apart, never 21 within 60 s; the 429 paused the account.
    times = [c.at for c in graph.attempts]
    assert all(t is not None for t in times)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]  # type: ignore[operator]
    assert min(gaps) >= 3.0 - 1e-6
    assert all((times[i + 20] - times[i]) >= timedelta(seconds=60) for i in range(len(times) - 20))  # type: ignore[operator]
    retry_gap = gaps[5]  # r05's 429, then its retry
    assert retry_gap >= 10.0 - 1e-6
    assert (times[-1] - started).total_seconds() == pytest.approx(61 * 3 + (10 - 3), abs=1)  # type: ignore[operator]

    # Reported back: 59 sent with their wamids, 1 failed with Meta's code; dead-lettered with the reason.
    by_id = {s["outgoing_message_id"]: s for s in statuses}
    assert len(by_id) == 60
    assert sum(s["status"] == "sent" and s["provider_message_id"].startswith("wamid.") for s in statuses) == 59
    assert by_id["f07"]["status"] == "failed" and by_id["f07"]["error_code"] == "131047"
    assert "24 hours" in by_id["f07"]["error_reason"]
    assert dead.message_id == "f07"
    assert "131047" in str(dead.headers["x-parley-error"])
    assert 'parley_gateway_rate_limit_waits_total{provider="meta"}' in metrics
    assert 'parley_gateway_failed_total{provider="meta",reason="permanent"}' in metrics


async def test_calls_run_side_by_side_up_to_the_limit_and_one_at_a_time_per_contact(
    amqp_url: str, database_url: str, graph: FakeMeta, clock: ManualClock
) -> None:
    """``SEND_CONCURRENCY`` provider calls at once for different contacts; a contact's messages go
    one call at a time, in their order, and a contact waiting for its previous call holds up no one."""
    contacts = [f"+7702{n:07d}" for n in range(4)]
    a, b, c, d = contacts
    order = [(a, 0), (a, 1), (b, 0), (a, 2), (c, 0), (d, 0), (b, 1), (c, 1), (d, 1), (b, 2), (c, 2), (d, 2)]
    messages = [
        OutgoingMessage(message_id=f"m{k}-{phone}", correlation_id="c", phone=phone, text=f"m{k}-{phone}")
        for phone, k in order
    ]
    gate = asyncio.Event()
    running_now: list[str] = []
    overlaps: list[str] = []
    most = 0

    async def responder(call: SendCall) -> GraphReply | None:
        nonlocal most
        if call.to in running_now:
            overlaps.append(call.to)
        running_now.append(call.to)
        most = max(most, len(running_now))
        try:
            await gate.wait()
        finally:
            running_now.remove(call.to)
        return None

    graph.responder = responder
    await prospects_wrote(database_url, contacts, clock.now())
    await publish(amqp_url, OUTGOING, messages)
    settings = sender_settings(amqp_url, database_url, graph, send_rate_per_min=600000, send_concurrency=3)
    async with running(settings, clock=clock, sleep=FakeSleep(clock)) as client:

        async def three_calls() -> bool:
            return len(running_now) == 3

        await eventually(three_calls, what="three provider calls running")
        await asyncio.sleep(0.3)  # a fourth would have started by now
        # a's second and third wait for its first; b and c go meanwhile; d waits for a free slot
        assert sorted(running_now) == [p.lstrip("+") for p in (a, b, c)] and client.app[GATEWAY].pacer.in_flight() == 3
        gate.set()
        statuses = await take(amqp_url, STATUS.name, len(messages))
    assert most == 3 and overlaps == []
    assert sorted(s["outgoing_message_id"] for s in statuses if s["status"] == "sent") == sorted(
        m.message_id for m in messages
    )
    for phone in contacts:
        sent_to = [call.text for call in graph.attempts if call.to == phone.lstrip("+")]
        assert sent_to == [f"m{k}-{phone}" for k in range(3)]


async def test_a_retry_takes_the_next_token_before_a_message_not_yet_started(clock: ManualClock) -> None:
    """With a call slot free, a message waiting to start does not take the token a retry waits for."""
    sleep = FakeSleep(clock)
    pacer = AccountPacer(rate_per_min=60, clock=clock, sleep=sleep, provider="meta", concurrency=2)
    runner = asyncio.create_task(pacer.run())
    log: list[str] = []

    async def second() -> None:
        async with pacer.turn(pacer.reserve(0, "+77010000002")):
            log.append("second")

    try:
        async with pacer.turn(pacer.reserve(0, "+77010000001")):
            log.append("first")
            sleep.hold()  # from here on, the pacer's waits for a token hold until released
            other = asyncio.create_task(second())
            await asyncio.sleep(0.05)  # the second is in line, its turn waiting for a token
            retry = asyncio.create_task(pacer.retry_token())
            await asyncio.sleep(0.05)
            assert log == ["first"] and pacer.in_flight() == 1
            sleep.release()
            await retry
            log.append("retry")
        await asyncio.wait_for(other, 5)
    finally:
        runner.cancel()
    assert log == ["first", "retry", "second"]


async def test_a_delivery_with_nothing_to_send_gives_its_turns_token_back(
    amqp_url: str, database_url: str, graph: FakeMeta, clock: ManualClock
) -> None:
    """Copies of a message already sent, and a free-form message outside Meta's 24-hour window, take
    their turn in line (the claim that finds nothing to send is made in it) but spend no token: the
    next message goes one token after the last provider call, not one per copy."""
    sent, later = outgoing("t1", 1, OutgoingKind.REPLY), outgoing("t2", 2, OutgoingKind.REPLY)
    closed = outgoing("t3", 3, OutgoingKind.REPLY)  # the prospect never wrote: the window is closed
    await prospects_wrote(database_url, [sent.phone, later.phone], clock.now())
    settings = sender_settings(amqp_url, database_url, graph, send_concurrency=1)  # 20 a minute: 3 s a token
    async with running(settings, clock=clock, sleep=FakeSleep(clock)):
        await publish(amqp_url, OUTGOING, [sent])
        [first] = await take(amqp_url, STATUS.name, 1)
        await publish(amqp_url, OUTGOING, [sent, closed, sent, sent, later])
        statuses = await take(amqp_url, STATUS.name, 2)
    assert first["status"] == "sent"
    by_id = {s["outgoing_message_id"]: s for s in statuses}
    assert by_id["t2"]["status"] == "sent"
    assert by_id["t3"]["status"] == "failed" and by_id["t3"]["error_code"] == "outside_24h_window"
    assert [call.text for call in graph.attempts] == ["message t1", "message t2"]
    t1, t2 = (call.at for call in graph.attempts)
    assert t1 is not None and t2 is not None
    assert (t2 - t1).total_seconds() == pytest.approx(3.0, abs=0.01)


async def test_a_claim_that_meets_the_database_away_keeps_its_place_in_line(
    amqp_url: str, database_url: str, graph: FakeMeta, clock: ManualClock
) -> None:
    """The contact's first message cannot be claimed for a moment: its second one waits behind it."""
    phone = "+77020000077"
    first, second = (OutgoingMessage(message_id=f"o{n}", correlation_id="c", phone=phone, text=f"o{n}") for n in (1, 2))
    await prospects_wrote(database_url, [phone], clock.now())
    settings = sender_settings(amqp_url, database_url, graph, send_rate_per_min=600000)
    async with running(settings, clock=clock, sleep=FakeSleep(clock)) as client:
        writes = client.app[GATEWAY].outbound.writes
        write = writes.run_batch
        away = [OperationalError("INSERT ...", {}, ConnectionResetError("server closed the connection"))]

        async def away_for_the_first(batch: list[Any]) -> Any:
            claimed = [w.message.message_id for w in batch if hasattr(w, "message")]  # the claims' messages
            if away and claimed == ["o1"]:
                raise away.pop()
            return await write(batch)

        writes.run_batch = away_for_the_first
        await publish(amqp_url, OUTGOING, [first, second])
        statuses = await take(amqp_url, STATUS.name, 2)
    assert away == [] and {s["status"] for s in statuses} == {"sent"}
    assert [call.text for call in graph.attempts] == ["o1", "o2"]


async def _handled_at_least(client: TestClient, queue: str, count: int) -> bool:
    return await handled(client, queue) >= count


async def test_a_send_interrupted_mid_call_is_reported_unknown_not_sent_again(
    amqp_url: str,
    tmp_path,
    graph: FakeMeta,
    clock: ManualClock,  # type: ignore[no-untyped-def]
) -> None:
    in_call = asyncio.Event()
    never = asyncio.Event()

    async def hang(call: SendCall) -> GraphReply | None:
        in_call.set()
        await never.wait()
        return None

    graph.responder = hang
    settings = sender_settings(
        amqp_url, f"sqlite+aiosqlite:///{tmp_path}/g.db", graph, send_rate_per_min=6000, shutdown_timeout_s=0.2
    )
    message = outgoing("x1", 1, OutgoingKind.REPLY)
    await prospects_wrote(settings.database_url, [message.phone], clock.now())
    await publish(amqp_url, OUTGOING, [message])
    async with running(settings, clock=clock, sleep=FakeSleep(clock)):
        await asyncio.wait_for(in_call.wait(), 15)
    # the "crash": the gateway stopped while the provider held the request
    never.set()
    graph.responder = None
    async with running(settings, clock=clock, sleep=FakeSleep(clock)):
        [status] = await take(amqp_url, STATUS.name, 1)
        [dead] = await take_messages(amqp_url, OUTGOING.dead_letter_queue, 1)
    assert len(graph.attempts) == 1  # never sent a second time
    assert status["status"] == "failed" and status["error_code"] == "unknown_outcome"
    assert dead.message_id == "x1" and "unknown_outcome" in str(dead.headers["x-parley-error"])


@pytest.mark.parametrize("case", ["timeout", "exhausted", "unreachable"])
async def test_failures_that_are_not_retried_for_ever(
    amqp_url: str,
    tmp_path,
    graph: FakeMeta,
    clock: ManualClock,
    case: str,  # type: ignore[no-untyped-def]
) -> None:
    async def responder(call: SendCall) -> GraphReply | None:
        if case == "timeout":
            await asyncio.sleep(2)  # longer than SEND_TIMEOUT_S: the provider may have sent it
            return None
        return GraphReply.error(503, 131016, "Service unavailable")

    graph.responder = responder
    extra: dict[str, Any] = {"send_rate_per_min": 6000, "send_timeout_s": 0.3, "send_max_attempts": 3}
    if case == "unreachable":
        extra["meta_graph_base_url"] = "http://127.0.0.1:9"  # nothing listens: the request never left
    sleep = FakeSleep(clock)
    settings = sender_settings(amqp_url, f"sqlite+aiosqlite:///{tmp_path}/g.db", graph, **extra)
    await prospects_wrote(settings.database_url, [outgoing("y1", 1, OutgoingKind.OPERATOR).phone], clock.now())
    await publish(amqp_url, OUTGOING, [outgoing("y1", 1, OutgoingKind.OPERATOR)])
    async with running(settings, clock=clock, sleep=sleep):
        [status] = await take(amqp_url, STATUS.name, 1)
        [dead] = await take_messages(amqp_url, OUTGOING.dead_letter_queue, 1)
    assert status["status"] == "failed" and dead.message_id == "y1"
    if case == "timeout":
        assert status["error_code"] == "network" and len(graph.attempts) == 1  # ambiguous: not retried
    elif case == "exhausted":
        assert status["error_code"] == "131016" and len(graph.attempts) == 3
        assert "gave up after 3 attempts" in status["error_reason"]
        assert [s for s in sleep.calls if s >= 1] == [2, 4]  # exponential backoff between attempts
    else:
        assert status["error_code"] == "network" and "cannot connect" in status["error_reason"]
        assert [s for s in sleep.calls if s >= 1] == [2, 4]
