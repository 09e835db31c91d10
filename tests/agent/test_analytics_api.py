"""``GET /analytics`` on the real app, SQLite and PostgreSQL: every figure of a known scenario."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import insert

from agent_service.app import create_app
from agent_service.db import tables
from agent_service.settings import AgentSettings
from parley_shared.clock import ManualClock
from parley_shared.service import RUNTIME

TOKEN = "analytics-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ALMATY = ZoneInfo("Asia/Almaty")
DAY1 = datetime(2026, 3, 2, tzinfo=ALMATY)  # the period: 2 and 3 March, Almaty days
DAY2 = DAY1 + timedelta(days=1)
NOW = datetime(2026, 3, 20, 6, 0, tzinfo=UTC)
_ids = itertools.count(1)


async def start(amqp_url: str, database_url: str, **settings: Any) -> TestClient:
    """The agent app at ``NOW``; analytics not cached (these tests change the data between calls)."""
    values = {"analytics_cache_s": 0, **settings}
    app = create_app(
        AgentSettings(amqp_url=amqp_url, database_url=database_url, api_token=TOKEN, **values),
        clock=ManualClock(NOW),
    )
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def client(amqp_url: str, database_url: str) -> AsyncIterator[TestClient]:
    test_client = await start(amqp_url, database_url)
    try:
        yield test_client
    finally:
        await test_client.close()


def contact(phone: str, first_seen: datetime, **values: Any) -> dict[str, Any]:
    row = {
        "phone": phone,
        "client_status": "client",
        "spin_stage": "situation",
        "outcome": "open",
        "owner": "ai",
        "needs_human": False,
        "first_seen_at": first_seen,
        "created_at": first_seen,
        "updated_at": first_seen,
    }
    return row | values


def message(contact_id: int, direction: str, at: datetime, **values: Any) -> dict[str, Any]:
    row = {
        "contact_id": contact_id,
        "direction": direction,
        "kind": "text" if direction == "in" else "reply",
        "status": "handled" if direction == "in" else "delivered",
        "message_id": f"m-{next(_ids)}",
        "created_at": at,
        "model": None,
        "tokens_in": None,
        "tokens_out": None,
    }
    return row | values


async def add(test_client: TestClient, table: Any, rows: list[dict[str, Any]]) -> list[int]:
    async with test_client.app[RUNTIME].sessions() as session, session.begin():
        result = await session.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True), rows)
        return [row[0] for row in result]


async def analytics(test_client: TestClient, query: str = "", status: int = 200) -> Any:
    response = await test_client.get(f"/analytics{query}", headers=AUTH)
    body = await response.json()
    assert response.status == status, body
    return body


async def load_scenario(test_client: TestClient) -> None:
    h = timedelta(hours=1)
    a, b, c, d, _e, f = await add(
        test_client,
        tables.contacts,
        [
            contact("+77010000001", DAY1 + 10 * h, spin_stage="problem"),
            contact("+77010000002", DAY1 + 23 * h, spin_stage="need_payoff", outcome="agreed"),
            contact(
                "+77010000003",
                DAY2 + 12 * h,
                spin_stage="implication",
                outcome="declined",
                needs_human=True,
                owner="human",
            ),
            contact("+77010000004", DAY2 + 13 * h, client_status="non_client", client_category="spam"),
            contact("+77010000005", DAY2 + 14 * h, client_status="unknown"),
            contact("+77010000006", DAY1 - 5 * 24 * h, spin_stage="implication"),  # an older contact
        ],
    )
    s = timedelta(seconds=1)
    await add(
        test_client,
        tables.messages,
        [
            message(a, "in", DAY1 + 10 * h),
            message(a, "out", DAY1 + 10 * h + 10 * s, model="gemini-x", tokens_in=100, tokens_out=20),
            message(b, "in", DAY2 - s),  # 23:59:59 on day 1 ...
            message(b, "out", DAY2 + 30 * s, model="gemini-x", tokens_in=200, tokens_out=30),  # ... answered on day 2
            message(c, "in", DAY2 + 12 * h),
            message(c, "out", DAY2 + 12 * h + 5 * s, status="suppressed"),  # never reached the prospect
            message(c, "out", DAY2 + 12 * h + 100 * s, kind="operator"),
            message(d, "in", DAY2 + 13 * h, tokens_in=5, tokens_out=5),  # no answer (non-client)
            message(f, "in", DAY1 - 4 * 24 * h),  # f's first message is older than the period
            message(f, "out", DAY1 - 4 * 24 * h + 3 * s),
            message(f, "in", DAY2 + 9 * h),
            message(f, "out", DAY2 + 20 * h, kind="follow_up"),
            message(a, "in", DAY2 + 24 * h),  # after the period
        ],
    )

    def touch(contact_id: int, touch_no: int, sent_at: datetime | None, *, replied: bool = False) -> dict[str, Any]:
        return {
            "contact_id": contact_id,
            "sequence_no": 1 if sent_at is None or sent_at >= DAY1 else 0,
            "touch": touch_no,
            "strategy": "reminder",
            "due_at": sent_at or NOW + timedelta(days=30),
            "status": "sent" if sent_at else "pending",
            "replied": replied,
            "sent_at": sent_at,
            "created_at": DAY1 - 10 * 24 * h,
            "updated_at": DAY1 - 10 * 24 * h,
        }

    await add(
        test_client,
        tables.follow_ups,
        [
            touch(a, 1, DAY1 + 11 * h, replied=True),
            touch(b, 1, DAY2 + 11 * h),
            touch(f, 1, DAY2 + 11 * h),
            touch(f, 2, DAY2 + 15 * h, replied=True),
            touch(c, 1, DAY1 - 2 * 24 * h),  # before the period
            touch(d, 1, None),  # still pending
        ],
    )

    def call(contact_id: int, status: str, created: datetime) -> dict[str, Any]:
        return {
            "contact_id": contact_id,
            "scheduled_at": created + 24 * h,
            "timezone": "Asia/Almaty",
            "status": status,
            "created_at": created,
            "updated_at": created,
        }

    await add(
        test_client,
        tables.scheduled_calls,
        [
            call(b, "pending", DAY1 + 12 * h),
            call(b, "confirmed", DAY1 + 13 * h),
            call(c, "done", DAY2 + 1 * h),
            call(c, "cancelled", DAY2 + 2 * h),
            call(f, "confirmed", DAY1 - 3 * 24 * h),  # before the period
        ],
    )


async def test_every_figure_of_a_known_scenario(client: TestClient) -> None:
    await load_scenario(client)
    body = await analytics(client, "?from=2026-03-02&to=2026-03-03")
    assert body["period"] == {
        "from": "2026-03-01T19:00:00Z",
        "to": "2026-03-03T19:00:00Z",
        "timezone": "Asia/Almaty",
        "days": 2,
    }
    assert body["funnel"] == {
        "contacts": 5,
        "clients": 3,
        "non_clients": 1,
        "unclassified": 1,
        "stages": {"situation": 0, "problem": 1, "implication": 1, "need_payoff": 1},
        "reached": {"situation": 3, "problem": 3, "implication": 2, "need_payoff": 1},
        "agreed": 1,
        "declined": 1,
        "outcomes": {"open": 3, "agreed": 1, "declined": 1, "uncertain": 0},
    }
    assert body["non_client_share"] == 0.25
    assert body["messages"] == {
        "in": 5,
        "out": 5,
        "by_kind": {"in": {"text": 5}, "out": {"follow_up": 1, "operator": 1, "reply": 3}},
        "per_day": [{"date": "2026-03-02", "in": 2, "out": 1}, {"date": "2026-03-03", "in": 3, "out": 4}],
    }
    # a: 10 s, b: 31 s, c: 100 s (the suppressed reply does not count), d: unanswered.
    assert body["first_response"] == {"answered": 3, "unanswered": 1, "p50_s": 31.0, "p90_s": 86.2}
    assert body["follow_ups"] == {
        "sent": 4,
        "replied": 2,
        "reply_rate": 0.5,
        "per_touch": [
            {"touch": 1, "sent": 3, "replied": 1, "reply_rate": 0.3333},
            {"touch": 2, "sent": 1, "replied": 1, "reply_rate": 1.0},
        ],
    }
    assert body["calls"] == {
        "requested": 4,
        "confirmed": 2,
        "by_status": {"cancelled": 1, "confirmed": 1, "done": 1, "pending": 1},
    }
    assert body["handoffs"] == {"needs_human": 1, "owned_by_human": 1, "operator_messages": 1}
    assert body["tokens"] == {
        "in": 305,
        "out": 55,
        "by_model": {
            "gemini-x": {"in": 300, "out": 50, "messages": 2},
            "unknown": {"in": 5, "out": 5, "messages": 1},
        },
    }

    # Datetimes narrow the period: 2 March 10:00 local (no offset: business time) up to midnight.
    # b's answer came after the period: it still counts for b's first response.
    narrow = await analytics(client, "?from=2026-03-02T10:00:00&to=2026-03-02T19:00:00Z")
    assert narrow["funnel"]["contacts"] == 2 and narrow["messages"]["in"] == 2 and narrow["messages"]["out"] == 1
    assert narrow["first_response"] == {"answered": 2, "unanswered": 0, "p50_s": 20.5, "p90_s": 28.9}
    assert narrow["period"]["days"] == 1
    later = await analytics(client, "?from=2026-03-02T10:00:01%2B05:00&to=2026-03-02T19:00:00Z")
    assert later["funnel"]["contacts"] == 1 and later["messages"]["in"] == 1


async def test_the_default_period_and_an_empty_database(client: TestClient) -> None:
    body = await analytics(client)
    assert body["period"]["days"] == 30 and body["period"]["to"] == "2026-03-20T19:00:00Z"
    assert len(body["messages"]["per_day"]) == 30
    assert body["messages"]["per_day"][-1] == {"date": "2026-03-20", "in": 0, "out": 0}
    assert body["funnel"]["contacts"] == 0 and body["non_client_share"] is None
    assert body["first_response"]["p50_s"] is None and body["follow_ups"]["reply_rate"] is None
    await load_scenario(client)
    assert (await analytics(client))["funnel"]["contacts"] == 6  # every contact of the scenario is recent


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?from=last-week", "from: expected a date (YYYY-MM-DD) or an ISO 8601 datetime"),
        ("?to=2026-02-30", "to: expected a date (YYYY-MM-DD) or an ISO 8601 datetime"),
        ("?from=2026-03-05&to=2026-03-01", "from must be before to"),
        ("?from=2024-01-01&to=2026-01-01", "the period may span at most 366 days"),
        ("?since=2026-01-01", "invalid query parameters"),
    ],
)
async def test_bad_periods_get_400(client: TestClient, query: str, message: str) -> None:
    body = await analytics(client, query, status=400)
    assert body["error"]["message"] == message


async def test_days_follow_a_quarter_hour_timezone(amqp_url: str, database_url: str) -> None:
    """Kathmandu is UTC+05:45: the database groups by 15 minutes so that no bucket straddles midnight."""
    kathmandu = ZoneInfo("Asia/Kathmandu")
    client = await start(amqp_url, database_url, working_tz="Asia/Kathmandu")
    try:
        midnight = datetime(2026, 3, 3, tzinfo=kathmandu)
        (cid,) = await add(client, tables.contacts, [contact("+9779800000001", midnight - timedelta(hours=1))])
        await add(
            client,
            tables.messages,
            [
                message(cid, "in", midnight - timedelta(minutes=1)),
                message(cid, "in", midnight + timedelta(minutes=1)),
                message(cid, "in", midnight + timedelta(minutes=14)),
            ],
        )
        body = await analytics(client, "?from=2026-03-02&to=2026-03-03")
        assert body["period"]["timezone"] == "Asia/Kathmandu"
        assert body["messages"]["per_day"] == [
            {"date": "2026-03-02", "in": 1, "out": 0},
            {"date": "2026-03-03", "in": 2, "out": 0},
        ]
    finally:
        await client.close()


async def test_a_hundred_thousand_messages_take_well_under_a_second_or_two(client: TestClient) -> None:
    """5,000 contacts with 20 messages each over 30 days: the figures stay cheap (indexed ranges, grouping in SQL)."""
    start_day = datetime(2026, 2, 19, tzinfo=ALMATY)
    contacts = [
        contact(
            f"+7702{i:07d}", start_day + timedelta(minutes=8 * i), client_status="client" if i % 4 else "non_client"
        )
        for i in range(5000)
    ]
    ids = await add(client, tables.contacts, contacts)
    rows = []
    for n, cid in enumerate(ids):
        base = start_day + timedelta(minutes=8 * n)
        for k in range(20):
            direction = "in" if k % 2 == 0 else "out"
            extra = {"model": "gemini-x", "tokens_in": 50, "tokens_out": 10} if direction == "out" else {}
            rows.append(message(cid, direction, base + timedelta(minutes=15 * k, seconds=k % 2 * 7), **extra))
    async with client.app[RUNTIME].sessions() as session, session.begin():
        await session.execute(insert(tables.messages), rows)  # executemany, no RETURNING: fast

    started = time.perf_counter()
    body = await analytics(client)
    elapsed = time.perf_counter() - started
    assert body["messages"]["in"] == 50_000 and body["messages"]["out"] == 50_000
    assert body["funnel"]["contacts"] == 5000 and body["non_client_share"] == 0.25
    assert body["first_response"] == {"answered": 5000, "unanswered": 0, "p50_s": 907.0, "p90_s": 907.0}
    assert body["tokens"]["in"] == 50_000 * 50
    assert sum(day["in"] for day in body["messages"]["per_day"]) == 50_000
    assert elapsed < 5, f"/analytics took {elapsed:.2f} s"
