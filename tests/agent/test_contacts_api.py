"""Managers' contacts API on the real app, SQLite and PostgreSQL, and RabbitMQ: filters, search,
cursor pagination, overrides and the CSV export."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import insert, select
from structlog.testing import capture_logs

from agent_service.api import contacts as contacts_api
from agent_service.api.contacts import CursorError, csv_cell, decode_cursor, encode_cursor
from agent_service.app import create_app
from agent_service.context import AGENT
from agent_service.db import tables
from agent_service.settings import AgentSettings
from parley_shared.clock import ManualClock
from parley_shared.db import Session
from parley_shared.logging import redact
from parley_shared.service import RUNTIME

TOKEN = "contacts-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=10)


class RecordingFollowUps:
    """Stands in for the follow-up hooks: records the stops the API asks for, inside its transaction."""

    def __init__(self) -> None:
        self.stops: list[tuple[int, str, bool]] = []

    async def stop(
        self, session: Session, contact_id: int, reason: str, now: datetime, *, permanent: bool = False
    ) -> int:
        assert session.in_transaction() and now == NOW
        self.stops.append((contact_id, reason, permanent))
        return 0


@pytest.fixture
async def client(amqp_url: str, database_url: str) -> AsyncIterator[TestClient]:
    app = create_app(
        AgentSettings(amqp_url=amqp_url, database_url=database_url, api_token=TOKEN), clock=ManualClock(NOW)
    )
    app[AGENT].follow_ups = RecordingFollowUps()  # type: ignore[assignment]
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def contact(i: int, **values: Any) -> dict[str, Any]:
    row = {
        "phone": f"+7701{i:07d}",
        "name": f"Prospect {i}",
        "client_status": "client",
        "client_category": "prospect",
        "spin_stage": "situation",
        "outcome": "open",
        "owner": "ai",
        "needs_human": False,
        "notes": None,
        "first_seen_at": T0,
        "created_at": T0,
        "updated_at": T0 + timedelta(minutes=i),
    }
    return row | values


async def add_contacts(test_client: TestClient, rows: list[dict[str, Any]]) -> None:
    async with test_client.app[RUNTIME].sessions() as session, session.begin():
        await session.execute(insert(tables.contacts), rows)


async def get_json(test_client: TestClient, url: str, status: int = 200) -> Any:
    response = await test_client.get(url, headers=AUTH)
    body = await response.json()
    assert response.status == status, body
    return body


async def phones(test_client: TestClient, query: str) -> list[str]:
    body = await get_json(test_client, f"/contacts?{query}")
    return [item["phone"] for item in body["items"]]


SCENARIO = [
    contact(1, name="Anna Petrova", spin_stage="problem", outcome="agreed"),
    contact(2, name="ANNA Kim", spin_stage="need_payoff", needs_human=True, owner="human"),
    contact(3, name="Spam Bot", client_status="non_client", client_category="spam", outcome="declined"),
    contact(4, name=None, client_status="unknown", client_category=None),
    contact(5, name="Bob 100%_off", phone="+447700900123", outcome="uncertain"),
    contact(6, name="Айгерим", spin_stage="implication", needs_human=True),
]


async def test_filters_select_the_right_contacts(client: TestClient) -> None:
    await add_contacts(client, SCENARIO)
    p = {i: SCENARIO[i - 1]["phone"] for i in range(1, 7)}
    assert await phones(client, "") == [p[6], p[5], p[4], p[3], p[2], p[1]]  # newest update first
    assert await phones(client, "is_client=true") == [p[6], p[5], p[2], p[1]]
    assert await phones(client, "is_client=false") == [p[3]]  # unclassified is neither
    assert await phones(client, "outcome=agreed") == [p[1]]
    assert await phones(client, "outcome=declined") == [p[3]]
    assert await phones(client, "stage=need_payoff") == [p[2]]
    assert await phones(client, "stage=implication&needs_human=true") == [p[6]]
    assert await phones(client, "needs_human=true") == [p[6], p[2]]
    assert await phones(client, "needs_human=false&is_client=true") == [p[5], p[1]]
    assert await phones(client, "owner=human") == [p[2]]
    assert await phones(client, "owner=ai&outcome=open") == [p[6], p[4]]

    item = (await get_json(client, "/contacts?outcome=agreed"))["items"][0]
    assert item["phone"] == "+77010000001"  # managers get the full E.164 number
    assert item["name"] == "Anna Petrova" and item["spin_stage"] == "problem"
    assert datetime.fromisoformat(item["updated_at"]) == T0 + timedelta(minutes=1)


async def test_search_matches_names_case_insensitively_and_phones_by_digits(client: TestClient) -> None:
    await add_contacts(client, SCENARIO)
    p = {i: SCENARIO[i - 1]["phone"] for i in range(1, 7)}
    assert await phones(client, "q=anna") == [p[2], p[1]]
    assert await phones(client, "q=PETROVA") == [p[1]]
    for spelling in ("Айгерим", "айгерим", "АЙГЕРИМ", "гери"):
        assert await phones(client, f"q={quote(spelling)}") == [p[6]], spelling
    assert await phones(client, f"q={quote('+44 7700 900')}") == [p[5]]  # typed with spaces and a plus
    assert await phones(client, f"q={quote('(701) 000-00-03')}") == [p[3]]
    assert await phones(client, "q=0000004") == [p[4]]
    assert await phones(client, f"q={quote('100%')}") == [p[5]]  # % and _ are literal, not wildcards
    assert await phones(client, "q=_") == [p[5]]
    assert await phones(client, f"q={quote('%')}") == [p[5]]
    assert await phones(client, "q=nobody") == []
    assert await phones(client, "q=anna&needs_human=true") == [p[2]]


async def test_updated_since_takes_aware_timestamps(client: TestClient) -> None:
    await add_contacts(client, SCENARIO)
    since = T0 + timedelta(minutes=4)
    assert await phones(client, f"updated_since={quote(since.isoformat())}") == [
        SCENARIO[5]["phone"],
        SCENARIO[4]["phone"],
        SCENARIO[3]["phone"],
    ]
    # An unencoded "+05:00" arrives as " 05:00": still understood.
    local = "2026-03-02T11:05:00 05:00"  # 06:05 UTC
    assert await phones(client, f"updated_since={local}") == [SCENARIO[5]["phone"], SCENARIO[4]["phone"]]
    assert await phones(client, "updated_since=2026-03-02T06:06:00Z") == [SCENARIO[5]["phone"]]
    body = await get_json(client, "/contacts?updated_since=2026-03-02T06:00:00", status=400)
    assert body["error"]["problems"][0]["field"] == "updated_since"


async def test_cursor_pagination_visits_every_contact_once_even_with_equal_timestamps(client: TestClient) -> None:
    # 23 contacts, three of every updated_at: ties are broken by id.
    rows = [contact(i, updated_at=T0 + timedelta(minutes=i // 3), needs_human=i % 2 == 0) for i in range(23)]
    await add_contacts(client, rows)
    for query, expected_count in (("", 23), ("needs_human=true&", 12)):
        seen: list[dict[str, Any]] = []
        cursor = None
        pages = 0
        while True:
            url = f"/contacts?{query}limit=5" + (f"&cursor={cursor}" if cursor else "")
            page = await get_json(client, url)
            seen += page["items"]
            pages += 1
            cursor = page["next_cursor"]
            assert len(page["items"]) == 5 or cursor is None
            if cursor is None:
                break
        assert len(seen) == expected_count and pages == -(-expected_count // 5)
        assert len({item["id"] for item in seen}) == expected_count
        order = [(item["updated_at"], item["id"]) for item in seen]
        assert order == sorted(order, reverse=True)
    assert len((await get_json(client, "/contacts?limit=200"))["items"]) == 23
    assert (await get_json(client, "/contacts?limit=23"))["next_cursor"] is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("is_client=maybe", "is_client"),
        ("outcome=won", "outcome"),
        ("stage=closing", "stage"),
        ("needs_human=2", "needs_human"),
        ("owner=bot", "owner"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=ten", "limit"),
        ("q=", "q"),
        (f"q={'x' * 101}", "q"),
        ("updated_since=yesterday", "updated_since"),
        ("spin_stage=problem", "spin_stage"),
    ],
)
async def test_invalid_filters_get_400_naming_the_parameter(client: TestClient, query: str, field: str) -> None:
    for path in ("/contacts", "/contacts/export.csv"):
        if path.endswith(".csv") and field == "limit":
            continue
        body = await get_json(client, f"{path}?{query}", status=400)
        assert body["error"]["message"] == "invalid query parameters"
        assert [p["field"] for p in body["error"]["problems"]] == [field]


async def test_a_bad_cursor_gets_400(client: TestClient) -> None:
    for cursor in ("garbage", "e30", encode_cursor(T0, 1)[:-3], "WzEsMl0"):
        body = await get_json(client, f"/contacts?cursor={cursor}", status=400)
        assert body["error"]["message"] == "invalid cursor"


@given(st.text(max_size=60))
def test_decoding_any_text_gives_a_position_or_a_cursor_error(text: str) -> None:
    try:
        when, contact_id = decode_cursor(text)
    except CursorError:
        return
    assert when.tzinfo is not None and isinstance(contact_id, int)


@given(st.datetimes(timezones=st.just(UTC)), st.integers(min_value=1, max_value=2**63 - 1))
def test_cursors_round_trip(when: datetime, contact_id: int) -> None:
    assert decode_cursor(encode_cursor(when, contact_id)) == (when, contact_id)


async def test_patch_overrides_status_outcome_and_notes(client: TestClient) -> None:
    await add_contacts(client, SCENARIO)
    recorder: RecordingFollowUps = client.app[AGENT].follow_ups  # type: ignore[assignment]
    ids = {row["phone"]: row["id"] for row in await all_contacts(client)}

    with capture_logs() as logs:
        response = await client.patch(
            "/contacts/%2B77010000001",
            json={"client_status": "non_client", "client_category": "supplier", "reason": "sells us paper"},
            headers=AUTH,
        )
    body = await response.json()
    assert response.status == 200, body
    assert body["client_status"] == "non_client" and body["client_category"] == "supplier"
    assert body["classified_by"] == "manager" and body["classification_reason"] == "sells us paper"
    assert datetime.fromisoformat(body["updated_at"]) == NOW
    assert body["outcome"] == "agreed"  # untouched
    assert recorder.stops == [(ids["+77010000001"], "non_client", True)]
    # What reaches the log output (after the privacy processor) never holds the phone.
    assert logs and all("77010000001" not in repr(redact(None, "", dict(entry))) for entry in logs)

    # National format is normalised; a non-client default category; back to client is prospect.
    body = await patch(client, "8 701 000 00 02", {"client_status": "client", "reason": "real buyer"})
    assert body["client_status"] == "client" and body["client_category"] == "prospect"
    body = await patch(client, "+77010000004", {"client_status": "non_client", "reason": "wrong number"})
    assert body["client_category"] == "other"

    body = await patch(client, "+77010000002", {"outcome": "declined", "notes": "call back in May"})
    assert body["outcome"] == "declined" and body["notes"] == "call back in May"
    assert recorder.stops[-1] == (ids["+77010000002"], "declined", True)
    stops_before = len(recorder.stops)
    body = await patch(client, "+77010000002", {"notes": None})
    assert body["notes"] is None and body["outcome"] == "declined"
    body = await patch(client, "+77010000006", {"outcome": "uncertain"})
    assert len(recorder.stops) == stops_before  # neither changes follow-ups

    stored = {row["phone"]: row for row in await all_contacts(client)}
    assert stored["+77010000002"]["outcome"] == "declined" and stored["+77010000002"]["notes"] is None
    assert stored["+77010000001"]["classified_by"] == "manager"


async def test_a_manager_decision_stops_the_real_follow_ups(amqp_url: str, database_url: str) -> None:
    """With the real follow-up hooks: declining cancels the pending touches and stops follow-ups for good."""
    settings = AgentSettings(amqp_url=amqp_url, database_url=database_url, api_token=TOKEN)
    async with TestClient(TestServer(create_app(settings, clock=ManualClock(NOW)))) as test_client:
        await add_contacts(test_client, [contact(1), contact(2)])
        ids = [row["id"] for row in await all_contacts(test_client)]
        due = NOW + timedelta(days=30)
        touches = [
            {
                "contact_id": cid,
                "sequence_no": 1,
                "touch": 1,
                "strategy": "reminder",
                "due_at": due,
                "status": "pending",
            }
            | {"created_at": NOW, "updated_at": NOW}
            for cid in ids
        ]
        async with test_client.app[RUNTIME].sessions() as session, session.begin():
            await session.execute(insert(tables.follow_ups), touches)

        await patch(test_client, "+77010000001", {"outcome": "declined"})
        await patch(test_client, "+77010000002", {"notes": "likes blue"})

        async with test_client.app[RUNTIME].sessions() as session:
            statuses = dict(
                (await session.execute(select(tables.follow_ups.c.contact_id, tables.follow_ups.c.status))).all()
            )
        assert statuses == {ids[0]: "cancelled", ids[1]: "pending"}
        stored = await all_contacts(test_client)
        assert stored[0]["follow_ups_stopped"] and stored[0]["follow_ups_stop_reason"] == "declined"
        assert not stored[1]["follow_ups_stopped"]


async def test_patch_refuses_bad_input(client: TestClient) -> None:
    await add_contacts(client, SCENARIO[:1])
    for body in (
        {},
        {"client_status": "client"},  # no reason
        {"client_status": "maybe", "reason": "x"},
        {"client_status": "client", "client_category": "spam", "reason": "x"},
        {"client_status": "non_client", "client_category": "prospect", "reason": "x"},
        {"reason": "x"},
        {"outcome": "won"},
        {"outcome": None},
        {"notes": "x" * 10_001},
        {"phone": "+77019999999"},
        {"client_status": None, "reason": "x"},
    ):
        response = await client.patch("/contacts/%2B77010000001", json=body, headers=AUTH)
        assert response.status == 400, body
        assert (await response.json())["error"]["message"] == "invalid request body"
    response = await client.patch("/contacts/%2B77010000001", data=b"{not json", headers=AUTH)
    assert response.status == 400
    response = await client.patch("/contacts/12ab", json={"outcome": "open"}, headers=AUTH)
    assert response.status == 400 and (await response.json())["error"]["message"].startswith("invalid phone")
    response = await client.patch("/contacts/%2B77019999999", json={"outcome": "open"}, headers=AUTH)
    assert response.status == 404
    assert (await response.json())["error"] == {"status": 404, "message": "no contact with this phone"}
    assert (await all_contacts(client))[0]["outcome"] == "agreed"  # unchanged


async def test_csv_export_streams_every_matching_contact(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(contacts_api, "EXPORT_BATCH", 4)  # several batches
    rows = [contact(i, needs_human=i % 3 == 0) for i in range(10)]
    rows += [contact(20, name="=HYPERLINK(1)", notes="+cmd", outcome="agreed"), contact(21, name='Żaneta, "Z"')]
    await add_contacts(client, rows)

    response = await client.get("/contacts/export.csv", headers=AUTH)
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response.headers["Content-Disposition"]
    raw = await response.read()
    assert raw.startswith("\ufeff".encode())
    table = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert len(table) == 12
    assert list(table[0]) == list(contacts_api.CSV_COLUMNS)
    by_phone = {r["phone"]: r for r in table}
    injected = by_phone["+77010000020"]
    assert injected["name"] == "'=HYPERLINK(1)" and injected["notes"] == "'+cmd"
    assert by_phone["+77010000021"]["name"] == 'Żaneta, "Z"'
    assert by_phone["+77010000003"]["needs_human"] == "true"
    assert by_phone["+77010000003"]["updated_at"] == "2026-03-02T06:03:00Z"
    assert [r["phone"] for r in table] == [r["phone"] for r in (await get_json(client, "/contacts?limit=200"))["items"]]

    filtered = await client.get("/contacts/export.csv?needs_human=true&q=prospect", headers=AUTH)
    table = list(csv.DictReader(io.StringIO((await filtered.read()).decode("utf-8-sig"))))
    assert sorted(r["phone"] for r in table) == ["+77010000000", "+77010000003", "+77010000006", "+77010000009"]
    empty = await client.get("/contacts/export.csv?outcome=declined", headers=AUTH)
    assert (await empty.read()).decode("utf-8-sig").strip() == ",".join(contacts_api.CSV_COLUMNS)


def test_csv_cells_never_start_a_formula_in_free_text() -> None:
    for value in ("=1+1", "+7", "-2", "@SUM(A1)", "\tx"):
        assert csv_cell("notes", value).startswith("'")
    assert csv_cell("phone", "+77010000001") == "+77010000001"
    assert csv_cell("needs_human", False) == "false" and csv_cell("name", None) == ""


async def test_export_is_not_taken_for_a_phone(amqp_url: str, tmp_path: Any) -> None:
    """/contacts/export.csv answers even when a /contacts/{phone} route is registered first."""
    settings = AgentSettings(amqp_url=amqp_url, database_url=f"sqlite+aiosqlite:///{tmp_path}/a.db", api_token=TOKEN)
    app = create_app(settings)

    async def one_contact(_request: web.Request) -> web.Response:
        return web.json_response({"route": "phone"})

    app.router.add_get("/contacts/{phone}", one_contact)
    async with TestClient(TestServer(app)) as test_client:
        response = await test_client.get("/contacts/export.csv", headers=AUTH)
        assert response.status == 200 and response.headers["Content-Type"].startswith("text/csv")


async def patch(test_client: TestClient, phone: str, body: dict[str, Any]) -> Any:
    response = await test_client.patch(f"/contacts/{quote(phone)}", json=body, headers=AUTH)
    payload = await response.json()
    assert response.status == 200, payload
    return payload


async def all_contacts(test_client: TestClient) -> list[Any]:
    async with test_client.app[RUNTIME].sessions() as session:
        return list((await session.execute(select(tables.contacts).order_by(tables.contacts.c.id))).mappings())
