"""Gateway settings. Documented in docs/configuration.md (a test keeps the table complete)."""

from __future__ import annotations

import enum

from pydantic import Field, SecretStr, field_validator, model_validator

from gateway.domain.media_hosts import DEFAULT_MEDIA_HOSTS, MediaHosts
from parley_shared.phone import PhoneError, typed_address
from parley_shared.settings import CommonSettings, ConfigurationError, env

MIN_MESSAGE_LOG_DAYS = 8  # Meta retries a webhook for 7 days; its message ids must be remembered longer


class ProviderName(enum.StrEnum):
    SANDBOX = "sandbox"
    WAPPI = "wappi"
    META = "meta"


def _secret(value: SecretStr | None) -> bool:
    return value is not None and bool(value.get_secret_value())


class GatewaySettings(CommonSettings):
    database_url: str = Field("sqlite+aiosqlite:///./data/gateway.db", validation_alias=env("GATEWAY_DATABASE_URL"))
    http_port: int = Field(8080, ge=1, le=65535, validation_alias=env("GATEWAY_HTTP_PORT"))

    # --- provider choice
    whatsapp_provider: ProviderName | None = Field(None, validation_alias=env("WHATSAPP_PROVIDER"))

    # --- Wappi (polling)
    poll_interval_s: float = Field(5.0, gt=0, validation_alias=env("POLL_INTERVAL_S"))
    wappi_base_url: str = Field("https://wappi.pro", validation_alias=env("WAPPI_BASE_URL"))
    wappi_token: SecretStr | None = Field(None, validation_alias=env("WAPPI_TOKEN"))
    wappi_profile_id: str = Field("", validation_alias=env("WAPPI_PROFILE_ID"))
    wappi_page_size: int = Field(100, ge=1, le=500, validation_alias=env("WAPPI_PAGE_SIZE"))
    wappi_max_pages: int = Field(50, ge=1, validation_alias=env("WAPPI_MAX_PAGES"))
    wappi_initial_lookback_s: float = Field(3600.0, ge=0, validation_alias=env("WAPPI_INITIAL_LOOKBACK_S"))
    wappi_cursor_overlap_s: float = Field(600.0, ge=0, validation_alias=env("WAPPI_CURSOR_OVERLAP_S"))

    # --- Meta WhatsApp Cloud API (webhook)
    meta_graph_base_url: str = Field("https://graph.facebook.com", validation_alias=env("META_GRAPH_BASE_URL"))
    meta_api_version: str = Field("v21.0", pattern=r"^v\d+\.\d+$", validation_alias=env("META_API_VERSION"))
    meta_access_token: SecretStr | None = Field(None, validation_alias=env("META_ACCESS_TOKEN"))
    meta_phone_number_id: str = Field("", validation_alias=env("META_PHONE_NUMBER_ID"))
    meta_app_secret: SecretStr | None = Field(None, validation_alias=env("META_APP_SECRET"))
    meta_verify_token: SecretStr | None = Field(None, validation_alias=env("META_VERIFY_TOKEN"))

    # --- ignore list
    ignored_numbers: str = Field("", validation_alias=env("IGNORED_NUMBERS"))

    # --- sender
    send_rate_per_min: float = Field(20.0, gt=0, le=600000, validation_alias=env("SEND_RATE_PER_MIN"))
    send_concurrency: int = Field(16, ge=1, le=256, validation_alias=env("SEND_CONCURRENCY"))
    send_max_attempts: int = Field(5, ge=1, le=50, validation_alias=env("SEND_MAX_ATTEMPTS"))
    send_backoff_base_s: float = Field(2.0, ge=0, validation_alias=env("SEND_BACKOFF_BASE_S"))
    send_backoff_max_s: float = Field(300.0, ge=0, validation_alias=env("SEND_BACKOFF_MAX_S"))
    send_timeout_s: float = Field(30.0, gt=0, validation_alias=env("SEND_TIMEOUT_S"))
    campaign_prefetch: int = Field(4, ge=1, le=1000, validation_alias=env("CAMPAIGN_PREFETCH"))

    # --- sandbox fault injection (tests and demos only; refused in production)
    sandbox_send_429_rate: float = Field(0.0, ge=0, le=0.9, validation_alias=env("SANDBOX_SEND_429_RATE"))
    sandbox_retry_after_s: float = Field(0.0, ge=0, le=3600, validation_alias=env("SANDBOX_RETRY_AFTER_S"))

    # --- voice transcription
    gemini_transcription_model: str = Field("gemini-2.5-flash", validation_alias=env("GEMINI_TRANSCRIPTION_MODEL"))
    transcription_timeout_s: float = Field(60.0, gt=0, validation_alias=env("TRANSCRIPTION_TIMEOUT_S"))
    transcription_attempts: int = Field(3, ge=1, le=20, validation_alias=env("TRANSCRIPTION_ATTEMPTS"))
    media_download_attempts: int = Field(4, ge=1, le=20, validation_alias=env("MEDIA_DOWNLOAD_ATTEMPTS"))
    media_backoff_s: float = Field(1.0, ge=0, validation_alias=env("MEDIA_BACKOFF_S"))
    max_media_bytes: int = Field(20 * 1024 * 1024, ge=1024, validation_alias=env("MAX_MEDIA_BYTES"))
    # --- the files prospects send, kept for managers (gateway/media.py)
    media_dir: str = Field("./data/media", min_length=1, validation_alias=env("MEDIA_DIR"))
    # --- files sent to Meta: an upload is reused by its content for this long (Meta keeps it 30 days)
    meta_media_reuse_days: float = Field(25.0, ge=0, le=29, validation_alias=env("META_MEDIA_REUSE_DAYS"))
    # --- retention of the gateway's own history (see gateway/privacy.py)
    message_log_retention_days: float = Field(30.0, ge=0, validation_alias=env("MESSAGE_LOG_RETENTION_DAYS"))

    # --- where media named by a provider's answer may be fetched from (see domain/media_hosts.py)
    media_hosts: str = Field(DEFAULT_MEDIA_HOSTS, validation_alias=env("MEDIA_HOSTS"))
    media_allow_local: bool = Field(False, validation_alias=env("MEDIA_ALLOW_LOCAL"))

    @field_validator("whatsapp_provider", mode="before")
    @classmethod
    def _blank_is_auto(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    # ------------------------------------------------------------------ derived
    @property
    def provider(self) -> ProviderName:
        """The configured provider; without an explicit choice, the one whose credentials are set."""
        if self.whatsapp_provider is not None:
            return self.whatsapp_provider
        if _secret(self.wappi_token) and self.wappi_profile_id:
            return ProviderName.WAPPI
        if _secret(self.meta_access_token) and self.meta_phone_number_id:
            return ProviderName.META
        return ProviderName.SANDBOX

    def missing_credentials(self) -> list[str]:
        """Settings the chosen provider needs that are not set (empty for the sandbox)."""
        provider = self.provider
        if provider is ProviderName.WAPPI:
            wanted = {"WAPPI_TOKEN": _secret(self.wappi_token), "WAPPI_PROFILE_ID": bool(self.wappi_profile_id)}
        elif provider is ProviderName.META:
            wanted = {
                "META_ACCESS_TOKEN": _secret(self.meta_access_token),
                "META_PHONE_NUMBER_ID": bool(self.meta_phone_number_id),
                "META_APP_SECRET": _secret(self.meta_app_secret),
                "META_VERIFY_TOKEN": _secret(self.meta_verify_token),
            }
        else:
            wanted = {}
        return [name for name, present in wanted.items() if not present]

    def media_policy(self) -> MediaHosts:
        return MediaHosts.parse(self.media_hosts, allow_local=self.media_allow_local)

    def ignored_phones(self) -> set[str]:
        """``IGNORED_NUMBERS`` as E.164 numbers (any format, comma or whitespace separated)."""
        out = set()
        for raw in self.ignored_numbers.replace(";", ",").replace("\n", ",").split(","):
            if raw.strip():
                out.add(typed_address(raw, self.phone_default_region))
        return out

    @model_validator(mode="after")
    def _check_gateway(self) -> GatewaySettings:
        try:
            self.ignored_phones()
        except PhoneError as exc:
            raise ConfigurationError(f"IGNORED_NUMBERS holds a value that is not a phone number: {exc}") from None
        try:
            self.media_policy()
        except ValueError as exc:
            raise ConfigurationError(f"MEDIA_HOSTS: {exc}") from None
        if 0 < self.message_log_retention_days < MIN_MESSAGE_LOG_DAYS:
            raise ConfigurationError(
                f"MESSAGE_LOG_RETENTION_DAYS must be 0 (keep) or at least {MIN_MESSAGE_LOG_DAYS}: the message log is "
                "what recognises a Meta webhook retried for up to 7 days"
            )
        if self.production and self.media_allow_local:
            raise ConfigurationError("MEDIA_ALLOW_LOCAL is a test setting; APP_ENV=production refuses it")
        if self.production and self.sandbox_send_429_rate > 0:
            raise ConfigurationError("SANDBOX_SEND_429_RATE is a test setting; APP_ENV=production refuses it")
        missing = self.missing_credentials()
        if missing and self.production:
            raise ConfigurationError(
                f"WHATSAPP_PROVIDER={self.provider.value} needs {', '.join(missing)} (APP_ENV=production refuses "
                "to start without them)"
            )
        return self
