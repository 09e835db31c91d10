"""Real PostgreSQL and RabbitMQ for the tests: databases and a vhost of their own.

Environment: ``PARLEY_TEST_PG`` (server URL, default ``postgresql+asyncpg://postgres@127.0.0.1:5432``),
``PARLEY_TEST_AMQP`` (server URL without vhost, default ``amqp://guest:guest@127.0.0.1:5672``),
``PARLEY_TEST_VHOST`` (default ``parley_test``; created with rabbitmqctl when missing).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import urllib.parse

import aio_pika
import asyncpg

from parley_shared.broker import declare_topology
from parley_shared.topology import DEAD_LETTER_EXCHANGE, EXCHANGE, WORK_QUEUES

PG_SERVER = os.environ.get("PARLEY_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432")
AMQP_SERVER = os.environ.get("PARLEY_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672")
# Each pytest process gets its own vhost and database names, so parallel runs never collide.
RUN_ID = os.environ.get("PARLEY_TEST_RUN_ID", str(os.getpid()))
VHOST = os.environ.get("PARLEY_TEST_VHOST", f"parley_test_{RUN_ID}")
_created_databases: set[str] = set()


def amqp_url(vhost: str = VHOST) -> str:
    return f"{AMQP_SERVER.rstrip('/')}/{urllib.parse.quote(vhost, safe='')}"


def pg_url(database: str) -> str:
    return f"{PG_SERVER.rstrip('/')}/{database}"


def _asyncpg_dsn(database: str) -> str:
    return pg_url(database).replace("postgresql+asyncpg://", "postgresql://")


def database_name(label: str) -> str:
    """A PostgreSQL database name unique to this test run (63 bytes at most)."""
    clean = "".join(ch if ch.isalnum() else "_" for ch in label.lower())
    return f"pt{RUN_ID}_{clean}"[:63]


async def recreate_database(label: str) -> str:
    """An empty PostgreSQL database for this run (dropped again at the end of the run)."""
    name = database_name(label)
    conn = await asyncpg.connect(_asyncpg_dsn("postgres"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    _created_databases.add(name)
    return pg_url(name)


async def drop_created_databases() -> None:
    if not _created_databases:
        return
    conn = await asyncpg.connect(_asyncpg_dsn("postgres"))
    try:
        for name in sorted(_created_databases):
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
    _created_databases.clear()


async def terminate_connections(database_url: str) -> int:
    """Kill every server connection to the database of ``database_url`` (a PostgreSQL fault)."""
    database = database_url.rsplit("/", 1)[-1]
    conn = await asyncpg.connect(_asyncpg_dsn("postgres"))
    try:
        rows = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
        return len(rows)
    finally:
        await conn.close()


def rabbitmqctl(*args: str) -> str:
    exe = shutil.which("rabbitmqctl")
    if exe is None:
        raise RuntimeError("rabbitmqctl not found: create the test vhost by hand or set PARLEY_TEST_VHOST=/")
    return subprocess.run([exe, "-q", *args], check=True, capture_output=True, text=True, timeout=60).stdout


def ensure_vhost(vhost: str = VHOST) -> None:
    if vhost == "/":
        return
    if vhost in rabbitmqctl("list_vhosts").split():
        return
    rabbitmqctl("add_vhost", vhost)
    user = urllib.parse.urlparse(AMQP_SERVER).username or "guest"
    rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")


def delete_vhost(vhost: str = VHOST) -> None:
    if vhost != "/" and vhost.startswith("parley_test_"):
        rabbitmqctl("delete_vhost", vhost)


async def close_all_connections(vhost: str = VHOST) -> None:
    """Force-close every client connection on the test vhost (a broker fault)."""
    await asyncio.to_thread(rabbitmqctl, "close_all_connections", "--vhost", vhost, "test: forced close")


async def reset_topology(url: str) -> None:
    """Delete and redeclare every exchange and queue: each test starts from empty queues."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        for q in WORK_QUEUES:
            await channel.queue_delete(q.name)
            await channel.queue_delete(q.dead_letter_queue)
        await channel.exchange_delete(EXCHANGE)
        await channel.exchange_delete(DEAD_LETTER_EXCHANGE)
        await declare_topology(channel)
    finally:
        await connection.close()


async def drain(
    url: str, queue: str, *, timeout: float = 1.0, limit: int = 100000
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Get (and ack) every message currently in ``queue``."""
    connection = await aio_pika.connect(url)
    out = []
    try:
        channel = await connection.channel()
        q = await channel.get_queue(queue, ensure=False)
        while len(out) < limit:
            message = await q.get(fail=False, timeout=timeout)
            if message is None:
                break
            await message.ack()
            out.append(message)
    finally:
        await connection.close()
    return out


async def queue_counts(url: str, queue: str) -> tuple[int, int]:
    """(messages ready, consumers) of ``queue``."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.message_count, declared.declaration_result.consumer_count
    finally:
        await connection.close()
