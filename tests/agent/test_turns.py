"""Turns on the real RabbitMQ and both databases: bursts, idempotency, order at scale across replicas,
the takeover race, non-clients, crash recovery, delivery statuses, operator messages.

200 contacts sending 3 messages each, interleaved: each contact's replies come in order,
none twice, none missing. A takeover during a slow model call: no AI reply reaches that contact.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import REGISTRY
from sqlalchemy import String, func, select, update

from agent_service.context import AGENT
from agent_service.db import tables
from agent_service.engines.base import TurnContext
from agent_service.prompts import PromptBook
from agent_service.workers.turns import reply_id
from parley_shared.clock import OffsetClock
from parley_shared.contracts import OutgoingKind
from parley_shared.db import create_engine, session_factory
from parley_shared.service import RUNTIME
from tests.agent.conversation_support import (
    AUTH,
    ROOT,
    Agent,
    Replies,
    ScriptedEngine,
    delivery_status,
    echo_decision,
    inbound,
    running_agent,
)


def echo_engine(delay_s: float = 0.0) -> ScriptedEngine:
    async def respond(context: TurnContext) -> Any:
        if delay_s:
            await asyncio.sleep(delay_s)
        return echo_decision(context)

    return ScriptedEngine(respond)


async def rows(agent: Agent, table: Any) -> list[Any]:
    async with agent.app[RUNTIME].sessions() as session:
        return list((await session.execute(select(table))).mappings())


async def test_a_message_gets_a_grounded_reply_recorded_with_its_passages(amqp_url: str, database_url: str) -> None:
    async with running_agent(amqp_url, database_url) as agent:
        reply = await agent.say("+77010000001", "How much is the ErgoPro 300 chair?")
        assert "89 900 ₸" in reply.text and reply.kind is OutgoingKind.REPLY
        convo = await agent.conversation("+77010000001")
        out = [m for m in convo["messages"] if m["direction"] == "out"]
        assert out[0]["message_id"] == reply.message_id and out[0]["knowledge_refs"]
        assert out[0]["status"] == "queued" and out[0]["model"] == "offline-rules-v1"
        assert convo["contact"]["client_status"] == "client" and convo["contact"]["last_outbound_at"]
        assert reply.message_id == reply_id(out[0]["turn_id"]) and reply.in_reply_to == [
            convo["messages"][0]["message_id"]
        ]


async def test_a_burst_is_one_turn_and_a_redelivery_has_no_second_effect(amqp_url: str, database_url: str) -> None:
    engine = echo_engine()
    async with running_agent(amqp_url, database_url, engine=engine, buffer_window_s=0.4) as agent:
        phone = "+77010000002"
        burst = [inbound(phone, text) for text in ("hello", "I need desks", "and chairs")]
        for message in burst:
            await agent.send(message)
        await agent.send(burst[1])  # the broker redelivers one of them
        [reply] = await agent.replies.wait_for(1, phone=phone)
        assert reply.in_reply_to == [m.message_id for m in burst]
        assert reply.text == "echo: hello | I need desks | and chairs"
        await agent.send(burst[2])  # a late duplicate after the turn
        await asyncio.sleep(0.6)
        await agent.idle()
        assert len(agent.replies.to(phone)) == 1 and len(engine.calls) == 1
        convo = await agent.conversation(phone)
        assert [m["status"] for m in convo["messages"]] == ["handled", "handled", "handled", "queued"]


WINDOW = 0.3


async def test_200_contacts_3_messages_each_interleaved(amqp_url: str, database_url: str) -> None:
    """Every message answered once, each contact's replies in order. On PostgreSQL two replicas share the
    work (SQLite is the single-node default: one replica)."""
    replicas = 2 if database_url.startswith("postgresql") else 1
    rng = random.Random(7)
    phones = [f"+7701{n:07d}" for n in range(1, 201)]
    sent: dict[str, list[str]] = {p: [] for p in phones}
    replies = await Replies(amqp_url).start()
    first, second = echo_engine(), echo_engine()
    try:
        async with contextlib.AsyncExitStack() as stack:
            one = await stack.enter_async_context(
                running_agent(amqp_url, database_url, engine=first, replies=replies, buffer_window_s=WINDOW)
            )
            two = one
            if replicas == 2:
                two = await stack.enter_async_context(
                    running_agent(amqp_url, database_url, engine=second, replies=replies, buffer_window_s=WINDOW)
                )
            words = ["first", "second", "third"]
            base = datetime.now(UTC)
            for wave, word in enumerate(words):
                order = phones[:]
                rng.shuffle(order)
                batch: list[Any] = []
                for i, phone in enumerate(order):
                    message = inbound(
                        phone,
                        f"{word} message",
                        key=f"{phone}-{wave}",
                        sent_at=base + timedelta(seconds=wave, microseconds=i),
                        # linked like the gateway links them: a replica that records a later message
                        # first waits for the earlier one
                        previous_message_id=sent[phone][-1] if sent[phone] else None,
                    )
                    sent[phone].append(message.message_id)
                    batch.append((one if i % 2 else two).send(message))
                    if rng.random() < 0.1:
                        batch.append(one.send(message))  # a duplicate delivery
                await asyncio.gather(*batch)  # one wave at a time: a contact's messages leave in order
                await asyncio.sleep(rng.choice([0.0, 0.1, WINDOW + 0.2]))  # same turn or the next one
            deadline = asyncio.get_running_loop().time() + 60
            while sum(len(m.in_reply_to) for m in {r.message_id: r for r in replies.messages}.values()) < 600:
                assert asyncio.get_running_loop().time() < deadline, "not every message was answered"
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.3)
            await one.idle()
            await two.idle()
            assert first.calls and (second.calls or replicas == 1), "both replicas should have run turns"
            async with create_engine_sessions(database_url) as session:
                statuses = dict(
                    (await session.execute(
                        select(tables.messages.c.status, func.count()).group_by(tables.messages.c.status)
                    )).all()
                )  # fmt: skip
    finally:
        await replies.close()
    distinct: dict[str, Any] = {}
    for reply in replies.messages:  # a publish may repeat (outbox), a second distinct reply may not
        assert distinct.setdefault(reply.message_id, reply) == reply
    for phone in phones:
        answered = [mid for r in distinct.values() if r.phone == phone for mid in r.in_reply_to]
        assert answered == sent[phone], f"{phone}: {answered} != {sent[phone]}"
        order = [r for r in replies.to(phone)]
        firsts = list(dict.fromkeys(r.message_id for r in order))
        flattened = [mid for rid in firsts for mid in distinct[rid].in_reply_to]
        assert flattened == sent[phone], "replies out of order"
    assert statuses["handled"] == 600 and statuses["queued"] == len(distinct)


class create_engine_sessions:
    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)

    async def __aenter__(self) -> Any:
        self.session = await session_factory(self.engine)().start()
        return self.session

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()
        await self.engine.dispose()


async def test_a_takeover_during_a_slow_model_call_wins(amqp_url: str, database_url: str) -> None:
    gate = asyncio.Event()
    started = asyncio.Event()

    async def slow(context: TurnContext) -> Any:
        started.set()
        await gate.wait()
        return echo_decision(context, "Here is the AI answer")

    engine = ScriptedEngine(slow)
    phone = "+77010000003"
    async with running_agent(amqp_url, database_url, engine=engine) as agent:
        await agent.send(inbound(phone, "Hello, I need an offer"))
        await asyncio.wait_for(started.wait(), 10)
        response = await agent.client.post(f"/contacts/{phone}/takeover", json={"manager": "Aliya"}, headers=AUTH)
        assert response.status == 200 and (await response.json())["owner"] == "human"
        gate.set()
        await agent.idle()
        await agent.app[RUNTIME].outbox.relay_once()
        await asyncio.sleep(0.5)
        assert agent.replies.to(phone) == []
        assert await agent.app[RUNTIME].outbox.pending() == 0
        convo = await agent.conversation(phone)
        ai = [m for m in convo["messages"] if m["direction"] == "out"]
        assert [(m["status"], m["text"]) for m in ai] == [("suppressed", "Here is the AI answer")]
        assert convo["messages"][0]["status"] == "silent"
        assert convo["contact"]["owner"] == "human" and convo["contact"]["owner_name"] == "Aliya"

        # While the manager holds it: recorded, silent; the AI only drafts (stored suppressed, never sent).
        await agent.send(inbound(phone, "Are you there?"))
        await eventually_drafted(agent, phone, 2)
        assert len(engine.calls) == 2 and agent.replies.to(phone) == []
        convo = await agent.conversation(phone)
        assert [m["status"] for m in convo["messages"]][-2:] == ["silent", "suppressed"]

        # The manager writes; the operator message goes out as kind operator (once per client id).
        body = {"text": "Hi, this is Aliya from KomfortOffice", "client_message_id": "m-1"}
        sent = await agent.client.post(f"/contacts/{phone}/messages", json=body, headers=AUTH)
        again = await agent.client.post(f"/contacts/{phone}/messages", json=body, headers=AUTH)
        assert (sent.status, again.status) == (202, 200) and (await again.json())["duplicate"] is True
        [operator] = await agent.replies.wait_for(1, phone=phone)
        assert operator.kind is OutgoingKind.OPERATOR and operator.text == body["text"]

        # Handback: the AI answers again.
        assert (await agent.client.post(f"/contacts/{phone}/handback", headers=AUTH)).status == 200
        gate.set()
        reply = await agent.say(phone, "Thanks, what else?")
        assert reply.text == "Here is the AI answer" and reply.kind is OutgoingKind.REPLY
        convo = await agent.conversation(phone)
        assert [m["status"] for m in convo["messages"] if m["direction"] == "in"] == ["silent", "silent", "handled"]


async def eventually_drafted(agent: Any, phone: str, drafts: int) -> None:
    """Wait until the contact has ``drafts`` suppressed replies (the AI's drafts while a manager holds it)."""
    for _ in range(200):
        await agent.idle()
        convo = await agent.conversation(phone)
        if sum(m["status"] == "suppressed" for m in convo["messages"]) >= drafts:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {drafts} drafts")


async def test_without_held_drafts_a_held_conversation_costs_no_model_call(amqp_url: str, tmp_path: Any) -> None:
    async def answer(context: TurnContext) -> Any:
        return echo_decision(context, "AI answer")

    engine = ScriptedEngine(answer)
    phone = "+77010000004"
    database = f"sqlite+aiosqlite:///{tmp_path}/a.db"
    async with running_agent(amqp_url, database, engine=engine, held_drafts=False) as agent:
        await agent.say(phone, "Hello")
        assert (await agent.client.post(f"/contacts/{phone}/takeover", headers=AUTH)).status == 200
        await agent.send(inbound(phone, "Are you there?"))

        for _ in range(200):
            convo = await agent.conversation(phone)
            if len(convo["messages"]) == 3:
                break
            await asyncio.sleep(0.05)
        await agent.idle()
        convo = await agent.conversation(phone)
        assert [(m["direction"], m["status"]) for m in convo["messages"]][-1] == ("in", "silent")
        assert len(convo["messages"]) == 3 and len(engine.calls) == 1


async def test_handoff_routes_need_the_token_and_a_known_contact(amqp_url: str, tmp_path: Any) -> None:
    async with running_agent(amqp_url, f"sqlite+aiosqlite:///{tmp_path}/a.db") as agent:
        client = agent.client
        assert (await client.post("/contacts/+77010000009/takeover")).status == 401
        assert (await client.post("/contacts/77010000009/takeover", headers=AUTH)).status == 404
        assert (await client.post("/contacts/not-a-phone/takeover", headers=AUTH)).status == 400
        assert (await client.get("/contacts/%2B77010000009", headers=AUTH)).status == 404
        await agent.say("+77010000009", "Hello")
        bad = await client.post("/contacts/77010000009/messages", json={"text": "  "}, headers=AUTH)
        assert bad.status == 400
        ok = await client.get("/contacts/8 701 000 00 09", headers=AUTH)  # national format, normalised
        assert ok.status == 200 and (await ok.json())["contact"]["phone"] == "+77010000009"


async def test_an_inventing_model_never_reaches_the_queue(amqp_url: str, database_url: str) -> None:
    engine = ScriptedEngine(lambda c: _inventing(c))
    safe = PromptBook(ROOT / "prompts").phrase("en", "check_with_manager")
    before = REGISTRY.get_sample_value("parley_agent_ungrounded_replies_total", {"engine": "scripted"}) or 0
    async with running_agent(amqp_url, database_url, engine=engine) as agent:
        for n, text in enumerate(["How much is the ErgoPro 300?", "Any discount?", "Delivery price?"]):
            reply = await agent.say(f"+7701000010{n}", text)
            assert reply.text == safe
            convo = await agent.conversation(f"+7701000010{n}")
            assert convo["contact"]["needs_human"] is True
            assert "ungrounded" in convo["messages"][-1]["error"]
        exposed = await (await agent.client.get("/metrics")).text()
        assert "parley_agent_ungrounded_replies_total" in exposed
    after = REGISTRY.get_sample_value("parley_agent_ungrounded_replies_total", {"engine": "scripted"})
    assert after == before + 3


async def _inventing(context: TurnContext) -> Any:
    return echo_decision(context, "Today only: 15% discount, the ErgoPro 300 is 69 900 ₸!")


async def test_a_non_client_gets_silence_until_a_manager_says_otherwise(amqp_url: str, database_url: str) -> None:
    phone = "+77010000004"
    async with running_agent(amqp_url, database_url) as agent:
        await agent.send(inbound(phone, "Earn $500 a day with crypto! Click this link bit.ly/xyz"))
        await asyncio.sleep(0.3)
        await agent.idle()
        await agent.send(inbound(phone, "Hello?? Click the link"))
        await asyncio.sleep(0.3)
        await agent.idle()
        assert agent.replies.to(phone) == []
        convo = await agent.conversation(phone)
        contact = convo["contact"]
        assert (contact["client_status"], contact["client_category"], contact["classified_by"]) == (
            "non_client",
            "spam",
            "moderator",
        )
        assert [m["status"] for m in convo["messages"]] == ["silent", "silent"]
        patch = {"client_status": "client", "reason": "a real customer after all"}
        assert (await agent.client.patch(f"/contacts/{phone}", json=patch, headers=AUTH)).status == 200
        reply = await agent.say(phone, "How much is the ErgoPro 300?")
        assert "89 900 ₸" in reply.text
        contact = (await agent.conversation(phone))["contact"]
        assert (contact["client_status"], contact["classified_by"]) == ("client", "manager")


async def test_a_restarted_replica_answers_what_a_dead_one_left(amqp_url: str, database_url: str) -> None:
    """Messages recorded before a crash, and a turn whose lease holder died, are picked up by the sweeper."""
    phone, other = "+77010000005", "+77010000006"
    replies = await Replies(amqp_url).start()
    try:
        async with running_agent(
            amqp_url, database_url, engine=echo_engine(), replies=replies, buffer_window_s=30
        ) as a:
            await a.send(inbound(phone, "are you open?"))
            await a.send(inbound(other, "hello"))
            deadline = asyncio.get_running_loop().time() + 10
            while len(await rows(a, tables.messages)) < 2:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.05)
        # "Crash": the first replica is gone; its due times are 30 s away and one turn was leased by it.
        now = datetime.now(UTC)
        async with create_engine_sessions(database_url) as session:
            c = tables.contacts.c
            await session.execute(update(tables.contacts).values(turn_due_at=now - timedelta(seconds=1)))
            await session.execute(
                update(tables.contacts)
                .where(c.phone == other)
                .values(turn_lease_owner="dead-replica", turn_lease_until=now + timedelta(seconds=1))
            )
            await session.commit()
        async with running_agent(amqp_url, database_url, engine=echo_engine(), replies=replies) as b:
            [first] = await replies.wait_for(1, phone=phone, timeout=10)
            [second] = await replies.wait_for(1, phone=other, timeout=10)
            assert first.text == "echo: are you open?" and second.text == "echo: hello"
            await b.idle()
    finally:
        await replies.close()


async def test_delivery_statuses_move_replies_forward_only(amqp_url: str, database_url: str) -> None:
    async with running_agent(amqp_url, database_url, engine=echo_engine()) as agent:
        phone = "+77010000007"
        reply = await agent.say(phone, "hello")

        async def status(state: str, **extra: Any) -> None:
            await agent.report(reply, state, **extra)

        async def current() -> dict[str, Any]:
            for _ in range(100):
                out = (await agent.conversation(phone))["messages"][-1]
                if out["status"] != "queued":
                    return out
                await asyncio.sleep(0.05)
            return out

        await status("delivered")
        assert (await current())["status"] == "delivered"
        await status("sent")
        await status("failed", error_code="131047", error_reason="re-engagement window")
        await status("read")
        for _ in range(100):
            out = await current()
            if out["status"] == "read":
                break
            await asyncio.sleep(0.05)
        assert out["status"] == "read" and out["error"] is None and out["sent_at"]
        if database_url.startswith("sqlite"):  # sent_at stored in SQLite's UTC text form, like every timestamp
            async with agent.app[RUNTIME].sessions() as session:
                m = tables.messages.c
                stored = await session.scalar(
                    select(func.cast(m.sent_at, String)).where(m.message_id == reply.message_id)
                )
            assert stored is not None and "+" not in stored and "T" not in stored, stored


async def test_statuses_applied_together_keep_each_messages_delivery_order(amqp_url: str, database_url: str) -> None:
    """A batch holding several statuses of one message applies them in delivery order (one
    statement per round), the other messages' alongside: the same outcome as one at a time."""
    from agent_service.workers.status import StatusHandler
    from parley_shared.shutdown import Drains

    async with running_agent(amqp_url, database_url, engine=echo_engine()) as agent:
        phones = [f"+770100000{n}" for n in range(60, 64)]
        a, b, c, d = [await agent.say(phone, "hello") for phone in phones]

        status = delivery_status
        batch = [
            status(a, "sent"),
            status(b, "failed", error_code="outside_24h_window", error_reason="the prospect never wrote"),
            status(a, "delivered"),
            status(c, "read"),
            status(a, "failed", error_code="131026", error_reason="undeliverable"),  # after delivered: ignored
            status(c, "sent"),  # after read: ignored
            status(d, "delivered"),
            status(a, "read"),
        ]
        applied = await StatusHandler(agent.app[RUNTIME].sessions, Drains())._apply(batch)
        conversations = {phone: await agent.conversation(phone) for phone in phones}

    moved = [x.contact_id is not None for x in applied]
    assert moved == [True, True, True, True, False, False, True, True]
    assert [x.flagged for x in applied] == [False, True, False, False, False, False, False, False]
    assert len({applied[i].contact_id for i in (0, 2, 7)}) == 1 and applied[0].contact_id != applied[1].contact_id
    last = {phone: conversations[phone]["messages"][-1] for phone in phones}
    assert [last[p]["status"] for p in phones] == ["read", "failed", "read", "delivered"]
    assert last[phones[0]]["error"] is None and last[phones[0]]["sent_at"]
    assert last[phones[1]]["error"] == "outside_24h_window the prospect never wrote"
    assert conversations[phones[1]]["contact"]["needs_human"] is True
    assert [conversations[p]["contact"]["needs_human"] for p in (phones[0], phones[2], phones[3])] == [False] * 3


async def test_a_call_request_books_a_call_shown_with_the_conversation(amqp_url: str, database_url: str) -> None:
    clock = OffsetClock()
    monday_noon = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)  # Monday 12:00 in Almaty
    clock.advance(monday_noon - datetime.now(UTC))
    phone = "+77010000008"
    async with running_agent(amqp_url, database_url, clock=clock, enable_follow_ups=True) as agent:
        await agent.say(phone, "Hello, we need chairs for a new office")
        planned = (await agent.conversation(phone))["follow_ups"]
        assert len(planned) == 5 and {t["status"] for t in planned} == {"pending"}  # the AI replied: a sequence
        reply = await agent.say(phone, "Can you call me tomorrow at 11?")
        convo = await agent.conversation(phone)
    [call] = convo["calls"]
    assert "pending" not in {t["status"] for t in convo["follow_ups"]}  # a definitive yes stops them
    assert call["status"] == "pending" and call["scheduled_at"].startswith("2026-03-03T06:00:00")
    assert convo["contact"]["outcome"] == "agreed"
    assert reply.text.startswith(PromptBook(ROOT / "prompts").phrase("en", "call_confirm"))
    assert len(reply.text) > len(PromptBook(ROOT / "prompts").phrase("en", "call_confirm"))  # the booking's own words


async def test_a_crashing_engine_gets_the_fallback_reply_and_a_human(amqp_url: str, database_url: str) -> None:
    async def broken(context: TurnContext) -> Any:
        raise ZeroDivisionError("bug in a custom engine")

    async with running_agent(amqp_url, database_url, engine=ScriptedEngine(broken)) as agent:
        reply = await agent.say("+77010000010", "Hello?")
        convo = await agent.conversation("+77010000010")
    assert reply.text == PromptBook(ROOT / "prompts").phrase("en", "fallback")
    assert convo["contact"]["needs_human"] is True and "ZeroDivisionError" in convo["contact"]["needs_human_reason"]
    assert convo["messages"][0]["status"] == "handled"


class _FollowUpsFailingFor:
    """Follow-up hooks that fail for one phone (a message that cannot be recorded)."""

    def __init__(self, bad_phone: str) -> None:
        self.bad_phone = bad_phone
        self.calls: list[int] = []

    async def on_inbound(self, _session: Any, contacts: Any, _now: datetime) -> None:
        self.calls.append(len(contacts))
        if any(c["phone"] == self.bad_phone for c in contacts):
            raise ValueError("cannot record this one")


async def test_messages_delivered_together_share_a_transaction_and_a_bad_one_fails_alone(
    amqp_url: str, database_url: str
) -> None:
    from agent_service.domain.moderation import ModerationPolicy
    from agent_service.workers.incoming import IncomingHandler

    async with running_agent(amqp_url, database_url, engine=echo_engine()) as agent:
        runtime = agent.app[RUNTIME]
        bad = "+77019999999"
        follow_ups = _FollowUpsFailingFor(bad)
        scheduled: list[int] = []
        handler = IncomingHandler(
            sessions=runtime.sessions,
            inbox=runtime.inbox,
            clock=runtime.clock,
            follow_ups=follow_ups,  # type: ignore[arg-type]
            schedule=lambda contact_id, _delay: scheduled.append(contact_id),
            drains=runtime.drains,
            window_s=30.0,
            moderation=ModerationPolicy(min_confidence=0.6, max_turns=3),
        )
        good = [inbound(f"+7701555{i:04d}", f"hello {i}") for i in range(40)]
        again = inbound("+77015550001", "a second message of one contact", key="second")
        outcomes = await asyncio.gather(
            *(handler(m) for m in [*good, inbound(bad, "poison"), again, good[3]]), return_exceptions=True
        )
        errors = [o for o in outcomes if isinstance(o, Exception)]
        assert len(errors) == 1 and "cannot record" in str(errors[0])  # only the bad message failed
        assert handler.group_commit.batches < handler.group_commit.items  # several messages per transaction
        assert max(follow_ups.calls) > 1
        async with runtime.sessions() as session:
            recorded = (await session.execute(select(tables.messages.c.text, tables.messages.c.status))).all()
        texts = sorted(t for t, _ in recorded)
        assert texts == sorted([f"hello {i}" for i in range(40)] + ["a second message of one contact"])
        assert {s for _, s in recorded} == {"pending"}  # the redelivered good[3] was not recorded twice
        assert len(scheduled) == 41 and len(set(scheduled)) == 40


async def test_a_batch_takes_at_most_batch_max_size_messages(amqp_url: str, database_url: str) -> None:
    async with running_agent(amqp_url, database_url, engine=echo_engine(), batch_max_size=3) as agent:
        handler = agent.app[AGENT].incoming
        await asyncio.gather(*(handler(inbound(f"+7701666{i:04d}", f"hi {i}")) for i in range(30)))
        group = handler.group_commit
        assert group.items == 30 and group.largest == 3  # full batches formed, none beyond the setting
        assert group.batches >= 10


async def test_a_stop_starts_no_turn_even_for_a_contact_whose_turn_ends_in_the_grace_period(
    amqp_url: str, database_url: str
) -> None:
    """A message that arrived during a turn asks for the contact's next turn when it ends; if it
    ends during a stop's grace period, that next turn is not started (it stays due for the
    sweeper), so nothing runs here after the stop returned."""
    first_call, gate, never = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def respond(context: TurnContext) -> Any:
        if not first_call.is_set():
            first_call.set()
            await gate.wait()
        else:
            await never.wait()  # a second turn would hang here past the stop
        return echo_decision(context)

    phone = "+77010000099"
    async with running_agent(amqp_url, database_url, engine=ScriptedEngine(respond)) as agent:
        turns = agent.app[AGENT].turns
        await agent.send(inbound(phone, "Hello"))
        await asyncio.wait_for(first_call.wait(), 10)
        await agent.send(inbound(phone, "And one more thing"))
        for _ in range(200):  # the second message asked for another turn while the first runs
            if turns._again:
                break
            await asyncio.sleep(0.05)
        assert turns._again
        stopping = asyncio.create_task(turns.stop(grace_s=5.0))
        await asyncio.sleep(0.1)
        gate.set()  # the first turn ends within the grace period
        await asyncio.wait_for(stopping, 10)
        assert not turns._tasks, "a turn still runs after the stop returned"
        async with agent.app[RUNTIME].sessions() as session:
            due = await session.scalar(select(tables.contacts.c.turn_due_at).where(tables.contacts.c.phone == phone))
        assert due is not None  # the second message's turn stays due for the sweeper
        never.set()


async def test_turns_written_together_a_lost_lease_and_a_changed_message_touch_no_neighbour(
    amqp_url: str, database_url: str
) -> None:
    """Thirty turns finish at once and are written in shared transactions. One contact's lease was
    taken over meanwhile (another replica): that turn writes nothing. Another contact's message
    stopped being pending (a revoke) under the lease: that turn fails alone. Every other contact
    gets its reply, once."""
    gate = asyncio.Event()
    started: list[str] = []

    async def gated(context: TurnContext) -> Any:
        started.append(context.messages[-1])
        await gate.wait()
        return echo_decision(context)

    phones = [f"+7701777{i:04d}" for i in range(30)]
    taken, revoked = phones[7], phones[19]
    async with running_agent(amqp_url, database_url, engine=ScriptedEngine(gated)) as agent:
        turns = agent.app[AGENT].turns
        batches: list[list[int]] = []
        write_batch = turns.commits.run_batch

        async def recording(results: list[Any]) -> Any:
            batches.append([r.contact_id for r in results])
            return await write_batch(results)

        turns.commits.run_batch = recording
        for i, phone in enumerate(phones):
            await agent.send(inbound(phone, f"question {i}"))
        for _ in range(400):
            if len(started) == len(phones):
                break
            await asyncio.sleep(0.05)
        assert len(started) == len(phones)
        c, m = tables.contacts.c, tables.messages.c
        async with agent.app[RUNTIME].sessions() as session, session.begin():
            ids = dict((await session.execute(select(c.phone, c.id))).all())
            await session.execute(update(tables.contacts).where(c.phone == taken).values(turn_lease_owner="elsewhere"))
            await session.execute(update(tables.messages).where(m.contact_id == ids[revoked]).values(status="silent"))
        gate.set()
        await agent.idle()
        others = [p for p in phones if p not in (taken, revoked)]
        await agent.replies.wait_for(len(others))
        await asyncio.sleep(0.3)
        assert sorted(r.phone for r in agent.replies.messages) == sorted(others)  # each once
        # Written in shared transactions; the batch holding the failing turn was re-run turn by turn.
        assert max(len(b) for b in batches) > 1
        shared = [b for b in batches if ids[revoked] in b and len(b) > 1]
        assert shared and [ids[revoked]] in batches
        async with agent.app[RUNTIME].sessions() as session:
            found = (await session.execute(select(m.contact_id, m.direction, m.status))).all()
        by_contact: dict[int, list[tuple[str, str]]] = {}
        for contact_id, direction, status in found:
            by_contact.setdefault(contact_id, []).append((direction, status))
        assert by_contact[ids[taken]] == [("in", "pending")]  # left to the replica holding the lease
        assert by_contact[ids[revoked]] == [("in", "silent")]  # no reply stored
        for phone in others:
            assert sorted(by_contact[ids[phone]]) == [("in", "handled"), ("out", "queued")]
