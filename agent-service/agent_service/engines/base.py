"""What every engine gets and returns. Engines decide; they never touch the database or queues.

An engine's :meth:`Engine.decide` must not raise for model trouble: a failed, blocked or
malformed answer comes back as a safe fallback decision with ``fallback`` set and the reason
in ``error`` (no uncertain action: ``action`` stays ``none``).

When the contact is not classified yet (``TurnContext.classify``), an engine that can may
classify the sender in the same call and return it in ``EngineResult.classification`` -- one
model round trip to a new contact's first answer. An engine that does not (the offline
engine, whose moderator is rules) leaves it None and the sales agent applies the rules.
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
    classify: bool = False  # the sender is not classified yet: classify them in the same call, if you can
    quote: tuple[str, ...] = ()  # a total computed from the catalogue for this message (exact; to be quoted)

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
    classification: Classification | None = None  # the sender's class, when asked and the engine gave one


class Engine(Protocol):
    name: str

    async def decide(self, context: TurnContext) -> EngineResult: ...

    async def close(self) -> None: ...
