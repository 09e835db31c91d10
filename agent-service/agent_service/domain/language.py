"""Which language a prospect writes in: English, Russian or Kazakh (pure, script-based).

Kazakh is recognised by its own Cyrillic letters (ә ғ қ ң ө ұ ү һ і) or a few common words;
other Cyrillic text is Russian, Latin text English. A message too short to tell ("ok", "?")
keeps the language the conversation already has.
"""

from __future__ import annotations

import re

SUPPORTED = ("en", "ru", "kk")
_KAZAKH_LETTERS = frozenset("әғқңөұүһі")
_KAZAKH_WORDS = re.compile(r"\b(рахмет|салем|сау бол|иа|жок|бар ма|кашан|канша)\b", re.IGNORECASE)
_MIN_LETTERS = 4


def detect_language(text: str | None, previous: str | None = None, default: str = "en") -> str:
    letters = [c for c in (text or "").lower() if c.isalpha()]
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
