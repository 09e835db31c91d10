"""Turns on the real RabbitMQ and both databases: bursts, idempotency, order at scale, handoff races."""

from __future__ import annotations

from tests.agent.conversation_support import running_agent


async def test_a_message_gets_a_grounded_reply_recorded_with_its_passages(amqp_url: str, database_url: str) -> None:
    async with running_agent(amqp_url, database_url) as agent:
        reply = await agent.say("+77010000001", "How much is the ErgoPro 300 chair?")
        assert "89 900 ₸" in reply.text
        convo = await agent.conversation("+77010000001")
        out = [m for m in convo["messages"] if m["direction"] == "out"]
        assert out[0]["message_id"] == reply.message_id and out[0]["knowledge_refs"]
        assert convo["contact"]["client_status"] == "client"
