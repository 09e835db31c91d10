"""A conversation end to end: the gateway's sandbox in, the agent service, the sender, the sandbox
outbox out -- both applications in this process, on the real RabbitMQ and databases."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent_service.app import create_app as create_agent
from agent_service.prompts import PromptBook
from tests.agent.conversation_support import AUTH as AGENT_AUTH
from tests.agent.conversation_support import BUSINESS_FILES, ROOT, settings_for
from tests.gateway.helpers import AUTH as GATEWAY_AUTH
from tests.gateway.helpers import eventually, gateway_settings, running

PHONE = "+77010000021"
PROMPTS = PromptBook(ROOT / "prompts")
# Per sample business: (a price question, the price it quotes), a question its documents cannot
# answer, (a delivery question, the figure its answer holds).
SCRIPTS = {
    "komfortoffice": (
        ("Hello! How much is the ErgoPro 300 chair?", "89 900 ₸"),
        "Do you sell coffee machines?",
        ("What is the delivery cost in Almaty?", "5 000 ₸"),
    ),
    "tazasu": (
        ("Hello! How much is the Trio T-3 filter?", "39,900 KZT"),
        "Do you sell water heaters?",
        ("What is the delivery cost in Astana?", "1,500 KZT"),
    ),
}


@asynccontextmanager
async def stack(
    amqp_url: str, tmp_path: Path, agent_db: str, business: str
) -> AsyncIterator[tuple[TestClient, TestClient]]:
    gateway = gateway_settings(amqp_url, f"sqlite+aiosqlite:///{tmp_path}/gateway.db")
    agent_settings = settings_for(amqp_url, agent_db, buffer_window_s=0.1, business_file=str(BUSINESS_FILES[business]))
    agent_app = create_agent(agent_settings)
    async with running(gateway) as gw, TestClient(TestServer(agent_app)) as agent:
        yield gw, agent


class Chat:
    """The prospect's side: write through the sandbox, read what the sandbox delivered."""

    def __init__(self, gateway: TestClient, phone: str) -> None:
        self.gateway, self.phone, self.cursor, self.seen = gateway, phone, 0, 0

    async def write(self, **body: Any) -> dict[str, Any]:
        response = await self.gateway.post("/sandbox/inbound", json={"from": self.phone, **body}, headers=GATEWAY_AUTH)
        assert response.status == 202, await response.text()
        return await response.json()

    async def read(self, *, wait: int = 20) -> dict[str, Any]:
        response = await self.gateway.get(
            "/sandbox/outbox",
            params={"to": self.phone, "after": str(self.cursor), "wait": str(wait), "limit": "1"},
            headers=GATEWAY_AUTH,
        )
        page = await response.json()
        assert page["messages"], "nothing delivered"
        self.cursor = page["next_cursor"]
        return page["messages"][0]

    async def nothing_more(self) -> bool:
        response = await self.gateway.get(
            "/sandbox/outbox", params={"to": self.phone, "after": str(self.cursor), "wait": "1"}, headers=GATEWAY_AUTH
        )
        return (await response.json())["messages"] == []


@pytest.mark.parametrize("business", list(SCRIPTS))
async def test_a_prospect_talks_to_the_agent_through_the_sandbox(
    amqp_url: str, database_url: str, tmp_path: Path, business: str
) -> None:
    (price_question, price), unanswerable, (delivery_question, delivery) = SCRIPTS[business]
    async with stack(amqp_url, tmp_path, database_url, business) as (gateway, agent):
        chat = Chat(gateway, PHONE)
        accepted = await chat.write(text=price_question, name="Aru", id="e2e-1")
        assert accepted["status"] == "published"
        first = await chat.read()
        assert price in first["text"] and "Aru" in first["text"]
        assert first["kind"] == "reply" and first["in_reply_to"] == [accepted["message_id"]]
        assert (await chat.write(text=price_question, id="e2e-1"))["status"] == "duplicate"

        # The sender's delivery status reaches the agent's record of the reply.
        async def delivered() -> bool:
            convo = await (await agent.get(f"/contacts/{PHONE}", headers=AGENT_AUTH)).json()
            out = [m for m in convo["messages"] if m["direction"] == "out"]
            return out[-1]["status"] in ("sent", "delivered", "read")

        await eventually(delivered, what="the reply's delivery status")

        # A voice note nobody can transcribe (no Gemini key): the agent hears it and asks for text.
        await chat.write(voice_base64=base64.b64encode(b"OggS fake voice").decode(), id="e2e-voice")
        voice_reply = await chat.read()
        assert voice_reply["text"] == PROMPTS.phrase("en", "voice_unavailable")

        # A question the catalogue cannot answer: the manager handoff, flagged for a human.
        await chat.write(text=unanswerable, id="e2e-2")
        assert (await chat.read())["text"] == PROMPTS.phrase("en", "check_with_manager")
        convo = await (await agent.get(f"/contacts/{PHONE[1:]}", headers=AGENT_AUTH)).json()
        assert convo["contact"]["needs_human"] is True

        # The manager takes over and writes; the AI stays silent.
        takeover = await agent.post(f"/contacts/{PHONE}/takeover", json={"manager": "Dana"}, headers=AGENT_AUTH)
        assert takeover.status == 200
        sent = await agent.post(f"/contacts/{PHONE}/messages", json={"text": "Hi Aru, Dana here."}, headers=AGENT_AUTH)
        assert sent.status == 202
        operator = await chat.read()
        assert (operator["kind"], operator["text"]) == ("operator", "Hi Aru, Dana here.")
        await chat.write(text="Thanks Dana!", id="e2e-3")
        assert await chat.nothing_more()

        # Handed back, the AI answers again.
        assert (await agent.post(f"/contacts/{PHONE}/handback", headers=AGENT_AUTH)).status == 200
        await chat.write(text=delivery_question, id="e2e-4")
        assert delivery in (await chat.read())["text"]
        convo = await (await agent.get(f"/contacts/{PHONE}", headers=AGENT_AUTH)).json()
        texts = {m["text"]: (m["direction"], m["kind"], m["status"]) for m in convo["messages"]}
        assert texts["Thanks Dana!"] == ("in", "text", "silent")
        assert texts["Hi Aru, Dana here."][:2] == ("out", "operator")
        assert texts[delivery_question] == ("in", "text", "handled")
