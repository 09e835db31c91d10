"""When a reply carries a file, and which (pure): the prospect asked for the price list, or for a
picture of a product the knowledge base has one of.

Requests are recognised in English, Russian and Kazakh; a picture is chosen by the product words
of the message (or, for "send me a photo of it", of the prospect's previous message) matched
against the words that name each picture's product.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from agent_service.domain.text import content_terms

_I = re.IGNORECASE
PRICE_LIST = re.compile(r"price[\s-]?list|catalog(?:ue)?|прайс|каталог|бағалар тізім|баға тізім", _I)
PICTURE = re.compile(r"\bphotos?\b|\bpictures?\b|\bimages?\b|\bpics?\b|фот|картинк|изображени|сурет", _I)
_ASKING_WORDS = (
    "send price list catalog catalogue photo photos picture pictures image images pic show "
    "пришлите отправьте скиньте покажите прайс каталог фото фотографию картинку жіберіңіз сурет"
)


@dataclass(frozen=True)
class Picture:
    """A product picture: the words that name its product."""

    terms: frozenset[str]

    @classmethod
    def named(cls, label: str) -> Picture:
        return cls(frozenset(content_terms(label)))


def wants_price_list(text: str) -> bool:
    return bool(PRICE_LIST.search(text))


def wants_picture(text: str) -> bool:
    return bool(PICTURE.search(text))


def best_picture(pictures: Sequence[Picture], text: str, earlier: str = "") -> int | None:
    """The index of the picture whose product the message names best (ties: the first); the
    prospect's earlier message names the product when this one does not ("a photo of it?")."""
    asked = content_terms(text, ignore=content_terms(_ASKING_WORDS))
    if not asked and earlier:
        asked = content_terms(earlier)
    best, best_score = None, 0
    for index, picture in enumerate(pictures):
        score = len(asked & picture.terms)
        if score > best_score:
            best, best_score = index, score
    return best
