"""Helpers for the gateway tests: settings for a test run, a running app, waiting for queues."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import aio_pika
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway import chains
from gateway.app import create_app
from gateway.db import MIGRATIONS
from gateway.providers.base import HttpProvider
from gateway.settings import GatewaySettings
from parley_shared.broker import Broker
from parley_shared.clock import Clock, ManualClock
from parley_shared.contracts import Contract
from parley_shared.db import create_engine, migrate, session_factory
from parley_shared.topology import WorkQueue
from tests.support import infra
from tests.support.fake_meta import FakeMeta

TOKEN = "gateway-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
META_SECRET = "meta-app-secret"
META_VERIFY = "meta-verify-token"
# The fakes serve media over http on 127.0.0.1: allowed only because a test says so.
LOCAL_MEDIA: dict[str, Any] = {"media_hosts": "127.0.0.1", "media_allow_local": True}


def gateway_settings(amqp_url: str, database_url: str, **overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "amqp_url": amqp_url,
        "database_url": database_url,
        "api_token": TOKEN,
        "app_env": "test",
        "outbox_interval_s": 0.2,
        "requeue_delay_s": 0.05,
        "shutdown_timeout_s": 5,
        "media_backoff_s": 0.01,
        "gemini_api_key": None,
        "whatsapp_provider": "sandbox",
        "send_rate_per_min": 6000,
        **overrides,
    }
    return GatewaySettings(**values)


def meta_settings(amqp_url: str, database_url: str, graph: FakeMeta, **overrides: Any) -> GatewaySettings:
    """The Meta provider pointed at a fake Graph API (webhook secret ``meta-app-secret``)."""
    values: dict[str, Any] = {
        "whatsapp_provider": "meta",
        "meta_graph_base_url": graph.url,
        "meta_access_token": graph.access_token,
        "meta_phone_number_id": graph.phone_number_id,
        "meta_app_secret": META_SECRET,
        "meta_verify_token": META_VERIFY,
        **LOCAL_MEDIA,
        **overrides,
    }
    return gateway_settings(amqp_url, database_url, **values)


P = TypeVar("P", bound=HttpProvider)


class StartedProviders:
    """HTTP providers built from test settings plus overrides and started; closed together (the
    ``providers`` fixture)."""

    def __init__(self) -> None:
        self.started: list[HttpProvider] = []

    async def start(self, kind: type[P], **overrides: Any) -> P:
        values: dict[str, Any] = {"app_env": "test", "send_timeout_s": 10, **overrides}
        provider = kind(GatewaySettings(**values), ManualClock(datetime(2026, 1, 5, 7, 0, tzinfo=UTC)))
        await provider.start()
        self.started.append(provider)
        return provider

    async def close(self) -> None:
        for provider in self.started:
            await provider.close()


@asynccontextmanager
async def running(
    settings: GatewaySettings, *, clock: Clock | None = None, sleep: Callable[[float], Awaitable[None]] | None = None
) -> AsyncIterator[TestClient]:
    app: web.Application = create_app(settings, clock=clock, sleep=sleep)
    async with TestClient(TestServer(app)) as client:
        yield client


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout: float = 20.0, what: str = "condition") -> None:
    """Poll ``check`` until it holds (a condition, not a timer)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def queue_size(amqp_url: str, queue: str) -> int:
    return (await infra.queue_counts(amqp_url, queue))[0]


async def take_messages(
    amqp_url: str, queue: str, count: int, *, timeout: float = 20.0
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Wait until ``queue`` holds ``count`` messages, then drain it (everything there)."""

    async def enough() -> bool:
        return await queue_size(amqp_url, queue) >= count

    await eventually(enough, timeout=timeout, what=f"{count} messages on {queue}")
    return await infra.drain(amqp_url, queue)


async def take(amqp_url: str, queue: str, count: int, *, timeout: float = 20.0) -> list[dict[str, Any]]:
    """Like :func:`take_messages`, returning the JSON bodies."""
    return [json.loads(m.body) for m in await take_messages(amqp_url, queue, count, timeout=timeout)]


async def publish(amqp_url: str, queue: WorkQueue, payloads: list[Contract]) -> None:
    broker = Broker(amqp_url, service="test-publisher")
    await broker.connect()
    try:
        for payload in payloads:
            await broker.publish(queue, payload)
    finally:
        await broker.close()


async def prospects_wrote(database_url: str, phones: list[str], at: datetime, provider: str = "meta") -> None:
    """The gateway's database, migrated, knowing that these prospects wrote at ``at`` (Meta's 24-hour
    window is open for them): for tests of sending that are not about the window."""
    engine = create_engine(database_url)
    try:
        await migrate(engine, MIGRATIONS)
        async with session_factory(engine)() as session, session.begin():
            seen = [chains.Seen(p, provider, p.lstrip("+"), at) for p in phones]
            await chains.record_inbound(session, seen, at)
    finally:
        await engine.dispose()


class FakeSleep:
    """An injected ``sleep`` that moves a :class:`ManualClock` instead of waiting.

    ``hold()`` makes the next call wait until ``release()`` (to let a test arrange a backlog).
    """

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.calls: list[float] = []
        self._gate: asyncio.Event | None = None

    def hold(self) -> None:
        self._gate = asyncio.Event()

    def release(self) -> None:
        if self._gate is not None:
            self._gate.set()

    async def __call__(self, seconds: float) -> None:
        if self._gate is not None:
            await self._gate.wait()
        self.calls.append(seconds)
        self.clock.advance(seconds=max(seconds, 0.0))
        await asyncio.sleep(0)
