"""The moderator's rules: client or not, how sure, and what that means for a contact (pure).

Categories (``db/tables.py``): ``prospect`` (a client), and for non-clients ``spam``,
``personal``, ``supplier``, ``job_seeker``, ``wrong_number``, ``other``. The rules look for
clear signals; without any, a new contact is a prospect with low confidence, so the agent
answers (a silent real customer is the worse mistake) and classifies again on the next turns
while the confidence stays below the threshold (at most ``max_turns`` times). A manager's
classification (``classified_by = manager``) is final.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agent_service.domain.intents import FACT_INTENTS, Intent, detect_intents

CLIENT, NON_CLIENT, UNKNOWN = "client", "non_client", "unknown"
CATEGORIES = ("prospect", "spam", "personal", "supplier", "job_seeker", "wrong_number", "other")
NON_CLIENT_CATEGORIES = CATEGORIES[1:]

_I = re.IGNORECASE
_SIGNALS: dict[str, re.Pattern[str]] = {
    "spam": re.compile(
        r"crypto|bitcoin|casino|betting|earn \$?\d+|earn money|passive income|investment opportunity|loan offer|"
        r"click (the|this) link|bit\.ly|t\.me/|promotion of your|seo services|криптовалют|казино|заработ\w* от|"
        r"пассивный доход|ставки на спорт|займ|раскрутка|продвижение вашего",
        _I,
    ),
    "job_seeker": re.compile(
        r"vacanc|job opening|looking for (a )?job|my (cv|resume)|hiring\?|work for you|ваканси|резюме|"
        r"ищу работу|устроиться|возьмете на работу|трудоустро|жұмыс іздеп",
        _I,
    ),
    "supplier": re.compile(
        r"we (are|'re) (a )?(supplier|manufacturer|distributor)|we offer (our )?(services|products) to your|"
        r"partnership proposal|wholesale supply|commercial offer|мы поставщик|предлагаем сотрудничество|"
        r"коммерческое предложение|являемся производител|оптовые поставки вам|предлагаем вашей компании",
        _I,
    ),
    "personal": re.compile(
        r"\b(mom|mum|dad|honey|darling|bro|sis)\b|love you|miss you|\bмам[аы]?\b|\bпап[аы]?\b|сынок|доченька|"
        r"люблю тебя|скучаю|братан|это я,? ",
        _I,
    ),
    "wrong_number": re.compile(
        r"wrong number|who is this|who are you\?|didn'?t write to you|ошиб\w* номером|не туда|кто это\??$|"
        r"вы кто\??$|не вам писал",
        _I,
    ),
}
_BUYING_WORDS = re.compile(
    r"chair|desk|table|cabinet|furniture|office|booth|order|buy|purchase|catalog|кресл|стол|стул|шкаф|мебел|офис|"
    r"тумб|кабин|заказ|купить|покупк|каталог|орындық|үстел",
    _I,
)


@dataclass(frozen=True)
class Classification:
    status: str  # client | non_client
    category: str
    reason: str
    confidence: float


def classify_rules(texts: Sequence[str]) -> Classification:
    """Classify from the contact's messages so far (oldest first)."""
    text = "\n".join(t for t in texts if t)
    intents = detect_intents(text)
    buying = len(intents & FACT_INTENTS) + len(_BUYING_WORDS.findall(text)) + (Intent.CALL in intents)
    hits = {category: len(pattern.findall(text)) for category, pattern in _SIGNALS.items()}
    category, strength = max(hits.items(), key=lambda item: item[1])
    if strength and strength >= buying:
        confidence = min(0.95, 0.75 + 0.1 * (strength - 1) - 0.1 * buying)
        return Classification(NON_CLIENT, category, f"{category.replace('_', ' ')} signals in the messages", confidence)
    if buying:
        confidence = min(0.95, 0.6 + 0.15 * buying)
        return Classification(CLIENT, "prospect", "asks about products, prices or terms", confidence)
    return Classification(CLIENT, "prospect", "no clear signal yet; treated as a prospect", 0.5)


def needs_classification(contact: Mapping[str, Any], *, min_confidence: float, max_turns: int) -> bool:
    """Classify on the first turn, and again while unsure, up to ``max_turns`` turns."""
    if contact.get("classified_by") == "manager":
        return False
    if contact.get("client_status") in (None, UNKNOWN):
        return True
    confidence = contact.get("classification_confidence") or 0.0
    return confidence < min_confidence and int(contact.get("classified_turns") or 0) < max_turns


def is_settled_non_client(contact: Mapping[str, Any], *, min_confidence: float, max_turns: int) -> bool:
    """A non-client the agent stays silent with (the moderator is sure, or a manager said so)."""
    if contact.get("client_status") != NON_CLIENT:
        return False
    if contact.get("classified_by") == "manager":
        return True
    return not needs_classification(contact, min_confidence=min_confidence, max_turns=max_turns)


def answers_as_client(classification: Classification, *, min_confidence: float) -> bool:
    """Whether this turn gets a sales reply: unsure non-client verdicts still get one."""
    return classification.status == CLIENT or classification.confidence < min_confidence


def inbound_status(
    contact: Mapping[str, Any], *, min_confidence: float, max_turns: int, drafts_when_held: bool = False
) -> str:
    """``pending`` (a turn will handle it) or ``silent`` (recorded only: a non-client, or a human holds
    it). With ``drafts_when_held`` a held contact's message is ``pending`` too: its turn writes the
    AI's draft for the manager (stored ``suppressed``, never sent) and then marks it ``silent``."""
    if contact.get("owner") == "human":
        return "pending" if drafts_when_held else "silent"
    if is_settled_non_client(contact, min_confidence=min_confidence, max_turns=max_turns):
        return "silent"
    return "pending"


def classification_update(contact: Mapping[str, Any], result: Classification) -> dict[str, Any]:
    """Column values for a new moderator verdict (nothing when a manager classified the contact)."""
    if contact.get("classified_by") == "manager":
        return {}
    return {
        "client_status": result.status,
        "client_category": result.category,
        "classification_reason": result.reason[:500],
        "classification_confidence": round(result.confidence, 3),
        "classified_by": "moderator",
        "classified_turns": int(contact.get("classified_turns") or 0) + 1,
    }
