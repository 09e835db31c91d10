"""Retention: what each service prunes, on SQLite and PostgreSQL, and that the periodic job runs.

Published outbox rows (their bodies hold phones, texts and voice notes' audio) go after
``OUTBOX_RETENTION_H``; consumed inbox ids after ``INBOX_RETENTION_DAYS``; the gateway's message
log and sandbox outbox after ``MESSAGE_LOG_RETENTION_DAYS``; the agent's messages after
``MESSAGE_RETENTION_DAYS`` (kept by default). Nothing unpublished and nothing younger goes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select

from agent_service import privacy as agent_privacy
from agent_service.db import MIGRATIONS as AGENT_MIGRATIONS
from agent_service.db import tables as agent_tables
from agent_service.settings import AgentSettings
from gateway import privacy as gateway_privacy
from gateway.db import MIGRATIONS as GATEWAY_MIGRATIONS
from gateway.db import tables as gateway_tables
from gateway.settings import GatewaySettings
from parley_shared.clock import ManualClock
from parley_shared.db import create_engine, migrate, session_factory
from parley_shared.retention import Retention
from parley_shared.settings import ConfigurationError
from tests.gateway.helpers import eventually, gateway_settings, running

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def ago(**delta: float) -> datetime:
    return NOW - timedelta(**delta)


def outbox_row(message_id: str, created: datetime, published: datetime | None) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "correlation_id": message_id,
        "queue": "incoming_messages",
        "body": b'{"phone":"+77010000001","text":"hello"}',
        "created_at": created,
        "published_at": published,
    }


def inbox_row(message_id: str, at: datetime) -> dict[str, Any]:
    return {"message_id": message_id, "queue": "incoming_messages", "processed_at": at}


async def seeded(url: str, migrations: Path, rows: dict[Any, list[dict[str, Any]]]) -> Any:
    engine = create_engine(url)
    await migrate(engine, migrations)
    async with engine.begin() as conn:
        for table, values in rows.items():
            await conn.execute(insert(table), values)
    return engine


async def ids(engine: Any, column: Any) -> list[Any]:
    async with engine.connect() as conn:
        return sorted((await conn.execute(select(column))).scalars())


async def test_the_gateway_prunes_published_outbox_rows_old_inbox_ids_and_its_old_logs(database_url: str) -> None:
    log = {"direction": "inbound", "provider": "sandbox", "phone": "+77010000001", "phone_masked": "x", "kind": "text"}
    sandbox = {"correlation_id": "c", "phone": "+77010000001", "text": "hi", "kind": "reply", "in_reply_to": "[]"}
    engine = await seeded(
        database_url,
        GATEWAY_MIGRATIONS,
        {
            gateway_tables.outbox: [
                outbox_row("published-old", ago(days=3), ago(days=2)),
                outbox_row("published-new", ago(hours=2), ago(hours=1)),
                outbox_row("unpublished-old", ago(days=3), None),  # never lost, however old
                *(outbox_row(f"published-old-{i}", ago(days=3), ago(days=2)) for i in range(5)),
            ],
            gateway_tables.inbox: [inbox_row("seen-old", ago(days=31)), inbox_row("seen-new", ago(days=29))],
            gateway_tables.message_logs: [
                {**log, "message_id": "log-old", "status": "queued", "created_at": ago(days=31), "updated_at": NOW},
                {**log, "message_id": "log-new", "status": "queued", "created_at": ago(days=29), "updated_at": NOW},
            ],
            gateway_tables.sandbox_outbox: [
                {**sandbox, "message_id": "out-old", "created_at": ago(days=31)},
                {**sandbox, "message_id": "out-new", "created_at": ago(days=29)},
            ],
            gateway_tables.contact_chains: [
                {"phone": "+77010000001", "last_message_id": "a", "updated_at": ago(days=31)},
                {"phone": "+77010000002", "last_message_id": "b", "updated_at": ago(days=29)},
            ],
        },
    )
    try:
        rules = gateway_privacy.retention_rules(GatewaySettings(app_env="test"))  # type: ignore[call-arg]
        retention = Retention(session_factory(engine), ManualClock(NOW), rules, batch_size=2)
        assert await retention.prune_once() == {
            "outbox": 6,
            "inbox": 1,
            "message_logs": 1,
            "sandbox_outbox": 1,
            "contact_chains": 1,
        }
        assert await ids(engine, gateway_tables.outbox.c.message_id) == ["published-new", "unpublished-old"]
        assert await ids(engine, gateway_tables.inbox.c.message_id) == ["seen-new"]
        assert await ids(engine, gateway_tables.message_logs.c.message_id) == ["log-new"]
        assert await ids(engine, gateway_tables.sandbox_outbox.c.message_id) == ["out-new"]
        assert await ids(engine, gateway_tables.contact_chains.c.phone) == ["+77010000002"]
        assert set((await retention.prune_once()).values()) == {0}
    finally:
        await engine.dispose()


async def test_the_agent_keeps_conversations_unless_told_and_prunes_its_outbox_and_inbox(database_url: str) -> None:
    contact = {"phone": "+77010000001", "first_seen_at": ago(days=400), "created_at": NOW, "updated_at": NOW}
    engine = await seeded(database_url, AGENT_MIGRATIONS, {agent_tables.contacts: [contact]})
    try:
        async with engine.begin() as conn:
            contact_id = await conn.scalar(select(agent_tables.contacts.c.id))
            message = {"contact_id": contact_id, "direction": "in", "kind": "text", "status": "handled", "text": "hi"}
            await conn.execute(
                insert(agent_tables.messages),
                [
                    {**message, "message_id": "m-old", "created_at": ago(days=100)},
                    {**message, "message_id": "m-new", "created_at": ago(days=80)},
                ],
            )
            await conn.execute(insert(agent_tables.outbox), [outbox_row("r-old", ago(days=2), ago(days=2))])
            await conn.execute(insert(agent_tables.inbox), [inbox_row("i-old", ago(days=40))])
        sessions, clock = session_factory(engine), ManualClock(NOW)
        kept = Retention(sessions, clock, agent_privacy.retention_rules(AgentSettings(app_env="test")))  # type: ignore[call-arg]
        assert await kept.prune_once() == {"outbox": 1, "inbox": 1}  # MESSAGE_RETENTION_DAYS=0: no rule
        three_months = agent_privacy.retention_rules(AgentSettings(app_env="test", message_retention_days=90))  # type: ignore[call-arg]
        assert await Retention(sessions, clock, three_months).prune_once() == {"outbox": 0, "inbox": 0, "messages": 1}
        assert await ids(engine, agent_tables.messages.c.message_id) == ["m-new"]
        async with engine.connect() as conn:
            assert await conn.scalar(select(func.count()).select_from(agent_tables.contacts)) == 1
        keep_all = AgentSettings(app_env="test", outbox_retention_h=0, inbox_retention_days=0)  # type: ignore[call-arg]
        assert Retention(sessions, clock, agent_privacy.retention_rules(keep_all)).rules == []  # 0 keeps
    finally:
        await engine.dispose()


def test_the_message_log_is_kept_at_least_as_long_as_meta_retries() -> None:
    with pytest.raises(ConfigurationError, match="MESSAGE_LOG_RETENTION_DAYS"):
        GatewaySettings(message_log_retention_days=7)  # type: ignore[call-arg]
    assert GatewaySettings(message_log_retention_days=0).message_log_retention_days == 0  # type: ignore[call-arg]
    assert GatewaySettings(message_log_retention_days=8).message_log_retention_days == 8  # type: ignore[call-arg]


async def test_the_running_gateway_prunes_on_its_own(amqp_url: str, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/g.db"
    published = datetime.now(UTC) - timedelta(days=2)
    engine = await seeded(url, GATEWAY_MIGRATIONS, {gateway_tables.outbox: [outbox_row("old", published, published)]})
    try:
        async with running(gateway_settings(amqp_url, url, retention_interval_s=3600)):

            async def pruned() -> bool:
                return await ids(engine, gateway_tables.outbox.c.message_id) == []

            await eventually(pruned, what="the retention job's first round (at start)")
    finally:
        await engine.dispose()
