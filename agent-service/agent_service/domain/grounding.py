"""The grounding guard: every factual number in a reply must come from the documents (pure).

:func:`ungrounded_claims` lists what a reply states that its sources do not: prices and other
numbers, percentages, clock times, dates and weekdays, and promise words (discount, free). The
sources are the passages the reply used plus the business profile; the prospect's own
messages (``prospect_texts``) may ground times and dates only -- echoing "call me tomorrow at
11" is fine, echoing "give me 50% off" is not.

A number written right after a product code (``ErgoPro 300``, ``V-20``) in the sources grounds
only the same code and number in the reply, so a model number cannot pass for a stock figure.
Number formats are compared by value: ``12 500``, ``12,500``, ``12.500``, ``12500`` and
``12 500 ₸`` are the same number; ``12,5`` is twelve and a half. A run such as ``2 300`` is
grounded either as 2300 or, when both parts appear, as 2 and 300. A percentage must match a
percentage in the sources, a price (a number with a currency) a number that is written as a
price there (next to a currency, or on a line that mentions one). A percentage in a sentence that
speaks of a discount ("50% off", "скидка 10%") must match a percentage on a source line that
speaks of one too: "50% prepayment" cannot ground "50% off everything" (found by the prompt-
injection suite, ``tests/reliability``). Numbers written as words are not recognised.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

_SEP = " \u00a0\u2009\u202f,.'’"
_RUN = re.compile(rf"(?<![\w])\d+(?:[{_SEP}]\d+)*(?![\d])")
_CURRENCY = r"(?:₸|тг\b\.?|тенге|теңге|kzt\b|tenge\b|\$|usd\b|руб\w*|₽|€|eur\b|dollars?\b|евро)"
_CURRENCY_AFTER = re.compile(rf"^\s?{_CURRENCY}", re.IGNORECASE)
_CURRENCY_BEFORE = re.compile(r"(?:₸|kzt|\$|€|₽)\s?$", re.IGNORECASE)
_PRICE_WORDS = re.compile(rf"{_CURRENCY}|\bprice|\bcost|цен[аыеу]|стоимост|стоит|баға", re.IGNORECASE)
_PERCENT_AFTER = re.compile(r"^\s?(?:%|процент\w*|percent\b|per cent\b|пайыз\w*)", re.IGNORECASE)
# Words that make a percentage a discount (the sentence of the claim, the line of a source).
_DISCOUNT_CONTEXT = re.compile(
    r"discount\w*|скидк\w*|жеңілдік\w*|promo ?code\w*|промокод\w*|\bакци[яию]|\boff\b|\bsale\b|распродаж\w*",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"[!?\n]|\.(?:\s|$)")
_TIME = re.compile(r"(?<![\d:])([01]?\d|2[0-3]):([0-5]\d)(?![\d:])")
_AT_HOUR = re.compile(
    r"\b(?:at|by|from|until|till|after|before|around|в|к|с|до|после|около)\s+"
    r"([01]?\d|2[0-3])(?![\d:.,]|[ \u00a0\u2009\u202f]\d)"
    r"(?:\s*(?:am|pm|a\.m\.|p\.m\.|ч\b|час\w*|o'clock))?",
    re.IGNORECASE,
)
_NUMERIC_DATE = re.compile(r"(?<![\d.])(\d{1,2})[./](\d{2})(?:[./](\d{2,4}))?(?![\d])")
_MONTHS = {
    "january": 1, "february": 2, "march": 3, "april": 4, "may": 5, "june": 6, "july": 7, "august": 8,
    "september": 9, "october": 10, "november": 11, "december": 12,
    "январ": 1, "феврал": 2, "март": 3, "апрел": 4, "мая": 5, "май": 5, "июн": 6, "июл": 7, "август": 8,
    "сентябр": 9, "октябр": 10, "ноябр": 11, "декабр": 12,
}  # fmt: skip
_MONTH_WORD = (
    r"(january|february|march|april|may|june|july|august|september|october|november|december|"
    r"январ\w*|феврал\w*|март\w*|апрел\w*|ма[яй]|июн\w*|июл\w*|август\w*|сентябр\w*|октябр\w*|ноябр\w*|декабр\w*)"
)
_DAY_MONTH = re.compile(rf"\b(\d{{1,2}})(?:-?го|st|nd|rd|th)?\s+{_MONTH_WORD}(?:\s+(\d{{4}}))?", re.IGNORECASE)
_MONTH_DAY = re.compile(rf"\b{_MONTH_WORD}\s+(\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s+(\d{{4}}))?\b", re.IGNORECASE)
_WEEKDAYS = {
    "monday": 1, "tuesday": 2, "wednesday": 3, "thursday": 4, "friday": 5, "saturday": 6, "sunday": 7,
    "понедельник": 1, "вторник": 2, "сред": 3, "четверг": 4, "пятниц": 5, "суббот": 6, "воскресень": 7,
}  # fmt: skip
_WEEKDAY = re.compile(
    r"\b(monday|tuesday|wednesday|thursday|friday|saturday|sunday|понедельник\w*|вторник\w*|сред[аеуы]|"
    r"четверг\w*|пятниц\w*|суббот\w*|воскресень\w*)\b",
    re.IGNORECASE,
)
# A product code right before a number: CamelCase (ErgoPro, LiftDesk), all capitals (XL), or a
# letter and a hyphen (V-20). Such a number names a model; it grounds only the same model.
_CODE_BEFORE = re.compile(r"(?:\b([A-Z][a-z]+[A-Z]\w*|[A-Z]{2,}\w*)[- ]|\b([A-Z])-)$")
_RELATIVE = re.compile(r"\b(day after tomorrow|tomorrow|послезавтра|завтра|ертең)\b", re.IGNORECASE)
_TERMS: dict[str, re.Pattern[str]] = {
    "discount": re.compile(r"discount\w*|скидк\w*|жеңілдік\w*|promo ?code\w*|промокод\w*|\bакци[яию]", re.IGNORECASE),
    "free": re.compile(r"(?<!feel )\bfree\b(?! to\b)|бесплатн\w*|даром|тегін|\bgifts?\b|подар\w*", re.IGNORECASE),
}


@dataclass(frozen=True)
class Claim:
    """A checkable statement in a reply: its text, kind, and the keys any one of which grounds it."""

    text: str
    kind: str  # money | percent | number | time | date | term
    keys: frozenset[str]
    all_of: tuple[frozenset[str], ...] = ()  # alternatively grounded when every one of these groups is
    code: str | None = None  # the product code the number belongs to ("ErgoPro" in "ErgoPro 300")

    @property
    def coded_keys(self) -> frozenset[str]:
        return frozenset(f"{key}@{self.code}" for key in self.keys) if self.code else frozenset()


def _value(digits: str) -> str:
    try:
        value = Decimal(digits).normalize()
    except InvalidOperation:
        return digits
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _run_values(run: str) -> tuple[set[str], list[set[str]]]:
    """Readings of a digit run: as one number, and as space-separated parts (each with its readings)."""
    groups = re.split(rf"([{_SEP}])", run)
    numbers, seps = groups[0::2], groups[1::2]
    whole: set[str] = set()
    if not seps:
        whole.add(_value(run))
    else:
        if all(len(g) == 3 for g in numbers[1:]) and len(numbers[0]) <= 3 and len(set(seps)) == 1:
            whole.add(_value("".join(numbers)))  # 12 500 / 12,500 / 12.500 / 1 290 000
        if seps[-1] in ",." and len(numbers[-1]) <= 2 and all(s not in ",." for s in seps[:-1]):
            head = "".join(numbers[:-1])
            whole.add(_value(f"{head}.{numbers[-1]}"))  # 12,5 / 12 500,50
        if len(seps) == 1 and seps[0] in ",.":
            whole.add(_value(f"{numbers[0]}.{numbers[1]}"))  # 1.500 read as a decimal too
    pieces = [p for p in re.split(r"[ \u00a0\u2009\u202f]", run) if p]
    if len(pieces) < 2 or any(p[0] == "0" for p in pieces):
        return whole, []  # "89 000" is one number; "2 300" may also be two
    return whole, [_run_values(piece)[0] for piece in pieces]


def _spans_overlap(span: tuple[int, int], taken: list[tuple[int, int]]) -> bool:
    return any(span[0] < end and start < span[1] for start, end in taken)


def extract_claims(text: str) -> list[Claim]:
    """Every checkable claim in ``text``, in order of appearance."""
    claims: list[tuple[int, Claim]] = []
    taken: list[tuple[int, int]] = []

    def add(match: re.Match[str], kind: str, keys: Iterable[str]) -> None:
        taken.append(match.span())
        claims.append((match.start(), Claim(match.group(0).strip(), kind, frozenset(keys))))

    for m in _DAY_MONTH.finditer(text):
        month = _month(m.group(2))
        if month and 1 <= int(m.group(1)) <= 31:
            add(m, "date", {f"d:{int(m.group(1))}.{month}"})
    for m in _MONTH_DAY.finditer(text):
        month = _month(m.group(1))
        if month and 1 <= int(m.group(2)) <= 31 and not _spans_overlap(m.span(), taken):
            add(m, "date", {f"d:{int(m.group(2))}.{month}"})
    for m in _NUMERIC_DATE.finditer(text):
        day, month = int(m.group(1)), int(m.group(2))
        if 1 <= day <= 31 and 1 <= month <= 12 and not _spans_overlap(m.span(), taken):
            add(m, "date", {f"d:{day}.{month}", "n:" + _value(f"{m.group(1)}.{m.group(2)}")})
    for m in _TIME.finditer(text):
        if not _spans_overlap(m.span(), taken):
            add(m, "time", {f"t:{int(m.group(1))}:{m.group(2)}"})
    for m in _AT_HOUR.finditer(text):
        if not _spans_overlap(m.span(1), taken):
            hour = int(m.group(1))
            taken.append(m.span())
            claims.append((m.start(1), Claim(m.group(0).strip(), "time", frozenset({f"t:{hour}:00", f"n:{hour}"}))))
    for m in _WEEKDAY.finditer(text):
        add(m, "date", {f"wd:{_weekday(m.group(1))}"})
    for m in _RELATIVE.finditer(text):
        word = m.group(1).lower()
        add(m, "date", {"rel:after_tomorrow" if word in ("day after tomorrow", "послезавтра") else "rel:tomorrow"})
    for m in _RUN.finditer(text):
        run = m.group(0).rstrip(",.'’ \u00a0\u2009\u202f")
        span = (m.start(), m.start() + len(run))
        if _spans_overlap(span, taken):
            continue
        whole = _run_values(run)[0]
        rest = text[span[1] :]
        before = text[max(0, span[0] - 4) : span[0]]
        if _PERCENT_AFTER.match(rest):
            kind, prefix = "percent", "pd:" if _DISCOUNT_CONTEXT.search(_sentence(text, span)) else "p:"
        elif _CURRENCY_AFTER.match(rest) or _CURRENCY_BEFORE.search(before):
            kind, prefix = "money", "m:"
        else:
            kind, prefix = "number", "n:"
        if kind == "money" and not whole and " " in run:
            # "SoftLine S-25 45,000 KZT": a model number, then the price. The price is the longest
            # tail of the run that reads as one number; what comes before it is a number of its own.
            pieces = run.split(" ")
            for k in range(1, len(pieces)):
                tail, head = " ".join(pieces[k:]), " ".join(pieces[:k])
                tail_whole = _run_values(tail)[0]
                if tail_whole:
                    claims.append((span[0], _number_claim(text, span[0], head)))
                    tail_at = span[0] + len(head) + 1
                    claims.append((tail_at, Claim(tail, kind, frozenset(prefix + v for v in tail_whole))))
                    break
            continue
        if kind == "number":
            claims.append((span[0], _number_claim(text, span[0], run)))
            continue
        # A price or a percentage is one number; only plain numbers may be two.
        claims.append((span[0], Claim(run, kind, frozenset(prefix + v for v in whole))))
    for name, pattern in _TERMS.items():
        for m in pattern.finditer(text):
            claims.append((m.start(), Claim(m.group(0).strip(), "term", frozenset({f"term:{name}"}))))
            break
    return [claim for _, claim in sorted(claims, key=lambda pair: pair[0])]


def _number_claim(text: str, start: int, run: str) -> Claim:
    """A plain number (or a run of them) at ``start``; right after a product code it names that model."""
    whole, parts = _run_values(run)
    code_match = _CODE_BEFORE.search(text[max(0, start - 40) : start])
    return Claim(
        run,
        "number",
        frozenset("n:" + v for v in whole),
        tuple(frozenset("n:" + v for v in part) for part in parts),
        code=(code_match.group(1) or code_match.group(2)).lower() if code_match else None,
    )


def _sentence(text: str, span: tuple[int, int]) -> str:
    """The sentence around ``span`` (a source is read line by line, so there it is the line)."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text, 0, span[0])]
    after = _SENTENCE_END.search(text, span[1])
    return text[ends[-1] if ends else 0 : after.start() if after else len(text)]


def _month(word: str) -> int | None:
    lowered = word.lower()
    for stem, number in _MONTHS.items():
        if lowered.startswith(stem):
            return number
    return None


def _weekday(word: str) -> int:
    lowered = word.lower()
    return next(number for stem, number in _WEEKDAYS.items() if lowered.startswith(stem))


def source_keys(texts: Iterable[str]) -> set[str]:
    """Everything the given texts can ground: each value under every kind it may stand for."""
    keys: set[str] = set()
    for text in texts:
        for line in text.splitlines() or [text]:
            keys |= _line_keys(line)
    return keys


@functools.lru_cache(maxsize=8192)
def _line_keys(line: str) -> frozenset[str]:
    """The keys one source line grounds. Cached: the same catalogue lines and business profile
    are the sources of turn after turn (a pure function of the line)."""
    keys: set[str] = set()
    claims = extract_claims(line)
    # A line that names a price but writes no currency next to its numbers (a table with
    # "Price, KZT" in the header) makes each of its numbers a possible price.
    price_line = bool(_PRICE_WORDS.search(line)) and not any(c.kind == "money" for c in claims)
    discount_line = bool(_DISCOUNT_CONTEXT.search(line))  # "Is there a discount? Yes, 5% from ..."
    for claim in claims:
        if claim.code:  # "ErgoPro 300" grounds "ErgoPro 300", not "300 chairs"
            keys.update(claim.coded_keys)
            continue
        for key in claim.keys:
            kind, _, value = key.partition(":")
            if kind in ("n", "m", "p", "pd"):
                keys.add(f"n:{value}")  # any number grounds a plain number
                if kind in ("p", "pd"):
                    keys.add(f"p:{value}")  # a discount percentage grounds a plain one, not the reverse
                if kind == "pd" or (kind == "p" and discount_line):
                    keys.add(f"pd:{value}")
                if kind == "m" or price_line:
                    keys.add(f"m:{value}")
            else:
                keys.add(key)
        for group in claim.all_of:  # "2 300" read as two numbers grounds plain numbers only
            keys.update(group)
    return frozenset(keys)


def _grounded(claim: Claim, keys: set[str]) -> bool:
    if claim.keys & keys or claim.coded_keys & keys:
        return True
    return bool(claim.all_of) and all(group & keys for group in claim.all_of)


def ungrounded_claims(text: str, sources: Sequence[str], *, prospect_texts: Sequence[str] = ()) -> list[str]:
    """The claims of ``text`` that ``sources`` do not support (empty list: the reply is grounded).

    ``sources``: the passages the reply used and the business profile. ``prospect_texts``: what
    the prospect wrote, which may ground times and dates (not prices, numbers or percentages).
    """
    keys = source_keys(sources)
    echo = source_keys(prospect_texts) if prospect_texts else set()
    missing: list[str] = []
    for claim in extract_claims(text):
        if _grounded(claim, keys):
            continue
        if claim.kind in ("time", "date") and _grounded(claim, echo):
            continue
        missing.append(claim.text)
    return missing
