"""The sales agent's turn (no database): moderation, retrieval, the engine, and the grounding guard.

A fake model that invents a discount or a price is caught by the guard every time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_service.domain.call_slots import CallRules
from agent_service.domain.contact import ContactView
from agent_service.domain.grounding import extract_claims
from agent_service.domain.moderation import Classification
from agent_service.domain.working_hours import WorkingHours
from agent_service.engines.base import EngineResult, TurnContext
from agent_service.prompts import PromptBook
from agent_service.sales import InboundText, SalesAgent, TurnInput
from tests.agent.conversation_support import ROOT, ScriptedEngine, echo_decision, sample_business, sample_knowledge

PROFILE = sample_business()
PROMPTS = PromptBook(ROOT / "prompts", PROFILE)
KNOWLEDGE = sample_knowledge()
CATALOGUE_TEXT = "\n".join(p.text for p in KNOWLEDGE.lexical_search("price discount delivery ₸ %", 50))


def agent_with(engine: Any) -> SalesAgent:
    return SalesAgent(engine=engine, knowledge=KNOWLEDGE, prompts=PROMPTS, profile=PROFILE)


def turn(text: str, **contact: Any) -> TurnInput:
    base: dict[str, Any] = {"client_status": "client", "classified_by": "moderator",
                            "classification_confidence": 0.9, "classified_turns": 1}  # fmt: skip
    base.update(contact)
    view = ContactView(id=1, phone="+77010000001", **base)
    return TurnInput(contact=view, messages=[InboundText(text)], history=[], first_texts=[text], now=datetime.now(UTC))


def inventing(reply: str) -> ScriptedEngine:
    async def respond(context: TurnContext) -> Any:
        return echo_decision(context, reply, passages_used=[p.chunk_id for p in context.passages])

    return ScriptedEngine(respond)


INVENTIONS = [
    "Good news: the ErgoPro 300 is 79 900 ₸ this week only!",
    "For you the ErgoPro 300 costs 85,000 tenge.",
    "I can give you a 10% discount on the whole order.",
    "Мы дадим вам скидку 12% на все кресла.",
    "Специально для вас цена 80 000 тг.",
    "The LiftDesk Duo is 199 000 KZT if you order today.",
    "We have 300 ErgoPro 300 chairs in stock right now.",
    "Delivery will arrive on Thursday.",
    "Your chairs will be delivered on 15 March.",
    "Доставим завтра, подарок в комплекте.",
]


@pytest.mark.parametrize("invented", INVENTIONS)
async def test_an_invented_price_discount_stock_or_promise_never_leaves(invented: str) -> None:
    plan = await agent_with(inventing(invented)).plan(turn("How much is the ErgoPro 300 and is there a discount?"))
    safe = PROMPTS.phrase(plan.language, "check_with_manager")
    assert plan.reply == safe and plan.ungrounded
    assert plan.decision is not None and plan.decision.action == "handoff"
    assert plan.contact_values["needs_human"] is True
    assert "documents do not" in plan.contact_values["needs_human_reason"]
    assert plan.knowledge_refs == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    amount=st.integers(min_value=1_000, max_value=2_000_000).filter(
        lambda a: f"{a:,}".replace(",", " ") + " ₸" not in CATALOGUE_TEXT
    ),
    percent=st.integers(min_value=1, max_value=90).filter(lambda p: p not in (5, 7, 50)),
    template=st.sampled_from(
        [
            "Only {amount} ₸ for you, and {percent}% off.",
            "Цена {amount} тг, скидка {percent}%.",
            "Price {amount} KZT ({percent}% discount)",
        ]
    ),
)
async def test_any_invented_amount_or_percentage_is_caught(amount: int, percent: int, template: str) -> None:
    invented = template.format(amount=f"{amount:,}".replace(",", " "), percent=percent)
    plan = await agent_with(inventing(invented)).plan(turn("Сколько стоит кресло ErgoPro 300?"))
    assert plan.reply == PROMPTS.phrase("ru", "check_with_manager")
    assert not any(c.kind in ("money", "percent") for c in extract_claims(plan.reply or ""))


async def test_a_grounded_model_reply_passes_with_its_passages() -> None:
    reply = "The ErgoPro 300 costs 89 900 ₸, and orders from 1 000 000 ₸ get a 5% volume discount."
    plan = await agent_with(inventing(reply)).plan(turn("How much is the ErgoPro 300? Any discount?"))
    assert plan.reply == reply and plan.ungrounded == []
    assert "needs_human" not in plan.contact_values
    assert {ref["doc"] for ref in plan.knowledge_refs} == {"komfortoffice_catalogue.pdf"}


async def test_a_new_contact_is_classified_in_the_same_engine_call_and_a_confident_non_client_gets_no_reply() -> None:
    engine = inventing("hello")
    plan = await agent_with(engine).plan(
        turn("Earn $500 a day with crypto, click this link bit.ly/x", client_status="unknown", classified_by=None)
    )
    assert plan.reply is None and len(engine.calls) == 1 and engine.calls[0].classify
    assert plan.contact_values["client_status"] == "non_client"
    assert plan.contact_values["client_category"] == "spam"
    known = await agent_with(engine).plan(turn("How much is the ErgoPro 300?"))  # classified already: no verdict asked
    assert known.reply and not engine.calls[-1].classify and known.classification is None


async def test_the_engines_verdict_wins_over_the_rules() -> None:
    class Classifying(ScriptedEngine):
        async def decide(self, context: TurnContext) -> EngineResult:
            result = await super().decide(context)
            verdict = Classification("non_client", "supplier", "offers wholesale chairs", 0.9)
            return EngineResult(result.decision, model="m", classification=verdict if context.classify else None)

    plan = await agent_with(Classifying(inventing("hi").respond)).plan(
        turn("How much are your chairs?", client_status="unknown", classified_by=None)
    )
    assert plan.reply is None and plan.classification is not None and plan.classification.category == "supplier"


@pytest.mark.parametrize(
    ("text", "total"),
    [
        ("We need 20 ErgoPro 300 and 20 Standard 140, what's the total with the discount?", "2 879 280 ₸"),
        ("Is there a discount if we order for 4 066 800 tenge?", "3 782 124 ₸"),
        ("Сколько будет 2 шкафа Archive 80?", "149 000 ₸"),
    ],
)
async def test_totals_and_discounts_are_computed_from_the_catalogue_and_pass_the_guard(text: str, total: str) -> None:
    seen: list[TurnContext] = []

    async def quoting(context: TurnContext) -> Any:
        seen.append(context)
        return echo_decision(context, " ".join(context.quote))

    plan = await agent_with(ScriptedEngine(quoting)).plan(turn(text))
    assert total in plan.reply and plan.ungrounded == [] and plan.computed == seen[0].quote
    assert {ref["doc"] for ref in plan.knowledge_refs} == {"komfortoffice_catalogue.pdf"}


async def test_a_call_at_a_time_that_cannot_be_booked_is_no_agreement_yet() -> None:
    rules = CallRules(WorkingHours(ZoneInfo("Asia/Almaty")))
    monday_noon = datetime(2026, 1, 5, 7, 0, tzinfo=UTC)

    async def call_at(hour: int) -> Any:
        async def respond(context: TurnContext) -> Any:
            when = datetime(2026, 1, 6, hour, 0, tzinfo=ZoneInfo("Asia/Almaty"))
            return echo_decision(context, "Let's talk.", action="schedule_call", outcome="agreed",
                                 proposed_call_time=when)  # fmt: skip

        agent = SalesAgent(engine=ScriptedEngine(respond), knowledge=KNOWLEDGE, prompts=PROMPTS, profile=PROFILE,
                           call_rules=rules)  # fmt: skip
        return await agent.plan(TurnInput(turn("x").contact, [InboundText("call me")], [], [], monday_noon))

    assert (await call_at(11)).contact_values["outcome"] == "agreed"
    late = await call_at(21)  # outside working hours: slots are proposed, nothing is agreed yet
    assert late.contact_values["outcome"] == "open" and late.decision is not None
    assert late.decision.action == "schedule_call"


async def test_a_model_failure_is_a_fallback_reply_that_flags_a_human() -> None:
    class Failing(ScriptedEngine):
        async def decide(self, context: TurnContext) -> EngineResult:
            decision = echo_decision(context, PROMPTS.phrase(context.language, "fallback"))
            return EngineResult(decision, model="m", fallback=True, error="api error 503")

    plan = await agent_with(Failing(inventing("x").respond)).plan(turn("Hi, how much is a desk?", spin_stage="problem"))
    assert plan.reply == PROMPTS.phrase("en", "fallback")
    assert plan.contact_values["needs_human"] is True and "503" in plan.contact_values["needs_human_reason"]
    assert plan.contact_values["spin_stage"] == "problem"  # nothing uncertain written
