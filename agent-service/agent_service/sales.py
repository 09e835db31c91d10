"""One turn's thinking, with no database and no transaction: retrieve, decide (and classify), guard.

:class:`SalesAgent` takes what the turn runner read (the contact, the new messages, the
history) and returns a :class:`TurnPlan`: the reply to send (or none, for a non-client), the
contact's new state and everything recorded with the reply. The runner writes it -- or, if a
manager took the conversation over meanwhile, stores it as suppressed.

A contact that is not classified yet (or not surely) is classified in the same engine call
that decides the reply: one model round trip to a new contact's first answer. When the engine
gives no verdict (the offline engine, a failed call) the moderator's rules decide. A confident
non-client gets no reply.

Totals and discounts for an order the prospect describes are computed here from the
catalogue's prices and rules (:mod:`agent_service.domain.quote`) and handed to the engine as
exact figures to quote; a model never computes them. The outcome ``agreed`` stands only for a
call that can really be booked at the time asked (or a confirmed order): a call asked for at a
time outside working hours leaves the outcome as it was while slots are proposed.

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
from agent_service.domain.attachments import best_picture, wants_picture, wants_price_list
from agent_service.domain.call_slots import CallRules, refusal, tapped_slot
from agent_service.domain.contact import ContactView
from agent_service.domain.decision import AgentDecision
from agent_service.domain.disclosure import Runs, discloses, instruction_runs
from agent_service.domain.grounding import extract_claims, source_keys, ungrounded_claims
from agent_service.domain.intents import FILLER_WORDS, INTENT_VOCABULARY, Intent, detect_intents, question_focus
from agent_service.domain.kinds import order_lines
from agent_service.domain.language import detect_language
from agent_service.domain.moderation import Classification, ModerationPolicy, classification_update, classify_rules
from agent_service.domain.profile import BusinessProfile
from agent_service.domain.quote import Quote, asks_for_total, make_quote, order_in
from agent_service.domain.text import content_terms
from agent_service.engines.base import Engine, HistoryItem, TurnContext
from agent_service.knowledge.base import KnowledgeBase, Passage
from agent_service.knowledge.media import FileToSend, MediaLibrary
from agent_service.prompts import FIRST_CONTACT_PROMPT, MODERATOR_PROMPT, SALES_PROMPT, PromptBook

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class InboundText:
    text: str | None
    kind: str = "text"
    transcribed: bool = False
    details: Mapping[str, Any] | None = None  # the structured content of its kind (an order, a tap ...)


@dataclass(frozen=True)
class TurnInput:
    contact: ContactView
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
    draft: str | None = None  # what the engine wanted to say, when the guard replaced it
    computed: tuple[str, ...] = ()  # figures computed for this turn from the catalogue (a quote)
    attachment: FileToSend | None = None  # a file sent after the reply (the price list, a product picture)

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
        call_rules: CallRules | None = None,
        media: MediaLibrary | None = None,
        top_k: int = 4,
        moderation: ModerationPolicy | None = None,
    ) -> None:
        self.engine = engine
        self.knowledge = knowledge
        self.prompts = prompts
        self.profile = profile
        self.call_rules = call_rules  # to tell a bookable call from one that only gets slots proposed
        self.media = media
        self.top_k = top_k
        self.moderation = moderation or ModerationPolicy()
        self._instructions: tuple[tuple[str, ...], Runs] = ((), frozenset())

    async def plan(self, turn: TurnInput) -> TurnPlan:
        contact = turn.contact
        texts = [m.text for m in turn.messages if m.text]
        text = "\n".join(texts)
        language = detect_language(text, previous=contact.language)
        values: dict[str, Any] = {"language": language}
        answered = self._kind_plan(turn, language)
        if answered is not None:
            return answered

        judged: list[str] = []
        if self.moderation.needs_classification(contact) and (turn.first_texts or texts):
            judged = list(dict.fromkeys([*turn.first_texts, *texts]))

        passages = await self._retrieve(text, turn.history)
        quote = self._quote(text, turn.history)
        quote_lines = self._quote_lines(quote, language) if quote else ()
        context = TurnContext(
            language=language,
            spin_stage=contact.spin_stage,
            outcome=contact.outcome,
            messages=texts,
            history=turn.history,
            passages=passages,
            profile=self.profile,
            now=turn.now,
            contact_name=contact.name,
            media_without_text=not texts,
            voice_untranscribed=any(m.kind in ("voice", "audio") and not m.text for m in turn.messages),
            classify=bool(judged),
            quote=quote_lines,
        )
        result = await self.engine.decide(context)
        engine = getattr(self.engine, "name", "engine")
        if result.latency_ms is not None:
            metrics.MODEL_LATENCY.labels(engine).observe(result.latency_ms / 1000)
        if result.fallback:
            metrics.MODEL_FALLBACKS.labels(engine).inc()

        verdict: Classification | None = None
        if judged:
            verdict = result.classification or classify_rules(judged, self.profile)
            values.update(classification_update(contact, verdict))
            if not self.moderation.answers_as_client(verdict):
                log.info("agent.non_client", category=verdict.category, confidence=verdict.confidence)
                return TurnPlan(
                    None,
                    None,
                    language,
                    values,
                    model=result.model,
                    tokens_in=result.tokens_in,
                    tokens_out=result.tokens_out,
                    latency_ms=result.latency_ms,
                    classification=verdict,
                )

        decision = self._settle_outcome(result.decision, context)
        reply = decision.reply
        reply_language = decision.language or language
        sources = [p.text for p in passages] + [self.profile.source_text(), *quote_lines]
        ungrounded = [] if result.fallback else ungrounded_claims(reply, sources, prospect_texts=texts)
        if not result.fallback and discloses(reply, self._instruction_runs()):
            ungrounded = [*ungrounded, "the agent's instructions"]
        draft = None
        if ungrounded:
            log.warning("agent.ungrounded_reply", claims=len(ungrounded), model=result.model)
            metrics.UNGROUNDED.labels(engine).inc()
            draft = reply
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
            # The model may hand over without a reason: the contact then has none recorded.
            handoff_reason = (
                decision.handoff_reason
                if decision.action == "handoff"
                else f"the model could not answer ({result.error or 'unknown error'})"
            )
            values["needs_human_reason"] = handoff_reason[:500] if handoff_reason is not None else None
        refs = _references(decision, passages, ungrounded, quote, self.knowledge)
        attachment = await self._attachment(text, turn.history)
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
            draft=draft,
            computed=quote_lines,
            attachment=attachment,
        )

    def _settle_outcome(self, decision: AgentDecision, context: TurnContext) -> AgentDecision:
        """``agreed`` with a call only when the call can be booked at the time asked: with no time,
        or one outside working hours, slots are proposed and the outcome stays what it was."""
        if decision.action != "schedule_call" or decision.outcome != "agreed" or self.call_rules is None:
            return decision
        when = decision.proposed_call_time
        if when is not None and refusal(when, context.now, self.call_rules) is None:
            return decision
        previous = context.outcome if context.outcome != "declined" else "open"
        return decision.model_copy(update={"outcome": previous})

    def _quote(self, text: str, history: Sequence[HistoryItem]) -> Quote | None:
        """A total for the order the message describes, when it asks for a price or a discount."""
        prices = self.knowledge.price_list
        if not prices or not text.strip():
            return None
        intents = detect_intents(text, self.profile.topic_words)
        if not (intents & {Intent.PRICE, Intent.DISCOUNT} or asks_for_total(text)):
            return None
        earlier = "\n".join(h.text for h in history if h.direction == "in")
        lines, amount = order_in(question_focus(text), prices, earlier=earlier)
        return make_quote(lines, prices, amount)

    def _quote_lines(self, quote: Quote, language: str) -> tuple[str, ...]:
        """The quote in the prospect's language: the fixed words of ``agent_phrases.toml``, the figures computed."""

        def say(key: str, **values: Any) -> str:
            return self.prompts.phrase(language, key, **values)

        lines = [
            say("quote_line", quantity=line.quantity, item=line.item.code, price=quote.money(line.item.price),
                amount=quote.money(line.amount))
            for line in quote.lines
        ]  # fmt: skip
        if not quote.lines:
            lines.append(say("quote_amount", amount=quote.money(quote.subtotal)))
        elif len(quote.lines) > 1 or quote.tier:
            lines.append(say("quote_subtotal", amount=quote.money(quote.subtotal)))
        if quote.tier is not None:
            lines.append(
                say("quote_discount", percent=_percent(quote.tier.percent), amount=quote.money(quote.discount))
            )
            lines.append(say("quote_total", amount=quote.money(quote.total)))
        else:
            higher = [t for t in self.knowledge.price_list.tiers if t.min_amount and t.min_amount > quote.subtotal]
            if higher:
                tier = min(higher, key=lambda t: t.min_amount or 0)
                lines.append(
                    say("quote_next_tier", percent=_percent(tier.percent), amount=quote.money(tier.min_amount or 0))
                )
        return tuple(lines)

    async def _attachment(self, text: str, history: Sequence[HistoryItem]) -> FileToSend | None:
        """The file the prospect asked for: the price list, or a picture of the product they name."""
        if self.media is None or not text:
            return None
        if wants_price_list(text):
            return await self.media.price_list()
        if wants_picture(text):
            pictures = await self.media.pictures()
            earlier = next((h.text for h in reversed(history) if h.direction == "in"), "")
            index = best_picture([p for p, _ in pictures], text, earlier)
            return pictures[index][1] if index is not None else None
        return None

    def _kind_plan(self, turn: TurnInput, language: str) -> TurnPlan | None:
        """Kinds answered without the model: a tapped call slot (booked), a catalogue order (its
        lines echoed, a manager confirms it) and messages WhatsApp could not give us (one polite
        request to write instead)."""
        stage, outcome = turn.contact.spin_stage, turn.contact.outcome
        slot = next(
            (s for m in turn.messages if (s := tapped_slot(((m.details or {}).get("interactive") or {}).get("id")))),
            None,
        )
        if slot is not None and outcome != "declined":
            reply = self.prompts.phrase(language, "call_confirm")
            decision = AgentDecision(
                reply=reply,
                spin_stage="need_payoff",
                outcome="agreed",
                action="schedule_call",
                proposed_call_time=slot,
                language=language,
            )
            values: dict[str, Any] = {"language": language, "spin_stage": "need_payoff", "outcome": "agreed"}
            return TurnPlan(reply, decision, language, values, model="slot_tap")
        order = next((m for m in turn.messages if m.kind == "order"), None)
        if order is not None:
            lines = order_lines(dict(order.details or {}))
            thanks, confirm = (self.prompts.phrase(language, key) for key in ("order_received", "order_confirm"))
            reply = "\n".join([thanks, *lines, confirm])
            reason = "the prospect sent a catalogue order: confirm availability, total and delivery"
            decision = AgentDecision(
                reply=reply[:1500],
                spin_stage="need_payoff",
                outcome="agreed",
                action="handoff",
                language=language,
                handoff_reason=reason,
            )
            metrics.HANDOFFS.labels("order").inc()
            values = {"language": language, "needs_human": True, "needs_human_reason": reason, "outcome": "agreed"}
            return TurnPlan(reply[:1500], decision, language, values, model="order")
        if turn.messages and all(m.kind == "unsupported" for m in turn.messages):
            reply = self.prompts.phrase(language, "unsupported")
            decision = AgentDecision(reply=reply, spin_stage=stage, outcome=outcome, language=language)
            return TurnPlan(reply, decision, language, {"language": language}, model="unsupported")
        return None

    def fallback_plan(self, turn: TurnInput, error: str) -> TurnPlan:
        """The safe reply when planning itself failed: a manager will answer; nothing else changes."""
        texts = [m.text for m in turn.messages if m.text]
        language = detect_language("\n".join(texts), previous=turn.contact.language)
        decision = AgentDecision(
            reply=self.prompts.phrase(language, "fallback"),
            spin_stage=turn.contact.spin_stage,
            outcome=turn.contact.outcome,
            language=language,
        )
        values = {"language": language, "needs_human": True, "needs_human_reason": f"the agent failed: {error}"[:500]}
        metrics.HANDOFFS.labels("agent_failed").inc()
        return TurnPlan(decision.reply, decision, language, values, engine_error=error[:500])

    def _instruction_runs(self) -> Runs:
        """The prompt files' word runs (recomputed only when a file was edited)."""
        names = (SALES_PROMPT, MODERATOR_PROMPT, FIRST_CONTACT_PROMPT)
        texts = tuple(self.prompts.text(name, {}) for name in names)
        if texts != self._instructions[0]:
            self._instructions = (texts, instruction_runs(texts))
        return self._instructions[1]

    async def _retrieve(self, text: str, history: Sequence[HistoryItem]) -> list[Passage]:
        if not text.strip():
            return []
        query = question_focus(text)
        earlier = [h.text for h in history if h.direction == "in"]
        # "how much is it?" / "а сколько её делают?": what they wrote before says what "it" is
        if len(content_terms(query, ignore=INTENT_VOCABULARY | FILLER_WORDS)) < 2 and earlier:
            query = f"{earlier[-1]}\n{query}"
        intents = detect_intents(text, self.profile.topic_words)
        language = detect_language(text)
        if Intent.OVERVIEW in intents:  # "what do you sell?": the catalogue's overview
            about = self.profile.about_in(language)
            query = f"{query}\n{about.description}\n{about.offering}"
        # The topic in the documents' words ("қанша тұрады" finds the lines that say "Цена").
        topics = [_TOPIC_WORDS[i][language] for i in _TOPIC_WORDS if i in intents]
        if topics:
            query = f"{query}\n{' '.join(topics)}"
        found = await self.knowledge.search(query, self.top_k)
        if not found and earlier:  # nothing in the documents shares a word with it: read it with what came before
            found = await self.knowledge.search(f"{earlier[-1]}\n{query}", self.top_k)
        return found


# A topic's own word in the documents' languages (Kazakh questions are answered from Russian documents).
_TOPIC_WORDS: dict[Intent, dict[str, str]] = {
    Intent.PRICE: {"en": "price", "ru": "цена", "kk": "цена"},
    Intent.DELIVERY: {"en": "delivery", "ru": "доставка", "kk": "доставка"},
    Intent.PAYMENT: {"en": "payment", "ru": "оплата", "kk": "оплата"},
    Intent.WARRANTY: {"en": "warranty", "ru": "гарантия", "kk": "гарантия"},
    Intent.DISCOUNT: {"en": "discount", "ru": "скидка", "kk": "скидка"},
    Intent.LOCATION: {"en": "address", "ru": "адрес", "kk": "адрес"},
}


def _percent(value: Any) -> str:
    return f"{value.normalize():f}%"


def _references(
    decision: AgentDecision,
    passages: list[Passage],
    ungrounded: list[str],
    quote: Quote | None,
    knowledge: KnowledgeBase,
) -> list[dict[str, Any]]:
    """The passages a reply used: those the engine named, else those that ground its claims (and,
    when it quotes a computed total, the price and discount lines the total comes from)."""
    if ungrounded:
        return []
    by_id = {p.chunk_id: p for p in passages}
    named = [by_id[i] for i in decision.passages_used if i in by_id]
    if quote is not None and quote.money(quote.total) in decision.reply:
        named += [p for p in (knowledge.passage(i) for i in quote.sources) if p is not None and p not in named]
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
