"""Text normalisation shared by retrieval, intent rules and the offline engine (pure functions).

Tokens are lower-cased words (any script) and numbers; a light suffix stemmer folds the common
English and Russian inflections together (``chairs`` -> ``chair``, ``доставки`` -> ``доставк``),
which is what BM25 over a small catalogue needs -- not linguistics.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

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

_KAZAKH = re.compile(r"[әғқңөұүһі]")
# Kazakh case, plural and possessive endings, longest first. Kazakh stacks its endings, so after
# stripping one a word is cut to its first six letters: "жеткізу", "жеткізесіздер" -> "жеткіз";
# "сүзгісі" -> "сүзгі"; "алматыға" -> "алматы".
_KK_ENDINGS = tuple(
    sorted(
        """
        лардың лердің дардың дердің тардың тердің лар лер дар дер тар тер
        ның нің дың дің тың тің нан нен дан ден тан тен мен бен пен нда нде ға ге қа ке да де та те
        ны ні ды ді ты ті сы сі ым ім ың ің у
        """.split(),
        key=len,
        reverse=True,
    )
)


def _kazakh_stem(word: str) -> str:
    for ending in _KK_ENDINGS:
        if word.endswith(ending) and len(word) - len(ending) >= 4:
            word = word[: -len(ending)]
            break
    return word[:6]


# English derivations folded into the word they come from (the stem must keep 4+ letters).
_EN_DERIVED = (("ation", ""), ("ery", "er"), ("ing", ""), ("ed", ""))

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
    бар ма ме ба бе па пе және мен сен сіз біз сіздер бұл осы қандай қалай не неше қашан қайда ғой ғана
    """.split()
)


def normalise(text: str) -> str:
    return text.lower().replace("ё", "е")


def has_cyrillic(text: str) -> bool:
    return bool(_CYRILLIC.search(text))


def stem(word: str) -> str:
    """A deliberately small stemmer: plural/case endings of English and Russian, and the English
    endings that make one word of a verb and its noun ("deliver", "delivery", "delivered",
    "install", "installation", "installing")."""
    if word.isdigit() or len(word) < 4:
        return word
    if _KAZAKH.search(word):
        return _kazakh_stem(word)
    if has_cyrillic(word):
        for ending in _RU_ENDINGS:
            if word.endswith(ending) and len(word) - len(ending) >= 3:
                return word[: -len(ending)]
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith(("ches", "shes", "xes", "sses")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for ending, replacement in _EN_DERIVED:
        if word.endswith(ending) and len(word) - len(ending) >= 4:
            return word[: -len(ending)] + replacement
    return word


def words(text: str) -> list[str]:
    """Lower-cased words and numbers, in order (no stemming, stopwords kept)."""
    return _WORD.findall(normalise(text))


# How prospects name what the documents call otherwise: a stem -> the documents' terms. Each
# business has its own (``[vocabulary.synonyms]`` in the business file, see
# :func:`synonym_table`); applied to documents and questions alike, so both sides meet
# ("standing desk" finds the "height-adjustable desk").
Synonyms = Mapping[str, tuple[str, ...]]


# Kazakh words for the topics every business has, read as the Russian words its documents use
# (documents in Kazakhstan are mostly Russian): a Kazakh question finds the Russian lines.
_KAZAKH_TOPICS = {
    "жеткізу": "доставка",
    "жеткізесіздер": "доставка",
    "баға": "цена",
    "бағасы": "цена",
    "төлеу": "оплата",
    "төлем": "оплата",
    "бөліп": "рассрочка",
    "кепілдік": "гарантия",
    "кепілдігі": "гарантия",
    "мекенжай": "адрес",
    "жеңілдік": "скидка",
    "орнату": "установка",
    "қайтару": "возврат",
}


def synonym_table(pairs: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """``{"standing": "height adjustable"}`` -> ``{"standing": ("height", "adjustable")}``: each
    word on the left (any inflection of it) is read as the words on the right."""
    table: dict[str, tuple[str, ...]] = {}
    for word, meaning in {**_KAZAKH_TOPICS, **pairs}.items():
        means = tuple(stem(w) for w in words(meaning) if w not in STOPWORDS)
        for key in words(word):
            if means and key not in STOPWORDS:
                table[stem(key)] = means
    return table


BASE_SYNONYMS: Synonyms = synonym_table({})  # the built-in ones only (Kazakh topic words); a business adds its own


def tokens(text: str, synonyms: Synonyms = BASE_SYNONYMS) -> list[str]:
    """Index/query terms: words without stopwords, stemmed, synonyms mapped to the documents' terms."""
    out: list[str] = []
    for word in words(text):
        if word not in STOPWORDS:
            stemmed = stem(word)
            out.extend(synonyms.get(stemmed, (stemmed,)))
    return out


def content_terms(text: str, ignore: Iterable[str] = (), synonyms: Synonyms = BASE_SYNONYMS) -> set[str]:
    """The distinct meaningful terms of a question (for "is this answered?" checks)."""
    skip = set(ignore)
    return {t for t in tokens(text, synonyms) if t not in skip and (len(t) > 2 or t.isdigit())}


_CAPITALISED = re.compile(r"(?<![.!?]\s)(?<!^)\b([A-ZА-ЯЁӘҒҚҢӨҰҮҺІ][\w-]+)")
_ACRONYM = re.compile(r"^[A-ZА-ЯЁ]{2,4}$")  # "ТОО", "VAT", "QR": a legal form or a term, not a name
# A rule for everything the documents do not name ("delivery to other cities").
ELSEWHERE = re.compile(
    r"other (?:cities|regions|towns|countries|places|locations)|elsewhere|anywhere in|across|nationwide|"
    r"друг\w* (?:город|регион|населён)|по всему|по всей|басқа қала|бүкіл",
    re.IGNORECASE,
)


def proper_nouns(text: str, synonyms: Synonyms = BASE_SYNONYMS) -> set[str]:
    """Capitalised words that do not start a sentence (a city, a brand), as index terms."""
    found: set[str] = set()
    for line in text.splitlines():
        for match in _CAPITALISED.finditer(line.strip()):
            if not _ACRONYM.match(match.group(1)):
                found.update(tokens(match.group(1), synonyms))
    return found
