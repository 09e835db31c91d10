"""One turn's thinking, with no database and no transaction: moderate, retrieve, decide, guard.

:class:`SalesAgent` takes what the turn runner read (the contact, the new messages, the
history) and returns a :class:`TurnPlan`: the reply to send (or none, for a non-client), the
contact's new state and everything recorded with the reply. The runner writes it -- or, if a
manager took the conversation over meanwhile, stores it as suppressed.

The grounding guard runs on every engine's reply: a price, number, percentage, date or promise
word that is neither in the retrieved passages nor in the business profile replaces the reply
with the fixed "let me check that with a manager" (in the prospect's language), turns the
action into a handoff and flags the contact for a human.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from agent_service import metrics
from agent_service.domain.decision import AgentDecision
from agent_service.domain.disclosure import Runs, discloses, instruction_runs
from agent_service.domain.grounding import extract_claims, source_keys, ungrounded_claims
from agent_service.domain.language import detect_language
from agent_service.domain.moderation import (
    Classification,
    answers_as_client,
    classification_update,
    classify_rules,
    needs_classification,
)
from agent_service.domain.profile import BusinessProfile
from agent_service.domain.text import content_terms
from agent_service.engines.base import Engine, HistoryItem, TurnContext
from agent_service.knowledge.base import KnowledgeBase, Passage
from agent_service.prompts import MODERATOR_PROMPT, SALES_PROMPT, PromptBook

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class InboundText:
    text: str | None
    kind: str = "text"
    transcribed: bool = False


@dataclass(frozen=True)
class TurnInput:
    contact: Mapping[str, Any]
    messages: list[InboundText]
    history: list[HistoryItem]
    first_texts: list[str]  # the contact's earliest inbound texts, for the moderator
    now: datetime


@dataclass(frozen=True)
class TurnPlan:
    reply: str | None  # None: no AI reply (a non-client)
    decision: AgentDecision | None
    language: str
    contact_values: dict[str, Any] = field(default_factory=dict)
    knowledge_refs: list[dict[str, Any]] = field(default_factory=list)
    model: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    latency_ms: int | None = None
    ungrounded: list[str] = field(default_factory=list)
    engine_error: str | None = None
    classification: Classification | None = None

    @property
    def handoff(self) -> bool:
        return self.decision is not None and self.decision.action == "handoff"


class SalesAgent:
    def __init__(
        self,
        *,
        engine: Engine,
        knowledge: KnowledgeBase,
        prompts: PromptBook,
        profile: BusinessProfile,
        top_k: int = 4,
        min_confidence: float = 0.7,
        max_classification_turns: int = 3,
    ) -> None:
        self.engine = engine
        self.knowledge = knowledge
        self.prompts = prompts
        self.profile = profile
        self.top_k = top_k
        self.min_confidence = min_confidence
        self.max_classification_turns = max_classification_turns
        self._instructions: tuple[tuple[str, ...], Runs] = ((), frozenset())

    async def plan(self, turn: TurnInput) -> TurnPlan:
        contact = turn.contact
        texts = [m.text for m in turn.messages if m.text]
        text = "\n".join(texts)
        language = detect_language(text, previous=contact.get("language"))
        values: dict[str, Any] = {"language": language}

        verdict: Classification | None = None
        if needs_classification(
            contact, min_confidence=self.min_confidence, max_turns=self.max_classification_turns
        ) and (turn.first_texts or texts):
            judged = list(dict.fromkeys([*turn.first_texts, *texts]))
            verdict = await self._classify(judged)
            values.update(classification_update(contact, verdict))
            if not answers_as_client(verdict, min_confidence=self.min_confidence):
                log.info("agent.non_client", category=verdict.category, confidence=verdict.confidence)
                return TurnPlan(None, None, language, values, classification=verdict)

        passages = await self._retrieve(text, turn.history)
        context = TurnContext(
            language=language,
            spin_stage=contact.get("spin_stage") or "situation",
            outcome=contact.get("outcome") or "open",
            messages=texts,
            history=turn.history,
            passages=passages,
            profile=self.profile,
            now=turn.now,
            contact_name=contact.get("name"),
            media_without_text=not texts,
            voice_untranscribed=any(m.kind in ("voice", "audio") and not m.text for m in turn.messages),
        )
        result = await self.engine.decide(context)
        engine = getattr(self.engine, "name", "engine")
        if result.latency_ms is not None:
            metrics.MODEL_LATENCY.labels(engine).observe(result.latency_ms / 1000)
        if result.fallback:
            metrics.MODEL_FALLBACKS.labels(engine).inc()
        decision = result.decision
        reply = decision.reply
        reply_language = decision.language or language
        sources = [p.text for p in passages] + [self.profile.source_text()]
        ungrounded = [] if result.fallback else ungrounded_claims(reply, sources, prospect_texts=texts)
        if not result.fallback and discloses(reply, self._instruction_runs()):
            ungrounded = [*ungrounded, "the agent's instructions"]
        if ungrounded:
            log.warning("agent.ungrounded_reply", claims=len(ungrounded), model=result.model)
            metrics.UNGROUNDED.labels(engine).inc()
            reply = self.prompts.phrase(reply_language, "check_with_manager")
            decision = decision.model_copy(
                update={
                    "reply": reply,
                    "action": "handoff",
                    "proposed_call_time": None,
                    "passages_used": [],
                    "handoff_reason": "reply stated facts the documents do not: " + ", ".join(ungrounded)[:200],
                }
            )
        values.update(
            spin_stage=decision.spin_stage,
            outcome=decision.outcome,
            language=reply_language,
        )
        if decision.action == "handoff" or result.fallback:
            reason = "unverified_claims" if ungrounded else "model_failed" if result.fallback else "agent"
            metrics.HANDOFFS.labels(reason).inc()
            values["needs_human"] = True
            values["needs_human_reason"] = (
                decision.handoff_reason
                if decision.action == "handoff"
                else f"the model could not answer ({result.error or 'unknown error'})"
            )[:500]
        refs = _references(decision, passages, ungrounded)
        return TurnPlan(
            reply=reply,
            decision=decision,
            language=reply_language,
            contact_values=values,
            knowledge_refs=refs,
            model=result.model,
            tokens_in=result.tokens_in,
            tokens_out=result.tokens_out,
            latency_ms=result.latency_ms,
            ungrounded=ungrounded,
            engine_error=result.error,
            classification=verdict,
        )

    def fallback_plan(self, turn: TurnInput, error: str) -> TurnPlan:
        """The safe reply when planning itself failed: a manager will answer; nothing else changes."""
        texts = [m.text for m in turn.messages if m.text]
        language = detect_language("\n".join(texts), previous=turn.contact.get("language"))
        decision = AgentDecision(
            reply=self.prompts.phrase(language, "fallback"),
            spin_stage=turn.contact.get("spin_stage") or "situation",
            outcome=turn.contact.get("outcome") or "open",
            language=language,
        )
        values = {"language": language, "needs_human": True, "needs_human_reason": f"the agent failed: {error}"[:500]}
        metrics.HANDOFFS.labels("agent_failed").inc()
        return TurnPlan(decision.reply, decision, language, values, engine_error=error[:500])

    def _instruction_runs(self) -> Runs:
        """The prompt files' word runs (recomputed only when a file was edited)."""
        texts = tuple(self.prompts.text(name, {}) for name in (SALES_PROMPT, MODERATOR_PROMPT))
        if texts != self._instructions[0]:
            self._instructions = (texts, instruction_runs(texts))
        return self._instructions[1]

    async def _classify(self, texts: list[str]) -> Classification:
        try:
            verdict = await self.engine.classify(texts, self.profile)
        except Exception as exc:  # the moderator must never stop a turn
            log.warning("agent.moderator_failed", error=type(exc).__name__)
            verdict = None
        return verdict or classify_rules(texts)

    async def _retrieve(self, text: str, history: Sequence[HistoryItem]) -> list[Passage]:
        if not text.strip():
            return []
        query = text
        if len(content_terms(text)) < 2:  # "how much is it?": what they wrote before says what "it" is
            earlier = [h.text for h in history if h.direction == "in"]
            if earlier:
                query = f"{earlier[-1]}\n{text}"
        return await self.knowledge.search(query, self.top_k)


def _references(decision: AgentDecision, passages: list[Passage], ungrounded: list[str]) -> list[dict[str, Any]]:
    """The passages a reply used: those the engine named, else those that ground its claims."""
    if ungrounded:
        return []
    by_id = {p.chunk_id: p for p in passages}
    named = [by_id[i] for i in decision.passages_used if i in by_id]
    if named:
        return [p.ref() for p in named]
    claims = extract_claims(decision.reply)
    if not claims:
        return []
    used = []
    for passage in passages:
        keys = source_keys([passage.text])
        if any(claim.keys & keys for claim in claims):
            used.append(passage.ref())
    return used
