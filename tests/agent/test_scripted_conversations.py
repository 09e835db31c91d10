"""Scripted conversations of 8+ turns in English and Russian with the offline engine, for each sample
business, through the whole service (``incoming_messages`` in, ``outgoing_messages`` out): every
amount quoted is one the documents state or the agent computed from them (the totals are checked
against figures worked out here), an unanswerable question gets the manager handoff, a call asked
for at a bookable time ends the conversation agreed, and the business's own SPIN questions are
asked, never the other business's."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pypdf import PdfReader

from agent_service.domain.grounding import extract_claims
from agent_service.prompts import PromptBook
from parley_shared.clock import OffsetClock
from tests.agent.conversation_support import BUSINESS_FILES, ROOT, running_agent, sample_business

MONDAY_NOON = datetime(2026, 1, 5, 7, 0, tzinfo=UTC)  # 12:00 in Almaty: "tomorrow at 11" is bookable


def document_text(business: str) -> str:
    """The documents' text, read independently of the agent's loader (pypdf; Markdown as written)."""
    folder = BUSINESS_FILES[business].parent / "knowledge_base"
    parts = []
    for path in sorted(folder.iterdir()):
        if path.suffix == ".pdf":
            parts += [page.extract_text() or "" for page in PdfReader(path).pages]
        elif path.suffix in (".md", ".txt"):
            parts.append(path.read_text(encoding="utf-8"))
    return " ".join(" ".join(parts).split())  # a PDF's wrapped lines joined again


def amount(text: str) -> str:
    return re.sub(r"\D", "", text)


@dataclass(frozen=True)
class Catalogue:
    products: dict[str, str]  # model -> its price as the documents write it
    amounts: set[str]  # every amount the documents state, digits only


def catalogue(business: str, models: tuple[str, ...]) -> Catalogue:
    text = document_text(business)
    products = {}
    for model in models:  # the first price after the model's first mention with a price
        match = re.search(re.escape(model) + r"[^₸]{0,160}?(\d{1,3}(?:[ ,]\d{3})+) (?:₸|KZT)", text)
        assert match, model
        products[model] = match[1]
    amounts = {amount(m) for m in re.findall(r"\d{1,3}(?:[ ,\u00a0]\d{3})*(?= ?(?:₸|KZT))", text)}
    return Catalogue(products, amounts)


def check_prices(reply: str, shop: Catalogue, computed: tuple[str, ...]) -> int:
    """Every amount in ``reply`` is the documents' or one of the expected computed ones, and a model's
    price is that model's. Returns how many amounts were quoted."""
    allowed = shop.amounts | {amount(c) for c in computed}
    quoted = 0
    for claim in extract_claims(reply):
        if claim.kind == "money":
            assert amount(claim.text) in allowed, f"invented amount {claim.text!r} in {reply!r}"
            quoted += 1
    for model, price in shop.products.items():
        for match in re.finditer(
            r"(?<!× )" + re.escape(model) + r"[^:₸×]{0,140}?: (\d{1,3}(?:[ ,]\d{3})+) (?:₸|KZT)", reply
        ):
            assert match[1] == price, f"{model} quoted at {match[1]}, the documents say {price}"
    return quoted


# Each turn: (message, expectation). Expectation: "greeting", "spin", "call", "handoff", or a text the
# reply must contain; a tuple adds the amounts the agent must have computed for the turn.
Script = list[tuple[str, str | tuple[str, ...]]]

KOMFORT_MODELS = ("ErgoPro 300", "ErgoPro 500", "Basic 100", "V-20", "Standard 140", "LiftDesk Duo", "Forum 240",
                  "Archive 80", "P-3", "SilentPod S1")  # fmt: skip
KOMFORT_EN: Script = [
    ("Hello! We are opening a new office in Almaty.", "greeting"),
    ("About 20 people, mostly programmers.", "spin"),
    ("How much is the ErgoPro 300 chair?", "89 900 ₸"),
    ("Do you deliver in Almaty and how much does it cost?", "5 000 ₸"),
    ("What about height adjustable desks?", "249 000 ₸"),
    ("Is there a discount for big orders?", "5%"),
    ("Do you sell coffee machines?", "handoff"),
    ("Can I pay in installments?", "0-0-12"),
    ("What chairs do you have?", "34 900 ₸"),
    ("We'd take 20 ErgoPro 300 and 20 Standard 140, what's the total with the discount?",
     ("1 798 000 ₸", "1 298 000 ₸", "3 096 000 ₸", "216 720 ₸", "2 879 280 ₸")),
    ("What is the warranty on the LiftDesk Duo?", "5 years"),
    ("Sounds good, can you call me tomorrow at 11?", "call"),
]  # fmt: skip
KOMFORT_RU: Script = [
    ("Здравствуйте! Мы открываем новый офис в Алматы.", "greeting"),
    ("Примерно 15 человек, в основном бухгалтеры.", "spin"),
    ("Сколько стоит кресло ErgoPro 300?", "89 900 ₸"),
    ("А доставка по Алматы сколько стоит?", "5 000 ₸"),
    ("Есть ли столы с регулировкой высоты?", "249 000 ₸"),
    ("Вы продаёте диваны?", "handoff"),
    ("Есть скидка на большой заказ?", "5%"),
    ("Можно оплатить в рассрочку?", "0-0-12"),
    ("Где ваш шоурум?", "Абая 150"),
    ("Сколько выйдет 30 стульев V-20 и 2 шкафа Archive 80?", ("597 000 ₸", "149 000 ₸", "746 000 ₸")),
    ("Сотрудники жалуются на спину, кресла старые", "spin"),
    ("Да, давайте созвонимся завтра в 11", "call"),
]
TAZASU_MODELS = ("Kristal K-1", "Trio T-3", "AquaPure RO-5", "AquaPure RO-7M", "SoftLine S-25", "AquaDesk D-2")
TAZASU_EN: Script = [
    ("Hi! What do you sell?", "greeting"),
    ("It's for our apartment, four of us drink the tap water.", "spin"),
    ("How much is the Trio T-3?", "39,900 KZT"),
    ("And the AquaPure RO-5?", "164,500 KZT"),
    ("How long does an installation take?", "One to three hours"),
    ("Do you sell water heaters?", "handoff"),
    ("Do you deliver to Karaganda?", "2-6 working days"),
    ("We'd need 3 RO-5 for the office too, what's the total with the discount?",
     ("493,500 KZT", "14,805 KZT", "478,695 KZT")),
    ("Can I pay with Kaspi Red?", "3 months"),
    ("OK, call me tomorrow at 11", "call"),
]  # fmt: skip
TAZASU_RU: Script = [
    ("Здравствуйте! Какие фильтры у вас есть?", "greeting"),
    ("Квартира, нас трое, вода из водопровода.", "spin"),
    ("Сколько стоит умягчитель SoftLine S-25?", "389,000 KZT"),
    ("А кулер AquaDesk D-2?", "129,000 KZT"),
    ("Как часто менять картриджи?", "6 месяцев"),
    ("Вы продаёте бойлеры?", "handoff"),
    ("Доставляете в Костанай?", "2-6 рабочих дней"),
    ("Где ваш сервисный центр?", "Кабанбай батыра 53"),
    ("Сколько будет 2 кулера AquaDesk D-2?", ("258,000 KZT", "7,740 KZT", "250,260 KZT")),
    ("Давайте созвонимся завтра в 11", "call"),
]
SCRIPTS = {
    ("komfortoffice", "en"): (KOMFORT_MODELS, KOMFORT_EN),
    ("komfortoffice", "ru"): (KOMFORT_MODELS, KOMFORT_RU),
    ("tazasu", "en"): (TAZASU_MODELS, TAZASU_EN),
    ("tazasu", "ru"): (TAZASU_MODELS, TAZASU_RU),
}


@pytest.mark.parametrize(("business", "language"), list(SCRIPTS), ids=[f"{b}-{lang}" for b, lang in SCRIPTS])
async def test_scripted_conversation_quotes_the_documents_computes_totals_and_hands_off_the_unanswerable(
    amqp_url: str, tmp_path: Path, business: str, language: str
) -> None:
    models, script = SCRIPTS[(business, language)]
    shop = catalogue(business, models)
    profile = sample_business(business)
    other = sample_business("tazasu" if business == "komfortoffice" else "komfortoffice")
    handoff_text = PromptBook(ROOT / "prompts", profile).phrase(language, "check_with_manager")
    phone = f"+7701000{list(SCRIPTS).index((business, language)):04d}"
    clock = OffsetClock()
    clock.advance(MONDAY_NOON - datetime.now(UTC))
    quoted = 0
    settings = {"business_file": str(BUSINESS_FILES[business])}
    async with running_agent(amqp_url, f"sqlite+aiosqlite:///{tmp_path}/agent.db", clock=clock, **settings) as agent:
        replies = []
        for text, expect in script:
            reply = await agent.say(phone, text, name="Aigerim")
            replies.append(reply.text)
            computed = expect if isinstance(expect, tuple) else ()
            quoted += check_prices(reply.text, shop, computed)
            if language == "ru":
                assert re.search("[а-яё]", reply.text, re.IGNORECASE), f"not Russian: {reply.text!r}"
            own = [q for stage in ("situation", "problem") for q in other.spin_questions(language, stage)]
            assert not any(q in reply.text for q in own), f"the other business's question in {reply.text!r}"
            if expect == "handoff":
                assert handoff_text in reply.text
                convo = await agent.conversation(phone)
                assert convo["contact"]["needs_human"] is True
            elif expect == "greeting":
                assert "Aigerim" in reply.text and profile.name in reply.text
            elif isinstance(expect, tuple):
                assert all(figure in reply.text for figure in expect), f"{text!r} -> {reply.text!r}"
            elif expect not in ("spin", "call"):
                assert expect in reply.text, f"{text!r} -> {reply.text!r}"
                assert handoff_text not in reply.text
        convo = await agent.conversation(phone)
    assert len(script) >= 8 and quoted >= 5
    assert len(set(replies)) == len(replies), "the agent repeated itself"
    asked = [q for stage in ("situation", "problem", "implication") for q in profile.spin_questions(language, stage)]
    assert any(q in r for r in replies for q in asked), "none of the business's own SPIN questions was asked"
    contact = convo["contact"]
    assert contact["language"] == language and contact["client_status"] == "client"
    assert contact["outcome"] == "agreed" and contact["spin_stage"] == "need_payoff"
    assert convo["calls"] and convo["calls"][0]["status"] == "pending"
    outs = [m for m in convo["messages"] if m["direction"] == "out"]
    ins = [m for m in convo["messages"] if m["direction"] == "in"]
    assert len(outs) == len(ins) == len(script)
    assert all(m["status"] == "handled" for m in ins)
    documents = {p.name for p in (BUSINESS_FILES[business].parent / "knowledge_base").iterdir() if p.is_file()}
    priced = [m for m in outs if re.search("₸|KZT", m["text"] or "")]
    assert priced and all(m["knowledge_refs"] for m in priced)
    assert all(ref["doc"] in documents for m in priced for ref in m["knowledge_refs"])
