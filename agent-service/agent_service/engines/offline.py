"""The deterministic offline engine: no network, the default without a Gemini key.

It reads the prospect's message with rules (:mod:`agent_service.domain.intents`) and answers
by quoting lines of the retrieved passages verbatim -- so prices come out exactly as the
catalogue writes them -- or the total the sales agent computed from the catalogue, then moves
the SPIN conversation on with a question from the business file's question bank. A question
the passages do not answer gets the fixed "let me check with a manager" reply and a handoff.
Same input, same reply.

Answering, in order: nothing readable (voice note, image) -> ask for text; a call asked for
(also "with a manager", or a time given after we proposed one) -> ``schedule_call``; a request
for a human -> handoff; a clear no -> polite farewell, ``declined``; an order confirmed -> a
manager takes it (``agreed``); then facts for each question asked, then maybe/thanks, then the
next SPIN question -- one that follows from what was said -- unless the prospect already agreed.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from agent_service.domain.call_request import requested_call_time
from agent_service.domain.decision import MAX_REPLY, AgentDecision, next_stage
from agent_service.domain.intents import (
    FACT_INTENTS,
    FILLER_WORDS,
    INTENT_VOCABULARY,
    Intent,
    detect_intents,
    question_focus,
)
from agent_service.domain.language import detect_language
from agent_service.domain.products import names_product, product_of
from agent_service.domain.profile import BusinessProfile
from agent_service.domain.text import ELSEWHERE, Synonyms, content_terms, proper_nouns, tokens
from agent_service.domain.vocabulary import SPIN_STAGES
from agent_service.engines.base import EngineResult, TurnContext
from agent_service.knowledge.base import Passage
from agent_service.prompts import PromptBook

MODEL = "offline-rules-v1"
MAX_FACT_LINES = 3
_MONEY = re.compile(r"\d[\d \u00a0\u202f,]*\s?(?:₸|тг|тенге|kzt)", re.IGNORECASE)
_PRICE_LABEL = re.compile(r"^(?:price|цена|стоимость|баға)\s*:", re.IGNORECASE)
_MARKERS: dict[Intent, re.Pattern[str]] = {
    Intent.PRICE: re.compile(r"₸|kzt|тенге|\bprice|\bcost|цен[аыу]|стоит|стоимост|баға", re.IGNORECASE),
    Intent.AVAILABILITY: re.compile(
        r"in stock|made to order|наличии|под заказ|display|выставлен|working days|рабоч\w+ д", re.IGNORECASE
    ),
    Intent.DELIVERY: re.compile(r"deliver|доставк|доставля|transport|транспорт|courier|курьер|жеткіз", re.IGNORECASE),
    Intent.PAYMENT: re.compile(
        r"\bpay|payment|installment|invoice|оплат|рассрочк|счет|счёт|безналичн|төле", re.IGNORECASE
    ),
    Intent.WARRANTY: re.compile(r"warrant|return|гаранти|возврат|кепілдік", re.IGNORECASE),
    Intent.DISCOUNT: re.compile(r"discount|скидк|жеңілдік", re.IGNORECASE),
    Intent.LOCATION: re.compile(
        r"address|showroom|hours|centre|center|адрес|шоурум|часы работы|работаем|проспект|мекенжай",
        re.IGNORECASE,
    ),
}
# Lines that say what the business sells (the catalogue's overview), in any of its languages.
_OVERVIEW = re.compile(
    r"\bwe (?:sell|offer|supply|make|install|furnish|provide)|what we offer|\bsells\b|\boffers\b|our range|range of|"
    r"продаёт|продает|продаём|продаем|предлагаем|что мы предлагаем|обставляем|устанавливаем|ассортимент|"
    r"сатамыз|ұсынамыз",
    re.IGNORECASE,
)
# "The chairs are old and everyone complains": a problem stated, the SPIN conversation moves to its implications.
_PROBLEM = re.compile(
    r"complain|uncomfortable|\bold\b|broken|\bpain|hurts|tired|problem|bothers|noisy|cramped|too small|leak|smell|"
    r"rust|limescale|hard water|жалу|неудобн|стар(?:ые|ая|ый)|сломан|болит|бол[иья] в|устают|проблем|мешает|шумн|"
    r"тесн|накип|ржав|запах|течёт|течет|ыңғайсыз|ескі|ауырады|сынған|шаршай|қақ|кермек",
    re.IGNORECASE,
)
# Words that make a line the better answer for its topic: an address for "where", terms for "how".
_STRONG_MARKERS: dict[Intent, re.Pattern[str]] = {
    Intent.LOCATION: re.compile(
        r"address|avenue|street|\bst\.|адрес|проспект|улиц|\bул\.|мекенжай|даңғыл",
        re.IGNORECASE,
    ),
}
_HOURS = re.compile(r"hours|open(?:ing)? |часы работы|работаем|\d{1,2}:\d\d", re.IGNORECASE)
_OTHER_PLACES = re.compile(r"other (?:cities|regions|towns)|друг\w* (?:город|регион)|басқа қала", re.IGNORECASE)
# "How much is it?", "А сколько её делают?": the question is about something named before.
_PRONOUN = re.compile(r"\b(?:it|its|them|they|this|that|those|these|её|ее|его|их|это|эти|этот|эта|он|она|они)\b", re.I)
_TOPICS = frozenset({Intent.DELIVERY, Intent.PAYMENT, Intent.WARRANTY, Intent.DISCOUNT, Intent.LOCATION})
_STOCK = re.compile(r"in stock|stock|наличи|қолда бар", re.IGNORECASE)
_NAME = re.compile(r"^[^\W\d_]+(?:[ '-][^\W\d_]+){0,2}$")
_ASKS_HOW_LONG = re.compile(
    r"how long|сколько (?:(?:его|её|ее|их) )?(?:по времени|делают|изготавлива\w*|ждать|дней)|қанша уақыт", re.IGNORECASE
)
# "...and when are you open?": a location question that also asks for the hours.
_ASKS_WHEN_OPEN = re.compile(
    r"when (?:are|do) you (?:open|work)|opening hours|hours|часы работы|режим работы|когда (?:вы )?работаете|"
    r"по субботам|график|қашан ашық|жұмыс уақыты",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class _Unit:
    """A quotable piece of a passage: one line, or a product line with its description or price line."""

    text: str
    terms: frozenset[str]
    passage: Passage
    order: tuple[int, int]
    pair: bool
    heading: str = ""  # the short line above it ("What we offer"; an FAQ's question)
    product: tuple[str, tuple[str, ...]] | None = None  # the product it is about (its own line's, or the one above)


class OfflineEngine:
    name = "offline"

    def __init__(self, prompts: PromptBook) -> None:
        self.prompts = prompts
        self._lines = _LineFacts()

    async def close(self) -> None:
        return None

    async def decide(self, context: TurnContext) -> EngineResult:
        started = time.perf_counter()
        decision = self.compose(context)
        return EngineResult(decision, model=MODEL, latency_ms=int((time.perf_counter() - started) * 1000))

    # ------------------------------------------------------------------ the conversation
    def compose(self, ctx: TurnContext) -> AgentDecision:
        lang = ctx.language
        profile = ctx.profile
        name = f", {ctx.contact_name.strip()}" if ctx.contact_name and _NAME.match(ctx.contact_name.strip()) else ""

        def say(key: str) -> str:
            return self.prompts.phrase(lang, key, business=profile.name, name=name)

        def decide(parts: Iterable[str], **fields: object) -> AgentDecision:
            values: dict[str, object] = {"spin_stage": ctx.spin_stage, "outcome": ctx.outcome, "language": lang}
            values.update(fields)
            return AgentDecision(reply=_fit(" ".join(p for p in parts if p)), **values)  # type: ignore[arg-type]

        text = ctx.text
        if not text.strip():
            return decide([say("voice_unavailable" if ctx.voice_untranscribed else "non_text")])
        intents = detect_intents(text, profile.topic_words)
        first_turn = not ctx.agent_replies
        greeting = [say("greeting")] if first_turn else []
        asks = bool(intents & (FACT_INTENTS | {Intent.OVERVIEW})) or Intent.QUESTION in intents
        when = requested_call_time(text, ctx.now, profile.timezone)
        if Intent.CALL in intents or (self._call_under_way(ctx) and (Intent.YES in intents or when is not None)):
            parts = [*greeting, say("call_confirm")] + ([] if when else [say("call_ask_time")])
            return decide(
                parts, outcome="agreed", action="schedule_call", proposed_call_time=when, spin_stage="need_payoff"
            )
        if Intent.HUMAN in intents:
            return decide(
                [say("handoff_requested")], action="handoff", handoff_reason="the prospect asked for a person"
            )
        if Intent.NO in intents and not asks:
            return decide([say("declined")], outcome="declined")
        if Intent.ORDER in intents and Intent.QUESTION not in intents:
            return decide(
                [say("order_confirmed")],
                outcome="agreed",
                action="handoff",
                spin_stage="need_payoff",
                handoff_reason="the prospect confirmed an order",
            )

        parts = list(greeting)
        used: list[str] = []
        if asks and not (Intent.MAYBE in intents and not intents & FACT_INTENTS and "?" not in text):
            answer = self.answer(ctx, intents)
            if answer is None:
                parts.append(say("check_with_manager"))
                return decide(
                    parts, action="handoff", handoff_reason="the documents do not answer the prospect's question"
                )
            lines, used, intro = answer
            parts.append(say(intro))
            parts.extend(lines)
        if Intent.MAYBE in intents:
            return decide([*parts, say("maybe")], outcome="uncertain", passages_used=used)
        if ctx.outcome == "agreed":  # agreed already: confirm, answer, and stop probing
            closing = say("thanks") if Intent.THANKS in intents else "" if asks else say("agreed_next")
            return decide([*parts, closing], passages_used=used)
        stage, question = self._next_step(ctx, intents, asks=asks, first_turn=first_turn)
        return decide([*parts, question], spin_stage=stage, passages_used=used)

    def _call_under_way(self, ctx: TurnContext) -> bool:
        """Our last reply proposed a call, or asked when to call: a yes or a time now books it."""
        replies = ctx.agent_replies
        if not replies:
            return False
        keys = ("propose_call", "call_ask_time", "call_confirm")
        return any(p in replies[-1] for key in keys for p in self.prompts.phrase_texts(key))

    def _next_step(self, ctx: TurnContext, intents: set[Intent], *, asks: bool, first_turn: bool) -> tuple[str, str]:
        """The SPIN stage after this turn and the question that follows from what the prospect said.

        * They answered our question of the current stage: the next stage's question (after the
          need-payoff stage, the call proposal).
        * They stated a problem: its implications.
        * They asked something: the bank's question that follows that topic; else, in the
          situation and problem stages, the stage's next question. Implication and need-payoff
          questions refer back to a problem, so after an unrelated question they are not asked.
        """
        profile, lang = ctx.profile, ctx.language
        asked = ctx.agent_replies
        stage = ctx.spin_stage if ctx.spin_stage in SPIN_STAGES else "situation"

        def unasked(s: str) -> list[str]:
            return [q for q in profile.spin_questions(lang, s) if not any(q in reply for reply in asked)]

        proposal = self.prompts.phrase(lang, "propose_call")
        proposed = any(proposal in reply for reply in asked)

        def from_stage(s: str) -> tuple[str, str]:
            while True:
                questions = unasked(s)
                if questions:
                    return s, questions[0]
                if s == "need_payoff":
                    return s, self.prompts.phrase(lang, "anything_else") if proposed else proposal
                s = next_stage(s)

        if not asks and stage in ("situation", "problem") and _PROBLEM.search(ctx.text):
            return from_stage("implication")
        if not asks and not first_turn and self._answered(ctx, stage):
            if stage == "need_payoff":
                return stage, self.prompts.phrase(lang, "anything_else") if proposed else proposal
            return from_stage(next_stage(stage))
        if asks:
            for intent in (Intent.OVERVIEW, *FACT_INTENTS):
                if intent in intents:
                    question = profile.question_after(lang, intent.value)
                    if question and not any(question in reply for reply in asked):
                        return stage, question
            if stage in ("implication", "need_payoff"):
                return stage, self.prompts.phrase(lang, "anything_else") if proposed else proposal
        return from_stage(stage)

    def _answered(self, ctx: TurnContext, stage: str) -> bool:
        """Our last reply asked a question of this stage (or, in the situation stage, a topic question)."""
        last = ctx.agent_replies[-1] if ctx.agent_replies else ""
        questions = ctx.profile.spin_questions(ctx.language, stage)
        if stage == "situation":
            questions = [*questions, *(ctx.profile.spin_after.get(ctx.language, {}) or {}).values()]
        return any(q in last for q in questions)

    # ------------------------------------------------------------------ facts from the passages
    def answer(self, ctx: TurnContext, intents: set[Intent]) -> tuple[list[str], list[str], str] | None:
        """Lines that answer the message, the passages they come from and the intro phrase's key;
        None when the documents do not answer it.

        A computed quote answers a price or discount question about an order. For prices, stock
        and open questions the subject (product, thing asked about) must be found in the line:
        at least half of the question's content words (filler such as "sorry, I was away" and
        tags such as "[urgent]" do not count). For delivery, payment, warranty, discount and
        location questions the topic itself is the subject; the words only rank the lines -- but
        a question naming something the passages never mention (a capitalised word inside the
        sentence: a city, a brand) is answered only by a general rule ("other cities").
        """
        profile = ctx.profile
        if ctx.quote and intents & {Intent.PRICE, Intent.DISCOUNT}:
            return list(ctx.quote), [], "quote_intro"
        focus = question_focus(ctx.text)
        ignore = INTENT_VOCABULARY | FILLER_WORDS
        terms = content_terms(focus, ignore=ignore, synonyms=profile.synonyms)
        if not terms and focus != ctx.text and not intents & FACT_INTENTS:
            focus = ctx.text  # "We live in a house with a well. What would you suggest?": the question is the context
            terms = content_terms(focus, ignore=ignore, synonyms=profile.synonyms)
        units = self._units(ctx.passages, ctx.language, profile.synonyms)
        if not units:
            return None
        known = set().union(*(u.terms for u in units))
        terms = {_known_form(t, known) for t in terms}  # "алматыға" is the documents' "алмат(ы)"
        refers_back = intents & {Intent.PRICE, Intent.AVAILABILITY} or _ASKS_HOW_LONG.search(focus)
        if refers_back and not intents & _TOPICS and (not terms or (not terms & known and _PRONOUN.search(focus))):
            previous = [h.text for h in ctx.history if h.direction == "in"]
            if previous:  # "how much is it?" / "how long do they make it?" is about what they mentioned before
                terms = content_terms(question_focus(previous[-1]), ignore=ignore, synonyms=profile.synonyms)
        if Intent.OVERVIEW in intents and _only_category_words(terms, profile):
            overview = _overview_units(units)
            if overview:
                return (
                    [u.text for u in overview],
                    list(dict.fromkeys(u.passage.chunk_id for u in overview)),
                    "facts_intro",
                )
        unknown = {n for n in proper_nouns(focus, profile.synonyms) if not _is_known(n, known)}
        if unknown:
            general = [u for u in units if ELSEWHERE.search(u.text) and _MARKERS[Intent.DELIVERY].search(u.text)]
            if Intent.DELIVERY not in intents or not general:
                return None  # names a place, brand or product the documents never mention
            # the rule written for the case ("other cities") before a sentence that merely mentions it ("across")
            picked = sorted(general, key=lambda u: (not _OTHER_PLACES.search(u.text), u.pair, u.order))[:2]
            return [u.text for u in picked], list(dict.fromkeys(u.passage.chunk_id for u in picked)), "facts_intro"
        if terms - known and not (terms & known) - _described(profile) and not intents & _TOPICS:
            return None  # "water heaters" at a water-filter shop: only the shop's own word is known
        # The message's words, each weighted by how rare it is among the lines ("installment" says
        # more than "payment" when every payment line says "payment").
        df = Counter(term for u in units for term in u.terms)
        words = {w: math.log(1 + len(units) / df[w]) for w in set(tokens(focus, profile.synonyms)) if df[w]}
        wanted: list[Intent | None] = [i for i in _MARKERS if i in intents] or [None]
        if Intent.AVAILABILITY in wanted and _ASKS_HOW_LONG.search(focus):
            wanted = [Intent.AVAILABILITY]
        elif Intent.AVAILABILITY in wanted and len(wanted) > 1 and not _STOCK.search(focus):
            wanted.remove(Intent.AVAILABILITY)  # "is there delivery?" / "бар ма?" asks about delivery, not stock
        before = "\n".join(h.text for h in ctx.history if h.direction == "in")
        markers = [_MARKERS[i] for i in wanted if i is not None]
        chosen: list[_Unit] = []
        for intent in wanted:
            subject_needed = intent in (None, Intent.PRICE, Intent.AVAILABILITY)
            best = self._best_units(
                units, terms, words, intent, markers, subject_needed=subject_needed, asked=focus, before=before
            )
            if best is None:
                return None
            chosen.extend(u for u in best if u.text not in {c.text for c in chosen})
            if intent is Intent.LOCATION and _ASKS_WHEN_OPEN.search(focus):  # "where ... and when are you open?"
                hours = [u for u in units if _HOURS.search(u.text) and _MARKERS[Intent.LOCATION].search(u.text)]
                chosen.extend(u for u in hours[:1] if u.text not in {c.text for c in chosen})
        chosen = chosen[: MAX_FACT_LINES + 1]
        used = list(dict.fromkeys(u.passage.chunk_id for u in chosen))
        return [_answer_part(u.text) for u in chosen], used, "facts_intro"

    def _units(self, passages: list[Passage], language: str, synonyms: Synonyms) -> list[_Unit]:
        """The passages' quotable lines in the prospect's language (Kazakh: Kazakh or Russian ones)
        (:meth:`_LineFacts.passage`), in passage order."""
        want = ("kk", "ru") if language == "kk" else (language,)
        units: list[_Unit] = []
        fallback: list[_Unit] = []
        for p_index, passage in enumerate(passages):
            for piece in self._lines.passage(passage.text, synonyms):
                target = units if piece.language in want else fallback
                order = (p_index, piece.line)
                target.append(_Unit(piece.text, piece.terms, passage, order, piece.pair, piece.heading, piece.product))
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
        asked: str,
        before: str,
    ) -> list[_Unit] | None:
        """The best lines for one intent. Ranked by the question's words they share (what the
        question is about must be there for prices, stock and open questions), whether they are
        about a product the question names (its own price line, not an accessory's) or one the
        prospect named before ("the chairs" we talked about), the topic's stronger words (an
        address for "where"), and how rare the shared words are."""
        needed = max(1, math.ceil(len(terms) / 2)) if terms and subject_needed else 0
        marker = _MARKERS.get(intent) if intent is not None else None
        strong = _STRONG_MARKERS.get(intent) if intent is not None else None
        scored: list[tuple[tuple[Any, ...], _Unit]] = []
        # Whether the question, the earlier messages, or either names each product (many lines share one).
        named: dict[tuple[str, tuple[str, ...]], tuple[bool, bool, bool]] = {}
        for product in {u.product for u in units if u.product is not None}:
            named[product] = (
                names_product(asked, *product),
                bool(before) and names_product(before, *product),
                names_product(f"{asked}\n{before}", *product),
            )
        named_any = any(either for _, _, either in named.values())
        for unit in units:
            if marker is not None and not marker.search(unit.text):
                continue
            overlap = len(terms & unit.terms)
            if overlap < needed:
                continue
            now, earlier, _ = named[unit.product] if unit.product is not None else (False, False, False)
            about_now, about_before = int(now), int(earlier)
            also = sum(1 for m in markers if m.search(unit.text)) + int(bool(strong and strong.search(unit.text)))
            weight = round(sum(w for term, w in words.items() if term in unit.terms), 6)
            pair = 0 if unit.pair else 1
            if subject_needed:
                listed = int(intent is None and unit.product is not None and bool(_MONEY.search(unit.text)))
                score: tuple[Any, ...] = (overlap, about_now, listed, also, about_before, weight, pair)
            else:
                # Not naming a product now or before, the general rule beats one product's line.
                general = int(unit.product is None and not named_any)
                score = (about_now, about_before, general, overlap, also, weight, pair)
            scored.append((score, unit))
        if not scored:
            return None
        top = max(score for score, _ in scored)
        listing = intent in (Intent.PRICE, Intent.AVAILABILITY) and subject_needed and len(terms) <= top[0]
        if not listing:
            return [min((u for score, u in scored if score == top), key=lambda u: u.order)]
        # "What chairs do you have?": every line that names all its words, one per product, best first
        ranked = sorted((pair for pair in scored if pair[0][:2] == top[:2]), key=lambda p: (-p[1].pair, p[1].order))
        ranked.sort(key=lambda p: p[0], reverse=True)
        chosen: list[_Unit] = []
        for _, unit in ranked:
            if unit.product is None or all(unit.product != c.product for c in chosen):
                chosen.append(unit)
        return sorted(chosen[:MAX_FACT_LINES], key=lambda u: u.order)


@dataclass(frozen=True)
class _Piece:
    """A quotable piece of a passage's text, as :meth:`_LineFacts.passage` finds it."""

    text: str
    terms: frozenset[str]
    language: str  # of its (first) line
    line: int  # its (first) line's index among the passage's lines
    pair: bool
    heading: str
    product: tuple[str, tuple[str, ...]] | None


class _LineFacts:
    """What the engine reads off a knowledge line -- its terms, its language, the product it is
    about -- and the quotable pieces of a passage depend on the text and the business's synonyms
    only: worked out once, not on every turn (the same passages come back turn after turn)."""

    LIMIT = 20_000  # lines remembered; the knowledge base's lines, with room for reloads

    def __init__(self) -> None:
        self._synonyms: Synonyms | None = None
        self._seen: dict[str, tuple[tuple[str, ...], str, tuple[str, tuple[str, ...]] | None]] = {}
        self._passages: dict[str, tuple[_Piece, ...]] = {}

    def _use(self, synonyms: Synonyms) -> None:
        if synonyms is not self._synonyms:
            self._seen.clear()
            self._passages.clear()
            self._synonyms = synonyms

    def of(self, line: str, synonyms: Synonyms) -> tuple[tuple[str, ...], str, tuple[str, tuple[str, ...]] | None]:
        self._use(synonyms)
        facts = self._seen.get(line)
        if facts is None:
            if len(self._seen) >= self.LIMIT:
                self._seen.clear()
            facts = (tuple(tokens(line, synonyms)), detect_language(line, default="en"), product_of(line))
            self._seen[line] = facts
        return facts

    def passage(self, text: str, synonyms: Synonyms) -> tuple[_Piece, ...]:
        """The quotable pieces of a passage's text, in order.

        A line's terms include its heading's (an FAQ answer is found by its question); a product's
        price line is also offered together with the line after it (its description) or, when
        the price stands on a line of its own ("Price: 219,000 KZT"), with the line before it.
        """
        self._use(synonyms)
        pieces = self._passages.get(text)
        if pieces is None:
            if len(self._passages) >= self.LIMIT:
                self._passages.clear()
            pieces = self._passages[text] = tuple(self._pieces(text, synonyms))
        return pieces

    def _pieces(self, text: str, synonyms: Synonyms) -> Iterator[_Piece]:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        heading: str = ""
        product: tuple[str, tuple[str, ...]] | None = None  # of the last price line: its description follows
        for index, line in enumerate(lines):
            if _heading(line):
                heading, product = line, None
                continue  # a heading or an FAQ's question, not an answer
            line_terms, language, own = self.of(line, synonyms)
            product = own or (product if not _MONEY.search(line) else None)
            # an FAQ's question
            heading_terms = self.of(heading, synonyms)[0] if heading.endswith("?") else ()
            yield _Piece(line, frozenset([*line_terms, *heading_terms]), language, index, False, heading, product)
            following = lines[index + 1] if index + 1 < len(lines) else None
            if following is None or _heading(following):
                continue
            priced, price_follows = _MONEY.search(line), _MONEY.search(following)
            if (priced and not price_follows) or (not priced and price_follows and _PRICE_LABEL.match(following)):
                pair = f"{line} {following}"
                terms = frozenset([*self.of(pair, synonyms)[0], *heading_terms])
                yield _Piece(pair, terms, language, index, True, heading, product)
            if not priced:
                product = None  # only a price line's product carries over to the line below it


def _overview_units(units: list[_Unit]) -> list[_Unit]:
    """The lines that say what the business sells: they say "we sell/offer ..." or sit under such a heading."""
    found = [u for u in units if not u.pair and (_OVERVIEW.search(u.text) or _OVERVIEW.search(u.heading))]
    return sorted(found, key=lambda u: u.order)[:2]


def _heading(line: str) -> bool:
    """A heading or an FAQ's question: a short line without figures, or a question."""
    return (len(line.split()) < 5 and not any(ch.isdigit() for ch in line)) or line.endswith("?")


def _described(profile: BusinessProfile) -> set[str]:
    """The words the business describes itself with ("water", "filters", "office", "furniture")."""
    return set().union(*(content_terms(a.description, synonyms=profile.synonyms) for a in profile.about.values()))


def _only_category_words(terms: set[str], profile: BusinessProfile) -> bool:
    """The question names nothing more specific than the business itself ("what kind of furniture
    do you have?"): no words, or only words of its description that its offering does not list."""
    described = set().union(*(content_terms(a.description, synonyms=profile.synonyms) for a in profile.about.values()))
    listed = set().union(*(content_terms(a.offering, synonyms=profile.synonyms) for a in profile.about.values()))
    return not (terms - (described - listed))


def _known_form(term: str, known: set[str]) -> str:
    """The documents' form of a term they know inflected ("алматыға" -> "алмат"), else the term."""
    if term in known:
        return term
    return max((k for k in known if len(k) >= 4 and term.startswith(k)), key=len, default=term)


def _is_known(term: str, known: set[str]) -> bool:
    """Known to the documents, also inflected ("Алматыға", "Шымкентке" for "Алматы", "Шымкент")."""
    return term in known or any(len(k) >= 4 and term.startswith(k) for k in known)


def _answer_part(line: str) -> str:
    """An FAQ line "Question? Answer." is quoted from its answer on."""
    question, mark, answer = line.partition("? ")
    if mark and answer.strip() and len(question) < 200:
        return answer.strip()
    return line


def _fit(reply: str) -> str:
    """Long documents make long quotes: keep whole sentences within the reply limit."""
    if len(reply) <= MAX_REPLY:
        return reply
    cut = reply[:MAX_REPLY]
    end = max(cut.rfind(". "), cut.rfind("? "), cut.rfind("! "))
    return cut[: end + 1] if end > 0 else cut
