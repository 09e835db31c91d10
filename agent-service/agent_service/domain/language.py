"""Which language a prospect writes in: English, Russian or Kazakh (pure, script-based).

Kazakh is recognised by its own Cyrillic letters (ә ғ қ ң ө ұ ү һ і) or a few common words;
other Cyrillic text is Russian, Latin text English. A message too short to tell ("ok", "?")
keeps the language the conversation already has.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeVar

SUPPORTED = ("en", "ru", "kk")
NAMES = {"en": "English", "ru": "Russian", "kk": "Kazakh"}
# Where a text is missing in a language: Kazakh falls back to Russian (the business lingua franca
# in Kazakhstan), then English; anything else to English.
_FALLBACKS = {"kk": ("kk", "ru", "en"), "ru": ("ru", "en"), "en": ("en",)}
_KAZAKH_LETTERS = frozenset("әғқңөұүһі")
_KAZAKH_WORDS = re.compile(r"\b(рахмет|салем|сау бол|иа|жок|бар ма|кашан|канша)\b", re.IGNORECASE)
_MIN_LETTERS = 4
T = TypeVar("T")


# Latin words that name a product rather than speak English: CamelCase ("AquaDesk"), with a digit
# ("RO-5"), or a single letter ("D-2"). "А кулер AquaDesk D-2?" is Russian.
_PRODUCT_NAME = re.compile(r"\b(?:[A-Za-z]*[a-z][A-Z]\w*|[A-Za-z]+[-]?\d\w*|[A-Za-z])\b")


def detect_language(text: str | None, previous: str | None = None, default: str = "en") -> str:
    letters = [c for c in _PRODUCT_NAME.sub(" ", text or "").lower() if c.isalpha()]
    fallback = previous if previous in SUPPORTED else default
    if len(letters) < _MIN_LETTERS:
        return fallback
    cyrillic = sum(1 for c in letters if "а" <= c <= "я" or c == "ё" or c in _KAZAKH_LETTERS)
    latin = sum(1 for c in letters if "a" <= c <= "z")
    if cyrillic >= latin and cyrillic:
        if any(c in _KAZAKH_LETTERS for c in letters) or _KAZAKH_WORDS.search(text or ""):
            return "kk"
        return "ru"
    if latin:
        return "en"
    return fallback


def fallbacks(language: str | None) -> tuple[str, ...]:
    """The languages to look a text up in, best first (``kk`` -> ``kk, ru, en``)."""
    return _FALLBACKS.get(language or "en", ("en",))


def pick(texts: Mapping[str, T], language: str | None) -> T | None:
    """The text for ``language`` from a per-language table, following :func:`fallbacks`."""
    for code in fallbacks(language):
        if code in texts:
            return texts[code]
    return None
