"""Agent service settings. Documented in docs/configuration.md (a test keeps the table complete)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from agent_service.console.settings import ConsoleSettings
from agent_service.domain.moderation import ModerationPolicy
from agent_service.followups.settings import BusinessHoursSettings
from parley_shared.settings import CommonSettings, ConfigurationError, env


class AgentSettings(CommonSettings, BusinessHoursSettings, ConsoleSettings):
    database_url: str = Field("sqlite+aiosqlite:///./data/agent.db", validation_alias=env("AGENT_DATABASE_URL"))
    http_port: int = Field(8081, ge=1, le=65535, validation_alias=env("AGENT_HTTP_PORT"))
    demo_mode: bool = Field(False, validation_alias=env("DEMO_MODE"))

    # --- conversation turns
    buffer_window_s: float = Field(3.0, ge=0, le=60, validation_alias=env("BUFFER_WINDOW_S"))
    max_concurrent_turns: int = Field(500, ge=1, le=10000, validation_alias=env("MAX_CONCURRENT_TURNS"))
    turn_lease_s: float = Field(30.0, ge=1, validation_alias=env("TURN_LEASE_S"))
    turn_sweep_interval_s: float = Field(2.0, gt=0, validation_alias=env("TURN_SWEEP_INTERVAL_S"))
    order_gap_wait_s: float = Field(30.0, ge=0, le=3600, validation_alias=env("ORDER_GAP_WAIT_S"))
    history_messages: int = Field(12, ge=0, le=200, validation_alias=env("HISTORY_MESSAGES"))

    # --- retention of conversations (see agent_service/privacy.py); 0 keeps them
    message_retention_days: float = Field(0.0, ge=0, validation_alias=env("MESSAGE_RETENTION_DAYS"))

    # --- reporting (analytics, CSV export): see agent_service/reporting.py
    reporting_max_concurrent: int = Field(2, ge=1, le=50, validation_alias=env("REPORTING_MAX_CONCURRENT"))
    reporting_statement_timeout_s: float = Field(
        30.0, gt=0, le=3600, validation_alias=env("REPORTING_STATEMENT_TIMEOUT_S")
    )
    analytics_cache_s: float = Field(30.0, ge=0, le=3600, validation_alias=env("ANALYTICS_CACHE_S"))

    # --- language model
    llm_engine: str = Field("auto", pattern="^(auto|gemini|offline)$", validation_alias=env("LLM_ENGINE"))
    gemini_model: str = Field("gemini-2.5-flash", min_length=1, validation_alias=env("GEMINI_MODEL"))
    gemini_embedding_model: str = Field(
        "gemini-embedding-001", min_length=1, validation_alias=env("GEMINI_EMBEDDING_MODEL")
    )
    llm_timeout_s: float = Field(20.0, gt=0, validation_alias=env("LLM_TIMEOUT_S"))
    llm_attempts: int = Field(3, ge=1, le=10, validation_alias=env("LLM_ATTEMPTS"))
    llm_retry_backoff_s: float = Field(0.5, ge=0, validation_alias=env("LLM_RETRY_BACKOFF_S"))

    # --- moderator
    moderator_min_confidence: float = Field(0.7, ge=0, le=1, validation_alias=env("MODERATOR_MIN_CONFIDENCE"))
    moderator_max_turns: int = Field(3, ge=1, le=20, validation_alias=env("MODERATOR_MAX_TURNS"))

    # --- the business, its knowledge base and the prompts
    business_file: str = Field("business.toml", min_length=1, validation_alias=env("BUSINESS_FILE"))
    knowledge_dir: str = Field("", validation_alias=env("KNOWLEDGE_DIR"))
    # The PDF sent when a prospect asks for the price list (relative to the knowledge folder; empty: found by name)
    price_list_file: str = Field("", max_length=300, validation_alias=env("PRICE_LIST_FILE"))
    knowledge_top_k: int = Field(4, ge=1, le=20, validation_alias=env("KNOWLEDGE_TOP_K"))
    knowledge_embeddings: bool = Field(True, validation_alias=env("KNOWLEDGE_EMBEDDINGS"))
    prompts_dir: str = Field("prompts", validation_alias=env("PROMPTS_DIR"))

    def moderation_policy(self) -> ModerationPolicy:
        return ModerationPolicy(
            min_confidence=self.moderator_min_confidence,
            max_turns=self.moderator_max_turns,
            drafts_when_held=self.held_drafts,
        )

    @property
    def knowledge_path(self) -> Path:
        """``KNOWLEDGE_DIR``, or the ``knowledge_base/`` folder beside the business file."""
        if self.knowledge_dir:
            return Path(self.knowledge_dir)
        return Path(self.business_file).parent / "knowledge_base"

    @model_validator(mode="after")
    def _no_demo_clock_in_production(self) -> AgentSettings:
        if self.demo_mode and self.production:
            raise ConfigurationError("DEMO_MODE (the movable demo clock) cannot be used with APP_ENV=production")
        if self.production:
            self.require_session_secret()
        return self
