"""Helpers for the conversation tests: a running agent service on the real engines, a publisher
for ``incoming_messages``, a collector for what it publishes, and small fake engines."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agent_service.app import create_app
from agent_service.business import parse_business
from agent_service.context import AGENT
from agent_service.domain.decision import AgentDecision
from agent_service.domain.profile import BusinessProfile
from agent_service.engines.base import EngineResult, TurnContext
from agent_service.knowledge import KnowledgeBase
from agent_service.settings import AgentSettings
from parley_shared.broker import Broker
from parley_shared.clock import Clock
from parley_shared.contracts import (
    DeliveryStatus,
    IncomingMessage,
    MessageKind,
    OutgoingMessage,
    decode,
    new_id,
    stable_id,
)
from parley_shared.topology import INCOMING, OUTGOING, STATUS

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "agent-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# The two sample businesses: their business files (each with its knowledge_base/ beside it).
BUSINESS_FILES = {"komfortoffice": ROOT / "business.toml", "tazasu": ROOT / "samples" / "tazasu" / "business.toml"}


def sample_business(name: str = "komfortoffice") -> BusinessProfile:
    """A sample business's profile, with the default working hours (Monday to Friday 10-18, Almaty)."""
    return parse_business(
        BUSINESS_FILES[name].read_text(encoding="utf-8"),
        timezone="Asia/Almaty",
        start_hour=10,
        end_hour=18,
        days=(0, 1, 2, 3, 4),
    )


def sample_knowledge(name: str = "komfortoffice") -> KnowledgeBase:
    """A sample business's knowledge base, loaded (BM25 only, no event loop needed)."""
    knowledge = KnowledgeBase(BUSINESS_FILES[name].parent / "knowledge_base", synonyms=sample_business(name).synonyms)
    knowledge.load_sync()
    return knowledge


def settings_for(amqp_url: str, database_url: str, **overrides: Any) -> AgentSettings:
    values: dict[str, Any] = {
        "amqp_url": amqp_url,
        "database_url": database_url,
        "api_token": TOKEN,
        "llm_engine": "offline",
        "buffer_window_s": 0.05,
        "turn_sweep_interval_s": 0.2,
        "requeue_delay_s": 0.01,
        "outbox_interval_s": 0.2,
        "business_file": str(BUSINESS_FILES["komfortoffice"]),
        "prompts_dir": str(ROOT / "prompts"),
        "enable_follow_ups": False,
        "shutdown_timeout_s": 5,
    }
    values.update(overrides)
    return AgentSettings(**values)


_counter = 0


def inbound(
    phone: str,
    text: str | None,
    *,
    key: str | None = None,
    name: str | None = None,
    kind: MessageKind = MessageKind.TEXT,
    sent_at: datetime | None = None,
    **content: Any,
) -> IncomingMessage:
    """An inbound message as the gateway publishes it (ids derived from ``key``); ``content``: the
    structured content of its kind (``interactive``, ``order`` ...)."""
    global _counter
    _counter += 1
    key = key or f"{phone}-{_counter}"
    now = sent_at or datetime.now(UTC)
    return IncomingMessage(
        message_id=stable_id("in", "sandbox", key),
        correlation_id=stable_id("corr", key),
        phone=phone,
        contact_name=name,
        provider="sandbox",
        provider_message_id=key,
        kind=kind,
        text=text,
        sent_at=now,
        received_at=now,
        **content,
    )


class Replies:
    """Collects (and acks) everything on ``outgoing_messages`` in arrival order."""

    def __init__(self, amqp_url: str) -> None:
        self.amqp_url = amqp_url
        self.messages: list[OutgoingMessage] = []
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._arrived = asyncio.Event()

    async def start(self) -> Replies:
        self._connection = await aio_pika.connect_robust(self.amqp_url)
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=500)
        queue = await channel.get_queue(OUTGOING.name, ensure=False)
        self._channel, self._queue = channel, queue

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                self.messages.append(decode(OutgoingMessage, message.body))
                self._arrived.set()

        await queue.consume(on_message)
        return self

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()

    def to(self, phone: str) -> list[OutgoingMessage]:
        return [m for m in self.messages if m.phone == phone]

    async def wait_for(self, count: int, *, phone: str | None = None, timeout: float = 20.0) -> list[OutgoingMessage]:
        """Wait until at least ``count`` messages (to ``phone``) arrived; returns them."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            got = self.to(phone) if phone else list(self.messages)
            if len(got) >= count:
                return got
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"expected {count} replies, got {len(got)}")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout=min(remaining, 0.5))


@dataclass
class Agent:
    client: TestClient
    app: web.Application
    settings: AgentSettings
    publisher: Broker
    replies: Replies

    async def send(self, message: IncomingMessage) -> None:
        await self.publisher.publish(INCOMING, message)

    async def report(self, reply: OutgoingMessage, state: str, **extra: Any) -> None:
        """Publish what became of ``reply`` as the gateway does (``delivered``, ``failed`` with
        ``error_code`` ...)."""
        await self.publisher.publish(STATUS, delivery_status(reply, state, **extra))

    async def say(self, phone: str, text: str, *, timeout: float = 20.0, **kwargs: Any) -> OutgoingMessage:
        """Send one message and return the reply it gets."""
        before = len(self.replies.to(phone))
        await self.send(inbound(phone, text, **kwargs))
        got = await self.replies.wait_for(before + 1, phone=phone, timeout=timeout)
        return got[before]

    async def conversation(self, phone: str) -> dict[str, Any]:
        response = await self.client.get(f"/contacts/{phone.replace('+', '%2B')}", headers=AUTH)
        assert response.status == 200, await response.text()
        return await response.json()

    async def idle(self) -> None:
        await self.app[AGENT].turns.idle()


def delivery_status(reply: OutgoingMessage, state: str, **extra: Any) -> DeliveryStatus:
    """What became of ``reply``, as the gateway reports it (``delivered``, ``failed`` with
    ``error_code`` ...)."""
    return DeliveryStatus(
        message_id=new_id(),
        correlation_id=reply.correlation_id,
        outgoing_message_id=reply.message_id,
        phone=reply.phone,
        status=state,
        provider="sandbox",
        occurred_at=datetime.now(UTC),
        **extra,
    )


@contextlib.asynccontextmanager
async def running_agent(
    amqp_url: str,
    database_url: str,
    *,
    engine: Any = None,
    clock: Clock | None = None,
    replies: Replies | None = None,
    **overrides: Any,
) -> AsyncIterator[Agent]:
    settings = settings_for(amqp_url, database_url, **overrides)
    app = create_app(settings, clock=clock, engine=engine)
    own_replies = replies is None
    replies = replies or await Replies(amqp_url).start()
    publisher = Broker(amqp_url, service="test-gateway")
    await publisher.connect()
    try:
        async with TestClient(TestServer(app)) as client:
            yield Agent(client, app, settings, publisher, replies)
    finally:
        await publisher.close()
        if own_replies:
            await replies.close()


# ---------------------------------------------------------------------------- fake engines


@dataclass
class ScriptedEngine:
    """A fake model: ``respond(context)`` returns the decision (or raises)."""

    respond: Callable[[TurnContext], Awaitable[AgentDecision]]
    name: str = "scripted"
    calls: list[TurnContext] = field(default_factory=list)

    async def decide(self, context: TurnContext) -> EngineResult:
        self.calls.append(context)
        decision = await self.respond(context)
        return EngineResult(decision, model="fake-model", tokens_in=10, tokens_out=5, latency_ms=1)

    async def close(self) -> None:
        return None


def echo_decision(context: TurnContext, reply: str | None = None, **fields: Any) -> AgentDecision:
    values: dict[str, Any] = {
        "reply": reply or "echo: " + " | ".join(context.messages),
        "spin_stage": context.spin_stage,
        "outcome": context.outcome,
        "language": context.language,
    }
    values.update(fields)
    return AgentDecision(**values)


def ago(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)
