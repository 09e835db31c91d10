"""Pooled PostgreSQL connections: a connection the server closed is never handed out, without a
ping round trip on every checkout (``parley_shared.db._check_on_checkout``)."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from parley_shared import db
from tests.support import infra


async def test_a_connection_the_server_closed_is_replaced_at_checkout(pg_database_url: str) -> None:
    engine = db.create_engine(pg_database_url, pool_size=2)
    try:
        async with engine.connect() as conn:
            before = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar()
        assert await infra.terminate_connections(pg_database_url) >= 1
        await asyncio.sleep(0.2)  # the pooled socket sees the server's EOF
        async with engine.connect() as conn:  # no error: the dead connection was replaced
            after = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar()
        assert after != before
    finally:
        await engine.dispose()


async def test_an_idle_connection_is_pinged_and_a_busy_one_is_not(pg_database_url: str, monkeypatch: object) -> None:
    engine = db.create_engine(pg_database_url, pool_size=1)
    pings = 0
    try:
        async with engine.connect() as conn:
            raw = await conn.get_raw_connection()
            original = type(raw.dbapi_connection).ping

            def counting_ping(self: object) -> None:
                nonlocal pings
                pings += 1
                original(self)

            monkeypatch.setattr(type(raw.dbapi_connection), "ping", counting_ping)  # type: ignore[attr-defined]
        for _ in range(3):  # reused at once: no ping
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        assert pings == 0
        monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.0)  # type: ignore[attr-defined]
        await asyncio.sleep(0.01)
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        assert pings == 1
    finally:
        await engine.dispose()
