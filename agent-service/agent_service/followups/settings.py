"""Business hours, follow-up and scheduled-call settings (mixed into ``AgentSettings``).

Documented in ``docs/configuration.md`` ("Business hours and follow-ups") and ``docs/follow-ups.md``.
List settings are comma-separated in the environment (``FOLLOW_UP_INTERVALS=24,72,168``).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode

from agent_service.domain.call_slots import CallRules
from agent_service.domain.followup_policy import DEFAULT_STRATEGIES, FollowUpPolicy, Strategy
from agent_service.domain.working_hours import WEEKDAYS, WorkingHours
from parley_shared.settings import env


def _items(value: Any) -> Any:
    """``"a, b,c"`` -> ``["a", "b", "c"]``; lists pass through."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _weekday(name: str) -> int:
    key = name.strip().lower()[:3]
    if key not in WEEKDAYS:
        raise ValueError(f"unknown weekday {name!r}: use mon, tue, wed, thu, fri, sat, sun")
    return WEEKDAYS.index(key)


class BusinessHoursSettings(BaseSettings):
    working_tz: str = Field("Asia/Almaty", validation_alias=env("WORKING_TZ"))
    working_hours_start: int = Field(10, ge=0, le=23, validation_alias=env("WORKING_HOURS_START"))
    working_hours_end: int = Field(18, ge=1, le=24, validation_alias=env("WORKING_HOURS_END"))
    working_days: Annotated[tuple[int, ...], NoDecode] = Field((0, 1, 2, 3, 4), validation_alias=env("WORKING_DAYS"))
    holidays: Annotated[tuple[date, ...], NoDecode] = Field((), validation_alias=env("HOLIDAYS"))

    enable_follow_ups: bool = Field(True, validation_alias=env("ENABLE_FOLLOW_UPS"))
    follow_up_intervals: Annotated[tuple[float, ...], NoDecode] = Field(
        (24, 72, 168, 336, 720), validation_alias=env("FOLLOW_UP_INTERVALS")
    )
    follow_up_strategies: Annotated[tuple[Strategy, ...], NoDecode] = Field(
        DEFAULT_STRATEGIES, validation_alias=env("FOLLOW_UP_STRATEGIES")
    )
    follow_up_check_interval_s: float = Field(60.0, gt=0, validation_alias=env("FOLLOW_UP_CHECK_INTERVAL_S"))
    follow_up_spread_minutes: int = Field(30, ge=0, le=240, validation_alias=env("FOLLOW_UP_SPREAD_MINUTES"))
    follow_up_batch_size: int = Field(50, ge=1, le=1000, validation_alias=env("FOLLOW_UP_BATCH_SIZE"))
    follow_up_template_name: str = Field("", max_length=512, validation_alias=env("FOLLOW_UP_TEMPLATE_NAME"))
    follow_up_template_language: str = Field(
        "en", min_length=2, max_length=15, validation_alias=env("FOLLOW_UP_TEMPLATE_LANGUAGE")
    )

    call_duration_minutes: int = Field(30, ge=5, le=240, validation_alias=env("CALL_DURATION_MINUTES"))
    call_min_lead_minutes: int = Field(60, ge=0, le=7 * 24 * 60, validation_alias=env("CALL_MIN_LEAD_MINUTES"))
    call_slots_proposed: int = Field(3, ge=1, le=10, validation_alias=env("CALL_SLOTS_PROPOSED"))

    @field_validator("working_tz")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r} (use an IANA name such as Asia/Almaty)") from None
        return value

    @field_validator("working_days", mode="before")
    @classmethod
    def _parse_days(cls, value: Any) -> Any:
        """``mon,tue`` or ``mon-fri`` (names) or weekday numbers (0 = Monday)."""
        days: list[Any] = []
        for item in _items(value):
            if isinstance(item, str) and "-" in item:
                first, last = (_weekday(part) for part in item.split("-", 1))
                days.extend(range(first, last + 1) if first <= last else [*range(first, 7), *range(last + 1)])
            elif isinstance(item, str) and not item.isdigit():
                days.append(_weekday(item))
            else:
                days.append(int(item))
        if not days or any(not 0 <= d <= 6 for d in days):
            raise ValueError("WORKING_DAYS needs at least one weekday (mon..sun)")
        return tuple(sorted(set(days)))

    @field_validator("holidays", "follow_up_intervals", "follow_up_strategies", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return _items(value)

    @model_validator(mode="after")
    def _consistent(self) -> BusinessHoursSettings:
        if self.working_hours_start >= self.working_hours_end:
            raise ValueError("WORKING_HOURS_START must be before WORKING_HOURS_END")
        self.follow_up_policy()  # intervals and strategies agree
        return self

    # ---------------------------------------------------------------- domain objects
    def working_hours(self) -> WorkingHours:
        return WorkingHours.build(
            self.working_tz, self.working_hours_start, self.working_hours_end, self.working_days, self.holidays
        )

    def follow_up_policy(self) -> FollowUpPolicy:
        return FollowUpPolicy(
            hours=self.working_hours(),
            intervals=tuple(timedelta(hours=h) for h in self.follow_up_intervals),
            strategies=self.follow_up_strategies,
            spread_minutes=self.follow_up_spread_minutes,
            enabled=self.enable_follow_ups,
        )

    def call_rules(self) -> CallRules:
        return CallRules(
            hours=self.working_hours(),
            duration=timedelta(minutes=self.call_duration_minutes),
            min_lead=timedelta(minutes=self.call_min_lead_minutes),
            slots=self.call_slots_proposed,
        )
