"""The managers' console settings (mixed into ``AgentSettings``; documented in docs/configuration.md)."""

from __future__ import annotations

import base64
import hashlib
import secrets

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings

from parley_shared.settings import ConfigurationError, env

MIN_SECRET = 32


class ConsoleSettings(BaseSettings):
    console_session_secret: SecretStr | None = Field(None, validation_alias=env("CONSOLE_SESSION_SECRET"))
    console_session_max_age_s: int = Field(
        12 * 3600, ge=60, le=30 * 24 * 3600, validation_alias=env("CONSOLE_SESSION_MAX_AGE_S")
    )
    console_admin_login: str | None = Field(
        None, min_length=1, max_length=100, validation_alias=env("CONSOLE_ADMIN_LOGIN")
    )
    console_admin_password: SecretStr | None = Field(None, validation_alias=env("CONSOLE_ADMIN_PASSWORD"))
    console_admin_name: str = Field("Admin", min_length=1, max_length=100, validation_alias=env("CONSOLE_ADMIN_NAME"))
    console_sign_in_max_failures: int = Field(5, ge=1, le=1000, validation_alias=env("CONSOLE_SIGN_IN_MAX_FAILURES"))
    console_sign_in_max_failures_per_address: int = Field(
        20, ge=1, le=100_000, validation_alias=env("CONSOLE_SIGN_IN_MAX_FAILURES_PER_ADDRESS")
    )
    console_sign_in_window_s: int = Field(900, ge=1, le=86_400, validation_alias=env("CONSOLE_SIGN_IN_WINDOW_S"))
    held_drafts: bool = Field(True, validation_alias=env("HELD_DRAFTS"))

    @model_validator(mode="after")
    def _console_secrets(self) -> ConsoleSettings:
        secret = self.console_session_secret
        if secret is not None and len(secret.get_secret_value()) < MIN_SECRET:
            raise ConfigurationError(f"CONSOLE_SESSION_SECRET must be at least {MIN_SECRET} characters")
        if (self.console_admin_login is None) != (self.console_admin_password is None):
            raise ConfigurationError("CONSOLE_ADMIN_LOGIN and CONSOLE_ADMIN_PASSWORD go together")
        password = self.console_admin_password
        if password is not None and len(password.get_secret_value()) < 8:
            raise ConfigurationError("CONSOLE_ADMIN_PASSWORD must be at least 8 characters")
        return self

    def require_session_secret(self) -> None:
        """Production refuses to start without a session secret (``AgentSettings`` calls this)."""
        if self.console_session_secret is None:
            raise ConfigurationError(
                "APP_ENV=production requires CONSOLE_SESSION_SECRET (at least 32 characters, the same on every "
                "replica): it encrypts the managers' console sessions"
            )

    def session_key(self) -> bytes:
        """The Fernet key of the session cookies: derived from the secret (any text of 32+ characters);
        without one (development) a random key, so sessions end when the process does."""
        if self.console_session_secret is None:
            return base64.urlsafe_b64encode(secrets.token_bytes(32))
        digest = hashlib.sha256(b"parley-console-session:" + self.console_session_secret.get_secret_value().encode())
        return base64.urlsafe_b64encode(digest.digest())
