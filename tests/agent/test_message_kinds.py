"""What the agent does with each kind of message: events land on the message they name (whichever
arrives first), an edit is answered in its corrected form, a deleted message is not given to the
model, a number change keeps the history, an order is echoed and handed to a manager, an
unsupported message gets one polite answer, files and structured content reach the records."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from agent_service.engines.base import TurnContext
from parley_shared.contracts import (
    DeliveryState,
    DeliveryStatus,
    IncomingMessage,
    MediaRef,
    MessageKind,
    Order,
    OrderItem,
    Referral,
    SystemNotice,
    stable_id,
)
from parley_shared.topology import STATUS
from tests.agent.conversation_support import AUTH, Agent, ScriptedEngine, echo_decision, running_agent
from tests.gateway.helpers import eventually

_ids = itertools.count(1)


def message(phone: str, kind: MessageKind = MessageKind.TEXT, text: str | None = None, **extra: Any) -> IncomingMessage:
    key = f"k-{next(_ids)}"
    now = datetime.now(UTC)
    return IncomingMessage(
        message_id=stable_id("in", "meta", key),
        correlation_id=key,
        phone=phone,
        provider="meta",
        provider_message_id=key,
        kind=kind,
        text=text,
        sent_at=now,
        received_at=now,
        chat_id=phone.lstrip("+"),
        **extra,
    )


def echo() -> ScriptedEngine:
    async def respond(context: TurnContext) -> Any:
        return echo_decision(context)

    return ScriptedEngine(respond)


def by_id(convo: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["message_id"]: m for m in convo["messages"]}


async def settle(agent: Agent) -> None:
    await agent.idle()


async def test_an_edit_before_the_turn_is_answered_corrected_and_a_deleted_message_is_not(
    amqp_url: str, database_url: str
) -> None:
    engine = echo()
    phone = "+85291234567"
    async with running_agent(amqp_url, database_url, engine=engine, buffer_window_s=0.6) as agent:
        typo = message(phone, text="Do you have the ErgoPro 30?")
        oops = message(phone, text="my card number is 4111")
        await agent.send(typo)
        await agent.send(oops)
        await agent.send(
            message(phone, MessageKind.EDIT, "Do you have the ErgoPro 300?", target_message_id=typo.message_id)
        )
        await agent.send(message(phone, MessageKind.REVOKE, target_message_id=oops.message_id))
        [reply] = await agent.replies.wait_for(1, phone=phone)
        await settle(agent)
        assert reply.text == "echo: Do you have the ErgoPro 300?"  # corrected, and without the deleted one
        rows = by_id(await agent.conversation(phone))
        assert rows[typo.message_id]["text"] == "Do you have the ErgoPro 300?" and rows[typo.message_id]["edited_at"]
        assert rows[oops.message_id]["deleted_at"] and rows[oops.message_id]["status"] == "silent"
        # Later turns do not see the deleted message either.
        await agent.send(message(phone, text="And the price?"))
        await agent.replies.wait_for(2, phone=phone)
        assert all("4111" not in h.text for h in engine.calls[-1].history)


async def test_a_reaction_lands_on_its_message_whichever_comes_first_and_gets_no_reply(
    amqp_url: str, database_url: str
) -> None:
    phone = "+81312345678"
    async with running_agent(amqp_url, database_url, engine=echo()) as agent:
        reply = await agent.say(phone, "Hello")
        await agent.send(message(phone, MessageKind.REACTION, reaction="👍", target_message_id=reply.message_id))
        later = message(phone, text="Is it in stock?")
        await agent.send(message(phone, MessageKind.REACTION, reaction="❤", target_message_id=later.message_id))
        await agent.send(later)  # the reaction arrived before its message
        await agent.replies.wait_for(2, phone=phone)
        await settle(agent)
        rows = by_id(await agent.conversation(phone))
        assert rows[reply.message_id]["reaction"] == "👍" and rows[later.message_id]["reaction"] == "❤"
        reactions = [m for m in rows.values() if m["kind"] == "reaction"]
        assert len(reactions) == 2 and {m["status"] for m in reactions} == {"silent"}
        assert len(agent.replies.to(phone)) == 2  # the reactions got no reply
        # Taken back: an empty reaction.
        await agent.send(message(phone, MessageKind.REACTION, reaction="", target_message_id=reply.message_id))
        await settle(agent)

        async def cleared() -> bool:
            return by_id(await agent.conversation(phone))[reply.message_id]["reaction"] is None

        await eventually(cleared, what="the reaction taken back")


async def test_a_number_change_keeps_the_contact_and_its_history(amqp_url: str, database_url: str) -> None:
    old, new = "+84912345678", "+84912345679"
    async with running_agent(amqp_url, database_url, engine=echo()) as agent:
        await agent.say(old, "Hello, I need desks")
        notice = SystemNotice(type="user_changed_number", body="changed", new_phone=new)
        await agent.send(message(old, MessageKind.SYSTEM, system=notice))
        await settle(agent)

        async def moved() -> bool:
            response = await agent.client.get(f"/contacts/{new.replace('+', '%2B')}", headers=AUTH)
            return response.status == 200

        await eventually(moved, what="the contact under its new number")
        await agent.say(new, "Still interested")
        convo = await agent.conversation(new)
        texts = [m["text"] for m in convo["messages"] if m["direction"] == "in"]
        assert texts == ["Hello, I need desks", None, "Still interested"]
        assert len(agent.replies.to(new)) == 1 and len(agent.replies.to(old)) == 1  # no reply to the notice


async def test_an_order_is_echoed_with_its_total_and_handed_to_a_manager(amqp_url: str, database_url: str) -> None:
    phone = "+97254123456"
    order = Order(
        catalog_id="cat",
        items=[
            OrderItem(product_id="ERGOPRO-300", quantity=2, item_price=89900, currency="KZT"),
            OrderItem(product_id="DESK-120", quantity=1, item_price=65000, currency="KZT"),
        ],
    )
    async with running_agent(amqp_url, database_url) as agent:
        await agent.send(message(phone, MessageKind.ORDER, "Order:\n2 x ERGOPRO-300\n1 x DESK-120", order=order))
        [reply] = await agent.replies.wait_for(1, phone=phone)
        assert "2 x ERGOPRO-300 — 89900 KZT" in reply.text and "= 244800 KZT" in reply.text
        await settle(agent)
        convo = await agent.conversation(phone)
        assert convo["contact"]["needs_human"] and "order" in convo["contact"]["needs_human_reason"]
        assert convo["contact"]["outcome"] == "agreed"
        [recorded] = [m for m in convo["messages"] if m["kind"] == "order"]
        assert recorded["details"]["order"]["items"][0]["product_id"] == "ERGOPRO-300"


async def test_an_unsupported_message_gets_one_polite_answer(amqp_url: str, database_url: str) -> None:
    phone = "+4915112345678"
    async with running_agent(amqp_url, database_url) as agent:
        await agent.send(message(phone, MessageKind.UNSUPPORTED, unsupported="unsupported: (pool)"))
        [reply] = await agent.replies.wait_for(1, phone=phone)
        assert "write it as text" in reply.text
        convo = await agent.conversation(phone)
        [recorded] = [m for m in convo["messages"] if m["direction"] == "in"]
        assert recorded["kind"] == "unsupported" and recorded["details"] == {"unsupported": "unsupported: (pool)"}


async def test_files_chat_ids_and_ad_sources_reach_the_records(amqp_url: str, database_url: str) -> None:
    phone = "123456789012345@lid"  # a chat without a number: a contact like any other
    media = MediaRef(media_id="m1", mime_type="image/jpeg", size=2048, stored="key-1", sha256="ab" * 32)
    referral = Referral(source_id="AD-7", source_type="ad", headline="Chairs -20%")
    async with running_agent(amqp_url, database_url, engine=echo()) as agent:
        picture = message(phone, MessageKind.IMAGE, None, caption="this one?", media=media, referral=referral)
        await agent.send(picture)
        [reply] = await agent.replies.wait_for(1, phone=phone)
        assert reply.phone == phone and reply.text == "echo: this one?"
        convo = await agent.conversation(phone)
        row = by_id(convo)[picture.message_id]
        assert row["caption"] == "this one?" and row["media"]["stored"] == "key-1" and row["media"]["size"] == 2048
        assert row["details"]["referral"]["source_id"] == "AD-7"
        assert convo["contact"]["referral"]["headline"] == "Chairs -20%" and convo["contact"]["chat_id"] == phone


async def test_a_reply_refused_outside_the_window_flags_the_contact(amqp_url: str, database_url: str) -> None:
    phone = "+16505551234"
    async with running_agent(amqp_url, database_url, engine=echo()) as agent:
        reply = await agent.say(phone, "Hello")
        refused = DeliveryStatus(
            message_id=stable_id("status", reply.message_id, "failed"),
            correlation_id=reply.correlation_id,
            outgoing_message_id=reply.message_id,
            phone=phone,
            status=DeliveryState.FAILED,
            provider="meta",
            error_code="outside_24h_window",
            error_reason="Meta's 24-hour customer-service window is closed",
            occurred_at=datetime.now(UTC),
        )
        await agent.publisher.publish(STATUS, refused)

        async def flagged() -> bool:
            contact = (await agent.conversation(phone))["contact"]
            return bool(contact["needs_human"]) and "24-hour" in (contact["needs_human_reason"] or "")

        await eventually(flagged, what="the contact flagged with the reason")
