"""Analytics arithmetic: the reporting period, day buckets, percentiles, the funnel and rates.

Plain data in, plain data out. The SQL side (``api/analytics.py``) groups rows into small
aggregates (counts per time bucket, per status ...) and these functions finish the job, so the
same answer comes out of SQLite and PostgreSQL and the rules are testable without a database.

Days are the business timezone's days. The database groups timestamps into UTC buckets no
longer than the gap between two local midnights allows (:func:`bucket_seconds`), so every
bucket falls inside exactly one local day, whatever the zone's offset or DST.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

STAGES = ("situation", "problem", "implication", "need_payoff")
OUTCOMES = ("open", "agreed", "declined", "uncertain")
DEFAULT_DAYS = 30
MAX_DAYS = 366
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class PeriodError(ValueError):
    """A reporting period that cannot be used (bad bound, reversed, too long)."""


@dataclass(frozen=True)
class Period:
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive
    tz: ZoneInfo

    def days(self) -> list[date]:
        """Every local date the period touches, in order."""
        first = self.start.astimezone(self.tz).date()
        last = (self.end - timedelta(microseconds=1)).astimezone(self.tz).date()
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant a local day starts."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def parse_bound(text: str, tz: ZoneInfo, *, upper: bool) -> datetime:
    """A period bound as UTC. A date means a whole local day: as ``from`` its start, as ``to`` its
    end (the next day's start, exclusive). A datetime without an offset is business-local time."""
    value = text.strip()
    try:
        if _DATE_ONLY.match(value):
            day = date.fromisoformat(value)
            return local_midnight(day + timedelta(days=1) if upper else day, tz)
        moment = datetime.fromisoformat(value)
    except (ValueError, OverflowError):
        raise PeriodError(
            f"{'to' if upper else 'from'}: expected a date (YYYY-MM-DD) or an ISO 8601 datetime"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=tz)).astimezone(UTC)


def resolve_period(
    from_text: str | None,
    to_text: str | None,
    *,
    now: datetime,
    tz: ZoneInfo,
    default_days: int = DEFAULT_DAYS,
    max_days: int = MAX_DAYS,
) -> Period:
    """The period asked for; by default the last ``default_days`` local days, today included."""
    if to_text:
        end = parse_bound(to_text, tz, upper=True)
    else:  # the end of today
        end = local_midnight(now.astimezone(tz).date() + timedelta(days=1), tz)
    if from_text:
        start = parse_bound(from_text, tz, upper=False)
    else:
        last_day = (end - timedelta(microseconds=1)).astimezone(tz).date()
        start = local_midnight(last_day - timedelta(days=default_days - 1), tz)
    if start >= end:
        raise PeriodError("from must be before to")
    if end - start > timedelta(days=max_days, hours=1):  # an hour of slack for a DST change
        raise PeriodError(f"the period may span at most {max_days} days")
    return Period(start, end, tz)


def bucket_seconds(period: Period) -> int:
    """The longest UTC bucket (1 h, 15 min, 1 min, 1 s) that no local midnight in the period cuts."""
    midnights = [local_midnight(day, period.tz) for day in period.days()[1:]]
    epochs = [int(m.timestamp()) for m in midnights if period.start < m < period.end]
    for size in (3600, 900, 60):
        if all(e % size == 0 for e in epochs):
            return size
    return 1


def bucket_day(bucket: int, size: int, tz: ZoneInfo) -> date:
    """The local date of UTC bucket number ``bucket`` (of ``size`` seconds since the epoch)."""
    return datetime.fromtimestamp(bucket * size, tz=UTC).astimezone(tz).date()


def message_series(rows: Iterable[tuple[int, str, str, int]], size: int, period: Period) -> dict[str, Any]:
    """Totals and the per-day series from ``(bucket, direction, kind, count)`` rows."""
    per_day = {day: {"in": 0, "out": 0} for day in period.days()}
    by_kind: dict[str, dict[str, int]] = {"in": {}, "out": {}}
    for bucket, direction, kind, count in rows:
        day = per_day.setdefault(bucket_day(bucket, size, period.tz), {"in": 0, "out": 0})
        day[direction] = day.get(direction, 0) + count
        kinds = by_kind.setdefault(direction, {})
        kinds[kind] = kinds.get(kind, 0) + count
    return {
        "in": sum(by_kind["in"].values()),
        "out": sum(by_kind["out"].values()),
        "by_kind": {direction: dict(sorted(kinds.items())) for direction, kinds in by_kind.items()},
        "per_day": [{"date": day.isoformat(), **counts} for day, counts in sorted(per_day.items())],
    }


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100), interpolating linearly between closest ranks; None if empty."""
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0..100")
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def first_response(pairs: Iterable[tuple[datetime, datetime | None]]) -> dict[str, Any]:
    """From (first inbound, first answer or None) per contact: how many, and the p50/p90 delay in seconds."""
    delays: list[float] = []
    unanswered = 0
    for first_in, answer in pairs:
        if answer is None:
            unanswered += 1
        else:
            delays.append(max(0.0, (answer - first_in).total_seconds()))
    p50, p90 = percentile(delays, 50), percentile(delays, 90)
    return {
        "answered": len(delays),
        "unanswered": unanswered,
        "p50_s": round(p50, 3) if p50 is not None else None,
        "p90_s": round(p90, 3) if p90 is not None else None,
    }


def rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def contact_summary(rows: Iterable[tuple[str, str, str, bool, str, int]]) -> dict[str, Any]:
    """The funnel, the non-client share and the handoffs from
    ``(client_status, spin_stage, outcome, needs_human, owner, count)`` rows of one contact cohort.

    ``stages`` counts clients by their current SPIN stage, ``reached`` those at that stage or
    further; ``outcomes`` counts every contact of the cohort.
    """
    statuses = {"client": 0, "non_client": 0, "unknown": 0}
    stages = dict.fromkeys(STAGES, 0)
    outcomes = dict.fromkeys(OUTCOMES, 0)
    needs_human = owned_by_human = 0
    for status, stage, outcome, flagged, owner, count in rows:
        statuses[status] = statuses.get(status, 0) + count
        outcomes[outcome] = outcomes.get(outcome, 0) + count
        if status == "client" and stage in stages:
            stages[stage] += count
        needs_human += count if flagged else 0
        owned_by_human += count if owner == "human" else 0
    reached = {stage: sum(stages[s] for s in STAGES[i:]) for i, stage in enumerate(STAGES)}
    classified = statuses["client"] + statuses["non_client"]
    return {
        "funnel": {
            "contacts": sum(statuses.values()),
            "clients": statuses["client"],
            "non_clients": statuses["non_client"],
            "unclassified": sum(statuses.values()) - classified,
            "stages": stages,
            "reached": reached,
            "agreed": outcomes["agreed"],
            "declined": outcomes["declined"],
            "outcomes": outcomes,
        },
        "non_client_share": rate(statuses["non_client"], classified),
        "handoffs": {"needs_human": needs_human, "owned_by_human": owned_by_human},
    }


def follow_up_touches(rows: Iterable[tuple[int, int, int]]) -> dict[str, Any]:
    """Sends and replies per touch from ``(touch, sent, replied)`` rows."""
    ordered = sorted(rows)
    per_touch = [
        {"touch": touch, "sent": sent, "replied": replied, "reply_rate": rate(replied, sent)}
        for touch, sent, replied in ordered
    ]
    sent = sum(sent for _, sent, _ in ordered)
    replied = sum(replied for _, _, replied in ordered)
    return {"sent": sent, "replied": replied, "reply_rate": rate(replied, sent), "per_touch": per_touch}


def call_counts(rows: Iterable[tuple[str, int]]) -> dict[str, Any]:
    """Calls requested (every booking) and confirmed (confirmed or done) from ``(status, count)`` rows."""
    by_status = dict(sorted(rows))
    return {
        "requested": sum(by_status.values()),
        "confirmed": by_status.get("confirmed", 0) + by_status.get("done", 0),
        "by_status": by_status,
    }
