"""When a prospect asks to be called: "tomorrow at 11", "завтра в 15:30", "on Monday at 3 pm" (pure).

Returns an aware time in the business timezone, or None when the message names no hour (the
call booker then proposes slots). Whether the time is bookable is the booker's business.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

_I = re.IGNORECASE
_DAY_AFTER = re.compile(r"day after tomorrow|послезавтра|бүрсігүні", _I)
_TOMORROW = re.compile(r"tomorrow|завтра|ертең", _I)
_TODAY = re.compile(r"today|this (afternoon|evening|morning)|сегодня|бүгін", _I)
_WEEKDAYS = [
    re.compile(p, _I)
    for p in (
        r"monday|понедельник|дүйсенбі",
        r"tuesday|вторник|сейсенбі",
        r"wednesday|сред[ау]|сәрсенбі",
        r"thursday|четверг|бейсенбі",
        r"friday|пятниц|жұма",
        r"saturday|суббот|сенбі",
        r"sunday|воскресень|жексенбі",
    )
]
_CLOCK = re.compile(r"(?<![\d:])([01]?\d|2[0-3])[:.]([0-5]\d)(?![\d])")
_HOUR = re.compile(
    r"\b(?:at|around|about|в|к|около|на|сағат)\s+([01]?\d|2[0-3])(?![\d:.])\s*"
    r"(am|pm|a\.m\.|p\.m\.|утра|дня|вечера|ч\b|час\w*)?",
    _I,
)
_HOUR_AMPM = re.compile(r"\b(1[0-2]|0?[1-9])\s*(am|pm|a\.m\.|p\.m\.)", _I)
_PM = ("pm", "p.m.", "дня", "вечера")


def requested_call_time(text: str | None, now: datetime, timezone: str) -> datetime | None:
    if not text:
        return None
    tz = ZoneInfo(timezone)
    local_now = now.astimezone(tz)
    hour, minute, marker = _find_time(text)
    if hour is None:
        return None
    if marker in _PM and hour < 12:
        hour += 12
    elif marker is None and 1 <= hour <= 7:
        hour += 12  # "at 3" in a business conversation means the afternoon
    day = _find_day(text, local_now)
    candidate = datetime.combine(day or local_now.date(), datetime.min.time(), tz).replace(hour=hour, minute=minute)
    if day is None and candidate <= local_now:
        candidate += timedelta(days=1)
    return candidate


def _find_time(text: str) -> tuple[int | None, int, str | None]:
    clock = _CLOCK.search(text)
    if clock:
        return int(clock.group(1)), int(clock.group(2)), None
    ampm = _HOUR_AMPM.search(text)
    if ampm:
        return int(ampm.group(1)), 0, ampm.group(2).lower()
    hour = _HOUR.search(text)
    if hour:
        return int(hour.group(1)), 0, (hour.group(2) or "").lower() or None
    return None, 0, None


def _find_day(text: str, local_now: datetime) -> datetime.date | None:  # type: ignore[valid-type]
    today = local_now.date()
    if _DAY_AFTER.search(text):
        return today + timedelta(days=2)
    if _TOMORROW.search(text):
        return today + timedelta(days=1)
    if _TODAY.search(text):
        return today
    for weekday, pattern in enumerate(_WEEKDAYS):
        if pattern.search(text):
            ahead = (weekday - today.weekday()) % 7 or 7
            return today + timedelta(days=ahead)
    return None
