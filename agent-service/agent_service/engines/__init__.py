"""Decision engines: ``gemini`` (google-genai) and ``offline`` (deterministic rules), chosen by ``LLM_ENGINE``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent_service.engines.base import Engine
from agent_service.prompts import PromptBook
from parley_shared.gemini import gemini_configured, make_client
from parley_shared.settings import ConfigurationError

if TYPE_CHECKING:
    from agent_service.settings import AgentSettings


def engine_name(settings: AgentSettings) -> str:
    if settings.llm_engine == "auto":
        return "gemini" if gemini_configured(settings) else "offline"
    return settings.llm_engine


def build_engine(settings: AgentSettings, prompts: PromptBook) -> Engine:
    if engine_name(settings) == "gemini":
        if not gemini_configured(settings):
            raise ConfigurationError("LLM_ENGINE=gemini needs GEMINI_API_KEY")
        from agent_service.engines.gemini import GeminiEngine

        return GeminiEngine(
            make_client(settings, timeout_s=settings.llm_timeout_s),
            model=settings.gemini_model,
            prompts=prompts,
            attempts=settings.llm_attempts,
            backoff_s=settings.llm_retry_backoff_s,
            timeout_s=settings.llm_timeout_s,
        )
    from agent_service.engines.offline import OfflineEngine

    return OfflineEngine(prompts)
