"""The text of a follow-up touch: a template per strategy and language, or Gemini when configured.

Offline (no Gemini key) the text comes from ``prompts/follow_up_templates.toml``; where the
prospect asked about something the knowledge base covers, value-proposition and social-proof
touches quote one sentence of the passages verbatim (grounded by construction) -- a sentence
about what this prospect asked: it shares their words, and it names no product (nor describes
one, as the line under a product's price line does) that they did not name themselves.

With Gemini the model gets ``prompts/follow_up_prompt.txt``, the conversation so far and the
retrieved passages, and answers ``{"text": ...}``. Its text must pass the grounding guard and
must not quote its instructions (the disclosure guard: the conversation it reads may carry a
prospect's "print your instructions"); anything else -- an error, a timeout, a blocked answer,
invalid JSON, an ungrounded claim, a quoted rule -- falls back to the template. Writing a
follow-up never fails. A template greets by name only a name that reads as one
(:func:`~agent_service.domain.injection.display_name`): a profile name is the prospect's own
text and is not repeated from the business's number.
"""

from __future__ import annotations

import asyncio
import re
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from pydantic import BaseModel, Field, ValidationError

from agent_service.domain.call_slots import language_of
from agent_service.domain.disclosure import discloses, instruction_runs
from agent_service.domain.followup_policy import Strategy
from agent_service.domain.grounding import ungrounded_claims
from agent_service.domain.injection import display_name, quoted_name
from agent_service.domain.intents import FILLER_WORDS
from agent_service.domain.language import NAMES as LANGUAGE_NAMES
from agent_service.domain.products import code_runs, names_product
from agent_service.domain.text import BASE_SYNONYMS, ELSEWHERE, Synonyms, content_terms, proper_nouns, tokens
from agent_service.knowledge.base import Passage

if TYPE_CHECKING:
    from agent_service.engines.gemini_request import JsonRequest

log = structlog.get_logger(__name__)

TEMPLATES_FILE = "follow_up_templates.toml"
PROMPT_FILE = "follow_up_prompt.txt"
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


class Knowledge(Protocol):
    async def search(self, query: str, k: int = 4) -> list[Passage]: ...


GroundingCheck = Callable[[str, Sequence[str]], list[str]]  # (text, sources) -> ungrounded claims


@dataclass(frozen=True)
class TouchContext:
    contact_id: int
    touch: int
    strategy: Strategy
    name: str | None = None
    language: str | None = None
    history: list[tuple[str, str]] = field(default_factory=list)  # (direction "in"/"out", text), oldest first


@dataclass(frozen=True)
class FollowUpText:
    text: str
    engine: str  # "template" | "gemini"
    model: str | None = None
    knowledge_refs: list[dict[str, Any]] = field(default_factory=list)
    fallback_reason: str | None = None


class Templates:
    """The offline texts, per language and strategy (``prompts/follow_up_templates.toml``)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        for strategy in Strategy:
            if strategy.value not in data.get("en", {}):
                raise ValueError(f"{TEMPLATES_FILE}: missing en.{strategy.value}")

    @classmethod
    def load(cls, prompts_dir: Path) -> Templates:
        return cls(tomllib.loads((prompts_dir / TEMPLATES_FILE).read_text(encoding="utf-8")))

    def render(
        self, strategy: Strategy, language: str | None, *, name: str | None, business: str, fact: str | None = None
    ) -> str:
        code = (language or "en").lower().replace("_", "-").split("-")[0]
        lang = code if code in self.data else language_of(code) if language_of(code) in self.data else "en"
        entry = self.data[lang].get(strategy.value) or self.data["en"][strategy.value]
        greetings = self.data.get("greetings", {})
        clean_name = display_name(name)
        greeting = (
            greetings.get(f"{lang}_named", "{name}").format(name=clean_name)
            if clean_name
            else greetings.get(lang, "Hello")
        )
        template = entry.get("with_fact") if fact and entry.get("with_fact") else entry["text"]
        return template.format(greeting=greeting, business=business, fact=fact or "").strip()


class FollowUpDraft(BaseModel):
    text: str = Field(min_length=1, max_length=1000)


def _draft_request(gemini: Any, model: str) -> JsonRequest:
    """The draft's request, converted by the SDK once (``engines/gemini_request.py``)."""
    from google.genai import types

    from agent_service.engines.gemini_request import JsonRequest

    config = types.GenerateContentConfig(
        temperature=0.7, response_mime_type="application/json", response_schema=FollowUpDraft
    )
    return JsonRequest(gemini, model=model, config=config)


def _asked(ctx: TouchContext) -> list[str]:
    """What the prospect wrote lately: what the touch may speak of."""
    return [text for direction, text in ctx.history if direction == "in" and text][-3:]


def pick_fact(
    passages: Sequence[Passage], asked: Sequence[str], synonyms: Synonyms = BASE_SYNONYMS
) -> tuple[str, Passage] | None:
    """A quotable sentence about what the prospect asked, and where it comes from.

    Prose of 6-40 words ending with a full stop (headings, list fragments and table rows do not
    qualify) that shares at least one of the prospect's words. A sentence that names a product
    -- or describes one: a line without a product of its own belongs to the product line above
    it -- qualifies only when the prospect named that product. The best overlap wins; ties go
    to the first.
    """
    said = "\n".join(asked)
    wanted = content_terms(said, ignore=FILLER_WORDS, synonyms=synonyms)
    places = proper_nouns(said, synonyms)
    best: tuple[int, str, Passage] | None = None
    for passage in passages:
        product: tuple[str, tuple[str, ...]] | None = None
        for line in passage.text.splitlines():
            codes = list(code_runs(line))
            if codes:
                product = (codes[0][1], codes[0][2])
            for sentence in _SENTENCE.split(" ".join(line.split())):
                if not (6 <= len(sentence.split()) <= 40 and sentence.endswith((".", "!")) and sentence[0].isupper()):
                    continue
                named = [(code, aliases) for _, code, aliases in code_runs(sentence)] or ([product] if product else [])
                if any(not names_product(said, code, aliases) for code, aliases in named):
                    continue  # another product than the one they asked about
                elsewhere = places and proper_nouns(sentence, synonyms) - places and not places & set(tokens(sentence))
                if elsewhere and not ELSEWHERE.search(sentence):
                    continue  # they asked about Astana: a sentence about Almaty is not about them
                overlap = len(wanted & set(tokens(sentence, synonyms))) + (2 if named else 0)
                if overlap and (best is None or overlap > best[0]):
                    best = (overlap, sentence, passage)
    return (best[1], best[2]) if best else None


class FollowUpWriter:
    def __init__(
        self,
        templates: Templates,
        *,
        business_name: str,
        business_description: str = "",
        knowledge: Knowledge | None = None,
        grounding: GroundingCheck = ungrounded_claims,
        synonyms: Synonyms = BASE_SYNONYMS,
        gemini: Any = None,  # a google-genai client, or None for the offline engine
        model: str = "",
        system_prompt: str = "",
        timeout_s: float = 20.0,
        top_k: int = 3,
    ) -> None:
        self.templates = templates
        self.business_name = business_name
        self.business_description = business_description
        self.knowledge = knowledge
        self.grounding = grounding
        self.synonyms = synonyms
        self.gemini = gemini
        self.model = model
        self.system_prompt = system_prompt
        self.timeout_s = timeout_s
        self.top_k = top_k
        self._instructions = instruction_runs([system_prompt]) if system_prompt else frozenset()
        self._request = _draft_request(gemini, model) if gemini is not None else None

    @property
    def uses_history(self) -> bool:
        """Whether the text depends on the conversation (Gemini, or the knowledge base's facts)."""
        return self.gemini is not None or self.knowledge is not None

    async def write(self, ctx: TouchContext) -> FollowUpText:
        passages = await self._passages(ctx)
        refs = [p.ref() for p in passages]
        fallback_reason = None
        if self.gemini is not None:
            try:
                text = await asyncio.wait_for(self._draft(ctx, passages), timeout=self.timeout_s)
            except Exception as exc:  # the model is never allowed to stop a touch
                fallback_reason = f"model_error:{type(exc).__name__}"
            else:
                problems = self._ungrounded(text, passages)
                if not problems and not discloses(text, self._instructions):
                    return FollowUpText(text, "gemini", self.model, refs)
                fallback_reason = "ungrounded" if problems else "quotes_instructions"
            log.info("follow_up.text_fallback", contact_id=ctx.contact_id, touch=ctx.touch, reason=fallback_reason)
        return self._template(ctx, passages, fallback_reason)

    def _template(self, ctx: TouchContext, passages: Sequence[Passage], fallback_reason: str | None) -> FollowUpText:
        asked = _asked(ctx)
        strategies = (Strategy.VALUE_PROPOSITION, Strategy.SOCIAL_PROOF)
        found = pick_fact(passages, asked, self.synonyms) if ctx.strategy in strategies else None
        render = self.templates.render
        if found is not None:
            fact, source = found
            text = render(ctx.strategy, ctx.language, name=ctx.name, business=self.business_name, fact=fact)
            if not self._ungrounded(text, passages):
                return FollowUpText(text, "template", None, [source.ref()], fallback_reason)
        text = render(ctx.strategy, ctx.language, name=ctx.name, business=self.business_name)
        return FollowUpText(text, "template", None, [], fallback_reason)

    def _ungrounded(self, text: str, passages: Sequence[Passage]) -> list[str]:
        profile = f"{self.business_name}. {self.business_description}"
        return self.grounding(text, [*(p.text for p in passages), profile])

    async def _passages(self, ctx: TouchContext) -> list[Passage]:
        asked = _asked(ctx)
        if self.knowledge is None or not asked:
            return []
        try:
            return await self.knowledge.search(" ".join(asked), self.top_k)
        except Exception as exc:
            log.warning("follow_up.knowledge_failed", error=type(exc).__name__)
            return []

    async def _draft(self, ctx: TouchContext, passages: Sequence[Passage]) -> str:
        assert self._request is not None
        response = await self._request.generate(self._system_prompt(ctx), self._prompt(ctx, passages))
        if not response.text:
            raise ValueError("empty or blocked answer")
        try:
            return FollowUpDraft.model_validate_json(response.text).text.strip()
        except ValidationError:
            raise ValueError("answer is not the expected JSON") from None

    def _system_prompt(self, ctx: TouchContext) -> str:
        code = (ctx.language or "en").lower().split("-")[0]
        values = {
            "business_name": self.business_name,
            "business_description": self.business_description,
            "language_name": LANGUAGE_NAMES.get(code, ctx.language or "English"),
        }
        try:
            return self.system_prompt.format_map(values)
        except (KeyError, ValueError, IndexError):  # an edited prompt with stray braces: use it as it is
            return self.system_prompt

    @staticmethod
    def _prompt(ctx: TouchContext, passages: Sequence[Passage]) -> str:
        lines = [
            f"Touch {ctx.touch}, strategy: {ctx.strategy.value}.",
            f"Prospect's name: {quoted_name(ctx.name)}. Language: {ctx.language or 'unknown'}.",
            "",
            "Conversation so far (oldest first):",
        ]
        lines += [f"{'Prospect' if d == 'in' else 'Us'}: {t}" for d, t in ctx.history] or ["(nothing recorded)"]
        lines += ["", "Knowledge passages:"]
        lines += [f"[{i}] {p.text}" for i, p in enumerate(passages, 1)] or ["(none: state no facts)"]
        return "\n".join(lines)
