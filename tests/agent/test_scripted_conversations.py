"""Scripted conversations of 8+ turns in English and Russian with the offline engine against
the sample catalogue -- every price quoted equals the catalogue's, an unanswerable question gets the
manager handoff. Through the whole service: ``incoming_messages`` in, ``outgoing_messages`` out."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pypdf import PdfReader

from agent_service.domain.grounding import extract_claims
from agent_service.prompts import PromptBook
from tests.agent.conversation_support import ROOT, running_agent

CATALOGUE = ROOT / "knowledge_base" / "komfortoffice_catalogue.pdf"
PRODUCT_LINE = re.compile(r"^(?P<name>.+?): (?P<price>\d{1,3}(?: \d{3})+) ₸\.")
MODELS = ("ErgoPro 300", "ErgoPro 500", "Basic 100", "V-20", "Standard 140", "LiftDesk Duo", "Forum 240",
          "Archive 80", "P-3", "SilentPod S1")  # fmt: skip


def catalogue_prices() -> dict[str, set[str]]:
    """Model -> the price(s) the PDF gives it (read independently of the agent's own loader)."""
    prices: dict[str, set[str]] = {}
    for page in PdfReader(CATALOGUE).pages:
        for line in (page.extract_text() or "").splitlines():
            match = PRODUCT_LINE.match(line.strip())
            if match:
                model = next(m for m in MODELS if m in match["name"])
                prices.setdefault(model, set()).add(match["price"])
    return prices


def all_catalogue_amounts() -> set[str]:
    text = "\n".join(page.extract_text() or "" for page in PdfReader(CATALOGUE).pages)
    return {re.sub(r"\s", "", m) for m in re.findall(r"\d{1,3}(?:[ \u00a0]\d{3})*(?= ?₸)", text)}


def check_prices(reply: str, prices: dict[str, set[str]], amounts: set[str]) -> int:
    """Every amount in ``reply`` is a catalogue amount, and a model's price is that model's. Returns how many."""
    quoted = 0
    for claim in extract_claims(reply):
        if claim.kind == "money":
            assert re.sub(r"\s", "", claim.text) in amounts, f"invented amount {claim.text!r} in {reply!r}"
            quoted += 1
    for sentence in re.split(r"(?<=[.!?])\s", reply):
        for model in MODELS:
            match = re.search(re.escape(model) + r"[^:₸]*: (\d{1,3}(?: \d{3})+) ₸", sentence)
            if match:
                assert match[1] in prices[model], f"{model} quoted at {match[1]}, catalogue says {prices[model]}"
    return quoted


ENGLISH = [
    ("Hello! We are opening a new office in Almaty.", "greeting"),
    ("About 20 people, mostly programmers.", "spin"),
    ("How much is the ErgoPro 300 chair?", "89 900 ₸"),
    ("Do you deliver in Almaty and how much does it cost?", "5 000 ₸"),
    ("What about height adjustable desks?", "249 000 ₸"),
    ("Is there a discount for big orders?", "5%"),
    ("Do you sell coffee machines?", "handoff"),
    ("Can I pay in installments?", "0-0-12"),
    ("What chairs do you have?", "34 900 ₸"),
    ("What is the warranty on the LiftDesk Duo?", "5 years"),
    ("Sounds good, can you call me tomorrow at 11?", "call"),
]
RUSSIAN = [
    ("Здравствуйте! Мы открываем новый офис в Алматы.", "greeting"),
    ("Примерно 15 человек, в основном бухгалтеры.", "spin"),
    ("Сколько стоит кресло ErgoPro 300?", "89 900 ₸"),
    ("А доставка по Алматы сколько стоит?", "5 000 ₸"),
    ("Есть ли столы с регулировкой высоты?", "249 000 ₸"),
    ("Вы продаёте диваны?", "handoff"),
    ("Есть скидка на большой заказ?", "5%"),
    ("Можно оплатить в рассрочку?", "0-0-12"),
    ("Где ваш шоурум?", "Абая 150"),
    ("Сотрудники жалуются на спину, кресла старые", "spin"),
    ("Да, давайте созвонимся завтра в 11", "call"),
]


@pytest.mark.parametrize(("language", "script"), [("en", ENGLISH), ("ru", RUSSIAN)], ids=["english", "russian"])
async def test_scripted_conversation_quotes_catalogue_prices_and_hands_off_the_unanswerable(
    amqp_url: str, tmp_path: Path, language: str, script: list[tuple[str, str]]
) -> None:
    prices, amounts = catalogue_prices(), all_catalogue_amounts()
    assert prices["ErgoPro 300"] == {"89 900"} and len(prices) == len(MODELS)
    prompts = PromptBook(ROOT / "prompts")
    handoff_text = prompts.phrase(language, "check_with_manager")
    phone = "+77010000101" if language == "en" else "+77010000102"
    quoted = 0
    async with running_agent(amqp_url, f"sqlite+aiosqlite:///{tmp_path}/agent.db") as agent:
        replies = []
        for text, expect in script:
            reply = await agent.say(phone, text, name="Aigerim")
            replies.append(reply.text)
            quoted += check_prices(reply.text, prices, amounts)
            if language == "ru":
                assert re.search("[а-яё]", reply.text, re.IGNORECASE), f"not Russian: {reply.text!r}"
            if expect == "handoff":
                assert handoff_text in reply.text
                convo = await agent.conversation(phone)
                assert convo["contact"]["needs_human"] is True
            elif expect == "greeting":
                assert "Aigerim" in reply.text
            elif expect not in ("spin", "call"):
                assert expect in reply.text, f"{text!r} -> {reply.text!r}"
                assert handoff_text not in reply.text
        convo = await agent.conversation(phone)
    assert len(script) >= 8 and quoted >= 5
    assert len(set(replies)) == len(replies), "the agent repeated itself"
    contact = convo["contact"]
    assert contact["language"] == language and contact["client_status"] == "client"
    assert contact["outcome"] == "agreed" and contact["spin_stage"] == "need_payoff"
    outs = [m for m in convo["messages"] if m["direction"] == "out"]
    ins = [m for m in convo["messages"] if m["direction"] == "in"]
    assert len(outs) == len(ins) == len(script)
    assert all(m["status"] == "handled" for m in ins)
    priced = [m for m in outs if "₸" in (m["text"] or "")]
    assert priced and all(m["knowledge_refs"] for m in priced)
    assert all(ref["doc"] == "komfortoffice_catalogue.pdf" for m in priced for ref in m["knowledge_refs"])
