"""The analytics arithmetic without a database: periods, local-day buckets, percentiles, the funnel."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy
from hypothesis import given
from hypothesis import strategies as st

from agent_service.api.analytics import epoch_bucket
from agent_service.domain import analytics as calc

ALMATY = ZoneInfo("Asia/Almaty")
# Whole-hour, half-hour and 45-minute offsets, DST north and south, a 30-minute DST shift.
ZONES = [
    "UTC",
    "Asia/Almaty",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "America/St_Johns",
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
]


def test_percentile_interpolates_between_closest_ranks() -> None:
    assert calc.percentile([], 50) is None
    assert calc.percentile([7.0], 90) == 7.0
    assert calc.percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    assert calc.percentile([1.0, 2.0, 3.0, 4.0], 90) == pytest.approx(3.7)
    assert calc.percentile([10.0, 31.0, 100.0], 90) == pytest.approx(86.2)
    with pytest.raises(ValueError):
        calc.percentile([1.0], 101)


@given(
    st.lists(st.floats(min_value=0, max_value=1e6), min_size=1, max_size=50),
    st.floats(min_value=0, max_value=100),
    st.floats(min_value=0, max_value=100),
)
def test_percentiles_lie_within_the_values_and_grow_with_q(values: list[float], q1: float, q2: float) -> None:
    low, high = sorted((q1, q2))
    p_low, p_high = calc.percentile(values, low), calc.percentile(values, high)
    assert p_low is not None and p_high is not None
    assert min(values) - 1e-6 <= p_low <= p_high + 1e-6 <= max(values) + 2e-6
    assert calc.percentile(values, 0) == min(values) and calc.percentile(values, 100) == max(values)


def test_first_response_counts_answered_and_unanswered() -> None:
    t = datetime(2026, 3, 2, 5, 0, tzinfo=UTC)
    pairs = [(t, t + timedelta(seconds=10)), (t, t + timedelta(seconds=100)), (t, t + timedelta(seconds=31)), (t, None)]
    assert calc.first_response(pairs) == {"answered": 3, "unanswered": 1, "p50_s": 31.0, "p90_s": 86.2}
    assert calc.first_response([]) == {"answered": 0, "unanswered": 0, "p50_s": None, "p90_s": None}


def test_the_default_period_is_the_last_thirty_local_days_today_included() -> None:
    now = datetime(2026, 3, 11, 20, 30, tzinfo=UTC)  # already 12 March in Almaty
    period = calc.resolve_period(None, None, now=now, tz=ALMATY)
    assert period.start == datetime(2026, 2, 11, 0, 0, tzinfo=ALMATY)
    assert period.end == datetime(2026, 3, 13, 0, 0, tzinfo=ALMATY)
    assert len(period.days()) == 30 and period.days()[-1] == date(2026, 3, 12)
    assert period.start.tzinfo is UTC and period.end.tzinfo is UTC


def test_bounds_dates_are_whole_local_days_and_naive_times_are_local() -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    one_day = calc.resolve_period("2026-03-02", "2026-03-02", now=now, tz=ALMATY)
    assert (one_day.start, one_day.end) == (
        datetime(2026, 3, 2, tzinfo=ALMATY),
        datetime(2026, 3, 3, tzinfo=ALMATY),
    )
    assert one_day.days() == [date(2026, 3, 2)]
    timed = calc.resolve_period("2026-03-02T09:30", "2026-03-04T10:00:00Z", now=now, tz=ALMATY)
    assert timed.start == datetime(2026, 3, 2, 9, 30, tzinfo=ALMATY)
    assert timed.end == datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
    assert timed.days() == [date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 4)]
    only_from = calc.resolve_period("2026-05-30", None, now=now, tz=ALMATY)
    assert only_from.end == datetime(2026, 6, 2, tzinfo=ALMATY)  # the end of today (1 June, local)


@pytest.mark.parametrize(
    ("from_text", "to_text", "message"),
    [
        ("yesterday", None, "from: expected a date"),
        ("2026-03-02", "2026-13-01", "to: expected a date"),
        ("2026-03-05", "2026-03-04", "from must be before to"),
        ("2026-03-05T10:00Z", "2026-03-05T10:00Z", "from must be before to"),
        ("2025-01-01", "2026-03-01", "at most 366 days"),
    ],
)
def test_unusable_periods_are_refused(from_text: str, to_text: str | None, message: str) -> None:
    with pytest.raises(calc.PeriodError, match=message):
        calc.resolve_period(from_text, to_text, now=datetime(2026, 3, 10, tzinfo=UTC), tz=ALMATY)


def test_bucket_size_follows_the_zone_offset() -> None:
    def size(zone: str) -> int:
        period = calc.resolve_period(
            "2026-01-01", "2026-12-31", now=datetime(2026, 1, 1, tzinfo=UTC), tz=ZoneInfo(zone)
        )
        return calc.bucket_seconds(period)

    assert size("Asia/Almaty") == 3600 and size("America/New_York") == 3600
    assert size("Asia/Kolkata") == 900 and size("Asia/Kathmandu") == 900 and size("America/St_Johns") == 900


@given(
    zone=st.sampled_from(ZONES),
    first=st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 1, 1)),
    length=st.integers(min_value=1, max_value=400),
    offsets=st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=20),
)
def test_every_bucket_falls_inside_one_local_day(zone: str, first: date, length: int, offsets: list[float]) -> None:
    tz = ZoneInfo(zone)
    now = datetime(2031, 1, 1, tzinfo=UTC)
    period = calc.resolve_period(
        first.isoformat(), (first + timedelta(days=min(length, 365))).isoformat(), now=now, tz=tz
    )
    size = calc.bucket_seconds(period)
    span = (period.end - period.start).total_seconds()
    for fraction in offsets:
        instant = period.start + timedelta(seconds=int(span * fraction * 0.999999))
        bucket = int(instant.timestamp()) // size
        assert calc.bucket_day(bucket, size, tz) == instant.astimezone(tz).date()
        assert calc.bucket_day(bucket, size, tz) in period.days()


def test_message_series_fills_every_day_and_totals_by_kind() -> None:
    period = calc.resolve_period("2026-03-02", "2026-03-04", now=datetime(2026, 4, 1, tzinfo=UTC), tz=ALMATY)
    day2 = int(datetime(2026, 3, 3, 0, 30, tzinfo=ALMATY).timestamp()) // 3600
    series = calc.message_series(
        [(day2, "in", "text", 2), (day2, "out", "reply", 1), (day2, "in", "voice", 1)], 3600, period
    )
    assert series["in"] == 3 and series["out"] == 1
    assert series["by_kind"] == {"in": {"text": 2, "voice": 1}, "out": {"reply": 1}}
    assert series["per_day"] == [
        {"date": "2026-03-02", "in": 0, "out": 0},
        {"date": "2026-03-03", "in": 3, "out": 1},
        {"date": "2026-03-04", "in": 0, "out": 0},
    ]


def test_contact_summary_builds_the_funnel_share_and_handoffs() -> None:
    rows = [
        ("client", "problem", "open", False, "ai", 2),
        ("client", "need_payoff", "agreed", False, "ai", 1),
        ("client", "implication", "declined", True, "human", 1),
        ("non_client", "situation", "open", False, "ai", 3),
        ("unknown", "situation", "open", True, "ai", 1),
    ]
    summary = calc.contact_summary(rows)
    assert summary["funnel"] == {
        "contacts": 8,
        "clients": 4,
        "non_clients": 3,
        "unclassified": 1,
        "stages": {"situation": 0, "problem": 2, "implication": 1, "need_payoff": 1},
        "reached": {"situation": 4, "problem": 4, "implication": 2, "need_payoff": 1},
        "agreed": 1,
        "declined": 1,
        "outcomes": {"open": 6, "agreed": 1, "declined": 1, "uncertain": 0},
    }
    assert summary["non_client_share"] == pytest.approx(3 / 7, abs=1e-4)
    assert summary["handoffs"] == {"needs_human": 2, "owned_by_human": 1}
    assert calc.contact_summary([])["non_client_share"] is None


def test_follow_up_and_call_figures() -> None:
    touches = calc.follow_up_touches([(2, 1, 1), (1, 3, 1)])
    assert touches == {
        "sent": 4,
        "replied": 2,
        "reply_rate": 0.5,
        "per_touch": [
            {"touch": 1, "sent": 3, "replied": 1, "reply_rate": 0.3333},
            {"touch": 2, "sent": 1, "replied": 1, "reply_rate": 1.0},
        ],
    }
    assert calc.follow_up_touches([])["reply_rate"] is None
    calls = calc.call_counts([("pending", 2), ("confirmed", 1), ("done", 1), ("cancelled", 1)])
    assert calls == {
        "requested": 5,
        "confirmed": 2,
        "by_status": {"cancelled": 1, "confirmed": 1, "done": 1, "pending": 2},
    }


def test_sqlite_buckets_are_whole_numbers() -> None:
    """Two instants of one minute fall into one minute bucket on SQLite (integer division, not a
    fraction per second)."""
    engine = sqlalchemy.create_engine("sqlite://")
    instants = [datetime(2026, 1, 5, 10, 0, 10), datetime(2026, 1, 5, 10, 0, 50)]
    with engine.connect() as connection:
        buckets = [
            connection.execute(sqlalchemy.select(epoch_bucket(sqlalchemy.literal(at), "sqlite", 60))).scalar_one()
            for at in instants
        ]
    assert buckets[0] == buckets[1] == int(datetime(2026, 1, 5, 10, 0, tzinfo=UTC).timestamp()) // 60
