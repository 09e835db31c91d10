"""Reporting cannot starve the bot: analytics and the CSV export run on their own small pool,
at most ``REPORTING_MAX_CONCURRENT`` at once (429 + Retry-After beyond), statements cancelled
after ``REPORTING_STATEMENT_TIMEOUT_S`` on PostgreSQL, analytics answers cached briefly.

20 parallel 366-day ``/analytics`` calls used to take every connection of the shared pool and
push a prospect's reply from 0.6 s to 8.3 s; ``bench/reporting.py`` measures that end to end.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import event, insert, text

from agent_service.app import create_app
from agent_service.context import AGENT
from agent_service.db import tables
from agent_service.settings import AgentSettings
from parley_shared.clock import ManualClock
from parley_shared.http import HTTPError
from parley_shared.service import RUNTIME

TOKEN = "reporting-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NOW = datetime(2026, 3, 20, 6, 0, tzinfo=UTC)


@pytest.fixture
async def clock() -> ManualClock:
    return ManualClock(NOW)


async def started(amqp_url: str, database_url: str, clock: ManualClock, **settings: Any) -> TestClient:
    app = create_app(
        AgentSettings(amqp_url=amqp_url, database_url=database_url, api_token=TOKEN, **settings), clock=clock
    )
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def client(amqp_url: str, database_url: str, clock: ManualClock) -> AsyncIterator[TestClient]:
    test_client = await started(amqp_url, database_url, clock, reporting_max_concurrent=1)
    try:
        yield test_client
    finally:
        await test_client.close()


async def add_contact(client: TestClient, phone: str) -> None:
    row = {"phone": phone, "first_seen_at": NOW, "created_at": NOW, "updated_at": NOW}
    async with client.app[RUNTIME].sessions() as session, session.begin():
        await session.execute(insert(tables.contacts), row)


async def contacts_in_analytics(client: TestClient) -> int:
    response = await client.get("/analytics", headers=AUTH)
    assert response.status == 200
    return int((await response.json())["funnel"]["contacts"])


async def test_reports_beyond_the_cap_get_429_with_retry_after(client: TestClient) -> None:
    reporting = client.app[AGENT].reporting
    async with reporting.slot():  # a report is running (REPORTING_MAX_CONCURRENT=1)
        for path in ("/analytics?from=2025-03-21&to=2026-03-20", "/contacts/export.csv"):
            busy = await client.get(path, headers=AUTH)
            assert busy.status == 429, path
            assert int(busy.headers["Retry-After"]) >= 1
            assert "REPORTING_MAX_CONCURRENT" in (await busy.json())["error"]["message"]
        assert (await client.get("/contacts", headers=AUTH)).status == 200  # not a report: unaffected
    export = await client.get("/contacts/export.csv", headers=AUTH)
    assert export.status == 200 and (await export.read()).startswith("\ufeff".encode())
    await finished(reporting)  # the export's handler leaves its place right after its last byte
    assert (await client.get("/analytics", headers=AUTH)).status == 200
    assert reporting.running == 0 and reporting.refused == 2


async def finished(reporting: Any) -> None:
    """Until no report runs (a condition: the handler that sent the last byte resumes shortly)."""
    for _ in range(1000):
        if reporting.running == 0:
            return
        await asyncio.sleep(0.001)
    raise AssertionError("a report is still running")


async def test_reports_never_take_a_connection_from_the_pool_turns_use(client: TestClient) -> None:
    checkouts: list[int] = []

    def checked_out(*_: Any) -> None:
        # The service's own background jobs (the outbox relay, the sweeper...) use the shared pool by
        # design; what must not is the reports' requests.
        task = asyncio.current_task()
        if task is not None and task.get_name().startswith("agent-service:"):
            return
        checkouts.append(1)

    shared = client.app[RUNTIME].engine.sync_engine
    event.listen(shared, "checkout", checked_out)
    try:
        assert (await client.get("/analytics?from=2025-03-21&to=2026-03-20", headers=AUTH)).status == 200
        export = await client.get("/contacts/export.csv", headers=AUTH)
        assert export.status == 200 and await export.read()
    finally:
        event.remove(shared, "checkout", checked_out)
    assert checkouts == []
    assert client.app[AGENT].reporting.engine is not client.app[RUNTIME].engine


async def test_analytics_answers_are_cached_briefly(amqp_url: str, database_url: str, clock: ManualClock) -> None:
    client = await started(amqp_url, database_url, clock, analytics_cache_s=30)
    try:
        assert await contacts_in_analytics(client) == 0
        await add_contact(client, "+77010000001")
        assert await contacts_in_analytics(client) == 0  # the same answer for 30 s
        clock.advance(seconds=30)
        assert await contacts_in_analytics(client) == 1
    finally:
        await client.close()


async def test_a_report_past_the_statement_timeout_is_cancelled_and_a_503(
    amqp_url: str, pg_database_url: str, clock: ManualClock
) -> None:
    client = await started(amqp_url, pg_database_url, clock, reporting_statement_timeout_s=0.05)
    try:
        reporting = client.app[AGENT].reporting
        with pytest.raises(HTTPError) as caught:
            async with reporting.session() as session:
                await session.execute(text("SELECT pg_sleep(2)"))
        assert caught.value.status == 503 and "REPORTING_STATEMENT_TIMEOUT_S" in caught.value.message
        assert reporting.running == 0
        async with reporting.session() as session:  # the pool is fine afterwards
            assert await session.scalar(text("SELECT 1")) == 1
        assert (await client.get("/analytics", headers=AUTH)).status == 200
    finally:
        await client.close()
