"""Totals and discounts computed in code from the catalogue's prices and rules (pure)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_service.domain.quote import PriceList, make_quote, order_in, read_price_list
from tests.agent.conversation_support import sample_knowledge

FURNITURE = sample_knowledge("komfortoffice").price_list
WATER = sample_knowledge("tazasu").price_list


def test_the_price_lists_are_read_from_both_sample_catalogues() -> None:
    furniture = {item.code: item.price for item in FURNITURE.items}
    assert furniture["ErgoPro 300"] == 89_900 and furniture["Basic 100"] == 34_900 and len(furniture) == 10
    assert [(t.percent, t.min_amount) for t in FURNITURE.tiers] == [(Decimal(5), 1_000_000), (Decimal(7), 3_000_000)]
    water = {item.code: item.price for item in WATER.items}
    assert water["AquaPure RO-5"] == 164_500 and water["AquaPure RO-7M"] == 219_000  # its price on the next line
    assert "Trio T-3" in water and water["Trio T-3"] == 39_900  # not the cartridge set "for the Trio T-3"
    assert {item.currency for item in WATER.items} == {"KZT"} and WATER.items[0].separator == ","


def test_a_line_with_a_price_from_or_several_prices_is_no_product_price() -> None:
    prices = read_price_list(
        [
            ("c1", "Free 3D layout of your office for orders from 1 000 000 KZT."),
            ("c1", "Installation of the Trio T-3 costs 8,000 KZT, of the RO-5 15,000 KZT."),
            ("c1", "Nova X2 lamp: 12 000 ₸."),
            ("c1", "Members get 10% off accessories."),  # no order amount or quantity: not a tier
        ]
    )
    assert [(i.code, i.price) for i in prices.items] == [("Nova X2", 12_000)] and prices.tiers == ()


@pytest.mark.parametrize(
    ("text", "earlier", "lines", "subtotal", "percent", "total"),
    [
        ("We need 20 ErgoPro 300 and 20 Standard 140", "", [("ErgoPro 300", 20), ("Standard 140", 20)], 3_096_000, 7,
         2_879_280),
        ("And 14 of them plus 14 ErgoPro 300 chairs?", "How much is the LiftDesk Duo?",
         [("LiftDesk Duo", 14), ("ErgoPro 300", 14)], 4_744_600, 7, 4_412_478),
        ("Нам нужно 30 таких стульев и 2 шкафа Archive 80", "Сколько стоит стул V-20?",
         [("V-20", 30), ("Archive 80", 2)], 746_000, None, 746_000),
        ("How much for 3 V-20 and a Basic 100?", "", [("V-20", 3), ("Basic 100", 1)], 94_600, None, 94_600),
        ("Is there a discount for an order of 4 066 800 tenge?", "", [], 4_066_800, 7, 3_782_124),
    ],
)  # fmt: skip
def test_an_order_is_priced_line_by_line_and_gets_the_best_tier_it_reaches(
    text: str, earlier: str, lines: list[tuple[str, int]], subtotal: int, percent: int | None, total: int
) -> None:
    found, amount = order_in(text, FURNITURE, earlier=earlier)
    assert [(line.item.code, line.quantity) for line in found] == lines
    quote = make_quote(found, FURNITURE, amount)
    assert quote is not None and (quote.subtotal, quote.total) == (subtotal, total)
    assert (quote.tier.percent if quote.tier else None) == percent
    assert quote.money(quote.total).endswith(" ₸")


def test_no_quote_without_a_quantity_or_with_an_unknown_part() -> None:
    assert order_in("How much is the ErgoPro 300?", FURNITURE) == ([], None)
    assert order_in("4 jugs and 8 K-1C cartridges, how much?", WATER) == ([], None)  # what are "jugs"?
    assert order_in("3 RO-5 for 14 people", WATER)[0][0].quantity == 3  # people are not products


def test_amounts_are_written_the_way_the_documents_write_theirs() -> None:
    found, _ = order_in("3 RO-5, total?", WATER)
    quote = make_quote(found, WATER)
    assert (
        quote is not None and quote.money(quote.total) == "478,695 KZT" and quote.money(quote.discount) == "14,805 KZT"
    )


@settings(max_examples=200, deadline=None)
@given(quantity=st.integers(1, 500), code=st.sampled_from([i.code for i in FURNITURE.items]))
def test_the_total_is_the_subtotal_less_the_rounded_discount_of_the_best_tier(quantity: int, code: str) -> None:
    found, _ = order_in(f"{quantity} {code}", FURNITURE)
    quote = make_quote(found, FURNITURE)
    assert quote is not None
    price = next(i.price for i in FURNITURE.items if i.code == code)
    assert quote.subtotal == quantity * price
    reached = [t for t in FURNITURE.tiers if t.min_amount is not None and quote.subtotal >= t.min_amount]
    expected = max((t.percent for t in reached), default=Decimal(0))
    discount = (Decimal(quote.subtotal) * expected / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    assert quote.total == quote.subtotal - int(discount)
    assert 0 <= quote.discount <= quote.subtotal


@given(text=st.text(max_size=200))
def test_reading_an_order_never_fails(text: str) -> None:
    found, amount = order_in(text, FURNITURE, earlier=text)
    make_quote(found, FURNITURE, amount)
    assert make_quote([], PriceList()) is None
