"""Scheduled calls as pure functions: may a call be booked at a time, which slots to propose instead,
and how to say so to the prospect (English or Russian; other languages fall back to English);
the proposed slots as buttons to tap, and the slot a tap stands for.

A call is bookable when it starts at least ``min_lead`` from now, inside a working window, and
ends (``duration`` later) no later than that window closes. Proposed slots lie on a grid of
``duration`` from each day's opening; one per working day, the one closest to the time of day
the prospect asked for (or the earliest, when they gave none).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from agent_service.domain.working_hours import Window, WorkingHours
from parley_shared.contracts import Choice, Choices

MAX_AHEAD = timedelta(days=366)  # a request further out than this is answered from today


@dataclass(frozen=True)
class CallRules:
    hours: WorkingHours
    duration: timedelta = timedelta(minutes=30)
    min_lead: timedelta = timedelta(hours=1)
    slots: int = 3


def refusal(requested: datetime, now: datetime, rules: CallRules) -> str | None:
    """Why a call cannot be booked at ``requested`` (None: it can)."""
    if requested < now + rules.min_lead:
        return "in_the_past" if requested <= now else "too_soon"
    if requested >= now + rules.min_lead + MAX_AHEAD:
        return "too_far_ahead"
    window = rules.hours.window(rules.hours.local(requested).date())
    if window is None or requested not in window:
        return "outside_working_hours"
    if requested + rules.duration > window.closes:
        return "ends_after_closing"
    return None


def _slots_in(window: Window, earliest: datetime, duration: timedelta) -> list[datetime]:
    slots = []
    start = window.opens
    while start + duration <= window.closes:
        if start >= earliest:
            slots.append(start)
        start += duration
    return slots


def propose(now: datetime, rules: CallRules, requested: datetime | None = None) -> list[datetime]:
    """``rules.slots`` bookable slots (UTC), one per working day, from the requested day (if it is
    still ahead) or from today, each as close as possible to the requested time of day."""
    earliest = now + rules.min_lead
    ahead = requested is not None and earliest < requested < earliest + MAX_AHEAD
    anchor = requested if ahead and requested is not None else earliest
    preferred = None
    if requested is not None:
        wall = rules.hours.local(requested)
        preferred = timedelta(hours=wall.hour, minutes=wall.minute)
    first_day = rules.hours.local(anchor).date()
    proposals: list[datetime] = []
    for window in rules.hours.windows_from(earliest):
        if len(proposals) >= rules.slots:
            break
        if window.day < first_day:
            continue
        candidates = _slots_in(window, earliest, rules.duration)
        if not candidates:
            continue
        if preferred is None:
            proposals.append(candidates[0])
        else:
            proposals.append(min(candidates, key=lambda s: abs(_time_of_day(s, rules.hours) - preferred)))
    return proposals


def _time_of_day(instant: datetime, hours: WorkingHours) -> timedelta:
    wall = hours.local(instant)
    return timedelta(hours=wall.hour, minutes=wall.minute)


# ---------------------------------------------------------------- what the prospect reads
_DAYS = {
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
    "ru": ("пн", "вт", "ср", "чт", "пт", "сб", "вс"),
}
_MONTHS = {
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
    "ru": ("янв", "фев", "мар", "апр", "мая", "июн", "июл", "авг", "сен", "окт", "ноя", "дек"),
}
_TEXTS = {
    "en": {
        "booked": "I've noted a call for {when} ({tz} time); a manager will confirm it.",
        "propose": "We can call during working hours, {hours} ({tz} time). Would one of these suit you: {slots}?",
        "or": " or ",
    },
    "ru": {
        "booked": "Записал звонок на {when} (время {tz}); менеджер подтвердит его.",
        "propose": "Мы звоним в рабочее время, {hours} (время {tz}). Удобно ли вам одно из этих времён: {slots}?",
        "or": " или ",
    },
}


def language_of(language: str | None) -> str:
    """``ru``/``kk`` (Kazakhstan: Russian is the business lingua franca) -> ``ru``; anything else -> ``en``."""
    code = (language or "en").lower().replace("_", "-").split("-")[0]
    return "ru" if code in {"ru", "kk"} else "en"


def format_local(instant: datetime, hours: WorkingHours, language: str | None) -> str:
    lang = language_of(language)
    wall = hours.local(instant)
    day, month = _DAYS[lang][wall.weekday()], _MONTHS[lang][wall.month - 1]
    return f"{day} {wall.day} {month}, {wall:%H:%M}"


def _hours_text(hours: WorkingHours, lang: str) -> str:
    names = _DAYS[lang]
    days = sorted(hours.days)
    contiguous = days == list(range(days[0], days[-1] + 1))
    span = f"{names[days[0]]}–{names[days[-1]]}" if contiguous and len(days) > 1 else ", ".join(names[d] for d in days)
    return f"{span} {hours.start_hour:02d}:00–{hours.end_hour:02d}:00"


def booked_text(when: datetime, hours: WorkingHours, language: str | None) -> str:
    lang = language_of(language)
    return _TEXTS[lang]["booked"].format(when=format_local(when, hours, lang), tz=hours.tz.key)


def proposal_text(slots: list[datetime], hours: WorkingHours, language: str | None) -> str:
    lang = language_of(language)
    texts = _TEXTS[lang]
    shown = [format_local(s, hours, lang) for s in slots]
    listed = ", ".join(shown[:-1]) + texts["or"] + shown[-1] if len(shown) > 1 else "".join(shown)
    return texts["propose"].format(hours=_hours_text(hours, lang), tz=hours.tz.key, slots=listed)


SLOT_PREFIX = "call:"


def slot_choices(slots: list[datetime], hours: WorkingHours, language: str | None) -> Choices | None:
    """Proposed slots as reply buttons (up to 3): tapping one books it (:func:`tapped_slot`)."""
    if not slots:
        return None
    options = [
        Choice(id=SLOT_PREFIX + slot.astimezone(UTC).isoformat(), title=format_local(slot, hours, language)[:20])
        for slot in slots[:3]
    ]
    return Choices(style="buttons", options=options)


def tapped_slot(option_id: str | None) -> datetime | None:
    """The slot a tapped option (or a typed number) stands for, if it is one."""
    if not option_id or not option_id.startswith(SLOT_PREFIX):
        return None
    try:
        when = datetime.fromisoformat(option_id[len(SLOT_PREFIX) :])
    except ValueError:
        return None
    return when if when.tzinfo is not None else None
