"""The moderator's rules and what a verdict means for a contact (pure)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from agent_service.domain.contact import ContactView
from agent_service.domain.moderation import Classification, ModerationPolicy, classification_update, classify_rules

POLICY = ModerationPolicy(min_confidence=0.7, max_turns=3)


@pytest.mark.parametrize(
    ("texts", "category"),
    [
        (["Earn $500 a day with crypto! Click this link bit.ly/x"], "spam"),
        (["Здравствуйте, у вас есть вакансии? Отправлю резюме"], "job_seeker"),
        (
            ["Good day! We are a manufacturer and we offer our services to your company. Commercial offer attached"],
            "supplier",
        ),
        (["Мама, я сегодня поздно, люблю тебя"], "personal"),
        (["Sorry, wrong number"], "wrong_number"),
    ],
)
def test_clear_non_clients_are_recognised_with_confidence(texts: list[str], category: str) -> None:
    verdict = classify_rules(texts)
    assert (verdict.status, verdict.category) == ("non_client", category)
    assert verdict.confidence >= 0.7 and verdict.reason


@pytest.mark.parametrize(
    "text", ["How much is the ErgoPro 300 chair?", "Сколько стоит доставка стола?", "I want to order desks"]
)
def test_buying_questions_make_a_confident_client(text: str) -> None:
    verdict = classify_rules([text])
    assert (verdict.status, verdict.category) == ("client", "prospect") and verdict.confidence >= 0.7


def test_without_a_signal_a_contact_is_an_unsure_prospect_and_gets_answered() -> None:
    verdict = classify_rules(["hi"])
    assert verdict.status == "client" and verdict.confidence < 0.7
    assert POLICY.answers_as_client(verdict)
    assert POLICY.answers_as_client(Classification("non_client", "spam", "?", 0.5))
    assert not POLICY.answers_as_client(Classification("non_client", "spam", "?", 0.9))


def contact(**fields: Any) -> ContactView:
    return ContactView(id=1, phone="+77010000001", **fields)


def test_classification_happens_first_and_again_while_unsure_up_to_the_limit() -> None:
    assert POLICY.needs_classification(contact())
    unsure = contact(client_status="client", classified_by="moderator", classification_confidence=0.5)
    assert POLICY.needs_classification(replace(unsure, classified_turns=2))
    assert not POLICY.needs_classification(replace(unsure, classified_turns=3))
    assert not POLICY.needs_classification(replace(unsure, classification_confidence=0.9, classified_turns=1))


def test_a_managers_classification_is_final() -> None:
    manager = contact(client_status="client", classified_by="manager", classification_confidence=1.0)
    assert not POLICY.needs_classification(manager)
    assert classification_update(manager, Classification("non_client", "spam", "x", 0.99)) == {}
    assert POLICY.inbound_status(manager) == "pending"
    held = replace(manager, owner="human")
    assert POLICY.inbound_status(held) == "silent"  # recorded only, unless the AI drafts for the manager
    assert ModerationPolicy(drafts_when_held=True).inbound_status(held) == "pending"
    assert POLICY.is_settled_non_client(replace(manager, client_status="non_client"))


def test_the_update_counts_turns_and_records_the_reason() -> None:
    update = classification_update(contact(classified_turns=1), Classification("client", "prospect", "asks", 0.8))
    assert update["classified_by"] == "moderator" and update["classified_turns"] == 2
    assert update["client_status"] == "client" and update["classification_reason"] == "asks"


def test_who_gets_silence() -> None:
    assert POLICY.inbound_status(contact(owner="human")) == "silent"
    spam = contact(
        client_status="non_client", classified_by="moderator", classification_confidence=0.9, classified_turns=1
    )
    assert POLICY.inbound_status(spam) == "silent"
    assert POLICY.inbound_status(replace(spam, classification_confidence=0.5)) == "pending"  # may be reclassified
    assert POLICY.inbound_status(contact()) == "pending"


def test_a_turns_outcome_follows_the_contact_as_it_is_when_the_result_is_written() -> None:
    from agent_service.domain.turn_outcome import TurnOutcome, turn_outcome

    prospect = contact(client_status="client", classified_by="moderator", classification_confidence=0.9)
    held = replace(prospect, owner="human")
    spam = replace(prospect, client_status="non_client", classified_by="manager")
    assert turn_outcome(prospect, planned=True, has_reply=True, policy=POLICY) is TurnOutcome.REPLIED
    assert turn_outcome(held, planned=True, has_reply=True, policy=POLICY) is TurnOutcome.SUPPRESSED  # a takeover won
    assert turn_outcome(spam, planned=True, has_reply=True, policy=POLICY) is TurnOutcome.SUPPRESSED  # a verdict won
    assert turn_outcome(prospect, planned=True, has_reply=False, policy=POLICY) is TurnOutcome.NON_CLIENT
    assert turn_outcome(held, planned=False, has_reply=False, policy=POLICY) is TurnOutcome.SILENT
