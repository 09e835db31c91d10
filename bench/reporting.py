"""Benchmark 5: a prospect's reply time during a reporting storm.

Both services as real processes on PostgreSQL (the pipeline's stack: offline engine,
``BUFFER_WINDOW_S=0``, pacing off). The agent's database is seeded with 20,000 contacts and
200,000 messages spread over the last 366 days. One prospect converses -- a message, wait for the
answer, the next -- first with nothing else running (the baseline), then while 20 clients call
``GET /analytics`` for 366-day periods back to back, each call a different period (so that the
analytics cache never answers: the worst case).

The storm runs twice, on two stacks: with the shipped reporting guard (``REPORTING_MAX_CONCURRENT``
2: the rest get 429 with ``Retry-After`` and come back after it) and with the cap lifted to 20
(every report runs, still on the reporting pool: what the cap alone buys). Reported: the
prospect's reply time (p50, p95, max) in each phase, and the storm's answers by status with the
latency of those that ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import text

from bench.common import percentile
from bench.load import CONVERSATION, Replies, Retries, post
from bench.pipeline import parley_stack, read_sandbox_outbox

PROSPECT = "+77019990001"


async def seed(database_url: str, *, contacts: int, messages_per_contact: int) -> None:
    """Contacts first seen over the last 366 days, each with a conversation a few days long."""
    from parley_shared.db import create_engine

    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO contacts (phone, name, client_status, client_category, spin_stage, outcome,"
                    " provider, language, first_seen_at, last_inbound_at, created_at, updated_at)"
                    " SELECT '+7702' || lpad(g::text, 7, '0'), 'Prospect ' || g,"
                    " CASE WHEN g % 4 = 0 THEN 'non_client' ELSE 'client' END, 'prospect',"
                    " (ARRAY['situation','problem','implication','need_payoff'])[1 + g % 4],"
                    " (ARRAY['open','agreed','declined','uncertain'])[1 + g % 4], 'sandbox', 'ru', t, t, t, t"
                    " FROM (SELECT g, now() - make_interval(secs => (g * 1579) % (366 * 86400)) AS t"
                    "       FROM generate_series(1, :n) AS g) AS seeded"
                ),
                {"n": contacts},
            )
            await conn.execute(
                text(
                    "INSERT INTO messages (contact_id, direction, kind, status, text, message_id, model,"
                    " tokens_in, tokens_out, created_at)"
                    " SELECT c.id, CASE WHEN k % 2 = 0 THEN 'in' ELSE 'out' END,"
                    " CASE WHEN k % 2 = 0 THEN 'text' ELSE 'reply' END,"
                    " CASE WHEN k % 2 = 0 THEN 'handled' ELSE 'delivered' END, 'seeded message',"
                    " 'seed-' || c.id || '-' || k, CASE WHEN k % 2 = 1 THEN 'gemini-2.5-flash' END,"
                    " CASE WHEN k % 2 = 1 THEN 900 END, CASE WHEN k % 2 = 1 THEN 60 END,"
                    " c.first_seen_at + make_interval(mins => k * 37)"
                    " FROM contacts c CROSS JOIN generate_series(0, :m - 1) AS k"
                ),
                {"m": messages_per_contact},
            )
            await conn.execute(text("ANALYZE contacts"))
            await conn.execute(text("ANALYZE messages"))
    finally:
        await engine.dispose()


class Prospect:
    """One prospect on the sandbox: each message waits for its answer; reply times are kept."""

    def __init__(self, http: aiohttp.ClientSession, stack: Any, replies: Replies) -> None:
        self.http, self.stack, self.replies = http, stack, replies
        self.sent = 0
        self.retries = Retries()

    async def converse(self, messages: int) -> list[float]:
        latencies = []
        for _ in range(messages):
            text_ = CONVERSATION[self.sent % len(CONVERSATION)]
            body = {"from": PROSPECT, "text": text_, "id": f"bench-reporting-{self.sent}"}
            started = time.perf_counter()
            await post(
                self.http,
                f"{self.stack.gateway.url}/sandbox/inbound",
                body,
                headers=self.stack.headers,
                retries=self.retries,
            )
            self.sent += 1
            reply = await self.replies.next(PROSPECT, 120)
            if reply is None:
                raise RuntimeError("the prospect got no answer in 120 s")
            latencies.append(reply.seen_at - started)
        return latencies


def figures(latencies: list[float]) -> dict[str, float]:
    return {
        "reply_p50_s": round(percentile(latencies, 50), 3),
        "reply_p95_s": round(percentile(latencies, 95), 3),
        "reply_max_s": round(max(latencies, default=0.0), 3),
    }


async def storm(http: aiohttp.ClientSession, stack: Any, clients: int, stop: asyncio.Event) -> dict[str, Any]:
    """``clients`` callers of ``GET /analytics`` for 366-day periods, each call a new period, until ``stop``.

    A 429 is honoured as a client should: wait ``Retry-After``, then call again."""
    statuses: Counter[int] = Counter()
    ran: list[float] = []
    periods = iter(range(10**6))

    async def caller() -> None:
        while not stop.is_set():
            end = date.today() - timedelta(days=next(periods) % 300)
            query = {"from": (end - timedelta(days=365)).isoformat(), "to": end.isoformat()}
            started = time.perf_counter()
            async with http.get(f"{stack.agent.url}/analytics", params=query, headers=stack.headers) as r:
                await r.read()
                statuses[r.status] += 1
                if r.status == 200:
                    ran.append(time.perf_counter() - started)
                elif r.status in (429, 503):
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), float(r.headers.get("Retry-After", "1")))

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(clients)))
    return {
        "clients": clients,
        "calls": sum(statuses.values()),
        "answers": {str(k): v for k, v in sorted(statuses.items())},
        "calls_per_s": round(sum(statuses.values()) / (time.perf_counter() - started), 1),
        "report_p50_s": round(percentile(ran, 50), 3),
        "report_max_s": round(max(ran, default=0.0), 3),
    }


async def one_stack(
    workdir: Path,
    label: str,
    agent_env: dict[str, str],
    *,
    contacts: int,
    per_contact: int,
    messages: int,
    clients: int,
) -> dict[str, Any]:
    async with (
        parley_stack(workdir, label, agent_env=agent_env) as stack,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as http,
    ):
        started = time.perf_counter()
        await seed(stack.agent_db, contacts=contacts, messages_per_contact=per_contact)
        seeded_s = time.perf_counter() - started
        replies = Replies()
        reader = asyncio.create_task(read_sandbox_outbox(http, stack, replies))
        try:
            prospect = Prospect(http, stack, replies)
            await prospect.converse(2)  # the contact exists, the caches are warm
            quiet = await prospect.converse(messages)
            stop = asyncio.Event()
            reports = asyncio.create_task(storm(http, stack, clients, stop))
            await asyncio.sleep(1.0)  # the storm is under way before the prospect writes
            during = await prospect.converse(messages)
            stop.set()
            storm_figures = await reports
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
    return {
        "seed_s": round(seeded_s, 1),
        "quiet": figures(quiet),
        "storm": figures(during),
        "reports": storm_figures,
    }


async def run(
    workdir: Path, *, contacts: int = 20_000, per_contact: int = 10, messages: int = 20, clients: int = 20
) -> dict[str, Any]:
    sizes = {"contacts": contacts, "per_contact": per_contact, "messages": messages, "clients": clients}
    guarded = await one_stack(workdir, "reporting_guarded", {}, **sizes)
    unguarded = await one_stack(
        workdir,
        "reporting_uncapped",
        {"REPORTING_MAX_CONCURRENT": str(clients), "ANALYTICS_CACHE_S": "0"},
        **sizes,
    )
    return {
        "contacts": contacts,
        "messages_seeded": contacts * per_contact,
        "prospect_messages_per_phase": messages,
        "how": "one prospect converses (message, answer, next) alone, then while 20 clients call a 366-day "
        "/analytics back to back (a new period each call); offline engine, BUFFER_WINDOW_S=0, PostgreSQL",
        "guarded": guarded,
        "uncapped": unguarded,
    }
