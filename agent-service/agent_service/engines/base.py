"""What every engine gets and returns. Engines decide; they never touch the database or queues.

An engine's :meth:`Engine.decide` must not raise for model trouble: a failed, blocked or
malformed answer comes back as a safe fallback decision with ``fallback`` set and the reason
in ``error`` (no uncertain action: ``action`` stays ``none``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from agent_service.domain.decision import AgentDecision
from agent_service.domain.moderation import Classification
from agent_service.domain.profile import BusinessProfile
from agent_service.knowledge.base import Passage


@dataclass(frozen=True)
class HistoryItem:
    direction: str  # in | out
    kind: str
    text: str


@dataclass(frozen=True)
class TurnContext:
    """Everything one turn is decided from (built by the turn runner, outside any transaction)."""

    language: str
    spin_stage: str
    outcome: str
    messages: list[str]  # what the prospect wrote since the last turn, oldest first
    history: list[HistoryItem]  # earlier conversation, oldest first
    passages: list[Passage]
    profile: BusinessProfile
    now: datetime  # UTC
    contact_name: str | None = None
    media_without_text: bool = False  # a voice note nobody could transcribe, an image without caption ...
    voice_untranscribed: bool = False

    @property
    def text(self) -> str:
        return "\n".join(m for m in self.messages if m)

    @property
    def agent_replies(self) -> list[str]:
        return [h.text for h in self.history if h.direction == "out"]


@dataclass(frozen=True)
class EngineResult:
    decision: AgentDecision
    model: str
    tokens_in: int | None = None
    tokens_out: int | None = None
    latency_ms: int | None = None
    fallback: bool = False
    error: str | None = None
    attempts: int = 1


class Engine(Protocol):
    name: str

    async def decide(self, context: TurnContext) -> EngineResult: ...

    async def classify(self, texts: list[str], profile: BusinessProfile) -> Classification | None:
        """The moderator's verdict, or None to use the rules alone."""
        ...

    async def close(self) -> None: ...
