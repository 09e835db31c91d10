"""A contact's messages are answered in the order they were sent, whatever order they are recorded in.

The interleaving the fault suite found: a message whose recording failed (a terminated database
connection, a channel lost mid-handler) was recorded only on its retry, after the contact's next
message; that message's turn ran in between and answered it first. Each message now names its
predecessor (``previous_message_id``, set by the gateway), and a turn holds what comes after a
message that has not arrived yet. These tests record the later message first, on purpose.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import REGISTRY
from sqlalchemy import select

from agent_service.db import tables
from parley_shared.contracts import IncomingMessage
from parley_shared.service import RUNTIME
from tests.agent.conversation_support import Agent, ScriptedEngine, echo_decision, inbound, running_agent


def chained(phone: str, texts: list[str]) -> list[IncomingMessage]:
    """Messages as the gateway publishes them: each names the previous one of the contact."""
    out: list[IncomingMessage] = []
    base = datetime.now(UTC)
    for i, text in enumerate(texts):
        message = inbound(phone, text, sent_at=base + timedelta(milliseconds=i))
        previous = out[-1].message_id if out else None
        out.append(message.model_copy(update={"previous_message_id": previous}))
    return out


def echo_engine() -> ScriptedEngine:
    async def respond(context: Any) -> Any:
        return echo_decision(context)

    return ScriptedEngine(respond)


async def contact_row(agent: Agent, phone: str) -> Any:
    async with agent.app[RUNTIME].sessions() as session:
        result = await session.execute(select(tables.contacts).where(tables.contacts.c.phone == phone))
        return result.mappings().first()


async def held_turn(agent: Agent, phone: str, *, at_least: timedelta, answered: int = 0) -> None:
    """Wait until a turn ran and postponed the contact (it holds a message for an earlier one),
    with no reply beyond the ``answered`` ones so far."""
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        contact = await contact_row(agent, phone)
        if contact is not None and contact["turn_due_at"] is not None and contact["turn_lease_owner"] is None:
            if contact["turn_due_at"] - datetime.now(UTC) > at_least:
                return
        assert len(agent.replies.to(phone)) == answered, "a turn answered a message before one sent ahead of it"
        assert asyncio.get_running_loop().time() < deadline, "no turn held the contact's later message"
        await asyncio.sleep(0.05)


def gaps(outcome: str) -> float:
    return REGISTRY.get_sample_value("parley_agent_order_gaps_total", {"outcome": outcome}) or 0.0


async def test_a_message_recorded_before_an_earlier_one_waits_for_it(amqp_url: str, database_url: str) -> None:
    phone = "+77010000101"
    first, second, third = chained(phone, ["first", "second", "third"])
    engine = echo_engine()
    held_before = gaps("held")
    async with running_agent(amqp_url, database_url, engine=engine, order_gap_wait_s=600) as agent:
        await agent.send(second)  # the first one's recording failed and is being retried
        await agent.send(third)
        await held_turn(agent, phone, at_least=timedelta(seconds=300))
        assert engine.calls == [] and gaps("held") > held_before
        await agent.send(first)  # the retry succeeds
        [reply] = await agent.replies.wait_for(1, phone=phone)
        assert reply.in_reply_to == [first.message_id, second.message_id, third.message_id]
        assert reply.text == "echo: first | second | third"
        await agent.idle()
        contact = await contact_row(agent, phone)
        assert contact["turn_due_at"] is None and len(engine.calls) == 1


async def test_messages_before_a_gap_are_answered_and_those_after_it_wait(amqp_url: str, database_url: str) -> None:
    phone = "+77010000102"
    one, two, three, four = chained(phone, ["one", "two", "three", "four"])
    async with running_agent(amqp_url, database_url, engine=echo_engine(), order_gap_wait_s=600) as agent:
        await agent.send(one)
        [early] = await agent.replies.wait_for(1, phone=phone)
        assert early.in_reply_to == [one.message_id]
        for message in (two, four):  # "three" is late
            await agent.send(message)
        [early, second] = await agent.replies.wait_for(2, phone=phone)
        assert second.in_reply_to == [two.message_id]  # answered; "four" waits behind the gap
        await held_turn(agent, phone, at_least=timedelta(seconds=300), answered=2)
        await agent.send(three)
        replies = await agent.replies.wait_for(3, phone=phone)
        assert replies[2].in_reply_to == [three.message_id, four.message_id]


async def test_a_message_that_never_arrives_holds_the_contact_only_for_the_wait(
    amqp_url: str, database_url: str
) -> None:
    """The predecessor was dead-lettered (or sent by an older gateway that named none of its own):
    after ``ORDER_GAP_WAIT_S`` the waiting message is answered anyway and the gap is counted."""
    phone = "+77010000103"
    lost, late = chained(phone, ["lost on the way", "still here"])
    expired_before = gaps("expired")
    async with running_agent(amqp_url, database_url, engine=echo_engine(), order_gap_wait_s=0.5) as agent:
        await agent.send(late)
        [reply] = await agent.replies.wait_for(1, phone=phone)
        assert reply.in_reply_to == [late.message_id] and reply.text == "echo: still here"
        assert gaps("expired") > expired_before
        assert lost.message_id not in reply.in_reply_to
