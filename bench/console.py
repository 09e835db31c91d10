"""Benchmark 5: the managers' console on PostgreSQL.

* **Inbox** (``console_inbox``): 10,000 contacts and 200,000 messages (20 each; a third of the
  contacts read by the manager, one in twenty needing a human, a tenth held by a manager). The
  signed-in manager opens ``/console/inbox`` -- all conversations, then each filter and a
  search -- one request at a time on loopback, so the time is the server's (plus the loopback).
  Target: p99 < 100 ms.
* **Live events** (``console_live``): both services as processes (sandbox, offline engine),
  50 managers connected to ``/console/events``, 100 prospects writing through the sandbox (each
  waits for its message's event, then pauses 0.2-1 s). Measured for every message and every
  manager: from the start of the prospect's POST to the ``message_in`` event reaching that
  manager's stream. Target: p99 < 500 ms.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import text

from bench.common import CpuMeter, bench_vhost, percentile

NOW = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
SECRET = "bench-console-session-secret-0123456789"
MANAGER = ("bench", "bench-password-1")
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


# ---------------------------------------------------------------------------- the inbox
async def seed(engine: Any, *, contacts: int, per_contact: int, manager_id: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO contacts (phone, name, client_status, client_category, classified_by,"
                " classification_confidence, spin_stage, outcome, owner, owner_name, owner_manager_id, needs_human,"
                " needs_human_reason, provider, language, first_seen_at, last_inbound_at, last_outbound_at,"
                " created_at, updated_at)"
                " SELECT '+7701' || lpad(g::text, 7, '0'), 'Prospect ' || g,"
                " CASE WHEN g % 10 = 0 THEN 'non_client' ELSE 'client' END,"
                " CASE WHEN g % 10 = 0 THEN 'spam' ELSE 'prospect' END, 'moderator', 0.9,"
                " (ARRAY['situation','problem','implication','need_payoff'])[1 + g % 4],"
                " (ARRAY['open','agreed','declined','uncertain'])[1 + g % 4],"
                " CASE WHEN g % 10 = 1 THEN 'human' ELSE 'ai' END,"
                " CASE WHEN g % 10 = 1 THEN 'Bench' END,"
                " CASE WHEN g % 20 = 1 THEN CAST(:manager AS bigint) END,"
                " g % 20 = 3, CASE WHEN g % 20 = 3 THEN 'asked for a discount' END,"
                " 'sandbox', 'en', CAST(:t0 AS timestamptz), CAST(:t0 AS timestamptz), CAST(:t0 AS timestamptz),"
                " CAST(:t0 AS timestamptz), CAST(:t0 AS timestamptz) + make_interval(secs => g)"
                " FROM generate_series(1, :n) AS g"
            ),
            {"t0": NOW - timedelta(days=30), "n": contacts, "manager": manager_id},
        )
        await conn.execute(
            text(
                "INSERT INTO messages (contact_id, direction, kind, status, text, message_id, created_at)"
                " SELECT c.id, CASE WHEN k % 2 = 0 THEN 'in' ELSE 'out' END,"
                " CASE WHEN k % 2 = 0 THEN 'text' ELSE 'reply' END,"
                " CASE WHEN k % 2 = 0 THEN 'handled' ELSE 'delivered' END,"
                " 'Message ' || k || ' of a conversation about office chairs, desks and delivery to Almaty',"
                " 'bench-' || c.id || '-' || k, CAST(:t0 AS timestamptz) + make_interval(secs => c.id * 10 + k)"
                " FROM contacts c CROSS JOIN generate_series(0, :per - 1) AS k"
            ),
            {"t0": NOW - timedelta(days=20), "per": per_contact},
        )
        await conn.execute(
            text(
                "INSERT INTO manager_reads (manager_id, contact_id, last_read_message_id, read_at)"
                " SELECT CAST(:manager AS bigint), c.id,"
                " (SELECT max(m.id) FROM messages m WHERE m.contact_id = c.id) - 4, CAST(:t0 AS timestamptz)"
                " FROM contacts c WHERE c.id % 3 = 0"
            ),
            {"manager": manager_id, "t0": NOW},
        )
        for table in ("contacts", "messages", "manager_reads"):
            await conn.execute(text(f"ANALYZE {table}"))


async def sign_in(http: aiohttp.ClientSession, base: str) -> None:
    async with http.get(f"{base}/console/sign-in") as r:
        token = _CSRF.search(await r.text())
    assert token, "no sign-in form"
    form = {"login": MANAGER[0], "password": MANAGER[1], "csrf_token": token.group(1), "next": ""}
    async with http.post(f"{base}/console/sign-in", data=form, allow_redirects=False) as r:
        assert r.status == 303, await r.text()


async def run_inbox(*, contacts: int = 10_000, per_contact: int = 20, requests: int = 300) -> dict[str, Any]:
    from aiohttp.test_utils import TestServer

    from agent_service.app import create_app
    from agent_service.console.accounts import Accounts, Role
    from agent_service.settings import AgentSettings
    from parley_shared.db import create_engine, migrate
    from parley_shared.service import RUNTIME
    from tests.support import infra

    database = await infra.recreate_database("bench_console_inbox")
    engine = create_engine(database)
    async with bench_vhost("console_inbox") as amqp_url:
        await infra.reset_topology(amqp_url)
        settings = AgentSettings(
            database_url=database,
            amqp_url=amqp_url,
            console_session_secret=SECRET,
            llm_engine="offline",
            knowledge_embeddings=False,
        )
        app = create_app(settings)
        server = TestServer(app)
        await server.start_server()
        try:
            from agent_service.db import MIGRATIONS

            await migrate(engine, MIGRATIONS)
            runtime = app[RUNTIME]
            manager = await Accounts(runtime.sessions, runtime.clock).add(MANAGER[0], "Bench", MANAGER[1], Role.MANAGER)
            started = time.perf_counter()
            await seed(engine, contacts=contacts, per_contact=per_contact, manager_id=manager.id)
            seed_s = time.perf_counter() - started
            base = str(server.make_url("")).rstrip("/")
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(cookie_jar=jar) as http:
                await sign_in(http, base)
                views = {
                    "all": "/console/inbox",
                    "needs_human": "/console/inbox?show=needs_human",
                    "mine": "/console/inbox?show=mine",
                    "ai_agreed": "/console/inbox?show=ai&outcome=agreed",
                    "search_name": "/console/inbox?q=prospect%2099",
                    "search_phone": "/console/inbox?q=%2B7701000",
                    "live_list": "/console/inbox/list",
                }
                timings: dict[str, list[float]] = {name: [] for name in views}
                sizes: dict[str, int] = {}
                for name, path in views.items():
                    async with http.get(base + path) as r:  # warm-up (statement caches, the pool)
                        body = await r.text()
                        assert r.status == 200 and 'id="inbox-list"' in body, (name, r.status)
                        sizes[name] = body.count('<li class="row')
                    for _ in range(requests):
                        t0 = time.perf_counter()
                        async with http.get(base + path) as r:
                            await r.read()
                        timings[name].append((time.perf_counter() - t0) * 1000)
            async with engine.connect() as conn:
                counts = (
                    await conn.execute(text("SELECT (SELECT count(*) FROM contacts), (SELECT count(*) FROM messages)"))
                ).one()
        finally:
            await server.close()
            await engine.dispose()
    every = [t for values in timings.values() for t in values]
    return {
        "contacts": counts[0],
        "messages": counts[1],
        "seed_s": round(seed_s, 1),
        "requests": len(every),
        "p50_ms": round(percentile(every, 50), 1),
        "p99_ms": round(percentile(every, 99), 1),
        "max_ms": round(max(every), 1),
        "by_view": {
            name: {
                "rows": sizes[name],
                "p50_ms": round(percentile(values, 50), 1),
                "p99_ms": round(percentile(values, 99), 1),
            }
            for name, values in timings.items()
        },
    }


# ---------------------------------------------------------------------------- live events
class Streams:
    """50 managers' event streams: when each ``message_in`` event reached each of them."""

    def __init__(self) -> None:
        self.arrivals: dict[str, list[float]] = {}  # label -> arrival times (one per stream per message)
        self.waiting: dict[str, tuple[int, asyncio.Future[None]]] = {}  # label -> (arrivals awaited, its waiter)
        self.events = 0

    async def follow(self, http: aiohttp.ClientSession, url: str, ready: asyncio.Event) -> None:
        async with http.get(url, headers={"Accept": "text/event-stream"}) as r:
            assert r.status == 200, r.status
            ready.set()
            kind = data = None
            async for raw in r.content:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    data = line[5:].strip()
                elif not line and kind == "contact" and data:
                    self.events += 1
                    event = json.loads(data)
                    if event["kind"] == "message_in" and event["label"]:
                        self._arrived(event["label"], time.perf_counter())
                    kind = data = None

    def _arrived(self, label: str, at: float) -> None:
        times = self.arrivals.setdefault(label, [])
        times.append(at)
        waiter = self.waiting.get(label)
        if waiter is not None and len(times) >= waiter[0] and not waiter[1].done():
            waiter[1].set_result(None)  # only this prospect wakes up

    async def wait(self, label: str, count: int, timeout: float = 30.0) -> list[float]:
        if len(self.arrivals.get(label, ())) < count:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.waiting[label] = (count, future)
            await asyncio.wait_for(future, timeout)
        return list(self.arrivals[label][:count])


async def run_live(
    workdir: Path, *, managers: int = 50, prospects: int = 100, messages: int = 5, seed: int = 7
) -> dict[str, Any]:
    from agent_service.console.accounts import Accounts, Role
    from bench.pipeline import parley_stack
    from parley_shared.clock import SystemClock
    from parley_shared.db import create_engine, session_factory

    agent_env = {"CONSOLE_SESSION_SECRET": SECRET, "BUFFER_WINDOW_S": "0.5", "KNOWLEDGE_EMBEDDINGS": "false"}
    rng = random.Random(seed)
    async with parley_stack(workdir, "console_live", agent_env=agent_env) as stack:
        engine = create_engine(stack.agent_db)
        try:
            await Accounts(session_factory(engine), SystemClock()).add(MANAGER[0], "Bench", MANAGER[1], Role.MANAGER)
        finally:
            await engine.dispose()
        streams = Streams()
        connector = aiohttp.TCPConnector(limit=managers + prospects + 10)
        sessions = [aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) for _ in range(managers)]
        followers: list[asyncio.Task[None]] = []
        latencies: list[float] = []
        posts: list[float] = []  # the prospect's POST alone (the gateway's part)
        try:
            for http in sessions:
                await sign_in(http, stack.agent.url)
            readies = [asyncio.Event() for _ in sessions]
            followers = [
                asyncio.create_task(streams.follow(http, f"{stack.agent.url}/console/events", ready))
                for http, ready in zip(sessions, readies, strict=True)
            ]
            await asyncio.gather(*(r.wait() for r in readies))
            async with aiohttp.ClientSession(connector=connector) as posting:
                url = f"{stack.gateway.url}/sandbox/inbound"

                async def prospect(i: int) -> None:
                    label = f"Bench prospect {i:03d}"
                    phone = f"+7702{i:07d}"
                    for k in range(messages):
                        await asyncio.sleep(rng.uniform(0.2, 1.0))
                        body = {"from": phone, "name": label, "text": f"Hello, question {k}", "id": f"live-{i}-{k}"}
                        t0 = time.perf_counter()
                        async with posting.post(url, json=body, headers=stack.headers) as r:
                            assert r.status == 202, await r.text()
                        posts.append((time.perf_counter() - t0) * 1000)
                        arrived = await streams.wait(label, managers * (k + 1))
                        latencies.extend((t - t0) * 1000 for t in arrived[managers * k :])

                assert stack.agent.process is not None
                meter = CpuMeter(groups={"agent": [stack.agent.process.pid]})
                meter.start()
                started = time.perf_counter()
                await asyncio.gather(*(prospect(i) for i in range(prospects)))
                run_s = time.perf_counter() - started
                cpu = meter.stop()
        finally:
            for task in followers:
                task.cancel()
            await asyncio.gather(*followers, return_exceptions=True)
            for http in sessions:
                await http.close()
    return {
        "managers": managers,
        "prospects": prospects,
        "messages": prospects * messages,
        "samples": len(latencies),
        "events_received": streams.events,
        "run_s": round(run_s, 1),
        "p50_ms": round(percentile(latencies, 50), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(max(latencies), 1),
        "post_p50_ms": round(percentile(posts, 50), 1),
        "post_p99_ms": round(percentile(posts, 99), 1),
        "agent_cpu_s": cpu.get("agent"),
    }
