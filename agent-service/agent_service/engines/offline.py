"""The deterministic offline engine: no network, the default without a Gemini key.

It reads the prospect's message with rules (:mod:`agent_service.domain.intents`) and answers
by quoting lines of the retrieved passages verbatim -- so prices come out exactly as the
catalogue writes them -- then moves the SPIN conversation one step with a question from
``prompts/spin_questions.toml``. A question the passages do not answer gets the fixed "let me
check with a manager" reply and a handoff. Same input, same reply.

Answering, in order: nothing readable (voice note, image) -> ask for text; a request for a
human -> handoff; a clear no -> polite farewell, ``declined``; a call request, or yes to our
call proposal -> ``schedule_call``; then facts for each question asked, then maybe/thanks, then
the next SPIN question (or the call proposal once the need-payoff stage is answered).
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from agent_service.domain.call_request import requested_call_time
from agent_service.domain.decision import MAX_REPLY, SPIN_STAGES, AgentDecision, next_stage
from agent_service.domain.intents import FACT_INTENTS, INTENT_VOCABULARY, Intent, detect_intents
from agent_service.domain.language import detect_language
from agent_service.domain.moderation import Classification, classify_rules
from agent_service.domain.profile import BusinessProfile
from agent_service.domain.text import content_terms, tokens
from agent_service.engines.base import EngineResult, TurnContext
from agent_service.knowledge.base import Passage
from agent_service.prompts import PromptBook

MODEL = "offline-rules-v1"
MAX_FACT_LINES = 3
_MONEY = re.compile(r"\d[\d \u00a0\u202f]*\s?(?:₸|тг|тенге|kzt)", re.IGNORECASE)
_MARKERS: dict[Intent, re.Pattern[str]] = {
    Intent.PRICE: re.compile(r"₸|kzt|тенге|\bprice|\bcost|цен[аыу]|стоит|стоимост", re.IGNORECASE),
    Intent.AVAILABILITY: re.compile(r"in stock|made to order|наличии|под заказ|display|выставлен", re.IGNORECASE),
    Intent.DELIVERY: re.compile(r"deliver|доставк|доставля|transport|транспорт", re.IGNORECASE),
    Intent.PAYMENT: re.compile(r"\bpay|payment|installment|kaspi|invoice|оплат|рассрочк|счет|счёт", re.IGNORECASE),
    Intent.WARRANTY: re.compile(r"warrant|return|гаранти|возврат", re.IGNORECASE),
    Intent.DISCOUNT: re.compile(r"discount|скидк", re.IGNORECASE),
    Intent.LOCATION: re.compile(r"address|showroom|hours|адрес|шоурум|часы работы", re.IGNORECASE),
}
_NAME = re.compile(r"^[^\W\d_]+(?:[ '-][^\W\d_]+){0,2}$")


@dataclass(frozen=True)
class _Unit:
    """A quotable piece of a passage: one line, or a product line with its description line."""

    text: str
    terms: frozenset[str]
    passage: Passage
    order: tuple[int, int]
    pair: bool


class OfflineEngine:
    name = "offline"

    def __init__(self, prompts: PromptBook) -> None:
        self.prompts = prompts

    async def classify(self, texts: list[str], profile: BusinessProfile) -> Classification | None:
        return classify_rules(texts)

    async def close(self) -> None:
        return None

    async def decide(self, context: TurnContext) -> EngineResult:
        started = time.perf_counter()
        decision = self.compose(context)
        return EngineResult(decision, model=MODEL, latency_ms=int((time.perf_counter() - started) * 1000))

    # ------------------------------------------------------------------ the conversation
    def compose(self, ctx: TurnContext) -> AgentDecision:
        lang = ctx.language
        name = f", {ctx.contact_name.strip()}" if ctx.contact_name and _NAME.match(ctx.contact_name.strip()) else ""

        def say(key: str) -> str:
            return self.prompts.phrase(lang, key, business=ctx.profile.name, name=name)

        def decide(parts: Iterable[str], **fields: object) -> AgentDecision:
            values: dict[str, object] = {"spin_stage": ctx.spin_stage, "outcome": ctx.outcome, "language": lang}
            values.update(fields)
            return AgentDecision(reply=_fit(" ".join(p for p in parts if p)), **values)  # type: ignore[arg-type]

        text = ctx.text
        if not text.strip():
            return decide([say("voice_unavailable" if ctx.voice_untranscribed else "non_text")])
        intents = detect_intents(text)
        first_turn = not ctx.agent_replies
        if Intent.HUMAN in intents:
            return decide(
                [say("handoff_requested")], action="handoff", handoff_reason="the prospect asked for a person"
            )
        asks = bool(intents & FACT_INTENTS) or Intent.QUESTION in intents
        if Intent.NO in intents and not asks:
            return decide([say("declined")], outcome="declined")
        call_proposed = self._last_reply_proposed_call(ctx)
        if Intent.CALL in intents or (call_proposed and Intent.YES in intents):
            when = requested_call_time(text, ctx.now, ctx.profile.timezone)
            parts = [say("call_confirm")] + ([] if when else [say("call_ask_time")])
            return decide(
                parts, outcome="agreed", action="schedule_call", proposed_call_time=when, spin_stage="need_payoff"
            )

        parts: list[str] = [say("greeting")] if first_turn else []
        used: list[str] = []
        if asks and not (Intent.MAYBE in intents and not intents & FACT_INTENTS and "?" not in text):
            answer = self.answer(ctx, intents)
            if answer is None:
                parts.append(say("check_with_manager"))
                return decide(
                    parts, action="handoff", handoff_reason="the documents do not answer the prospect's question"
                )
            lines, used = answer
            parts.append(say("facts_intro"))
            parts.extend(lines)
        if Intent.MAYBE in intents:
            return decide([*parts, say("maybe")], outcome="uncertain", passages_used=used)
        if ctx.outcome == "agreed" and not asks:
            return decide([*parts, say("thanks")] if Intent.THANKS in intents else [*parts, say("maybe")])
        stage, question = self._next_step(ctx, answered_question=not asks and not first_turn)
        return decide([*parts, question], spin_stage=stage, passages_used=used)

    def _last_reply_proposed_call(self, ctx: TurnContext) -> bool:
        replies = ctx.agent_replies
        return bool(replies) and any(p in replies[-1] for p in self.prompts.phrase_texts("propose_call"))

    def _next_step(self, ctx: TurnContext, *, answered_question: bool) -> tuple[str, str]:
        """The SPIN stage after this turn and the question that moves it on."""
        asked = set(ctx.agent_replies)
        stage = ctx.spin_stage if ctx.spin_stage in SPIN_STAGES else "situation"
        lang = ctx.language

        def unasked(s: str) -> list[str]:
            return [q for q in self.prompts.spin_questions(lang, s) if not any(q in reply for reply in asked)]

        if answered_question and self._asked_stage_question(ctx, stage):
            if stage == "need_payoff":
                proposal = self.prompts.phrase(lang, "propose_call")
                if not any(proposal in reply for reply in asked):
                    return stage, proposal
            stage = next_stage(stage)
        while True:
            questions = unasked(stage)
            if questions:
                return stage, questions[0]
            if stage == "need_payoff":
                proposal = self.prompts.phrase(lang, "propose_call")
                if any(proposal in reply for reply in asked):
                    return stage, self.prompts.phrase(lang, "anything_else")
                return stage, proposal
            stage = next_stage(stage)

    def _asked_stage_question(self, ctx: TurnContext, stage: str) -> bool:
        replies = ctx.agent_replies
        if not replies:
            return False
        return any(q in replies[-1] for q in self.prompts.spin_questions(ctx.language, stage))

    # ------------------------------------------------------------------ facts from the passages
    def answer(self, ctx: TurnContext, intents: set[Intent]) -> tuple[list[str], list[str]] | None:
        """Lines quoted from the passages that answer the message, or None when they do not.

        For prices, stock and open questions the subject (product, thing asked about) must be
        found in the line: at least half of the message's content words. For delivery, payment,
        warranty, discount and location questions the topic itself is the subject; the words
        only rank the lines -- but a question naming something the passages never mention (a
        capitalised word inside the sentence: a city, a brand) is not answered from them.
        """
        terms = content_terms(ctx.text, ignore=INTENT_VOCABULARY)
        if not terms and intents & {Intent.PRICE, Intent.AVAILABILITY}:
            previous = [h.text for h in ctx.history if h.direction == "in"]
            if previous:  # "how much is it?" refers to what they mentioned before
                terms = content_terms(previous[-1], ignore=INTENT_VOCABULARY)
        units = self._units(ctx.passages, ctx.language)
        if not units:
            return None
        known = set().union(*(u.terms for u in units))
        if _proper_nouns(ctx.text) - known:
            return None  # names a place, brand or product the documents never mention ("deliver to Astana?")
        # The message's words, each weighted by how rare it is among the lines ("installment" says
        # more than "payment" when every payment line says "payment").
        df = Counter(term for u in units for term in u.terms)
        words = {w: math.log(1 + len(units) / df[w]) for w in set(tokens(ctx.text)) if df[w]}
        wanted: list[Intent | None] = [i for i in _MARKERS if i in intents] or [None]
        markers = [_MARKERS[i] for i in wanted if i is not None]
        chosen: list[_Unit] = []
        for intent in wanted:
            subject_needed = intent in (None, Intent.PRICE, Intent.AVAILABILITY)
            best = self._best_units(units, terms, words, intent, markers, subject_needed=subject_needed)
            if best is None:
                return None
            chosen.extend(u for u in best if u.text not in {c.text for c in chosen})
        chosen = chosen[: MAX_FACT_LINES + 1]
        used = list(dict.fromkeys(u.passage.chunk_id for u in chosen))
        return [_answer_part(u.text) for u in chosen], used

    @staticmethod
    def _units(passages: list[Passage], language: str) -> list[_Unit]:
        want = "ru" if language == "kk" else language
        units: list[_Unit] = []
        fallback: list[_Unit] = []
        for p_index, passage in enumerate(passages):
            lines = [line.strip() for line in passage.text.splitlines() if line.strip()]
            for l_index, line in enumerate(lines):
                if len(line.split()) < 5 and not any(ch.isdigit() for ch in line):
                    continue  # a heading, not an answer
                target = units if detect_language(line, default="en") == want else fallback
                target.append(_Unit(line, frozenset(tokens(line)), passage, (p_index, l_index), False))
                following = lines[l_index + 1] if l_index + 1 < len(lines) else None
                if following and _MONEY.search(line) and not _MONEY.search(following):
                    pair = f"{line} {following}"
                    target.append(_Unit(pair, frozenset(tokens(pair)), passage, (p_index, l_index), True))
        return units or fallback

    @staticmethod
    def _best_units(
        units: list[_Unit],
        terms: set[str],
        words: dict[str, float],
        intent: Intent | None,
        markers: list[re.Pattern[str]],
        *,
        subject_needed: bool,
    ) -> list[_Unit] | None:
        needed = max(1, math.ceil(len(terms) / 2)) if terms and subject_needed else 0
        marker = _MARKERS.get(intent) if intent is not None else None
        scored: list[tuple[tuple[int, int, float, int], _Unit]] = []
        for unit in units:
            if marker is not None and not marker.search(unit.text):
                continue
            overlap = len(terms & unit.terms)
            if overlap < needed:
                continue
            also = sum(1 for m in markers if m.search(unit.text))
            weight = round(sum(w for term, w in words.items() if term in unit.terms), 6)
            score = (overlap, also, weight, 0 if unit.pair else 1)
            scored.append((score, unit))
        if not scored:
            return None
        top = max(score for score, _ in scored)
        best = sorted((u for score, u in scored if score == top), key=lambda u: u.order)
        listing = intent in (Intent.PRICE, Intent.AVAILABILITY) and len(terms) <= top[0]
        return best[:MAX_FACT_LINES] if listing else best[:1]


def _answer_part(line: str) -> str:
    """An FAQ line "Question? Answer." is quoted from its answer on."""
    question, mark, answer = line.partition("? ")
    if mark and answer.strip() and len(question) < 200:
        return answer.strip()
    return line


_CAPITALISED = re.compile(r"(?<![.!?]\s)(?<!^)\b([A-ZА-ЯЁӘҒҚҢӨҰҮҺІ][\w-]+)")


def _proper_nouns(text: str) -> set[str]:
    """Capitalised words that do not start a sentence, as index terms."""
    found: set[str] = set()
    for line in text.splitlines():
        for match in _CAPITALISED.finditer(line.strip()):
            found.update(tokens(match.group(1)))
    return found


def _fit(reply: str) -> str:
    """Long documents make long quotes: keep whole sentences within the reply limit."""
    if len(reply) <= MAX_REPLY:
        return reply
    cut = reply[:MAX_REPLY]
    end = max(cut.rfind(". "), cut.rfind("? "), cut.rfind("! "))
    return cut[: end + 1] if end > 0 else cut
