"""Live events: from where a conversation changes, through RabbitMQ, to every replica's SSE streams;
catching up after a reconnect; streams that end (shutdown, a disabled account); the managers CLI."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent_service.app import create_app
from agent_service.console import events as events_page
from agent_service.console.accounts import Accounts
from agent_service.context import AGENT
from agent_service.live import LiveFeed, Subscriber, event_id, parse_event_id
from parley_shared.broker import Broker
from parley_shared.clock import SystemClock
from parley_shared.contracts import LiveEvent
from parley_shared.service import RUNTIME
from parley_shared.shutdown import Drains
from parley_shared.topology import INCOMING
from tests.agent.conversation_support import AUTH, inbound, settings_for
from tests.console.support import ADMIN, MANAGER, SECRET, Browser, running_console

PHONE = "+77010000091"


@dataclass
class Stream:
    """An open ``/console/events`` stream, read in the background like a browser's EventSource."""

    response: aiohttp.ClientResponse
    events: list[dict[str, Any]] = field(default_factory=list)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def start(self) -> Stream:
        self._task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        current: dict[str, Any] = {}
        try:
            while line := await self.response.content.readline():
                text = line.decode().rstrip("\r\n")
                if not text:
                    if current.get("event") == "contact":
                        self.events.append({**json.loads(current["data"]), "id": current.get("id")})
                    current = {}
                elif ":" in text:
                    key, _, value = text.partition(":")
                    current[key] = value.strip()
        except (aiohttp.ClientError, asyncio.CancelledError):
            pass
        finally:
            self.ended.set()

    async def wait_for(self, match: Any, timeout: float = 15.0) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            for event in self.events:
                if match(event):
                    return event
            await asyncio.sleep(0.02)
        raise AssertionError(f"no such event; got {self.events}")

    async def close(self) -> None:
        self.response.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def open_stream(browser: Browser, *, last_event_id: str | None = None) -> Stream:
    headers = {"Accept": "text/event-stream"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    response = await browser.client.get("/console/events", headers=headers)
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/event-stream")
    return Stream(response).start()


async def test_a_prospect_message_a_reply_and_a_handoff_reach_the_stream(amqp_url: str, tmp_path: Path) -> None:
    async with running_console(amqp_url, f"sqlite+aiosqlite:///{tmp_path}/c.db") as console:
        dana = console.browser()
        await dana.sign_in(MANAGER[0], MANAGER[2])
        stream = await open_stream(dana)
        try:
            await console.agent.say(PHONE, "Do you sell coffee machines?", name="Aru")  # the manager handoff
            contact_id = await console.contact_id(PHONE)
            arrived = await stream.wait_for(lambda e: e["kind"] == "message_in")
            handoff = await stream.wait_for(lambda e: e["kind"] == "handoff")
            assert arrived["contact_id"] == handoff["contact_id"] == contact_id
            assert handoff["needs_human"] is True and handoff["label"] == "Aru"
            assert parse_event_id(handoff["id"]) is not None
            await dana.post(f"/console/c/{contact_id}/takeover")
            await stream.wait_for(lambda e: e["kind"] == "takeover" and e["needs_human"] is False)
            await console.agent.client.post(f"/contacts/{PHONE}/handback", headers=AUTH)  # the JSON API too
            await stream.wait_for(lambda e: e["kind"] == "handback")
        finally:
            await stream.close()


async def test_what_became_of_a_reply_reaches_the_stream(amqp_url: str, tmp_path: Path) -> None:
    """A delivery status that moves a reply (its tick) is a ``status`` event; one saying Meta's
    24-hour window is closed flags the contact: a ``handoff`` that needs a human."""
    async with running_console(amqp_url, f"sqlite+aiosqlite:///{tmp_path}/c.db") as console:
        dana = console.browser()
        await dana.sign_in(MANAGER[0], MANAGER[2])
        stream = await open_stream(dana)

        try:
            first = await console.agent.say(PHONE, "Hello", name="Aru")
            contact_id = await console.contact_id(PHONE)
            await console.agent.report(first, "delivered")
            await stream.wait_for(lambda e: e["kind"] == "status" and e["contact_id"] == contact_id)
            second = await console.agent.say(PHONE, "And the price?")
            await console.agent.report(second, "failed", error_code="131047", error_reason="re-engagement window")
            flagged = await stream.wait_for(lambda e: e["kind"] == "handoff" and e["contact_id"] == contact_id)
            assert flagged["needs_human"] is True
        finally:
            await stream.close()


async def test_catching_up_after_a_reconnect(amqp_url: str, tmp_path: Path) -> None:
    async with running_console(amqp_url, f"sqlite+aiosqlite:///{tmp_path}/c.db") as console:
        dana = console.browser()
        await dana.sign_in(MANAGER[0], MANAGER[2])
        before = event_id(datetime.now(UTC) - timedelta(minutes=1), 7)
        await console.agent.say(PHONE, "Do you sell coffee machines?", name="Aru")  # while "disconnected"
        contact_id = await console.contact_id(PHONE)
        stream = await open_stream(dana, last_event_id=before)
        try:
            caught = await stream.wait_for(lambda e: e["contact_id"] == contact_id)
            assert caught["kind"] == "handoff" and caught["needs_human"] is True  # its notification fires
            await stream.wait_for(lambda e: e["kind"] == "resync")
        finally:
            await stream.close()
        # A fresh connection opened by the page carries the id in the query string instead.
        response = await dana.client.get(f"/console/events?last_event_id={before}")
        query_stream = Stream(response).start()
        try:
            await query_stream.wait_for(lambda e: e["kind"] == "resync")
        finally:
            await query_stream.close()
        # Without a last id there is nothing to catch up.
        fresh = await open_stream(dana)
        try:
            await console.agent.say(PHONE, "hello again")
            await fresh.wait_for(lambda e: e["kind"] == "message_in")
            assert not [e for e in fresh.events if e["kind"] == "resync"]
        finally:
            await fresh.close()


async def test_streams_end_at_shutdown_and_for_a_disabled_account(
    amqp_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events_page, "RECHECK_S", 0.2)
    monkeypatch.setattr(events_page, "WAKE_S", 0.1)
    async with running_console(amqp_url, f"sqlite+aiosqlite:///{tmp_path}/c.db") as console:
        dana = console.browser()
        await dana.sign_in(MANAGER[0], MANAGER[2])
        stream = await open_stream(dana)
        await console.accounts.set_active(MANAGER[0], False)
        await asyncio.wait_for(stream.ended.wait(), 10)
        await stream.close()
        boss = console.browser()
        await boss.sign_in(ADMIN[0], ADMIN[2])
        stream = await open_stream(boss)
        live = console.app[AGENT].desk.live
        assert live is not None and live.subscribers == 1
        await console.app.shutdown()  # what SIGTERM does first: every stream ends (browsers reconnect)
        await asyncio.wait_for(stream.ended.wait(), 10)
        await stream.close()
        assert stream.response.headers["Connection"] == "close"  # never reused by a reconnecting browser
        # A browser that reconnects before this replica has stopped is sent elsewhere (it retries).
        again = await boss.client.get("/console/events", headers={"Accept": "text/event-stream"})
        assert again.status == 503


@contextlib.asynccontextmanager
async def replica(amqp_url: str, database_url: str) -> AsyncIterator[TestClient]:
    settings = settings_for(amqp_url, database_url, console_session_secret=SECRET)
    async with TestClient(TestServer(create_app(settings))) as client:
        yield client


async def test_two_replicas_show_the_same_live_event(amqp_url: str, pg_database_url: str) -> None:
    """A manager on replica A sees what happened on replica B (through RabbitMQ, not process memory)."""
    async with replica(amqp_url, pg_database_url) as a, replica(amqp_url, pg_database_url) as b:
        runtime = a.app[RUNTIME]
        await Accounts(runtime.sessions, runtime.clock).add(MANAGER[0], MANAGER[1], MANAGER[2])
        sessions = [
            aiohttp.ClientSession(base_url=str(c.make_url("/")), cookie_jar=aiohttp.CookieJar(unsafe=True))
            for c in (a, b)
        ]
        try:
            on_a, on_b = Browser(sessions[0]), Browser(sessions[1])
            assert (await on_a.sign_in(MANAGER[0], MANAGER[2])).status == 303
            assert (await on_b.sign_in(MANAGER[0], MANAGER[2])).status == 303  # one secret: any replica
            stream_a, stream_b = await open_stream(on_a), await open_stream(on_b)
            try:
                # A prospect writes (either replica records it); the takeover happens on replica B.
                publisher = Broker(amqp_url, service="test-gateway")
                await publisher.connect()
                try:
                    await publisher.publish(INCOMING, inbound(PHONE, "Hello", name="Aru"))
                finally:
                    await publisher.close()
                first = await stream_a.wait_for(lambda e: e["kind"] == "message_in")
                contact_id = first["contact_id"]
                await on_b.post(f"/console/c/{contact_id}/takeover")
                for stream in (stream_a, stream_b):
                    await stream.wait_for(lambda e: e["kind"] == "takeover" and e["contact_id"] == contact_id)
                # And the page on replica A shows it.
                panel = await on_a.page(f"/console/c/{contact_id}/panel")
                assert "You hold this conversation" in panel
            finally:
                await stream_a.close()
                await stream_b.close()
        finally:
            for session in sessions:
                await session.close()


async def test_a_slow_stream_is_told_to_resync_instead_of_growing() -> None:
    subscriber = Subscriber()
    event = LiveEvent(kind="message_in", contact_id=1, at=datetime.now(UTC))
    for _ in range(1000):
        subscriber.put([event])
    assert subscriber.resync_needed
    assert await subscriber.get(0.1) == [event]
    subscriber.close()
    while (batch := await subscriber.get(0.1)) is not None:
        assert batch in ([event], [])
    assert parse_event_id("1733560000000-4") == 1733560000000
    assert parse_event_id("garbage") is None and parse_event_id("9" * 30) is None and parse_event_id(None) is None


async def test_events_are_dropped_quietly_while_the_broker_is_away() -> None:
    class Away:
        connected = False

    feed = LiveFeed(Away(), SystemClock(), Drains())  # type: ignore[arg-type]
    feed.changed(1, "message_in")
    await feed.flush()
    assert feed.dropped == 1 and feed.published == 0


def test_the_managers_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent_service.console.cli import managers

    monkeypatch.setenv("AGENT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/cli.db")
    out = io.StringIO()
    assert (
        managers(["add", "Kim", "--name", "Kim Lee", "--password-stdin"], stdin=io.StringIO("pw-12345678\n"), out=out)
        == 0
    )
    assert (
        managers(
            ["add", "admin1", "--name", "A", "--role", "admin", "--password-stdin"],
            stdin=io.StringIO("pw-12345678\n"),
            out=out,
        )
        == 0
    )
    assert (
        managers(["add", "kim", "--name", "Again", "--password-stdin"], stdin=io.StringIO("pw-12345678\n"), out=out)
        == 1
    )
    assert managers(["set-password", "kim", "--password-stdin"], stdin=io.StringIO("short\n"), out=out) == 1
    assert managers(["disable", "KIM"], out=out) == 0
    assert managers(["disable", "nobody"], out=out) == 1
    out.truncate(0)
    out.seek(0)
    assert managers(["list"], out=out) == 0
    assert out.getvalue().splitlines() == ["admin1\tA\tadmin\tactive", "kim\tKim Lee\tmanager\tdisabled"]
    assert managers(["enable", "kim"], out=out) == 0
    assert managers(["set-password", "kim", "--password-stdin"], stdin=io.StringIO("new-pw-1234\n"), out=out) == 0
    assert "their open sessions ended" in out.getvalue()


def test_the_demo_creates_the_console_account_it_prints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent_service.settings import AgentSettings
    from parley_demo.__main__ import CONSOLE_LOGIN, CONSOLE_PASSWORD, demo_env

    env = demo_env(tmp_path, "demo-token")
    for key, value in env.items():
        if key.startswith(("CONSOLE_", "APP_ENV")):
            monkeypatch.setenv(key, value)
    settings = AgentSettings()
    assert settings.console_admin_login == CONSOLE_LOGIN and not settings.production
    assert settings.console_admin_password is not None
    assert settings.console_admin_password.get_secret_value() == CONSOLE_PASSWORD
