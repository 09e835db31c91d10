"""Follow-up texts: a template per strategy and language (with a grounded fact when one matches),
Gemini through the real SDK against a fake server, and the fallback to the template whenever the
model fails or says something the knowledge base does not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from agent_service.db import tables
from agent_service.domain.followup_policy import Strategy
from agent_service.followups.text import PROMPT_FILE, FollowUpWriter, Templates, TouchContext
from agent_service.knowledge.base import KnowledgeBase
from parley_shared.contracts import OutgoingMessage, decode
from parley_shared.gemini import make_client
from parley_shared.settings import CommonSettings
from parley_shared.topology import CAMPAIGN
from tests.agent.conversation_support import sample_knowledge
from tests.support import infra
from tests.support.fake_gemini import FakeGemini, FakeReply
from tests.support.followups import START, make_rig

PROMPTS = Path(__file__).resolve().parents[2] / "prompts"
FACT = "Delivery within Almaty is free for orders above 150 000 tenge."
# google-genai subclasses aiohttp.ClientSession, which aiohttp 3.14 deprecates (a library matter, not ours).
HISTORY = [("in", "Do you deliver office chairs to Almaty?"), ("out", "We do. How many chairs do you need?")]


@pytest.fixture
async def knowledge(tmp_path: Path) -> KnowledgeBase:
    (tmp_path / "delivery.md").write_text(
        f"# Delivery\n\n{FACT} Orders are delivered in 2 working days.\n\n# Chairs\n\nErgonomic chairs in stock.\n"
    )
    kb = KnowledgeBase(tmp_path)
    await kb.ensure_loaded()
    return kb


@pytest.fixture
async def gemini() -> AsyncIterator[FakeGemini]:
    fake = await FakeGemini().start()
    yield fake
    await fake.close()


def writer(
    knowledge: KnowledgeBase | None = None, fake: FakeGemini | None = None, timeout_s: float = 5
) -> FollowUpWriter:
    client = None
    if fake is not None:
        client = make_client(CommonSettings(gemini_api_key="key", gemini_base_url=fake.url), timeout_s=timeout_s)
    return FollowUpWriter(
        Templates.load(PROMPTS),
        business_name="KomfortOffice",
        business_description="office furniture in Almaty",
        knowledge=knowledge,
        gemini=client,
        model="gemini-test",
        system_prompt=(PROMPTS / PROMPT_FILE).read_text(),
        timeout_s=timeout_s,
    )


def ctx(
    strategy: Strategy = Strategy.VALUE_PROPOSITION, language: str | None = "en", name: str | None = "Aigerim"
) -> TouchContext:
    return TouchContext(contact_id=1, touch=2, strategy=strategy, name=name, language=language, history=HISTORY)


@pytest.mark.parametrize("strategy", list(Strategy))
@pytest.mark.parametrize(
    ("language", "greeting"),
    [
        ("en", "Hello"),
        ("ru", "Здравствуйте"),
        ("kk", "Сәлеметсіз бе"),
        ("ru-RU", "Здравствуйте"),
        ("de", "Hello"),
        (None, "Hello"),
    ],
)
async def test_every_strategy_has_a_template_in_each_language(
    strategy: Strategy, language: str | None, greeting: str
) -> None:
    text = (await writer().write(ctx(strategy, language))).text
    assert text.startswith(f"{greeting}, Aigerim!"), text
    assert "{" not in text and "}" not in text
    anonymous = (await writer().write(ctx(strategy, language, name=None))).text
    assert anonymous.startswith(f"{greeting}!")


async def test_offline_value_proposition_quotes_a_grounded_fact(knowledge: KnowledgeBase) -> None:
    result = await writer(knowledge).write(ctx(Strategy.VALUE_PROPOSITION))
    assert FACT in result.text and result.engine == "template"
    assert result.knowledge_refs and result.knowledge_refs[0]["doc"] == "delivery.md"
    reminder = await writer(knowledge).write(ctx(Strategy.REMINDER))
    assert FACT not in reminder.text and reminder.knowledge_refs == []


@pytest.mark.parametrize(
    ("asked", "about", "never"),
    [
        (["How much is the V-20 visitor chair?"], "V-20", ("ErgoPro", "Basic 100", "SilentPod")),
        (["Сколько стоит стул V-20?"], "V-20", ("ErgoPro", "Basic 100")),
        (["Do you deliver to Astana?"], "other cities", ("Delivery in Almaty", "ErgoPro")),
        (["Is there a warranty on the LiftDesk Duo?"], "LiftDesk", ("ErgoPro", "Standard 140")),
    ],
)
async def test_a_touch_speaks_of_what_this_prospect_asked_about(
    asked: list[str], about: str, never: tuple[str, ...]
) -> None:
    knowledge = sample_knowledge()
    history = [(direction, text) for question in asked for direction, text in (("in", question), ("out", "Noted!"))]
    touch = TouchContext(contact_id=1, touch=2, strategy=Strategy.VALUE_PROPOSITION, name=None, history=history)
    result = await writer(knowledge).write(touch)
    assert about in result.text and not any(other in result.text for other in never), result.text
    assert result.knowledge_refs


async def test_gemini_writes_with_the_prompt_conversation_and_passages(
    knowledge: KnowledgeBase, gemini: FakeGemini
) -> None:
    gemini.queue(
        FakeReply.json({"text": "Aigerim, delivery within Almaty is free above 150 000 tenge. Shall I send options?"})
    )
    result = await writer(knowledge, gemini).write(ctx(language="en"))
    assert result.engine == "gemini" and result.model == "gemini-test"
    assert result.text.startswith("Aigerim, delivery")
    (call,) = gemini.calls
    assert "KomfortOffice" in call.system and "English" in call.system and "value_proposition" in call.system
    assert "Do you deliver office chairs to Almaty?" in call.prompt and FACT in call.prompt
    assert "strategy: value_proposition" in call.prompt
    assert call.response_schema is not None


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (FakeReply.json({"text": "Only today: a 20% discount and free delivery at 99 000 tenge!"}), "ungrounded"),
        (FakeReply.error(503), "model_error:ServerError"),
        (FakeReply.blocked(), "model_error:ValueError"),
        (FakeReply.text("not json at all"), "model_error:ValueError"),
        (FakeReply.hang(1.0), "model_error:TimeoutError"),
    ],
    ids=["ungrounded", "503", "blocked", "not-json", "timeout"],
)
async def test_any_model_failure_falls_back_to_the_template(
    knowledge: KnowledgeBase, gemini: FakeGemini, reply: FakeReply, reason: str
) -> None:
    gemini.queue(reply)
    result = await writer(knowledge, gemini, timeout_s=0.3).write(ctx())
    assert result.engine == "template" and result.fallback_reason == reason
    assert "20%" not in result.text and FACT in result.text


async def test_the_scheduler_sends_gemini_text_when_a_key_is_set(
    database_url: str, amqp_url: str, gemini: FakeGemini
) -> None:
    gemini.default = FakeReply.json({"text": "Hello again! Do you still need office chairs?"})
    rig = await make_rig(
        database_url,
        amqp_url,
        llm_engine="auto",
        gemini_api_key="key",
        gemini_base_url=gemini.url,
        gemini_model="gemini-test",
    )
    try:
        contact = await rig.add_contact("+77010000001", language="en")
        await rig.agent_replies(contact)
        assert (await rig.scheduler.run_due(START + timedelta(days=1, hours=2))).sent == 1
        (message,) = [decode(OutgoingMessage, m.body) for m in await infra.drain(amqp_url, CAMPAIGN.name)]
        assert message.text == "Hello again! Do you still need office chairs?"
        async with rig.sessions() as session:
            model = await session.scalar(select(tables.messages.c.model).where(tables.messages.c.kind == "follow_up"))
        assert model == "gemini-test"
    finally:
        await rig.close()
