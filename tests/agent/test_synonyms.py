"""Prospects' words for what the catalogue names otherwise reach the right product, in English and Russian."""

from __future__ import annotations

import pytest

from agent_service.domain.text import tokens
from tests.agent.test_offline_engine import ENGINE, KNOWLEDGE, PROFILE, ctx


@pytest.mark.parametrize(
    ("text", "language", "line"),
    [
        (
            "Do you have standing desks? What is the price?",
            "en",
            "LiftDesk Duo height-adjustable desk (160 x 80 cm): 249 000 ₸.",
        ),
        ("Сколько стоят стоячие столы?", "ru", "Стол с регулировкой высоты LiftDesk Duo (160 x 80 см): 249 000 ₸."),
    ],
)
def test_a_standing_desk_question_finds_the_height_adjustable_desk(text: str, language: str, line: str) -> None:
    assert any("LiftDesk" in p.text for p in KNOWLEDGE.lexical_search(text, 4))
    decision = ENGINE.compose(ctx(text, language=language))
    assert line in decision.reply
    assert "Standard 140" not in decision.reply and "Стандарт" not in decision.reply


def test_synonyms_map_to_the_catalogue_terms_on_both_sides() -> None:
    synonyms = PROFILE.synonyms  # the business file's [vocabulary.synonyms]
    assert tokens("standing desks", synonyms) == ["height", "adjustable", "desk"]
    assert tokens("height-adjustable desk", synonyms) == ["height", "adjustable", "desk"]
    assert tokens("стоячих столов", synonyms)[:2] == ["регулировк", "высот"]
    assert tokens("standing desks") == ["stand", "desk"]  # another business: its own words
