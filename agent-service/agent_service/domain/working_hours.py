"""Business hours as pure functions: is an instant inside them, when do they open next, when is a touch due.

Everything takes and returns UTC-aware datetimes; the business timezone (``zoneinfo``) is only
used to read the local wall clock. A working day ``d`` is open over one window of instants,
``[opens, closes)``:

* ``opens`` is when the local clock reads ``start_hour`` on ``d``. When it reads that twice
  (clocks going back) the first reading counts, unless the clock drops below the opening hour
  before the second -- then the second, so the wall clock never drops below the opening hour
  inside the window; when it never reads it (clocks jumping over it) the jump counts.
* ``closes`` is the *first* instant the clock reads ``end_hour`` on ``d`` (or the jump over it).

So every instant inside a window shows a local time on ``d`` between the opening hour
(inclusive) and the closing hour (exclusive), in any timezone, across DST changes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class NoWorkingHours(ValueError):
    """The configuration leaves no open time to schedule into."""


@dataclass(frozen=True)
class Window:
    """One working day's open time, as UTC instants ``[opens, closes)``."""

    day: date
    opens: datetime
    closes: datetime

    def __contains__(self, instant: datetime) -> bool:
        return self.opens <= instant < self.closes


@dataclass(frozen=True)
class WorkingHours:
    tz: ZoneInfo
    start_hour: int = 10
    end_hour: int = 18
    days: frozenset[int] = frozenset(range(5))  # 0 = Monday
    holidays: frozenset[date] = frozenset()
    _windows: dict[date, Window | None] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.start_hour < self.end_hour <= 24:
            raise NoWorkingHours(f"working hours {self.start_hour}-{self.end_hour} are empty or out of range")
        if not self.days or not self.days <= set(range(7)):
            raise NoWorkingHours("no working days")

    @classmethod
    def build(
        cls,
        tz: str,
        start_hour: int,
        end_hour: int,
        days: Iterable[int] = range(5),
        holidays: Iterable[date] = (),
    ) -> WorkingHours:
        return cls(ZoneInfo(tz), start_hour, end_hour, frozenset(days), frozenset(holidays))

    # ---------------------------------------------------------------- windows
    def local(self, instant: datetime) -> datetime:
        return instant.astimezone(self.tz)

    def window(self, day: date) -> Window | None:
        """The open window of local date ``day``, or None (weekend, holiday, or swallowed by a DST jump)."""
        if day in self._windows:
            return self._windows[day]
        result: Window | None = None
        if day.weekday() in self.days and day not in self.holidays:
            midnight = datetime.combine(day, time())
            opens = self._resolve(midnight + timedelta(hours=self.start_hour), latest=True)
            closes = self._resolve(midnight + timedelta(hours=self.end_hour), latest=False)
            if opens < closes:
                result = Window(day, opens, closes)
        self._windows[day] = result
        return result

    def is_open(self, instant: datetime) -> bool:
        window = self.window(self.local(instant).date())
        return window is not None and instant in window

    def next_window(self, instant: datetime) -> Window:
        """The window containing ``instant``, or else the first one opening after it."""
        first_day = self.local(instant).date() - timedelta(days=1)
        horizon = 7 * (len(self.holidays) + 3)
        for offset in range(horizon):
            window = self.window(first_day + timedelta(days=offset))
            if window is not None and instant < window.closes:
                return window
        raise NoWorkingHours(f"no open time within {horizon} days of {instant.isoformat()}")

    def next_open(self, instant: datetime) -> datetime:
        """``instant`` itself if open, else the next opening."""
        return max(instant, self.next_window(instant).opens)

    def windows_from(self, instant: datetime) -> Iterable[Window]:
        """Windows in order, starting with ``next_window(instant)`` (endless)."""
        window = self.next_window(instant)
        while True:
            yield window
            window = self.next_window(window.closes)

    # ---------------------------------------------------------------- local clock -> instants
    def _wall(self, instant: datetime) -> datetime:
        return instant.astimezone(self.tz).replace(tzinfo=None)

    def _resolve(self, wall: datetime, *, latest: bool) -> datetime:
        """The instant the local clock reads ``wall`` (naive local time).

        Read twice (clocks going back): the first reading, unless ``latest`` and the clock drops
        below ``wall`` in between -- then the second one, after which it stays at or above it.
        Never read (clocks jumping over it): the instant of the jump, the first one past ``wall``.
        """
        readings = sorted(wall.replace(tzinfo=self.tz, fold=fold).astimezone(UTC) for fold in (0, 1))
        exact = [u for u in readings if self._wall(u) == wall]
        if len(exact) == 2:
            first, second = exact
            return second if latest and self._wall(self._jump(first, second)) < wall else first
        if exact:
            return exact[0]
        # In a gap: the two readings straddle the jump, which is the first instant past ``wall``.
        return self._jump(readings[0], readings[1])

    def _jump(self, before: datetime, after: datetime) -> datetime:
        """The first instant in ``(before, after]`` with another UTC offset than ``before`` (to the
        second: offsets change on whole seconds)."""
        offset = before.astimezone(self.tz).utcoffset()
        low, high = int(before.timestamp()), int(after.timestamp())
        while high - low > 1:
            middle = (low + high) // 2
            if datetime.fromtimestamp(middle, UTC).astimezone(self.tz).utcoffset() == offset:
                low = middle
            else:
                high = middle
        return datetime.fromtimestamp(high, UTC)


def spread_offset(key: str, spread_minutes: int) -> timedelta:
    """A deterministic offset in ``[0, spread_minutes]`` minutes, different per key (stable across processes)."""
    if spread_minutes <= 0:
        return timedelta(0)
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return timedelta(minutes=int.from_bytes(digest, "big") % (spread_minutes + 1))


def schedule_after(earliest: datetime, hours: WorkingHours, *, spread_minutes: int = 0, key: str = "") -> datetime:
    """When something not allowed before ``earliest`` happens: ``earliest`` itself inside working
    hours, else the next opening plus a deterministic spread (``key``) that stays inside that window,
    so that what piled up overnight does not all fire at the opening minute."""
    window = hours.next_window(earliest)
    if earliest in window:
        return earliest
    spread = spread_offset(key, spread_minutes)
    room = (window.closes - window.opens) / 2
    return window.opens + min(spread, room)
