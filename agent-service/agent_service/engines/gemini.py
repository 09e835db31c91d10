"""The Gemini engine: google-genai's async client, structured output validated in Python.

Each decision is one ``generate_content`` call with the sales prompt as system instruction,
the context (profile, passages with ids, history, new messages) as content, and the decision's
JSON schema. ``response.text`` is validated with pydantic (:func:`parse_decision`) -- never
``response.parsed``, which is silently None on a mismatch.

While the sender is not classified (``context.classify``), the same call also classifies them:
the system instruction adds the moderator's prompt and ``first_contact_prompt.txt``, and the
schema a ``classification`` object. A missing or invalid classification is not an error (the
sales agent then applies the moderator's rules); the decision alone decides whether the answer
was usable. So a new contact's first answer costs one model round trip, not two.

The request for each of the two schemas is converted by the SDK once
(:class:`~agent_service.engines.gemini_request.JsonRequest`); a call only adds the system
instruction and the content, and goes through the client's own transport.

Failures: 408/429/5xx, timeouts, transport errors and malformed output are retried
(``LLM_ATTEMPTS``, backoff doubling from ``LLM_RETRY_BACKOFF_S``); a blocked answer or a 4xx is
not. When nothing valid comes back the engine returns the fixed fallback reply with
``fallback=True``: no stage, outcome or action change is written from an answer we could not
read. Token usage is summed over the attempts.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from google.genai import errors, types
from pydantic import BaseModel, Field, ValidationError
from tenacity import RetryCallState

from agent_service.domain.decision import AgentDecision, DecisionError, DecisionWire, parse_decision
from agent_service.domain.injection import quoted_name
from agent_service.domain.language import NAMES as LANGUAGE_NAMES
from agent_service.domain.moderation import Classification
from agent_service.domain.profile import BusinessProfile
from agent_service.domain.vocabulary import CATEGORIES, ClientCategory, Verdict
from agent_service.engines.base import EngineResult, TurnContext
from agent_service.engines.gemini_request import JsonRequest
from agent_service.prompts import FIRST_CONTACT_PROMPT, MODERATOR_PROMPT, SALES_PROMPT, PromptBook
from parley_shared.retry import Backoff

log = structlog.get_logger(__name__)

_BLOCKED_FINISH = {"SAFETY", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "RECITATION", "IMAGE_SAFETY"}


class ModeratorWire(BaseModel):
    status: Verdict
    category: ClientCategory
    reason: str = Field(max_length=500)
    confidence: float = Field(ge=0, le=1)


class FirstContactWire(DecisionWire):
    """The decision and the sender's classification, in one answer."""

    classification: ModeratorWire | None = None


def parse_classification(raw: str) -> Classification | None:
    """The classification inside a first-contact answer, or None when it is missing or invalid."""
    try:
        wire = FirstContactWire.model_validate_json(raw).classification
    except ValidationError:
        return None
    if wire is None:
        return None
    category = wire.category if wire.category in CATEGORIES else "other"
    if wire.status == "client":
        category = "prospect"
    elif category == "prospect":
        category = "other"
    return Classification(wire.status, category, wire.reason.strip() or "model verdict", wire.confidence)


class _AttemptFailed(Exception):
    """One model call that did not give a usable answer (``outcome.error`` says why)."""

    def __init__(self, *, retry: bool) -> None:
        super().__init__("model attempt failed")
        self.retry = retry


@dataclass
class _Outcome:
    text: str | None = None
    error: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    attempts: int = 0


class GeminiEngine:
    name = "gemini"

    def __init__(
        self,
        client: Any,
        *,
        model: str,
        prompts: PromptBook,
        attempts: int = 3,
        backoff_s: float = 0.5,
        timeout_s: float = 20.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.client = client
        self.model = model
        self.prompts = prompts
        self.backoff = Backoff(first_s=backoff_s, max_s=max(backoff_s, 30.0), attempts=attempts)
        self.timeout_s = timeout_s
        self._sleep = sleep
        self._requests: dict[type[BaseModel], JsonRequest] = {
            schema: JsonRequest(
                client,
                model=model,
                config=types.GenerateContentConfig(
                    temperature=0.3, response_mime_type="application/json", response_schema=_response_schema(schema)
                ),
            )
            for schema in (DecisionWire, FirstContactWire)
        }

    async def close(self) -> None:
        aclose = getattr(self.client.aio, "aclose", None)
        if aclose is not None:
            await aclose()

    # ------------------------------------------------------------------ the sales decision
    async def decide(self, context: TurnContext) -> EngineResult:
        started = time.perf_counter()
        profile = context.profile
        values = _prompt_values(profile, context)
        system = self.prompts.text(SALES_PROMPT, values)
        schema: type[BaseModel] = DecisionWire
        if context.classify:  # one call: the reply and the sender's classification
            system = "\n\n".join(
                [system, self.prompts.text(MODERATOR_PROMPT, values), self.prompts.text(FIRST_CONTACT_PROMPT, values)]
            )
            schema = FirstContactWire
        ids = [p.chunk_id for p in context.passages]
        decision: AgentDecision | None = None
        classification: Classification | None = None

        def accept(text: str) -> None:
            nonlocal decision, classification
            decision = parse_decision(text, timezone=profile.timezone, passage_ids=ids)
            classification = parse_classification(text) if context.classify else None

        outcome = await self._generate(system, render_context(context), schema, accept)
        latency = int((time.perf_counter() - started) * 1000)
        if decision is None:
            log.warning("agent.model_fallback", model=self.model, error=outcome.error, attempts=outcome.attempts)
            fallback = AgentDecision(
                reply=self.prompts.phrase(context.language, "fallback"),
                spin_stage=context.spin_stage,  # type: ignore[arg-type]
                outcome=context.outcome,  # type: ignore[arg-type]
                language=context.language,
            )
            return EngineResult(
                fallback,
                model=self.model,
                tokens_in=outcome.tokens_in or None,
                tokens_out=outcome.tokens_out or None,
                latency_ms=latency,
                fallback=True,
                error=outcome.error,
                attempts=outcome.attempts,
            )
        return EngineResult(
            decision,
            model=self.model,
            tokens_in=outcome.tokens_in,
            tokens_out=outcome.tokens_out,
            latency_ms=latency,
            attempts=outcome.attempts,
            classification=classification,
        )

    # ------------------------------------------------------------------ one call with retries
    async def _generate(
        self, system: str, content: str, schema: type[BaseModel], accept: Callable[[str], None]
    ) -> _Outcome:
        request = self._requests[schema]
        outcome = _Outcome()

        async def attempt() -> None:
            outcome.attempts += 1
            try:
                response = await asyncio.wait_for(request.generate(system, content), timeout=self.timeout_s)
            except errors.APIError as exc:
                code = int(getattr(exc, "code", 0) or 0)
                outcome.error = f"api error {code} {getattr(exc, 'status', '') or ''}".strip()
                raise _AttemptFailed(retry=code in (408, 429) or code >= 500) from None
            except TimeoutError:
                outcome.error = "timeout"
                raise _AttemptFailed(retry=True) from None
            except Exception as exc:  # transport trouble (connection refused, reset ...)
                outcome.error = f"transport error {type(exc).__name__}"
                raise _AttemptFailed(retry=True) from None
            usage = response.usage_metadata
            if usage is not None:
                outcome.tokens_in += usage.prompt_token_count or 0
                outcome.tokens_out += usage.candidates_token_count or 0
            blocked = _blocked_reason(response)
            if blocked:
                outcome.error = f"blocked: {blocked}"  # asking again gets the same verdict
                return
            try:
                accept(response.text or "")
            except DecisionError as exc:
                outcome.error = str(exc)[:300]
                raise _AttemptFailed(retry=True) from None
            outcome.error = None
            outcome.text = response.text

        async def record(_state: RetryCallState) -> None:
            log.info("agent.model_retry", attempt=outcome.attempts, error=outcome.error)

        retrying = self.backoff.retrying(
            name="agent.model",
            retry_if=lambda exc: isinstance(exc, _AttemptFailed) and exc.retry,
            sleep=self._sleep,
            before_sleep=record,
            log_level="debug",
        )
        try:
            async for step in retrying:
                with step:
                    await attempt()
        except _AttemptFailed:
            pass  # outcome.error says why; the caller answers with the fallback
        return outcome


@functools.cache
def _response_schema(model: type[BaseModel]) -> types.Schema:
    """The model's response schema as the SDK's ``Schema``, converted once (the benchmark's plain
    SDK call reuses it; given the pydantic class, the SDK would convert it again on every call)."""
    json_schema = types.JSONSchema.model_validate(model.model_json_schema())
    return types.Schema.from_json_schema(json_schema=json_schema, api_option="GEMINI_API")


def _blocked_reason(response: Any) -> str | None:
    feedback = getattr(response, "prompt_feedback", None)
    if feedback is not None and getattr(feedback, "block_reason", None):
        return str(getattr(feedback.block_reason, "value", feedback.block_reason))
    candidates = getattr(response, "candidates", None) or []
    if not candidates:
        return "no candidates"
    finish = getattr(candidates[0], "finish_reason", None)
    name = str(getattr(finish, "value", finish) or "")
    return name if name in _BLOCKED_FINISH else None


def _prompt_values(profile: BusinessProfile, context: TurnContext) -> dict[str, Any]:
    from zoneinfo import ZoneInfo

    local = context.now.astimezone(ZoneInfo(profile.timezone))
    about = profile.about_in("en")
    return {
        "business_name": profile.name,
        "business_description": about.description,
        "offering": about.offering or about.description,
        "audience": about.audience or "anyone who needs what it sells",
        "spin_questions": _question_bank(profile, context.language),
        "working_hours": profile.hours_text(context.language),
        "timezone": profile.timezone,
        "now_local": local.strftime("%A %Y-%m-%d %H:%M"),
        "language_name": LANGUAGE_NAMES.get(context.language, "English"),
    }


def _question_bank(profile: BusinessProfile, language: str) -> str:
    stages = ("situation", "problem", "implication", "need_payoff")
    lines = []
    for stage in stages:
        questions = profile.spin_questions(language, stage)
        if questions:
            lines.append(f"- {stage}: " + " / ".join(questions))
    return "\n".join(lines) or "- (none: ask your own)"


def render_context(context: TurnContext) -> str:
    """The turn as the model reads it: state, passages with their ids, history, new messages."""
    lines = [
        f"Prospect: {quoted_name(context.contact_name)}; language: {context.language}; "
        f"SPIN stage so far: {context.spin_stage}; outcome so far: {context.outcome}.",
        "",
        "Knowledge passages (the only source of facts):",
    ]
    if not context.passages:
        lines.append("(none found)")
    for passage in context.passages:
        lines += [f"[{passage.chunk_id}] ({passage.doc}, page {passage.page})", passage.text, ""]
    if context.quote:
        lines += ["Computed quote for this message (exact figures computed from the catalogue; quote them, never "
                  "compute your own):", *context.quote, ""]  # fmt: skip
    lines.append("Conversation so far:")
    if not context.history:
        lines.append("(this is the first message)")
    for item in context.history:
        who = "Prospect" if item.direction == "in" else "Agent"
        lines.append(f"{who}: {item.text}")
    lines += ["", "New messages from the prospect:"]
    if context.voice_untranscribed:
        lines.append("- (a voice note that could not be transcribed)")
    elif context.media_without_text:
        lines.append("- (a media message without text)")
    lines += [f"- {m}" for m in context.messages if m]
    return "\n".join(lines)
