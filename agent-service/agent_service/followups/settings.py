"""Business hours and follow-up settings (mixed into ``AgentSettings``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings

from parley_shared.settings import env


class BusinessHoursSettings(BaseSettings):
    working_tz: str = Field("Asia/Almaty", validation_alias=env("WORKING_TZ"))
    working_hours_start: int = Field(10, ge=0, le=23, validation_alias=env("WORKING_HOURS_START"))
    working_hours_end: int = Field(18, ge=1, le=24, validation_alias=env("WORKING_HOURS_END"))
