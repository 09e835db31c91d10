"""The grounding guard: numbers, prices, percentages, dates and promise words must come from the sources."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_service.domain.grounding import extract_claims, ungrounded_claims

CATALOGUE = [
    "ErgoPro 300 ergonomic office chair: 89 900 ₸. In stock: 25 pcs.",
    "LiftDesk Duo height-adjustable desk (160 x 80 cm): 249 000 ₸. In stock: 12 pcs.",
    "Volume discount: 5% for orders from 1 000 000 ₸, 7% for orders from 3 000 000 ₸.",
    "Delivery in Almaty is free for orders from 300 000 ₸; smaller orders cost 5 000 ₸.",
    "Showroom hours: Monday to Friday 10:00-18:00, Saturday 11:00-16:00.",
    "Prices are valid until 31 December 2026.",
]


@pytest.mark.parametrize(
    "reply",
    [
        "The ErgoPro 300 costs 89 900 ₸ and we have 25 in stock.",
        "It is 89,900 tenge.",
        "It is 89900 KZT.",
        "Цена 89 900 тг.",
        "Price: 89.900 ₸",
        "249 000 ₸ for the LiftDesk Duo (160 x 80 cm).",
        "From 1,000,000 KZT you get 5%, from 3 000 000 ₸ 7% off.",
        "Delivery is free from 300 000 ₸, otherwise 5 000 ₸.",
        "Our showroom is open Monday to Friday, 10:00-18:00.",
        "These prices are valid until 31 December.",
        "Feel free to ask anything!",
        "How many people work in your office?",
    ],
)
def test_replies_that_only_repeat_the_catalogue_pass(reply: str) -> None:
    assert ungrounded_claims(reply, CATALOGUE) == []


@pytest.mark.parametrize(
    ("reply", "claim"),
    [
        ("Only 79 900 ₸ this week!", "79 900"),
        ("The ErgoPro 300 is 89 000 ₸.", "89 000"),
        ("I can give you a 10% discount.", "10"),
        ("Скидка 15% для вас.", "15"),
        ("Special price: 85,000 tenge.", "85,000"),
        ("It costs 25 ₸.", "25"),  # 25 is a stock figure in the catalogue, not a price
        ("We will deliver by 25.12.", "25.12"),
        ("Ready on Thursday.", "Thursday"),
        ("We have 40 of them in stock.", "40"),
        ("We have 300 ErgoPro 300 chairs in stock.", "300"),  # a model number is not a stock figure
    ],
)
def test_invented_numbers_dates_and_promises_are_caught(reply: str, claim: str) -> None:
    assert claim in ungrounded_claims(reply, CATALOGUE)


@pytest.mark.parametrize(
    ("reply", "claim"),
    [("Free assembly for you!", "Free"), ("Акция: подарок к заказу", "Акция"), ("Есть скидка 5%", "скидка")],
)
def test_promise_words_need_the_documents_to_mention_them(reply: str, claim: str) -> None:
    sources = ["ErgoPro 300 ergonomic office chair: 89 900 ₸. Assembly: 5% of the order value."]
    assert claim in ungrounded_claims(reply, sources)
    assert ungrounded_claims("Assembly costs 5% of the order.", sources) == []


def test_a_percentage_needs_a_percentage_and_a_price_needs_a_price() -> None:
    assert ungrounded_claims("Stock: 5 pcs", ["Discount 5%"]) == []  # a plain number may match any number
    assert ungrounded_claims("You get 25% off", ["In stock: 25 pcs"]) == ["25"]
    assert ungrounded_claims("It costs 12 ₸", ["Desk 120 x 12 cm"]) == ["12"]
    # A price list that puts the currency in its header makes its numbers prices.
    assert ungrounded_claims("Desk B: 12 500 ₸", ["Price list (KZT): Desk B 12500"]) == []


def test_the_prospect_may_ground_times_and_dates_but_not_prices() -> None:
    prospect = ["Call me tomorrow at 11, and can I get 50% off?"]
    assert ungrounded_claims("Sure, I'll call you tomorrow at 11:00.", CATALOGUE, prospect_texts=prospect) == []
    assert ungrounded_claims("Yes, 50% off is fine.", CATALOGUE, prospect_texts=prospect) == ["50"]


def test_claims_are_listed_in_reply_order_with_their_kind() -> None:
    claims = extract_claims("10% off, only 79 900 ₸, tomorrow at 11:00, 3 chairs")
    assert [(c.text, c.kind) for c in claims] == [
        ("10", "percent"),
        ("79 900", "money"),
        ("tomorrow", "date"),
        ("11:00", "time"),
        ("3", "number"),
    ]


def _formats(value: int) -> list[str]:
    grouped = f"{value:,}"
    return [str(value), grouped, grouped.replace(",", " "), grouped.replace(",", "\u00a0"), grouped.replace(",", ".")]


@settings(max_examples=200, deadline=None)
@given(value=st.integers(min_value=1000, max_value=99_999_999), style=st.integers(0, 4), other=st.integers(0, 4))
def test_a_price_matches_itself_in_any_thousands_format(value: int, style: int, other: int) -> None:
    source = f"Model X: {_formats(value)[style]} ₸. In stock."
    reply = f"Model X costs {_formats(value)[other]} ₸."
    assert ungrounded_claims(reply, [source]) == []


@settings(max_examples=200, deadline=None)
@given(value=st.integers(min_value=1000, max_value=9_999_999), delta=st.integers(min_value=1, max_value=999))
def test_a_different_price_is_always_caught(value: int, delta: int) -> None:
    source = f"Model X: {value:,} ₸".replace(",", " ")
    invented = value - delta if value - delta >= 1000 else value + delta
    reply = f"Model X costs {invented:,} KZT now".replace(",", " ")
    assert ungrounded_claims(reply, [source]) != []


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=300))
def test_any_text_is_checked_without_crashing(text: str) -> None:
    assert isinstance(ungrounded_claims(text, CATALOGUE, prospect_texts=[text]), list)
