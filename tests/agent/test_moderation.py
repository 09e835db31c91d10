"""The moderator's rules and what a verdict means for a contact (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from agent_service.domain.moderation import (
    Classification,
    answers_as_client,
    classification_update,
    classify_rules,
    inbound_status,
    is_settled_non_client,
    needs_classification,
)

LIMITS = {"min_confidence": 0.7, "max_turns": 3}


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
    assert answers_as_client(verdict, min_confidence=0.7)
    assert answers_as_client(Classification("non_client", "spam", "?", 0.5), min_confidence=0.7)
    assert not answers_as_client(Classification("non_client", "spam", "?", 0.9), min_confidence=0.7)


def contact(**fields: Any) -> dict[str, Any]:
    base = {
        "client_status": "unknown",
        "classified_by": None,
        "classification_confidence": None,
        "classified_turns": 0,
        "owner": "ai",
    }
    base.update(fields)
    return base


def test_classification_happens_first_and_again_while_unsure_up_to_the_limit() -> None:
    assert needs_classification(contact(), **LIMITS)
    unsure = contact(client_status="client", classified_by="moderator", classification_confidence=0.5)
    assert needs_classification({**unsure, "classified_turns": 2}, **LIMITS)
    assert not needs_classification({**unsure, "classified_turns": 3}, **LIMITS)
    assert not needs_classification({**unsure, "classification_confidence": 0.9, "classified_turns": 1}, **LIMITS)


def test_a_managers_classification_is_final() -> None:
    manager = contact(client_status="client", classified_by="manager", classification_confidence=1.0)
    assert not needs_classification(manager, **LIMITS)
    assert classification_update(manager, Classification("non_client", "spam", "x", 0.99)) == {}
    assert inbound_status(manager, **LIMITS) == "pending"
    assert is_settled_non_client({**manager, "client_status": "non_client"}, **LIMITS)


def test_the_update_counts_turns_and_records_the_reason() -> None:
    update = classification_update(contact(classified_turns=1), Classification("client", "prospect", "asks", 0.8))
    assert update["classified_by"] == "moderator" and update["classified_turns"] == 2
    assert update["client_status"] == "client" and update["classification_reason"] == "asks"


def test_who_gets_silence() -> None:
    assert inbound_status(contact(owner="human"), **LIMITS) == "silent"
    spam = contact(
        client_status="non_client", classified_by="moderator", classification_confidence=0.9, classified_turns=1
    )
    assert inbound_status(spam, **LIMITS) == "silent"
    assert inbound_status({**spam, "classification_confidence": 0.5}, **LIMITS) == "pending"  # may be reclassified
    assert inbound_status(contact(), **LIMITS) == "pending"
