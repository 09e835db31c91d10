"""Totals and discounts computed from the catalogue, never by a model (pure).

:func:`read_price_list` reads the documents' price lines -- a line naming one product by its
model code with one price ("ErgoPro 300 ergonomic office chair: 89 900 ₸", "AquaPure RO-5 ...
Price: 164,500 KZT") -- and their discount rules ("Volume discount: 5% for orders from
1 000 000 ₸, 7% for orders from 3 000 000 ₸"; "10% from 5 pcs"). :func:`order_in` finds what
a prospect wants priced ("20 ErgoPro 300 and 20 Standard 140", "заказ на 4 066 800 тенге") and
:func:`make_quote` prices it: each line, the subtotal, the best discount tier it reaches and the
total, in whole currency units (a discount is rounded half up). The agent states these figures
as computed facts; the grounding guard accepts them because they come from here.

What is not read: a price "from" an amount ("installation from 9,000 KZT"), a line with several
prices, a product without a model code (a letter-digit code such as ``RO-5``, ``V-20``, ``S1``;
or a CamelCase name such as ``LiftDesk``), an accessory named after another product ("cartridge
set for the Trio T-3"), and discounts limited to some products or customers (a rule without an
order amount or quantity is not applied).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from agent_service.domain.products import mention_pattern, product_of
from agent_service.domain.text import stem

_I = re.IGNORECASE
_CURRENCY = r"(₸|kzt\b|тг\b\.?|тенге|теңге|tenge\b)"
_AMOUNT = r"(\d{1,3}(?:[ \u00a0\u202f,]\d{3})+|\d+)"
MONEY = re.compile(rf"(?<![\d.,]){_AMOUNT}\s?{_CURRENCY}", _I)
_FROM_BEFORE = re.compile(r"(?:\bfrom|\bот|\bover|\babove|\bup to|\bдо|\bсвыше|\bminimum|\bминимум)\s*$", _I)
_PRICE_LABEL = re.compile(r"^(?:price|цена|стоимость|баға)\s*:", _I)
_DISCOUNT_WORDS = re.compile(r"discount|скидк|жеңілдік", _I)
_PERCENT = re.compile(r"(\d{1,2}(?:[.,]\d)?)\s?%")
_QUANTITY_RULE = re.compile(
    r"(\d{1,4})\s?(?:or more|and more|\+|pcs|pieces|items|units|шт|штук|единиц|и более|дана)", _I
)
_PREPOSITION_BEFORE = re.compile(r"(?:\bfor|\bдля|\bк)\s+(?:the\s+)?$", _I)
_TOTAL_WORDS = re.compile(
    r"\btotal\b|altogether|in total|come to|all together|итого|всего|в сумме|общ\w* сумм|сколько (?:будет|выйдет)|"
    r"барлығы|жалпы|discount|скидк|жеңілдік",
    _I,
)
_ORDER_AMOUNT = re.compile(rf"(?:order|заказ\w*|тапсырыс)\D{{0,30}}?{_AMOUNT}\s?{_CURRENCY}", _I)
_WORD_ONE = re.compile(r"\b(?:a|an|one|один|одну|одно|одна|бір)\s+$", _I)


@dataclass(frozen=True)
class PriceItem:
    code: str  # the model code as the documents write it: "ErgoPro 300"
    price: int  # whole currency units
    currency: str  # as written after the price: "₸", "KZT"
    separator: str  # the thousands separator the documents use: " " or ","
    source: str  # the chunk the line comes from
    aliases: tuple[str, ...] = ()  # other ways to name it: "RO-5" for "AquaPure RO-5"


@dataclass(frozen=True)
class DiscountTier:
    percent: Decimal
    min_amount: int | None  # an order of at least this much
    min_quantity: int | None  # or at least this many items
    source: str


@dataclass(frozen=True)
class PriceList:
    items: tuple[PriceItem, ...] = ()
    tiers: tuple[DiscountTier, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.items or self.tiers)


@dataclass(frozen=True)
class OrderLine:
    item: PriceItem
    quantity: int

    @property
    def amount(self) -> int:
        return self.item.price * self.quantity


@dataclass(frozen=True)
class Quote:
    lines: tuple[OrderLine, ...]
    subtotal: int
    tier: DiscountTier | None
    discount: int
    total: int
    currency: str
    separator: str
    sources: tuple[str, ...]

    def money(self, amount: int) -> str:
        """An amount written the way the documents write theirs ("1 798 000 ₸", "493,500 KZT")."""
        return f"{amount:,}".replace(",", self.separator) + f" {self.currency}"


def _value(amount: str) -> int:
    return int(re.sub(r"[ \u00a0\u202f,]", "", amount))


def _separator(amount: str) -> str:
    found = re.search(r"[ \u00a0\u202f,]", amount)
    return " " if found is None or found.group(0) != "," else ","


def read_price_list(chunks: Iterable[tuple[str, str]]) -> PriceList:
    """Price lines and discount tiers of the documents (``(chunk id, text)`` pairs)."""
    items: dict[str, PriceItem] = {}
    conflicting: set[str] = set()
    tiers: dict[tuple[Decimal, int | None, int | None], DiscountTier] = {}
    for chunk_id, text in chunks:
        previous = ""
        for line in (raw.strip() for raw in text.splitlines()):
            if not line:
                continue
            if _DISCOUNT_WORDS.search(line):
                for tier in _tiers(line, chunk_id):
                    tiers.setdefault((tier.percent, tier.min_amount, tier.min_quantity), tier)
            found = _item(line, previous, chunk_id)
            previous = line
            if found is None:
                continue
            key = (found.aliases[0] if found.aliases else found.code).lower()  # "K-1C" whatever the line calls it
            known = items.get(key)
            if known is not None and known.price != found.price:
                conflicting.add(key)
            items.setdefault(key, found)
    kept = tuple(item for key, item in items.items() if key not in conflicting)
    return PriceList(kept, tuple(sorted(tiers.values(), key=lambda t: t.percent)))


def _item(line: str, previous: str, chunk_id: str) -> PriceItem | None:
    amounts = list(MONEY.finditer(line))
    if len(amounts) != 1:
        return None
    money = amounts[0]
    before = line[: money.start()]
    if _FROM_BEFORE.search(before):
        return None
    named = product_of(before)
    if named is None and _PRICE_LABEL.match(line):  # "Price: 219,000 KZT" under the product's own line
        named = product_of(previous) if not MONEY.search(previous) else None
    if named is None:
        return None
    code, aliases = named
    currency = money.group(2)
    return PriceItem(code, _value(money.group(1)), currency, _separator(money.group(1)), chunk_id, aliases)


def _tiers(line: str, chunk_id: str) -> list[DiscountTier]:
    out = []
    for part in re.split(r"[,;]\s+|\s+(?:and|и|және)\s+", line):
        percent = _PERCENT.search(part)
        if percent is None:
            continue
        money = MONEY.search(part)
        quantity = _QUANTITY_RULE.search(part)
        if money is not None:
            out.append(
                DiscountTier(Decimal(percent.group(1).replace(",", ".")), _value(money.group(1)), None, chunk_id)
            )
        elif quantity is not None:
            out.append(
                DiscountTier(Decimal(percent.group(1).replace(",", ".")), None, int(quantity.group(1)), chunk_id)
            )
    return out


# ---------------------------------------------------------------- what the prospect wants priced
def _mention(item: PriceItem) -> re.Pattern[str]:
    return mention_pattern(item.code, *item.aliases)


_QUANTITY_BEFORE = re.compile(r"(\d{1,4})\s*(?:x|×|pcs\.?|шт\.?|штук|дана)?\s*(?:[^\W\d]+\s+){0,2}$", _I)
_QUANTITY_AFTER = re.compile(r"^\s*(?:[:(-]|x|×|—)?\s*(\d{1,4})\s*(?:x|×|pcs|pieces|шт|штук|дана)\b", _I)
# A quantity of something named before: "14 of them", "30 таких стульев", "4 jugs".
_LOOSE_QUANTITY = re.compile(
    r"(?<![\d.,])(\d{1,4})\s+(?:(?:of (?:those|them|these)|таких|этих|их)\b\s*)?([^\W\d]{3,})?", _I
)
_REFERENCE = re.compile(r"of (?:those|them|these)|таких|этих|\bих\b", _I)
# Counted things that are not products ("for 14 people", "на 8 человек", "in 2 days").
_NOT_PRODUCTS = re.compile(
    r"^(?:people|persons?|employees|staff|workplaces|seats|rooms|offices|days|weeks|months|years|hours|minutes|percent|"
    r"человек|чел|сотрудник\w*|мест\w*|рабочих|дн\w+|недел\w*|месяц\w*|лет|год\w*|час\w*|минут\w*|процент\w*|"
    r"адам|қызметкер\w*|күн\w*|ай|жыл\w*|сағат\w*)$",
    _I,
)


def _mentions(text: str, price_list: PriceList) -> list[tuple[re.Match[str], PriceItem]]:
    found: list[tuple[re.Match[str], PriceItem]] = []
    for item in price_list.items:
        for match in _mention(item).finditer(text):
            if _PREPOSITION_BEFORE.search(text[: match.start()]):
                continue  # "cartridges for the RO-5": not the RO-5 itself
            if not any(m.start() < match.end() and match.start() < m.end() for m, _ in found):
                found.append((match, item))
    return found


def _referred(noun: str | None, referring: bool, earlier: str, price_list: PriceList) -> PriceItem | None:
    """The product an earlier message named that "those" or a noun ("стульев", "jugs") stands for."""
    named = _mentions(earlier, price_list)
    if noun:
        key = stem(noun.lower())[:4]
        near = [
            item
            for match, item in named
            if any(
                stem(w.lower()).startswith(key)
                for w in re.findall(r"[^\W\d]+", earlier[max(0, match.start() - 30) : match.end() + 30])
            )
        ]
        if len({item.code for item in near}) == 1:
            return near[0]
    if (referring or noun is None) and len({item.code for _, item in named}) == 1:
        return named[0][1]
    return None


def order_in(text: str, price_list: PriceList, *, earlier: str = "") -> tuple[list[OrderLine], int | None]:
    """What the message asks to be priced: product lines with quantities, or an order amount.

    Products are named by their model code; a quantity may also point at a product the prospect
    named before ("14 of them", "30 таких стульев", "4 jugs" after "the Kristal jug"). Only when
    at least one quantity is written does it count as an order; a product named without a
    number then counts once ("3 V-20 and a Basic 100").
    """
    found: list[tuple[int, PriceItem, int | None]] = []
    used: list[tuple[int, int]] = []
    mentions = sorted(_mentions(text, price_list), key=lambda pair: pair[0].start())
    for index, (match, item) in enumerate(mentions):
        previous_end = mentions[index - 1][0].end() if index else 0
        window = max(previous_end, match.start() - 40)
        before = _QUANTITY_BEFORE.search(text[window : match.start()])
        after = _QUANTITY_AFTER.search(text[match.end() : match.end() + 20])
        one = _WORD_ONE.search(text[max(previous_end, match.start() - 8) : match.start()])
        quantity = None
        if before:
            quantity = int(before.group(1))
            used.append((window + before.start(1), window + before.end(1)))
        elif after:
            quantity = int(after.group(1))
            used.append((match.end() + after.start(1), match.end() + after.end(1)))
        elif one:
            quantity = 1
        used.append(match.span())
        found.append((match.start(), item, quantity))
    if found or earlier:
        for loose in _LOOSE_QUANTITY.finditer(text):
            if any(a < loose.end(1) and loose.start(1) < b for a, b in used):
                continue
            noun = loose.group(2)
            if noun and _NOT_PRODUCTS.match(noun):
                continue
            referred = (
                _referred(noun, bool(_REFERENCE.search(loose.group(0))), earlier, price_list) if earlier else None
            )
            if referred is None and noun and found:
                return [], None  # "4 jugs and 8 K-1C": part of the order is unknown, a total would be wrong
            if referred is not None and all(referred != known for _, known, _ in found):
                found.append((loose.start(), referred, int(loose.group(1))))
    if any(q for _, _, q in found):
        return [OrderLine(item, q or 1) for _, item, q in sorted(found, key=lambda f: f[0])], None
    amount = _ORDER_AMOUNT.search(text)
    if amount is not None and price_list.tiers:
        return [], _value(amount.group(1))
    return [], None


def asks_for_total(text: str) -> bool:
    """The message asks what an order comes to, or what discount it gets."""
    return _TOTAL_WORDS.search(text) is not None


def make_quote(lines: list[OrderLine], price_list: PriceList, amount: int | None = None) -> Quote | None:
    """The priced order (or a given order amount) with the best discount tier it reaches."""
    if not lines and amount is None:
        return None
    subtotal = sum(line.amount for line in lines) if lines else int(amount or 0)
    quantity = sum(line.quantity for line in lines)
    reached = [
        tier
        for tier in price_list.tiers
        if (tier.min_amount is not None and subtotal >= tier.min_amount)
        or (tier.min_quantity is not None and lines and quantity >= tier.min_quantity)
    ]
    tier = max(reached, key=lambda t: t.percent, default=None)
    discount = int((Decimal(subtotal) * tier.percent / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)) if tier else 0
    style = lines[0].item if lines else (price_list.items[0] if price_list.items else None)
    sources = [line.item.source for line in lines] + ([tier.source] if tier else [])
    return Quote(
        lines=tuple(lines),
        subtotal=subtotal,
        tier=tier,
        discount=discount,
        total=subtotal - discount,
        currency=style.currency if style else "₸",
        separator=style.separator if style else " ",
        sources=tuple(dict.fromkeys(sources)),
    )
