"""The sales agent's typed decision, and the validation every model output goes through (pure).

A model (Gemini or the offline engine) proposes an :class:`AgentDecision`; nothing is written
before :func:`parse_decision` (for raw model output) or the model's own validators accepted
it. The vocabularies are ``domain/vocabulary.py``'s.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agent_service.domain.vocabulary import SPIN_STAGES, ProspectOutcome, SpinStage
from parley_shared.contracts import MAX_TEXT
from parley_shared.untrusted import json_loads

Action = Literal["none", "schedule_call", "handoff"]
LANGUAGES = ("en", "ru", "kk")
MAX_REPLY = 1500  # WhatsApp messages this long are already too long; the contract allows 4096


class DecisionError(ValueError):
    """Model output that is not a valid decision (the turn falls back to a safe reply)."""


def next_stage(stage: str) -> SpinStage:
    index = SPIN_STAGES.index(stage) if stage in SPIN_STAGES else 0
    return SPIN_STAGES[min(index + 1, len(SPIN_STAGES) - 1)]


class AgentDecision(BaseModel):
    """What the agent does with one turn."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reply: str = Field(min_length=1, max_length=min(MAX_REPLY, MAX_TEXT))
    spin_stage: SpinStage
    outcome: ProspectOutcome
    action: Action = "none"
    proposed_call_time: AwareDatetime | None = None
    language: str = "en"
    passages_used: list[str] = Field(default_factory=list, max_length=20)
    handoff_reason: str | None = Field(default=None, max_length=300)

    @field_validator("reply")
    @classmethod
    def _reply_has_text(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("reply is empty")
        return value

    @field_validator("language")
    @classmethod
    def _language(cls, value: str) -> str:
        code = value.strip().lower()[:2]
        if code not in LANGUAGES:
            raise ValueError(f"language must be one of {', '.join(LANGUAGES)}")
        return code

    @model_validator(mode="after")
    def _consistent(self) -> AgentDecision:
        if self.action == "schedule_call" and self.outcome == "declined":
            raise ValueError("a declined prospect cannot get a call scheduled")
        if self.action != "schedule_call" and self.proposed_call_time is not None:
            raise ValueError("proposed_call_time only goes with action schedule_call")
        return self


class DecisionWire(BaseModel):
    """The JSON shape asked of the model (times as local ISO strings, ids as strings)."""

    reply: str
    spin_stage: SpinStage
    outcome: ProspectOutcome
    action: Action = "none"
    proposed_call_time: str | None = None
    language: str = "en"
    passages_used: list[str] = Field(default_factory=list)
    handoff_reason: str | None = None


def validation_summary(error: ValidationError, limit: int = 3) -> str:
    """The first problems of a validation error, where and what ("spin_stage: Input should be ...")."""
    parts = [
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
        for e in error.errors(include_input=False, include_url=False)[:limit]
    ]
    return "; ".join(parts)


def parse_call_time(value: str | None, timezone: str) -> datetime | None:
    """An ISO time from the model; a time without offset is local to the business."""
    if value is None or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise DecisionError("proposed_call_time is not an ISO 8601 time") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(timezone))
    return parsed


def parse_decision(raw: str | None, *, timezone: str, passage_ids: Iterable[str]) -> AgentDecision:
    """Validate raw model output into a decision; unknown passage ids are dropped, not trusted."""
    if raw is None or not raw.strip():
        raise DecisionError("empty model output")
    try:
        data = json_loads(raw)
    except ValueError as exc:
        raise DecisionError(f"model output is not JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise DecisionError("model output is not a JSON object")
    try:
        wire = DecisionWire.model_validate(data)
    except ValidationError as exc:
        raise DecisionError(f"model output does not match the decision: {validation_summary(exc)}") from None
    known = set(passage_ids)
    call_time = parse_call_time(wire.proposed_call_time, timezone) if wire.action == "schedule_call" else None
    used = list(dict.fromkeys(p for p in wire.passages_used if p in known))
    try:
        return AgentDecision(
            reply=wire.reply,
            spin_stage=wire.spin_stage,
            outcome=wire.outcome,
            action=wire.action,
            proposed_call_time=call_time,
            language=wire.language,
            passages_used=used,
            handoff_reason=(wire.handoff_reason or None) if wire.action == "handoff" else None,
        )
    except ValidationError as exc:
        raise DecisionError(f"invalid decision: {validation_summary(exc)}") from None
