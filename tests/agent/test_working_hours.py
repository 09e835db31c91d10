"""Working-hours timing (pure): never outside working hours, never before the interval, any timezone,
across DST changes; touches of a sequence keep their spacing; the spread is deterministic and bounded."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from agent_service.domain.followup_policy import DEFAULT_STRATEGIES, FollowUpPolicy, plan
from agent_service.domain.working_hours import NoWorkingHours, WorkingHours, schedule_after, spread_offset

DST_ZONES = ["Europe/Berlin", "America/New_York", "Asia/Almaty", "Australia/Lord_Howe", "America/Santiago"]
ALL_ZONES = sorted(z for z in available_timezones() if "/" in z and not z.startswith(("posixrules", "Etc/")))


def wall_open(hours: WorkingHours, instant: datetime) -> bool:
    """The oracle: what a person reads on the office clock (independent of the implementation)."""
    wall = instant.astimezone(hours.tz)
    return (
        wall.weekday() in hours.days
        and wall.date() not in hours.holidays
        and hours.start_hour <= wall.hour < hours.end_hour
    )


@cache
def transitions(zone: str, year: int) -> tuple[datetime, ...]:
    """Instants (UTC) where the zone's UTC offset changes during ``year``: found hourly, refined to the minute."""
    tz = ZoneInfo(zone)
    found = []
    t = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    while t < end:
        nxt = t + timedelta(hours=1)
        if t.astimezone(tz).utcoffset() != nxt.astimezone(tz).utcoffset():
            low, high = t, nxt
            while high - low > timedelta(minutes=1):
                mid = low + (high - low) / 2
                if mid.astimezone(tz).utcoffset() == t.astimezone(tz).utcoffset():
                    low = mid
                else:
                    high = mid
            found.append(high)
        t = nxt
    return tuple(found)


@st.composite
def business_hours(draw: st.DrawFn, zones: st.SearchStrategy[str]) -> WorkingHours:
    zone = draw(zones)
    start = draw(st.integers(0, 23))
    end = draw(st.integers(start + 1, 24))
    days = draw(st.frozensets(st.integers(0, 6), min_size=1))
    holidays = draw(st.frozensets(st.dates(date(2025, 1, 1), date(2027, 12, 31)), max_size=6))
    return WorkingHours.build(zone, start, end, days, holidays)


@st.composite
def near_transition(draw: st.DrawFn, hours: WorkingHours) -> datetime:
    """An instant within two days of one of the zone's offset changes (or anywhere, for zones without)."""
    year = draw(st.integers(2025, 2027))
    changes = transitions(hours.tz.key, year)
    if not changes:
        return draw(st.datetimes(datetime(year, 1, 1), datetime(year, 12, 31), timezones=st.just(UTC)))
    base = draw(st.sampled_from(changes))
    return base + timedelta(minutes=draw(st.integers(-2 * 24 * 60, 2 * 24 * 60)))


dst_hours = business_hours(st.sampled_from(DST_ZONES))
any_hours = business_hours(st.sampled_from(ALL_ZONES))
instants = st.datetimes(datetime(2025, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC))


# ---------------------------------------------------------------------------- properties


@settings(max_examples=300, deadline=None)
@given(data=st.data(), hours=dst_hours, spread=st.integers(0, 120))
@example(  # Berlin spring forward: the local clock jumps from 02:00 to 03:00 on 29 March 2026
    data=None, hours=WorkingHours.build("Europe/Berlin", 2, 4, range(7)), spread=30
)
def test_schedule_after_is_inside_hours_and_not_early_across_dst(
    data: st.DataObject | None, hours: WorkingHours, spread: int
) -> None:
    earliest = data.draw(near_transition(hours)) if data is not None else datetime(2026, 3, 28, 23, 0, tzinfo=UTC)
    due = schedule_after(earliest, hours, spread_minutes=spread, key="c:1:1")
    assert due >= earliest, "never before the interval"
    assert wall_open(hours, due), f"outside working hours: {due.astimezone(hours.tz)}"
    assert hours.is_open(due)
    if wall_open(hours, earliest):
        assert due == earliest, "inside working hours a touch is not moved"
    else:
        window = hours.next_window(earliest)
        assert window.opens <= due <= window.opens + timedelta(minutes=spread)
        # No open minute is skipped: the office clock shows closed all the way to the opening.
        step = timedelta(minutes=20)
        probe = earliest
        while probe < window.opens and probe - earliest < timedelta(days=30):
            assert not wall_open(hours, probe), f"skipped an open time at {probe.astimezone(hours.tz)}"
            probe += step


@settings(max_examples=300, deadline=None)
@given(hours=any_hours, earliest=instants, spread=st.integers(0, 240))
def test_schedule_after_in_any_timezone(hours: WorkingHours, earliest: datetime, spread: int) -> None:
    due = schedule_after(earliest, hours, spread_minutes=spread, key=f"k{spread}")
    assert due >= earliest
    assert wall_open(hours, due), f"{hours.tz.key}: {due.astimezone(hours.tz)} is outside working hours"


@settings(max_examples=200, deadline=None)
@given(data=st.data(), hours=dst_hours)
def test_windows_hold_only_open_instants_across_dst(data: st.DataObject, hours: WorkingHours) -> None:
    around = data.draw(near_transition(hours))
    for window in [hours.window(around.astimezone(hours.tz).date() + timedelta(days=d)) for d in (-1, 0, 1)]:
        if window is None:
            continue
        assert window.opens < window.closes
        for instant in (
            window.opens,
            window.closes - timedelta(seconds=1),
            window.opens + (window.closes - window.opens) / 2,
        ):
            assert wall_open(hours, instant), f"{hours.tz.key}: {instant.astimezone(hours.tz)}"
            assert instant.astimezone(hours.tz).date() == window.day
        assert not hours.is_open(window.closes) or hours.window(window.day + timedelta(days=1)) is not None


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    hours=dst_hours,
    gaps=st.lists(st.integers(1, 24 * 20), min_size=1, max_size=6),
    spread=st.integers(0, 60),
    contact_id=st.integers(1, 10**9),
)
def test_a_planned_sequence_keeps_its_intervals_and_spacing(
    data: st.DataObject, hours: WorkingHours, gaps: list[int], spread: int, contact_id: int
) -> None:
    cumulative = [sum(gaps[: i + 1]) for i in range(len(gaps))]
    strategies = (*(DEFAULT_STRATEGIES[:-1] * 2)[: len(gaps) - 1], DEFAULT_STRATEGIES[-1])
    policy = FollowUpPolicy(hours, tuple(timedelta(hours=h) for h in cumulative), strategies, spread)
    after = data.draw(near_transition(hours))
    touches = plan(policy, after=after, contact_id=contact_id, sequence_no=1)
    assert [t.touch for t in touches] == list(range(1, len(gaps) + 1))
    assert [t.strategy for t in touches] == list(strategies)
    previous = after
    for touch, gap, total in zip(touches, gaps, cumulative, strict=True):
        assert wall_open(hours, touch.due_at)
        assert touch.due_at >= after + timedelta(hours=total), "never before its interval from the agent's message"
        assert touch.due_at >= previous + timedelta(hours=gap), "never closer to the previous touch than configured"
        previous = touch.due_at
    assert touches == plan(policy, after=after, contact_id=contact_id, sequence_no=1), "deterministic"


@given(key=st.text(max_size=30), spread=st.integers(0, 500))
def test_spread_is_deterministic_and_bounded(key: str, spread: int) -> None:
    offset = spread_offset(key, spread)
    assert offset == spread_offset(key, spread)
    assert timedelta(0) <= offset <= timedelta(minutes=spread)


# ---------------------------------------------------------------------------- examples

ALMATY = WorkingHours.build("Asia/Almaty", 10, 18)  # UTC+5, Monday to Friday


def local(hours: WorkingHours, *args: int) -> datetime:
    return datetime(*args, tzinfo=hours.tz).astimezone(UTC)


def test_friday_evening_moves_to_monday_opening_with_a_spread() -> None:
    friday_17 = local(ALMATY, 2026, 1, 9, 17, 0)  # a Friday
    monday_10 = local(ALMATY, 2026, 1, 12, 10, 0)
    due = schedule_after(friday_17 + timedelta(hours=24), ALMATY, spread_minutes=30, key="7:1:1")
    assert monday_10 <= due <= monday_10 + timedelta(minutes=30)
    assert schedule_after(friday_17, ALMATY, spread_minutes=30, key="x") == friday_17, "inside hours: unchanged"


def test_a_campaign_piling_up_overnight_is_spread_over_the_first_half_hour() -> None:
    night = local(ALMATY, 2026, 1, 13, 3, 0)
    dues = {schedule_after(night, ALMATY, spread_minutes=30, key=f"{cid}:1:1") for cid in range(200)}
    opening = local(ALMATY, 2026, 1, 13, 10, 0)
    assert all(opening <= d <= opening + timedelta(minutes=30) for d in dues)
    assert len(dues) > 20, "not all at 10:00"


def test_holidays_and_working_days_are_respected() -> None:
    hours = WorkingHours.build("Asia/Almaty", 10, 18, days=[0, 1, 2, 3, 4], holidays=[date(2026, 1, 12)])
    due = schedule_after(local(hours, 2026, 1, 10, 12, 0), hours)  # Saturday; Monday 12th is a holiday
    assert due == local(hours, 2026, 1, 13, 10, 0)


def test_opening_hour_swallowed_by_spring_forward_opens_at_the_jump() -> None:
    berlin = WorkingHours.build("Europe/Berlin", 2, 18, days=range(7))
    window = berlin.window(date(2026, 3, 29))  # 02:00 local never happens that day
    assert window is not None
    assert window.opens == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST, the jump itself
    assert window.opens.astimezone(berlin.tz).hour == 3


def test_repeated_opening_hour_counts_the_later_reading() -> None:
    # Antarctica/Troll falls back two hours (03:00 -> 01:00) on 25 Oct 2026: 02:00 is read twice.
    troll = WorkingHours.build("Antarctica/Troll", 2, 18, days=range(7))
    window = troll.window(date(2026, 10, 25))
    assert window is not None
    assert window.opens == datetime(2026, 10, 25, 2, 0, tzinfo=UTC)  # the second 02:00 (UTC+0)
    probe = window.opens
    while probe < window.closes:
        assert 2 <= probe.astimezone(troll.tz).hour < 18, "the office clock never drops below opening again"
        probe += timedelta(minutes=5)


def test_no_working_time_at_all_is_refused() -> None:
    with pytest.raises(NoWorkingHours):
        WorkingHours.build("UTC", 18, 10)
    with pytest.raises(NoWorkingHours):
        WorkingHours.build("UTC", 10, 18, days=[])
