"""Follow-up sequences on the real engines with an injected clock: the whole sequence, each stop
condition, Meta's 24-hour window, working hours at send time, and leases (at most once)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from agent_service.db import tables
from agent_service.domain.followup_policy import DEFAULT_STRATEGIES, StopReason
from agent_service.domain.working_hours import WorkingHours
from agent_service.followups.text import FollowUpText, TouchContext
from parley_shared.contracts import OutgoingKind, OutgoingMessage, decode, stable_id
from parley_shared.topology import CAMPAIGN, OUTGOING
from tests.support import infra
from tests.support.followups import START, Rig, make_rig

ALMATY = WorkingHours.build("Asia/Almaty", 10, 18)
PHONE = "+77010000001"


@pytest.fixture
async def rig(database_url: str, amqp_url: str) -> AsyncIterator[Rig]:
    rig = await make_rig(database_url, amqp_url)
    yield rig
    await rig.close()


def wall_open(instant: datetime) -> bool:
    wall = instant.astimezone(ALMATY.tz)
    return wall.weekday() < 5 and 10 <= wall.hour < 18


async def run_until_quiet(rig: Rig, *, until: datetime) -> list[tuple[datetime, str]]:
    """Jump the clock from one due touch to the next, running the scheduler at each; returns (time, message_id)."""
    sent: list[tuple[datetime, str]] = []
    while True:
        pending = [t["due_at"] for t in await rig.touches() if t["status"] == "pending"]
        if not pending or min(pending) > until:
            return sent
        rig.clock.set(max(min(pending), rig.clock.now()))
        report = await rig.scheduler.run_due()
        sent += [(rig.clock.now(), mid) for mid in report.message_ids]
        if not report.claimed:
            rig.clock.advance(minutes=15)


async def test_a_silent_prospect_gets_five_touches_at_their_times_on_the_campaign_queue(
    rig: Rig, amqp_url: str
) -> None:
    contact = await rig.add_contact(PHONE, name="Aigerim", language="ru")
    await rig.prospect_writes(contact)
    await rig.agent_replies(contact)  # Monday 09:00 local

    planned = await rig.touches(contact)
    assert [(t["touch"], t["strategy"], t["status"]) for t in planned] == [
        (i + 1, s.value, "pending") for i, s in enumerate(DEFAULT_STRATEGIES)
    ]
    sent = await run_until_quiet(rig, until=START + timedelta(days=60))

    rows = await rig.touches(contact)
    assert [r["status"] for r in rows] == ["sent"] * 5
    intervals = [24, 72, 168, 336, 720]
    for row, hours in zip(rows, intervals, strict=True):
        assert wall_open(row["sent_at"]), row
        assert row["sent_at"] >= START + timedelta(hours=hours), "never before its interval"
        assert row["sent_at"] == row["due_at"], "sent when due"
        assert row["message_id"] == stable_id("followup", str(row["id"]))
    assert [mid for _, mid in sent] == [r["message_id"] for r in rows]

    delivered = await infra.drain(amqp_url, CAMPAIGN.name)
    assert await infra.drain(amqp_url, OUTGOING.name) == [], "campaign traffic never rides with replies"
    messages = [decode(OutgoingMessage, m.body) for m in delivered]
    assert [(m.kind, m.follow_up_touch, m.phone) for m in messages] == [
        (OutgoingKind.FOLLOW_UP, n, PHONE) for n in range(1, 6)
    ]
    assert all("Aigerim" in m.text and m.template is None for m in messages)
    assert "Здравствуйте" in messages[0].text, "the prospect's language"
    async with rig.sessions() as session:
        recorded = (
            await session.execute(
                select(tables.messages.c.kind, tables.messages.c.direction).where(
                    tables.messages.c.contact_id == contact
                )
            )
        ).all()
    assert recorded.count(("follow_up", "out")) == 5


async def test_a_reply_cancels_the_pending_touches_and_the_next_agent_message_starts_a_new_sequence(rig: Rig) -> None:
    contact = await rig.add_contact(PHONE)
    await rig.agent_replies(contact)
    await run_until_quiet(rig, until=START + timedelta(days=4))  # touches 1 and 2 go out
    assert [t["status"] for t in await rig.touches(contact)] == ["sent", "sent", "pending", "pending", "pending"]

    rig.clock.advance(hours=2)
    await rig.prospect_writes(contact)
    rows = await rig.touches(contact)
    assert [(t["status"], t["replied"]) for t in rows] == [
        ("sent", False),
        ("sent", True),  # the reply counts for the last touch sent
        *[("cancelled", False)] * 3,
    ]
    assert {t["reason"] for t in rows[2:]} == {StopReason.REPLIED}
    assert (await rig.scheduler.run_due(START + timedelta(weeks=8, hours=2))).claimed == 0
    assert [t["status"] for t in await rig.touches(contact)][2:] == ["cancelled"] * 3, "cancelled touches never go"

    rig.clock.advance(minutes=1)
    await rig.agent_replies(contact)
    second = [t for t in await rig.touches(contact) if t["sequence_no"] == 2]
    assert [t["status"] for t in second] == ["pending"] * 5
    assert second[0]["due_at"] >= rig.clock.now() + timedelta(hours=24)


async def test_replies_written_together_plan_each_contact_as_alone(rig: Rig) -> None:
    """The turn writer plans the follow-ups of a batch of replies at once: each contact gets what a
    reply of its own would have given it."""
    fresh, again, call, declined = [await rig.add_contact(f"+7701000002{n}") for n in range(4)]
    await rig.agent_replies(again, declined)  # earlier sequences
    await rig.prospect_writes(again)
    await rig.prospect_writes(declined)
    async with rig.sessions() as session, session.begin():
        booking = await rig.booker.book(
            session,
            contact_id=call,
            requested_at=START + timedelta(days=3, hours=2),
            turn_id="turn-call",
            language="en",
            now=rig.clock.now(),
        )
    assert booking.booked
    async with rig.sessions() as session, session.begin():  # what this contact's turn decided
        await session.execute(
            update(tables.contacts).where(tables.contacts.c.id == declined).values(outcome="declined")
        )
    rig.clock.advance(minutes=5)

    await rig.agent_replies(fresh, again, call, declined)

    pending = {
        c: [t["sequence_no"] for t in await rig.touches(c) if t["status"] == "pending"]
        for c in (fresh, again, call, declined)
    }
    assert pending == {fresh: [1] * 5, again: [2] * 5, call: [], declined: []}
    assert (await rig.touches(fresh))[0]["due_at"] >= rig.clock.now() + timedelta(hours=24)
    async with rig.sessions() as session:
        stopped = {c: (await rig.contact(session, c))["follow_ups_stopped"] for c in (fresh, again, call, declined)}
    assert stopped == {fresh: False, again: False, call: False, declined: True}


@pytest.mark.parametrize(
    ("outcome", "continues"), [("uncertain", True), ("open", True), ("agreed", False), ("declined", False)]
)
async def test_an_uncertain_answer_continues_and_a_definitive_one_stops_for_good(
    rig: Rig, outcome: str, continues: bool
) -> None:
    contact = await rig.add_contact(PHONE)
    await rig.agent_replies(contact)
    await run_until_quiet(rig, until=START + timedelta(days=2))
    await rig.prospect_writes(contact)
    await rig.agent_replies(contact, outcome=outcome)
    pending = [t for t in await rig.touches(contact) if t["status"] == "pending"]
    async with rig.sessions() as session:
        row = await rig.contact(session, contact)
    if continues:
        assert [t["sequence_no"] for t in pending] == [2] * 5
        assert not row["follow_ups_stopped"]
    else:
        assert pending == []
        assert row["follow_ups_stopped"] and row["follow_ups_stop_reason"] == outcome
        # For good: even if the conversation goes on and the outcome is reopened later.
        await rig.agent_replies(contact, outcome="open")
        assert [t for t in await rig.touches(contact) if t["status"] == "pending"] == []


@pytest.mark.parametrize(
    ("columns", "reason"),
    [
        ({"client_status": "non_client", "client_category": "spam"}, StopReason.NON_CLIENT),
        ({"client_status": "unknown"}, StopReason.NON_CLIENT),
        ({"owner": "human", "owner_name": "Dana"}, StopReason.HUMAN),
        ({"needs_human": True}, StopReason.NEEDS_HUMAN),
    ],
)
async def test_non_clients_and_human_held_contacts_get_none(rig: Rig, columns: dict[str, object], reason: str) -> None:
    contact = await rig.add_contact(PHONE, **columns)
    await rig.agent_replies(contact)
    assert await rig.touches(contact) == []

    # A contact that becomes ineligible without the hooks being told is caught at send time.
    other = await rig.add_contact("+77010000002")
    await rig.agent_replies(other)
    async with rig.sessions() as session, session.begin():
        await session.execute(update(tables.contacts).where(tables.contacts.c.id == other).values(**columns))
    report = await rig.scheduler.run_due(START + timedelta(days=2, hours=2))  # Wednesday 11:00 local
    assert report.sent == 0 and report.cancelled == 5
    rows = await rig.touches(other)
    assert {(t["status"], t["reason"]) for t in rows} == {("cancelled", reason)}
    assert await rig.outbox_rows() == []


async def test_stop_hook_cancels_and_a_handback_can_start_again(rig: Rig) -> None:
    contact = await rig.add_contact(PHONE)
    await rig.agent_replies(contact)
    async with rig.sessions() as session, session.begin():
        assert await rig.follow_ups.stop(session, contact, "takeover", rig.clock.now()) == 5
    assert {t["status"] for t in await rig.touches(contact)} == {"cancelled"}
    await rig.agent_replies(contact)  # handed back: the AI's next message
    assert len([t for t in await rig.touches(contact) if t["status"] == "pending"]) == 5


async def test_farewell_ends_the_sequence_and_disabled_follow_ups_send_nothing(database_url: str) -> None:
    rig = await make_rig(database_url, follow_up_intervals="2,4,6", follow_up_strategies="reminder,farewell,urgency")
    try:
        contact = await rig.add_contact(PHONE)
        await rig.agent_replies(contact)
        assert [t["strategy"] for t in await rig.touches(contact)] == ["reminder", "farewell"]
    finally:
        await rig.close()

    off = await make_rig(database_url, enable_follow_ups=False)
    try:
        contact = await off.add_contact("+77010000009")
        await off.agent_replies(contact)
        assert await off.touches(contact) == []
        # Touches planned before the switch-off are cancelled when they fall due, not sent.
        async with off.sessions() as session, session.begin():
            await session.execute(
                tables.follow_ups.insert().values(
                    contact_id=contact,
                    sequence_no=1,
                    touch=1,
                    strategy="reminder",
                    due_at=START + timedelta(hours=2),
                    status="pending",
                    created_at=START,
                    updated_at=START,
                )
            )
        report = await off.scheduler.run_due(START + timedelta(hours=5))
        assert (report.sent, report.cancelled) == (0, 3)  # with the two planned by the first rig
        assert {(t["status"], t["reason"]) for t in await off.touches()} == {("cancelled", StopReason.DISABLED)}
    finally:
        await off.close()


async def test_nothing_goes_out_after_hours_and_a_late_touch_keeps_the_spacing_to_the_next(rig: Rig) -> None:
    contact = await rig.add_contact(PHONE)
    await rig.agent_replies(contact, at=datetime(2026, 1, 6, 12, 55, tzinfo=UTC))  # Tuesday 17:55 local
    first = (await rig.touches(contact))[0]
    assert first["due_at"] == datetime(2026, 1, 7, 12, 55, tzinfo=UTC)  # Wednesday 17:55
    evening = datetime(2026, 1, 7, 13, 5, tzinfo=UTC)  # 18:05: the scheduler was down at 17:55
    assert (await rig.scheduler.run_due(evening)).claimed == 0, "closed: nothing goes out"
    morning = datetime(2026, 1, 8, 5, 0, tzinfo=UTC)  # Thursday 10:00
    assert (await rig.scheduler.run_due(morning)).sent == 1
    rows = await rig.touches(contact)
    assert rows[0]["sent_at"] == morning
    assert rows[1]["due_at"] >= morning + timedelta(hours=48), "touch 2 keeps its 48 h after the late touch 1"
    assert wall_open(rows[1]["due_at"])


async def test_after_a_long_downtime_only_the_first_due_touch_goes_and_the_rest_keep_their_spacing(
    rig: Rig,
) -> None:
    """Touches 1-3 all fell due while the service was down: a round sends touch 1 alone (however
    the batches split the work), and touch 2 is re-planned from when touch 1 went out."""
    contacts = [await rig.add_contact(f"+7701000005{n}") for n in range(3)]
    await rig.agent_replies(*contacts)
    back = START + timedelta(days=9, hours=2)  # Wednesday of the next week, 11:00 local
    due = [t for c in contacts for t in await rig.touches(c) if t["due_at"] <= back]
    assert {t["touch"] for t in due} == {1, 2, 3}, "three touches of each contact fell due"
    rig.scheduler.batch_size = 2  # the rounds' batches split each contact's touches
    report = await rig.scheduler.run_due(back)
    assert report.sent == 3
    for contact in contacts:
        rows = await rig.touches(contact)
        assert [r["status"] for r in rows] == ["sent", "pending", "pending", "pending", "pending"]
        assert rows[1]["due_at"] >= back + timedelta(hours=48), "touch 2 keeps its spacing after touch 1"
    assert (await rig.scheduler.run_due(back + timedelta(hours=1))).claimed == 0


async def test_a_failed_batch_ends_the_round_and_its_touches_go_in_a_later_one(rig: Rig) -> None:
    contacts = [await rig.add_contact(f"+7701000006{n}") for n in range(8)]
    await rig.agent_replies(*contacts)
    rig.scheduler.batch_size = 2  # four batches, two at a time
    finish, calls = rig.scheduler._finish, 0

    async def second_fails(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("the database went away")
        return await finish(*args)

    rig.scheduler._finish = second_fails  # type: ignore[method-assign]
    due = START + timedelta(days=1, hours=2)
    with pytest.raises(RuntimeError, match="went away"):
        await rig.scheduler.run_due(due)
    ended_after = calls
    await asyncio.sleep(0.3)
    assert calls == ended_after <= 3, "the other batch stopped claiming when the round ended"
    rig.scheduler._finish = finish  # type: ignore[method-assign]
    await rig.scheduler.run_due(due + timedelta(minutes=6))  # the failed batch's leases ran out
    sent = [t for c in contacts for t in await rig.touches(c) if t["status"] == "sent"]
    assert sorted(t["contact_id"] for t in sent) == sorted(contacts), "each contact's touch 1 went, once"


async def test_late_touches_sent_together_each_keep_their_own_spacing(rig: Rig) -> None:
    """One batch sends several late touches (different contacts, different touches): each moves
    only its own later touches, and only later."""
    first, second, third = [await rig.add_contact(f"+7701000003{n}") for n in range(3)]
    await rig.agent_replies(first, second, at=datetime(2026, 1, 6, 12, 55, tzinfo=UTC))  # Tuesday 17:55
    await rig.agent_replies(third, at=datetime(2026, 1, 7, 5, 0, tzinfo=UTC))  # Wednesday 10:00: due on time
    untouched = await rig.touches(third)
    morning = datetime(2026, 1, 8, 5, 0, tzinfo=UTC)  # Thursday 10:00: touch 1 of all three is due
    assert untouched[0]["due_at"] == morning
    report = await rig.scheduler.run_due(morning)
    assert report.sent == 3
    for contact in (first, second):  # a day late: their later touches move
        rows = await rig.touches(contact)
        assert rows[0]["sent_at"] == morning
        assert rows[1]["due_at"] >= morning + timedelta(hours=48), "touch 2 keeps its 48 h after the late touch 1"
        assert all(a["due_at"] < b["due_at"] for a, b in itertools.pairwise(rows[1:]))
        assert all(wall_open(r["due_at"]) for r in rows[1:])
    after = await rig.touches(third)  # on time: its later touches stay where they were
    assert after[0]["sent_at"] == morning
    assert [r["due_at"] for r in after[1:]] == [r["due_at"] for r in untouched[1:]]


class _RecordingWriter:
    """A follow-up writer that keeps what it was given (the conversation of each contact)."""

    uses_history = True

    def __init__(self) -> None:
        self.seen: dict[int, list[tuple[str, str]]] = {}

    async def write(self, ctx: TouchContext) -> FollowUpText:
        self.seen[ctx.contact_id] = ctx.history
        return FollowUpText(text=f"Touch {ctx.touch}", engine="template")


async def test_each_touch_is_written_from_its_own_contacts_latest_messages(rig: Rig) -> None:
    short, long = await rig.add_contact("+77010000041"), await rig.add_contact("+77010000042")
    lines = {short: 3, long: rig.scheduler.history_messages + 5}
    async with rig.sessions() as session, session.begin():
        for contact, count in lines.items():
            await session.execute(
                tables.messages.insert(),
                [
                    {
                        "contact_id": contact,
                        "direction": "in" if n % 2 == 0 else "out",
                        "kind": "text",
                        "status": "handled",
                        "text": f"{contact}:{n}",
                        "message_id": f"m-{contact}-{n}",
                        "correlation_id": f"m-{contact}-{n}",
                        "created_at": START - timedelta(hours=1) + timedelta(seconds=n),
                    }
                    for n in range(count)
                ],
            )
    await rig.agent_replies(short, long)
    writer = _RecordingWriter()
    rig.scheduler.writer = writer  # type: ignore[assignment]
    assert (await rig.scheduler.run_due(START + timedelta(days=1, hours=2))).sent == 2
    assert writer.seen[short] == [("in", f"{short}:0"), ("out", f"{short}:1"), ("in", f"{short}:2")]
    newest = range(lines[long] - rig.scheduler.history_messages, lines[long])
    assert [text for _, text in writer.seen[long]] == [f"{long}:{n}" for n in newest], "the latest, oldest first"


async def test_meta_touch_outside_24h_window_is_skipped_without_a_template(
    rig: Rig, database_url: str, amqp_url: str
) -> None:
    contact = await rig.add_contact(PHONE, provider="meta")
    await rig.prospect_writes(contact)
    await rig.agent_replies(contact)
    report = await rig.scheduler.run_due(START + timedelta(days=2, hours=2))  # touch 1: 24 h after the last inbound
    assert (report.sent, report.skipped) == (0, 1)
    row = (await rig.touches(contact))[0]
    assert (row["status"], row["reason"]) == ("skipped", "meta_24h_window_without_template")
    assert await rig.outbox_rows() == []

    # Within the window a free-form touch is fine; with a template name, outside it too.
    with_template = await make_rig(
        database_url,
        amqp_url,
        clock=rig.clock,
        follow_up_template_name="parley_follow_up",
        follow_up_template_language="ru",
    )
    try:
        report = await with_template.scheduler.run_due(START + timedelta(days=4, hours=2))  # Friday 11:00
        assert report.sent == 1
        (message,) = [decode(OutgoingMessage, m.body) for m in await infra.drain(amqp_url, CAMPAIGN.name)]
        assert message.template is not None and (message.template.name, message.template.language) == (
            "parley_follow_up",
            "ru",
        )
    finally:
        await with_template.close()


async def test_an_expired_lease_is_taken_over_and_the_first_claimer_cannot_send_too(rig: Rig) -> None:
    contact = await rig.add_contact(PHONE)
    await rig.agent_replies(contact)
    due = START + timedelta(days=1, hours=2)
    claimed = await rig.scheduler._claim(due, "dead-replica")  # a replica that claimed, then died
    assert len(claimed) == 1
    assert (await rig.scheduler.run_due(due + timedelta(minutes=1))).claimed == 0, "the lease holds"
    later = due + rig.scheduler.lease + timedelta(seconds=1)
    assert (await rig.scheduler.run_due(later)).sent == 1, "an expired lease is taken over"
    # The dead replica wakes up and finishes its batch: its token no longer matches.
    writes = await rig.scheduler._write_all(claimed, later)
    late = await rig.scheduler._finish(writes, "dead-replica", later)
    assert (late.sent, late.lost) == (0, 1)
    assert len(await rig.outbox_rows()) == 1


async def test_a_reply_while_the_text_is_being_written_wins(rig: Rig) -> None:
    contact = await rig.add_contact(PHONE)
    await rig.agent_replies(contact)
    due = START + timedelta(days=1, hours=2)
    claimed = await rig.scheduler._claim(due, "token")
    writes = await rig.scheduler._write_all(claimed, due)
    await rig.prospect_writes(contact, at=due)  # the prospect writes before the batch is finished
    report = await rig.scheduler._finish(writes, "token", due)
    assert report.sent == 0
    assert await rig.outbox_rows() == []
    assert (await rig.touches(contact))[0]["status"] == "cancelled"


async def test_no_touches_while_a_call_is_booked(rig: Rig) -> None:
    contact = await rig.add_contact(PHONE)
    await rig.agent_replies(contact)  # a sequence runs
    async with rig.sessions() as session, session.begin():
        booking = await rig.booker.book(
            session,
            contact_id=contact,
            requested_at=START + timedelta(days=3, hours=2),  # Thursday 11:00 local
            turn_id="turn-call",
            language="en",
            now=rig.clock.now(),
        )
    assert booking.booked
    report = await rig.scheduler.run_due(START + timedelta(days=1, hours=2))
    assert (report.sent, report.cancelled) == (0, 5), "caught at send time: the call is ahead"
    assert {t["reason"] for t in await rig.touches(contact)} == {StopReason.CALL_SCHEDULED}

    await rig.agent_replies(contact, at=START + timedelta(days=1, hours=3))
    assert [t for t in await rig.touches(contact) if t["status"] == "pending"] == [], "no sequence before the call"
    await rig.agent_replies(contact, at=START + timedelta(days=4))  # after the call time
    assert len([t for t in await rig.touches(contact) if t["status"] == "pending"]) == 5


async def test_the_periodic_job_sends_what_is_due(database_url: str, amqp_url: str) -> None:
    rig = await make_rig(database_url, amqp_url, follow_up_check_interval_s=0.05)
    try:
        contact = await rig.add_contact(PHONE)
        await rig.agent_replies(contact)
        rig.clock.set(START + timedelta(days=1, hours=2))  # touch 1 is due
        periodic = rig.runtime.add_periodic("follow-ups", rig.scheduler.tick, interval_s=0.05)
        job = asyncio.create_task(periodic.run())
        try:
            for _ in range(200):  # the job runs at start, then every 50 ms
                # sent, and published: the touch is committed before its publish is confirmed
                staged = [r for r in await rig.outbox_rows() if r["queue"] == CAMPAIGN.name]
                if staged and all(r["published_at"] is not None for r in staged):
                    break
                await asyncio.sleep(0.05)
            assert [t["status"] for t in await rig.touches(contact)] == ["sent", *["pending"] * 4]
        finally:
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job
        assert job.cancelled()
        (message,) = await infra.drain(amqp_url, CAMPAIGN.name)
        assert decode(OutgoingMessage, message.body).follow_up_touch == 1
    finally:
        await rig.close()


async def test_a_touch_sent_tells_the_managers_screens(rig: Rig) -> None:
    """The console shows follow-up touches in the thread live: each touch sent is a live event."""
    told: list[tuple[int | None, str]] = []

    class Screens:
        def changed(self, contact_id: int | None, kind: str, **_: object) -> None:
            told.append((contact_id, kind))

    rig.scheduler.live = Screens()  # type: ignore[assignment]
    contact = await rig.add_contact(PHONE)
    await rig.agent_replies(contact, at=datetime(2026, 1, 6, 5, 0, tzinfo=UTC))  # Tuesday 10:00 local
    assert (await rig.scheduler.run_due(datetime(2026, 1, 6, 7, 0, tzinfo=UTC))).sent == 0
    assert told == []
    assert (await rig.scheduler.run_due(datetime(2026, 1, 7, 6, 0, tzinfo=UTC))).sent == 1  # Wednesday 11:00
    assert told == [(contact, "follow_up")]
