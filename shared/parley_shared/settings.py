"""Settings common to both services (pydantic-settings, read from the environment and ``.env``).

Every field of every settings class is documented in ``docs/configuration.md`` and
``.env.example``; a test fails when one is missing there. Secrets come from the environment only.
"""

from __future__ import annotations

import enum

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from parley_shared.batching import BATCH_MAX_SIZE
from parley_shared.phone import DEFAULT_REGION, region_code
from parley_shared.privacy import phone_hash
from parley_shared.tokens import DEFAULT_NAME, parse_named_tokens, weakness

DEVELOPMENT_ERASURE_KEY = "parley-development-erasure-key"  # never used in production (refused there)


class AppEnv(enum.StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"
    TEST = "test"


class ConfigurationError(RuntimeError):
    """The service refuses to start with this configuration."""


def env(name: str) -> AliasChoices:
    """The environment variable a field is read from (the field name works in code too)."""
    return AliasChoices(name, name.lower())


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", validate_by_name=True, validate_by_alias=True, frozen=True
    )

    app_env: AppEnv = Field(AppEnv.DEVELOPMENT, validation_alias=env("APP_ENV"))
    log_level: str = Field("INFO", validation_alias=env("LOG_LEVEL"))
    log_format: str = Field("auto", validation_alias=env("LOG_FORMAT"), pattern="^(auto|json|console)$")
    log_message_content: bool = Field(False, validation_alias=env("LOG_MESSAGE_CONTENT"))
    api_token: SecretStr | None = Field(None, validation_alias=env("API_TOKEN"))
    api_tokens: SecretStr | None = Field(None, validation_alias=env("API_TOKENS"))
    amqp_url: SecretStr = Field(SecretStr("amqp://guest:guest@127.0.0.1:5672/"), validation_alias=env("AMQP_URL"))
    amqp_prefetch: int = Field(64, ge=1, le=5000, validation_alias=env("AMQP_PREFETCH"))
    batch_max_size: int = Field(BATCH_MAX_SIZE, ge=1, le=5000, validation_alias=env("BATCH_MAX_SIZE"))
    startup_timeout_s: float = Field(60.0, gt=0, validation_alias=env("STARTUP_TIMEOUT_S"))
    shutdown_timeout_s: float = Field(20.0, gt=0, validation_alias=env("SHUTDOWN_TIMEOUT_S"))
    requeue_delay_s: float = Field(1.0, ge=0, validation_alias=env("REQUEUE_DELAY_S"))
    outbox_interval_s: float = Field(1.0, gt=0, validation_alias=env("OUTBOX_INTERVAL_S"))
    db_auto_migrate: bool = Field(True, validation_alias=env("DB_AUTO_MIGRATE"))
    http_host: str = Field("127.0.0.1", validation_alias=env("HTTP_HOST"))
    max_body_bytes: int = Field(3 * 1024 * 1024, ge=1024, validation_alias=env("MAX_BODY_BYTES"))
    gemini_api_key: SecretStr | None = Field(None, validation_alias=env("GEMINI_API_KEY"))
    gemini_base_url: str = Field("", validation_alias=env("GEMINI_BASE_URL"))
    gemini_api_version: str = Field("v1beta", validation_alias=env("GEMINI_API_VERSION"))
    # Where a person types a number without its country code (API, ignore list, sandbox): how to read it.
    phone_default_region: str = Field(DEFAULT_REGION, validation_alias=env("PHONE_DEFAULT_REGION"))

    # --- data protection: erasure and retention (parley_shared/privacy.py, retention.py)
    erasure_key: SecretStr | None = Field(None, validation_alias=env("ERASURE_KEY"))
    outbox_retention_h: float = Field(24.0, ge=0, validation_alias=env("OUTBOX_RETENTION_H"))
    inbox_retention_days: float = Field(30.0, ge=0, validation_alias=env("INBOX_RETENTION_DAYS"))
    retention_interval_s: float = Field(3600.0, gt=0, validation_alias=env("RETENTION_INTERVAL_S"))

    @field_validator("phone_default_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        try:
            return region_code(value)
        except ValueError as exc:
            raise ConfigurationError(f"PHONE_DEFAULT_REGION: {exc}") from None

    @property
    def production(self) -> bool:
        return self.app_env is AppEnv.PRODUCTION

    def erasure_hash(self, phone: str) -> str:
        """The keyed hash kept of an erased phone (``ERASURE_KEY``; a fixed key outside production)."""
        key = self.erasure_key.get_secret_value() if self.erasure_key else DEVELOPMENT_ERASURE_KEY
        return phone_hash(key, phone)

    def api_clients(self) -> dict[str, str]:
        """The management API's tokens by name: ``API_TOKENS`` plus ``API_TOKEN`` as ``default``."""
        named = parse_named_tokens(self.api_tokens.get_secret_value()) if self.api_tokens else {}
        single = self.api_token.get_secret_value() if self.api_token else ""
        if single:
            if DEFAULT_NAME in named:
                raise ValueError(f"API_TOKENS names a token {DEFAULT_NAME!r}, the name API_TOKEN goes by")
            named[DEFAULT_NAME] = single
        return named

    @model_validator(mode="after")
    def _production_needs_token(self) -> CommonSettings:
        try:
            clients = self.api_clients()
        except ValueError as exc:
            raise ConfigurationError(f"API_TOKENS: {exc}") from None
        if len(set(clients.values())) < len(clients):
            raise ConfigurationError("API_TOKEN / API_TOKENS: two names share one token (each must be revocable alone)")
        if not self.production:
            return self
        if not clients:
            raise ConfigurationError("APP_ENV=production requires API_TOKEN or API_TOKENS for the management API")
        for name, token in clients.items():
            problem = weakness(token)
            if problem is not None:
                variable = "API_TOKEN" if name == DEFAULT_NAME else f"API_TOKENS ({name})"
                raise ConfigurationError(f"APP_ENV=production refuses {variable}: the token {problem}")
        problem = weakness(self.erasure_key.get_secret_value() if self.erasure_key else "")
        if problem is not None:
            raise ConfigurationError(
                f"APP_ENV=production requires ERASURE_KEY (the key of the hash kept of erased phones); it {problem}"
            )
        return self
