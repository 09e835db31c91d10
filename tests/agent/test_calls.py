"""Scheduled calls: booked only in the future and inside working hours, idempotent per turn;
otherwise concrete slots are proposed in the prospect's language. Managers list and update calls."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from agent_service.db import tables
from agent_service.domain.call_slots import CallRules, proposal_text, propose, refusal
from agent_service.domain.working_hours import WorkingHours
from tests.support.followups import START, Rig, auth, make_rig

ALMATY = WorkingHours.build("Asia/Almaty", 10, 18, holidays=[date(2026, 1, 7)])
RULES = CallRules(ALMATY, duration=timedelta(minutes=30), min_lead=timedelta(hours=1), slots=3)
NOW = START  # Monday 5 Jan 2026, 09:00 in Almaty


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=ALMATY.tz).astimezone(UTC)


# ---------------------------------------------------------------------------- pure rules


@pytest.mark.parametrize(
    ("requested", "reason"),
    [
        (local(2026, 1, 5, 8, 0), "in_the_past"),
        (local(2026, 1, 5, 9, 30), "too_soon"),
        (local(2026, 1, 5, 20, 0), "outside_working_hours"),
        (local(2026, 1, 10, 12, 0), "outside_working_hours"),  # Saturday
        (local(2026, 1, 7, 12, 0), "outside_working_hours"),  # a holiday
        (local(2026, 1, 5, 17, 45), "ends_after_closing"),
        (local(2028, 1, 5, 12, 0), "too_far_ahead"),
        (local(2026, 1, 5, 10, 0), None),
        (local(2026, 1, 5, 17, 30), None),
    ],
)
def test_refusal_reasons(requested: datetime, reason: str | None) -> None:
    assert refusal(requested, NOW, RULES) == reason


def test_proposed_slots_follow_the_requested_time_of_day() -> None:
    evening = local(2026, 1, 6, 20, 0)  # Tuesday 20:00: closed
    assert propose(NOW, RULES, evening) == [
        local(2026, 1, 6, 17, 30),  # the latest call that still ends by 18:00, that day
        local(2026, 1, 8, 17, 30),  # Wednesday the 7th is a holiday
        local(2026, 1, 9, 17, 30),
    ]
    assert propose(NOW, RULES, None) == [local(2026, 1, 5, 10, 0), local(2026, 1, 6, 10, 0), local(2026, 1, 8, 10, 0)]


@settings(max_examples=200, deadline=None)
@given(
    zone=st.sampled_from(["Asia/Almaty", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]),
    start=st.integers(0, 22),
    length=st.integers(1, 12),
    days=st.frozensets(st.integers(0, 6), min_size=1),
    duration=st.sampled_from([15, 30, 45, 60]),
    now=st.datetimes(datetime(2025, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC)),
    ask=st.one_of(st.none(), st.integers(-3 * 24 * 60, 30 * 24 * 60)),
)
def test_every_proposed_slot_is_bookable(
    zone: str, start: int, length: int, days: frozenset[int], duration: int, now: datetime, ask: int | None
) -> None:
    hours = WorkingHours.build(zone, start, min(start + length, 24), days)
    rules = CallRules(hours, duration=timedelta(minutes=duration), min_lead=timedelta(hours=1), slots=3)
    requested = None if ask is None else now + timedelta(minutes=ask)
    slots = propose(now, rules, requested)
    assert len(slots) == 3
    assert slots == sorted(slots) and len({hours.local(s).date() for s in slots}) == 3, "one per day"
    for slot in slots:
        assert refusal(slot, now, rules) is None, f"{hours.local(slot)} is not bookable"
    if requested is not None and refusal(requested, now, rules) is None:
        assert requested in slots or hours.local(slots[0]).date() == hours.local(requested).date()


def test_the_prospect_reads_the_slots_in_the_business_timezone_in_their_language() -> None:
    slots = [local(2026, 1, 6, 17, 30), local(2026, 1, 8, 17, 30)]
    en = proposal_text(slots, ALMATY, "en")
    assert "Tue 6 Jan, 17:30" in en and "Thu 8 Jan, 17:30" in en and "Asia/Almaty" in en and "10:00–18:00" in en
    ru = proposal_text(slots, ALMATY, "ru-RU")
    assert "вт 6 янв, 17:30" in ru and "чт 8 янв, 17:30" in ru and " или " in ru
    assert "вт 6 янв" in proposal_text(slots, ALMATY, "kk"), "Kazakh speakers read Russian"


# ---------------------------------------------------------------------------- booking on the real databases


@pytest.fixture
async def rig(database_url: str) -> AsyncIterator[Rig]:
    rig = await make_rig(database_url, holidays="2026-01-07")
    yield rig
    await rig.close()


async def calls(rig: Rig) -> list[dict[str, object]]:
    async with rig.sessions() as session:
        return [dict(r) for r in (await session.execute(select(tables.scheduled_calls))).mappings()]


async def book(rig: Rig, contact: int, requested: datetime | None, turn: str, language: str = "en"):  # type: ignore[no-untyped-def]
    async with rig.sessions() as session, session.begin():
        return await rig.booker.book(
            session, contact_id=contact, requested_at=requested, turn_id=turn, language=language, now=rig.clock.now()
        )


async def test_a_call_requested_outside_working_hours_is_not_booked_and_slots_are_proposed(rig: Rig) -> None:
    contact = await rig.add_contact("+77010000001", language="ru")
    result = await book(rig, contact, local(2026, 1, 6, 20, 0), "turn-1", "ru")
    assert not result.booked and result.call_id is None and result.reason == "outside_working_hours"
    assert await calls(rig) == []
    assert result.proposed_slots == [local(2026, 1, 6, 17, 30), local(2026, 1, 8, 17, 30), local(2026, 1, 9, 17, 30)]
    assert result.reply_hint is not None and "вт 6 янв, 17:30" in result.reply_hint

    vague = await book(rig, contact, None, "turn-2")  # "tomorrow afternoon": the engine found no time
    assert not vague.booked and vague.reason == "no_time_given" and len(vague.proposed_slots) == 3


async def test_a_call_inside_working_hours_is_booked_once_per_turn(rig: Rig) -> None:
    contact = await rig.add_contact("+77010000001")
    requested = datetime(2026, 1, 6, 11, 0, 42, tzinfo=ALMATY.tz)  # aware, in any timezone
    first = await book(rig, contact, requested, "turn-1")
    again = await book(rig, contact, requested, "turn-1")  # the turn is redelivered
    assert first.booked and again.booked and first.call_id == again.call_id
    assert first.scheduled_at == local(2026, 1, 6, 11, 0)
    assert first.reply_hint is not None and "Tue 6 Jan, 11:00" in first.reply_hint
    (row,) = await calls(rig)
    assert (row["status"], row["timezone"], row["scheduled_at"]) == ("pending", "Asia/Almaty", local(2026, 1, 6, 11, 0))

    moved = await book(rig, contact, local(2026, 1, 8, 15, 0), "turn-2")  # the prospect changes the time
    rows = {r["id"]: r for r in await calls(rig)}
    assert rows[first.call_id]["status"] == "cancelled" and f"replaced by call {moved.call_id}" in str(
        rows[first.call_id]["notes"]
    )
    assert rows[moved.call_id]["status"] == "pending"


# ---------------------------------------------------------------------------- managers' API


async def test_managers_list_and_update_calls(rig: Rig) -> None:
    first = await rig.add_contact("+77010000001", name="Aigerim")
    second = await rig.add_contact("+77010000002")
    a = await book(rig, first, local(2026, 1, 6, 11, 0), "t-a")
    b = await book(rig, second, local(2026, 1, 8, 15, 0), "t-b")
    async with TestClient(TestServer(rig.app)) as client:
        assert (await client.get("/scheduled-calls")).status == 401
        listed = await (await client.get("/scheduled-calls", headers=auth())).json()
        assert [c["id"] for c in listed["items"]] == [a.call_id, b.call_id]
        assert listed["items"][0]["scheduled_at_local"].startswith("2026-01-06T11:00:00+05:00")
        assert listed["items"][0]["phone"] == "+77010000001" and listed["items"][0]["name"] == "Aigerim"

        query = {"from": "2026-01-07T00:00:00+05:00", "to": "2026-01-09T00:00:00+05:00"}
        ranged = await (await client.get("/scheduled-calls", params=query, headers=auth())).json()
        assert [c["id"] for c in ranged["items"]] == [b.call_id]
        by_phone = await (await client.get("/scheduled-calls", params={"phone": "77010000001"}, headers=auth())).json()
        assert [c["id"] for c in by_phone["items"]] == [a.call_id]
        assert (await client.get("/scheduled-calls", params={"status": "nope"}, headers=auth())).status == 400

        confirmed = await client.patch(f"/scheduled-calls/{a.call_id}", json={"status": "confirmed"}, headers=auth())
        assert confirmed.status == 200 and (await confirmed.json())["status"] == "confirmed"
        pending = await (await client.get("/scheduled-calls", params={"status": "pending"}, headers=auth())).json()
        assert [c["id"] for c in pending["items"]] == [b.call_id]

        late = await client.patch(
            f"/scheduled-calls/{a.call_id}", json={"scheduled_at": "2026-01-06T19:00:00+05:00"}, headers=auth()
        )
        body = await late.json()
        assert late.status == 422 and "outside_working_hours" in body["error"]["message"]
        assert body["error"]["proposed_slots"][0] == local(2026, 1, 6, 17, 30).isoformat()

        moved = await client.patch(
            f"/scheduled-calls/{a.call_id}",
            json={"scheduled_at": "2026-01-06T07:30:00Z", "notes": "asked for the morning"},
            headers=auth(),
        )
        assert moved.status == 200
        assert (await moved.json())["scheduled_at_local"].startswith("2026-01-06T12:30:00+05:00")

        done = await client.patch(f"/scheduled-calls/{b.call_id}", json={"status": "cancelled"}, headers=auth())
        assert done.status == 200
        final = await client.patch(f"/scheduled-calls/{b.call_id}", json={"status": "pending"}, headers=auth())
        assert final.status == 409
        notes = await client.patch(f"/scheduled-calls/{b.call_id}", json={"notes": "no answer"}, headers=auth())
        assert notes.status == 200 and (await notes.json())["notes"] == "no answer"

        assert (await client.patch("/scheduled-calls/999", json={"status": "done"}, headers=auth())).status == 404
        assert (await client.patch(f"/scheduled-calls/{a.call_id}", json={}, headers=auth())).status == 400
        assert (await client.patch(f"/scheduled-calls/{a.call_id}", json={"status": "x"}, headers=auth())).status == 400
        naive = {"scheduled_at": "2026-01-06T12:00:00"}
        assert (await client.patch(f"/scheduled-calls/{a.call_id}", json=naive, headers=auth())).status == 400
