"""Text normalisation shared by retrieval, intent rules and the offline engine (pure functions).

Tokens are lower-cased words (any script) and numbers; a light suffix stemmer folds the common
English and Russian inflections together (``chairs`` -> ``chair``, ``доставки`` -> ``доставк``),
which is what BM25 over a small catalogue needs -- not linguistics.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_CYRILLIC = re.compile(r"[а-яёәғқңөұүһі]", re.IGNORECASE)

# Longest first: the stemmer strips the first ending that leaves a stem of 3+ letters.
_RU_ENDINGS = tuple(
    sorted(
        """
        иями ями ами иях ях ах ого его ому ему ыми ими ой ей ий ый ая яя ое ее ом ем ам ям ов ев
        ить ать ять еть ую юю ых их ия ие ью ы и а я у ю е о ь й
        """.split(),
        key=len,
        reverse=True,
    )
)

STOPWORDS = frozenset(
    """
    a an the and or but if of to in on at by for from with about as is are was were be been being
    do does did have has had i you he she it we they me my your our their this that these those
    there here what which who whom how when where why can could would should will shall may might
    must please hi hello hey thanks thank ok okay yes no not any some much many also just so
    и в во на с со к ко у о об от до по за из для при а но или ли же бы не ни да нет вы вас вам
    ваш ваша ваше ваши мы нас нам наш я мне меня мой моя он она оно они их его её ее это этот эта
    эти то тот та те что как где когда какой какая какое какие есть был была было будет можно
    здравствуйте привет пожалуйста спасибо скажите подскажите хочу хотел хотела бы уже еще ещё
    """.split()
)


def normalise(text: str) -> str:
    return text.lower().replace("ё", "е")


def has_cyrillic(text: str) -> bool:
    return bool(_CYRILLIC.search(text))


def stem(word: str) -> str:
    """A deliberately small stemmer: plural/case endings of English and Russian."""
    if word.isdigit() or len(word) < 4:
        return word
    if has_cyrillic(word):
        for ending in _RU_ENDINGS:
            if word.endswith(ending) and len(word) - len(ending) >= 3:
                return word[: -len(ending)]
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "sses")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def words(text: str) -> list[str]:
    """Lower-cased words and numbers, in order (no stemming, stopwords kept)."""
    return _WORD.findall(normalise(text))


# How prospects name what the catalogue calls otherwise: a stem becomes the catalogue's terms.
# Applied to documents and questions alike, so both sides meet ("standing desk" finds the
# "height-adjustable desk"). Keep it small and about the business's own vocabulary.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "standing": ("height", "adjustable"),
    "стояч": ("регулировк", "высот"),  # стоячий / стоячие / стоячих стол(ы)
}


def tokens(text: str) -> list[str]:
    """Index/query terms: words without stopwords, stemmed, synonyms mapped to catalogue terms."""
    out: list[str] = []
    for word in words(text):
        if word not in STOPWORDS:
            stemmed = stem(word)
            out.extend(SYNONYMS.get(stemmed, (stemmed,)))
    return out


def content_terms(text: str, ignore: Iterable[str] = ()) -> set[str]:
    """The distinct meaningful terms of a question (for "is this answered?" checks)."""
    skip = set(ignore)
    return {t for t in tokens(text) if t not in skip and (len(t) > 2 or t.isdigit())}
