"""Agent service settings. Documented in docs/configuration.md (a test keeps the table complete)."""

from __future__ import annotations

from pydantic import Field

from agent_service.followups.settings import BusinessHoursSettings
from parley_shared.settings import CommonSettings, env


class AgentSettings(CommonSettings, BusinessHoursSettings):
    database_url: str = Field("sqlite+aiosqlite:///./data/agent.db", validation_alias=env("AGENT_DATABASE_URL"))
    http_port: int = Field(8081, ge=1, le=65535, validation_alias=env("AGENT_HTTP_PORT"))
