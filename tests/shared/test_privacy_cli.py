"""``python -m gateway erase PHONE`` and ``python -m agent_service erase PHONE``: each service's
erasure from the command line (the agent's also asks the gateway over ``contact_erasure``).
Synchronous tests: the commands run their own event loop, as from a shell."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from agent_service.__main__ import main as agent_main
from agent_service.db import MIGRATIONS as AGENT_MIGRATIONS
from agent_service.db import tables as agent_tables
from gateway.__main__ import main as gateway_main
from gateway.db import MIGRATIONS as GATEWAY_MIGRATIONS
from gateway.db import tables as gateway_tables
from parley_shared.db import create_engine, migrate
from parley_shared.topology import ERASURE
from tests.gateway.helpers import take

PHONE = "+77010000041"
NOW = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


@pytest.fixture
def service_env(monkeypatch: pytest.MonkeyPatch, amqp_url: str) -> None:
    for name in ("API_TOKEN", "API_TOKENS", "ERASURE_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("APP_ENV", "test")
    monkeypatch.setenv("AMQP_URL", amqp_url)
    monkeypatch.setenv("LOG_FORMAT", "json")


async def database(url: str, migrations: Path, table: object, rows: list[dict[str, object]]) -> None:
    engine = create_engine(url)
    try:
        await migrate(engine, migrations)
        async with engine.begin() as conn:
            await conn.execute(insert(table), rows)  # type: ignore[arg-type]
    finally:
        await engine.dispose()


async def rows(url: str, table: object) -> list[dict[str, object]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return [dict(r) for r in (await conn.execute(select(table))).mappings()]  # type: ignore[call-overload]
    finally:
        await engine.dispose()


def test_the_gateway_cli_clears_the_message_log(
    service_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/gateway.db"
    log_row = {
        "direction": "inbound",
        "provider": "meta",
        "provider_message_id": "wamid.HBgLNzcwMTAwMDAwNDE",
        "message_id": "in-1",
        "phone": PHONE,
        "phone_masked": "+770******41",
        "kind": "text",
        "status": "queued",
        "created_at": NOW,
        "updated_at": NOW,
    }
    asyncio.run(database(url, GATEWAY_MIGRATIONS, gateway_tables.message_logs, [log_row]))
    monkeypatch.setenv("GATEWAY_DATABASE_URL", url)
    assert gateway_main(["erase", "8 701 000 00 41"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["removed"]["message_logs"] == 1
    [row] = asyncio.run(rows(url, gateway_tables.message_logs))
    assert row["message_id"] == "in-1" and row["phone_masked"] == "erased" and row["provider_message_id"] is None
    assert row["phone"] == report["phone_hash"][:20]
    [erasure] = asyncio.run(rows(url, gateway_tables.erasures))
    assert erasure["requested_by"] == "cli" and erasure["phone_hash"] == report["phone_hash"]


def test_the_agent_cli_erases_the_contact_and_asks_the_gateway(
    service_env: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    amqp_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/agent.db"
    contact = {"phone": PHONE, "name": "Aigerim", "first_seen_at": NOW, "created_at": NOW, "updated_at": NOW}
    asyncio.run(database(url, AGENT_MIGRATIONS, agent_tables.contacts, [contact]))
    monkeypatch.setenv("AGENT_DATABASE_URL", url)
    assert agent_main(["erase", PHONE]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["removed"]["contacts"] == 1 and report["gateway"] == "sent"
    assert asyncio.run(rows(url, agent_tables.contacts)) == []
    assert (
        asyncio.run(rows(url, agent_tables.outbox)) == []
    )  # the request to the gateway named the phone: gone once sent
    [request] = asyncio.run(take(amqp_url, ERASURE.name, 1))
    assert (request["schema"], request["phone"], request["requested_by"]) == ("contact_erasure", PHONE, "cli")
