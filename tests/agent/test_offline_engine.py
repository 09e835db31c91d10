"""The offline engine on its own: deterministic rules over the sample catalogue (no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_service.domain.decision import MAX_REPLY
from agent_service.engines.base import HistoryItem, TurnContext
from agent_service.engines.offline import OfflineEngine
from agent_service.knowledge import Passage
from agent_service.knowledge.loader import load_file
from agent_service.prompts import PromptBook
from tests.agent.conversation_support import ROOT, sample_business, sample_knowledge

PROFILE = sample_business()
PROMPTS = PromptBook(ROOT / "prompts", PROFILE)
ENGINE = OfflineEngine(PROMPTS)
KNOWLEDGE = sample_knowledge()
MONDAY_NOON = datetime(2026, 1, 5, 7, 0, tzinfo=UTC)


def ctx(text: str, *, language: str = "en", history: list[HistoryItem] | None = None, **fields: Any) -> TurnContext:
    values: dict[str, Any] = {
        "language": language,
        "spin_stage": "situation",
        "outcome": "open",
        "messages": [text] if text else [],
        "history": history if history is not None else [HistoryItem("out", "reply", "Hello!")],
        "passages": KNOWLEDGE.lexical_search(text, 4) if text else [],
        "profile": PROFILE,
        "now": MONDAY_NOON,
    }
    values.update(fields)
    return TurnContext(**values)


def test_a_price_question_quotes_the_catalogue_line_verbatim_and_names_its_passage() -> None:
    decision = ENGINE.compose(ctx("How much is the LiftDesk Duo?"))
    line = "LiftDesk Duo height-adjustable desk (160 x 80 cm): 249 000 ₸. In stock: 12 pcs."
    assert line in decision.reply and decision.action == "none"
    assert decision.passages_used == ["komfortoffice_catalogue.pdf:p3:c1"]


def test_russian_questions_get_russian_lines() -> None:
    decision = ENGINE.compose(ctx("Сколько стоит стул V-20?", language="ru"))
    assert "Стул для посетителей V-20: 19 900 ₸." in decision.reply and decision.language == "ru"


@pytest.mark.parametrize(
    ("text", "language"),
    [("Do you sell sofas?", "en"), ("Сколько стоит диван?", "ru"), ("Do you have chairs by Herman Miller?", "en")],
)
def test_what_the_documents_do_not_answer_goes_to_a_manager(text: str, language: str) -> None:
    decision = ENGINE.compose(ctx(text, language=language))
    assert decision.reply == PROMPTS.phrase(language, "check_with_manager") and decision.action == "handoff"
    assert decision.handoff_reason


@pytest.mark.parametrize(
    ("text", "outcome", "action", "phrase"),
    [
        ("Can I talk to a manager please?", "open", "handoff", "handoff_requested"),
        ("No thanks, not interested", "declined", "none", "declined"),
        ("Maybe later, I'll think about it", "uncertain", "none", "maybe"),
        ("Please call me tomorrow at 11", "agreed", "schedule_call", "call_confirm"),
    ],
)
def test_intents_decide_outcome_and_action(text: str, outcome: str, action: str, phrase: str) -> None:
    decision = ENGINE.compose(ctx(text))
    assert (decision.outcome, decision.action) == (outcome, action)
    assert decision.reply.startswith(PROMPTS.phrase("en", phrase))


def test_a_call_request_carries_the_local_time_and_asks_for_one_when_missing() -> None:
    timed = ENGINE.compose(ctx("Call me tomorrow at 11"))
    assert timed.proposed_call_time is not None and timed.proposed_call_time.isoformat() == "2026-01-06T11:00:00+05:00"
    untimed = ENGINE.compose(ctx("Позвоните мне", language="ru"))
    assert untimed.proposed_call_time is None and PROMPTS.phrase("ru", "call_ask_time") in untimed.reply


def test_yes_to_the_call_proposal_schedules_a_call() -> None:
    history = [HistoryItem("out", "reply", PROMPTS.phrase("en", "propose_call"))]
    decision = ENGINE.compose(ctx("Yes, sure", history=history, spin_stage="need_payoff"))
    assert (decision.action, decision.outcome) == ("schedule_call", "agreed")


def test_spin_moves_one_stage_when_the_prospect_answers_a_question() -> None:
    situation = PROFILE.spin_questions("en", "situation")[0]
    history = [HistoryItem("out", "reply", f"Hello! {situation}")]
    decision = ENGINE.compose(ctx("We are twelve people in a new office", history=history))
    assert decision.spin_stage == "problem" and PROFILE.spin_questions("en", "problem")[0] in decision.reply


def test_the_first_reply_greets_by_name_and_asks_a_situation_question() -> None:
    decision = ENGINE.compose(ctx("Hi", history=[], contact_name="Aigerim"))
    assert decision.reply.startswith("Hello, Aigerim! Thank you for contacting KomfortOffice.")
    assert PROFILE.spin_questions("en", "situation")[0] in decision.reply
    odd_name = ENGINE.compose(ctx("Hi", history=[], contact_name="Deals 24/7"))
    assert "24" not in odd_name.reply  # a name with digits is not repeated (the guard would flag it)


def test_an_untranscribed_voice_note_asks_for_text_and_kazakh_gets_kazakh() -> None:
    voice = ENGINE.compose(ctx("", voice_untranscribed=True, language="kk"))
    assert voice.reply == PROMPTS.phrase("kk", "voice_unavailable")
    assert "Сәлеметсіз бе" in ENGINE.compose(ctx("Сәлеметсіз бе", language="kk", history=[])).reply


@settings(max_examples=80, deadline=None)
@given(text=st.text(min_size=1, max_size=120))
def test_any_message_gets_a_valid_deterministic_decision(text: str) -> None:
    first, second = ENGINE.compose(ctx(text)), ENGINE.compose(ctx(text))
    assert first == second and first.reply.strip()


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=3000), suffix=st.sampled_from([".pdf", ".md", ".txt"]))
def test_the_loader_never_raises_on_arbitrary_bytes(data: bytes, suffix: str, tmp_path_factory: Any) -> None:
    path = Path(tmp_path_factory.mktemp("kb")) / f"file{suffix}"
    path.write_bytes(b"%PDF-1.4\n" + data if suffix == ".pdf" else data)
    document, problem = load_file(path, path.name)
    assert document is not None or problem is not None


def test_long_document_lines_are_cut_at_a_sentence_within_the_reply_limit() -> None:
    long_line = "The Titan desk costs 99 000 ₸. " + " ".join(f"Titan fact number {i} is long." for i in range(200))
    passage = Passage("big.md", 1, "big.md:p1:c1", long_line, 1.0)
    decision = ENGINE.compose(ctx("How much is the Titan desk?", passages=[passage]))
    assert len(decision.reply) <= MAX_REPLY and "99 000 ₸" in decision.reply and decision.reply.endswith(".")
