"""When a prospect asks to be called, in English, Russian or Kazakh (pure).

"tomorrow at 11", "завтра в 11", "в 11 утра", "в понедельник в 3", "ертең сағат 11-де",
"after lunch" / "после обеда" / "түстен кейін" ... Returns an aware time in the business
timezone, or None when the message names neither an hour nor a part of the day (the call
booker then proposes slots). Whether the time is bookable is the booker's business.

Reading the hour: a clock time ("11:30") wins over an hour with a marker ("11 am", "в 3 дня",
"11-де", "сағат 11"), which wins over a bare hour after a preposition ("at 11", "в 11"). A
number that counts something ("на 5 человек", "20 chairs", "3 дня") or starts a date ("в 11
декабря") is no hour. A bare hour from 1 to 7 means the afternoon ("at 3" is 15:00). A part of
the day without an hour stands for a typical hour: morning 10:00, noon and lunch 13:00,
afternoon 14:00, evening 17:00.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

_I = re.IGNORECASE
_DAY_AFTER = re.compile(r"day after tomorrow|послезавтра|бүрсігүні", _I)
_TOMORROW = re.compile(r"tomorrow|завтра|ертең", _I)
_TODAY = re.compile(r"\btoday\b|tonight|this (?:afternoon|evening|morning)|сегодня|бүгін", _I)
_WEEKDAYS = [
    re.compile(p, _I)
    for p in (
        r"\bmon(?:day)?\b|понедельник|дүйсенбі",
        r"\btue(?:s|sday)?\b|вторник|сейсенбі",
        r"\bwed(?:nesday)?\b|\bсред[ауы]\b|сәрсенбі",
        r"\bthu(?:rs|rsday)?\b|четверг|бейсенбі",
        r"\bfri(?:day)?\b|пятниц|\bжұма\b",
        r"\bsat(?:urday)?\b|суббот|\bсенбі",
        r"\bsun(?:day)?\b|воскресень|жексенбі",
    )
]
_UNIT_AFTER = (
    r"(?!\s*(?:%|₸|тг\b|тенге|теңге|kzt|people|persons|person|pcs|pieces|chairs|desks|units|seats|workplaces|"
    r"minutes|mins?\b|days|weeks|months|years|человек|чел\b|мест|шт|штук|кресел|стульев|столов|минут|дней|дня\b|"
    r"недел|месяц|лет\b|года?\b|адам|дана|орын|минут|күн|ай\b|жыл|"
    r"январ|феврал|март|апрел|ма[яй]\b|июн|июл|август|сентябр|октябр|ноябр|декабр|"
    r"january|february|march|april|may\b|june|july|august|september|october|november|december))"
)
_CLOCK = re.compile(r"(?<![\d:.,])([01]?\d|2[0-3])[:.]([0-5]\d)(?![\d])" + _UNIT_AFTER, _I)
_NOT_A_NUMBER_GOING_ON = r"(?![\d:]|[.,]\d|\s\d)"
# "дня" is also "days" ("через 2 дня"): as the afternoon marker only after a preposition ("в 2 дня").
_MARKED = re.compile(
    r"(?<![\d:.,])(?:сағат\s+)?([01]?\d|2[0-3])\s*"
    r"(am|pm|a\.m\.|p\.m\.|o'?clock|утра|вечера|ночи|час(?:а|ов)?\b|ч\b|-?\s?(?:де|да|те|та)\b)"
    r"|\b(?:в|к|около|после)\s+([01]?\d|2[0-3])\s*(дня)\b",
    _I,
)
_SAGAT = re.compile(r"сағат\s+([01]?\d|2[0-3])" + _NOT_A_NUMBER_GOING_ON, _I)
_AFTER_PREPOSITION = re.compile(
    r"\b(?:at|around|about|by|after|в|к|около|после|на)\s+([01]?\d|2[0-3])" + _NOT_A_NUMBER_GOING_ON + _UNIT_AFTER,
    _I,
)
_PM = ("pm", "p.m.", "дня", "вечера")
_AM = ("am", "a.m.", "утра", "ночи")
# Parts of the day without an hour, and the hour each stands for.
_PARTS: list[tuple[re.Pattern[str], int]] = [
    (re.compile(r"after lunch|after noon|afternoon|после обеда|днём|днем\b|түстен кейін|түскі астан кейін", _I), 14),
    (re.compile(r"\bat noon\b|\bnoon\b|lunch ?time|в обед|в полдень|түсте|түс кезінде", _I), 13),
    (re.compile(r"evening|вечером|под вечер|кешке|кеште", _I), 17),
    (re.compile(r"\bmorning\b|утром|с утра|таңертең|таңғы", _I), 10),
]


def requested_call_time(text: str | None, now: datetime, timezone: str) -> datetime | None:
    if not text:
        return None
    tz = ZoneInfo(timezone)
    local_now = now.astimezone(tz)
    hour, minute = _find_time(text)
    if hour is None:
        return None
    day = _find_day(text, local_now.date())
    candidate = datetime.combine(day or local_now.date(), datetime.min.time(), tz).replace(hour=hour, minute=minute)
    if day is None and candidate <= local_now:
        candidate += timedelta(days=1)
    return candidate


def _find_time(text: str) -> tuple[int | None, int]:
    clock = _CLOCK.search(text)
    if clock:
        return int(clock.group(1)), int(clock.group(2))
    marked = _MARKED.search(text)
    if marked:
        hour = int(marked.group(1) or marked.group(3))
        marker = (marked.group(2) or marked.group(4)).lower().strip(" -")
        return _afternoon(hour, marker), 0
    sagat = _SAGAT.search(text)
    if sagat:
        return _afternoon(int(sagat.group(1)), ""), 0
    bare = _AFTER_PREPOSITION.search(text)
    if bare:
        return _afternoon(int(bare.group(1)), ""), 0
    for pattern, hour in _PARTS:
        if pattern.search(text):
            return hour, 0
    return None, 0


def _afternoon(hour: int, marker: str) -> int:
    if marker in _PM and hour < 12:
        return hour + 12
    if marker in _AM:
        return 0 if hour == 12 else hour
    if 1 <= hour <= 7:
        return hour + 12  # "at 3" in a business conversation means the afternoon
    return hour


def _find_day(text: str, today: date) -> date | None:
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
