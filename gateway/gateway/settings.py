"""Gateway settings. Documented in docs/configuration.md (a test keeps the table complete)."""

from __future__ import annotations

from pydantic import Field

from parley_shared.settings import CommonSettings, env


class GatewaySettings(CommonSettings):
    database_url: str = Field("sqlite+aiosqlite:///./data/gateway.db", validation_alias=env("GATEWAY_DATABASE_URL"))
    http_port: int = Field(8080, ge=1, le=65535, validation_alias=env("GATEWAY_HTTP_PORT"))
