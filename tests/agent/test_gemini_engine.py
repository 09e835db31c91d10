"""The Gemini engine with the real google-genai SDK against the fake Gemini server."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent_service.domain.profile import BusinessProfile
from agent_service.engines.base import HistoryItem, TurnContext
from agent_service.engines.gemini import GeminiEngine
from agent_service.knowledge.base import Passage
from agent_service.prompts import PromptBook
from agent_service.settings import AgentSettings
from parley_shared.gemini import make_client
from tests.agent.conversation_support import running_agent
from tests.support.fake_gemini import FakeGemini, FakeReply, GeminiCall

# google-genai subclasses aiohttp.ClientSession, which aiohttp deprecates (a warning, an error under -W error).

ROOT = Path(__file__).resolve().parents[2]
PROFILE = BusinessProfile("KomfortOffice", "office furniture shop in Almaty", "Asia/Almaty")
PASSAGE = Passage("catalogue.pdf", 2, "catalogue.pdf:p2:c1", "ErgoPro 300 office chair: 89 900 ₸.", 3.2)


def context(**fields: Any) -> TurnContext:
    values: dict[str, Any] = {
        "language": "en",
        "spin_stage": "problem",
        "outcome": "open",
        "messages": ["How much is the ErgoPro 300?"],
        "history": [HistoryItem("in", "text", "Hello"), HistoryItem("out", "reply", "Hi! How can I help?")],
        "passages": [PASSAGE],
        "profile": PROFILE,
        "now": datetime(2026, 1, 5, 7, 0, tzinfo=UTC),
    }
    values.update(fields)
    return TurnContext(**values)


def decision(**fields: Any) -> dict[str, Any]:
    data = {
        "reply": "The ErgoPro 300 costs 89 900 ₸.",
        "spin_stage": "implication",
        "outcome": "open",
        "action": "none",
        "proposed_call_time": None,
        "language": "en",
        "passages_used": ["catalogue.pdf:p2:c1"],
        "handoff_reason": None,
    }
    data.update(fields)
    return data


@pytest.fixture
async def engine(fake: FakeGemini) -> AsyncIterator[GeminiEngine]:
    settings = AgentSettings(gemini_api_key="test-key", gemini_base_url=fake.url)
    sleeps: list[float] = []

    async def no_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    gemini = GeminiEngine(
        make_client(settings, timeout_s=5),
        model="gemini-test",
        prompts=PromptBook(ROOT / "prompts"),
        attempts=3,
        backoff_s=0.5,
        timeout_s=1.0,
        sleep=no_sleep,
    )
    gemini.sleeps = sleeps  # type: ignore[attr-defined]
    yield gemini
    await gemini.close()


async def test_valid_structured_output_becomes_a_decision_with_token_usage(
    fake: FakeGemini, engine: GeminiEngine
) -> None:
    fake.queue(FakeReply.json(decision(), prompt_tokens=321, output_tokens=45))
    result = await engine.decide(context())
    assert not result.fallback and result.error is None and result.attempts == 1
    assert result.decision.reply == "The ErgoPro 300 costs 89 900 ₸." and result.decision.spin_stage == "implication"
    assert (result.model, result.tokens_in, result.tokens_out) == ("gemini-test", 321, 45)
    call = fake.calls[0]
    assert call.model == "gemini-test" and call.api_key == "test-key"
    assert "KomfortOffice" in call.system and "SPIN" in call.system and "Asia/Almaty" in call.system
    assert "[catalogue.pdf:p2:c1]" in call.prompt and "How much is the ErgoPro 300?" in call.prompt
    assert "Agent: Hi! How can I help?" in call.prompt
    assert call.response_schema is not None and "spin_stage" in json.dumps(call.response_schema)
    assert call.body["generationConfig"]["responseMimeType"] == "application/json"


async def test_a_server_error_is_retried_with_backoff_then_succeeds(fake: FakeGemini, engine: GeminiEngine) -> None:
    fake.queue(FakeReply.error(503), FakeReply.error(429), FakeReply.json(decision()))
    result = await engine.decide(context())
    assert not result.fallback and result.attempts == 3 and len(fake.calls) == 3
    assert engine.sleeps == [0.5, 1.0]  # type: ignore[attr-defined]


async def test_malformed_output_is_retried_then_answered_with_the_fallback(
    fake: FakeGemini, engine: GeminiEngine
) -> None:
    fake.queue(
        FakeReply.text("Sure! The chair is cheap."),
        FakeReply.json({"reply": "hi"}),
        FakeReply.json(decision(action="schedule_call", outcome="declined")),
    )
    result = await engine.decide(context(language="ru", spin_stage="problem", outcome="uncertain"))
    assert result.fallback and result.attempts == 3 and "declined" in (result.error or "")
    fallback = PromptBook(ROOT / "prompts").phrase("ru", "fallback")
    d = result.decision
    assert (d.reply, d.action, d.spin_stage, d.outcome) == (fallback, "none", "problem", "uncertain")
    assert result.tokens_in == 36  # usage of every attempt counts


async def test_a_blocked_answer_is_not_retried(fake: FakeGemini, engine: GeminiEngine) -> None:
    fake.queue(FakeReply.blocked())
    result = await engine.decide(context())
    assert result.fallback and result.error == "blocked: SAFETY" and len(fake.calls) == 1


async def test_a_client_error_is_not_retried(fake: FakeGemini, engine: GeminiEngine) -> None:
    fake.queue(FakeReply.error(400, "bad request"))
    result = await engine.decide(context())
    assert result.fallback and "400" in (result.error or "") and len(fake.calls) == 1


async def test_a_hanging_model_times_out_into_the_fallback(fake: FakeGemini, engine: GeminiEngine) -> None:
    fake.queue(FakeReply.hang(3), FakeReply.hang(3), FakeReply.hang(3))
    result = await engine.decide(context())
    assert result.fallback and result.error == "timeout" and result.attempts == 3


async def test_a_new_contact_is_classified_and_answered_in_one_call(fake: FakeGemini, engine: GeminiEngine) -> None:
    verdict = {"status": "non_client", "category": "job_seeker", "reason": "asks for a job", "confidence": 0.92}
    fake.queue(FakeReply.json({**decision(), "classification": verdict}))
    result = await engine.decide(context(classify=True, messages=["Do you have vacancies?"]))
    assert result.classification is not None and len(fake.calls) == 1
    got = result.classification
    assert (got.status, got.category, got.confidence) == ("non_client", "job_seeker", 0.92)
    call = fake.calls[-1]
    assert "moderator" in call.system and "sales assistant" in call.system and "classification" in call.system
    assert "classification" in json.dumps(call.response_schema)
    # A missing or broken classification costs no retry: the decision stands, the rules will classify.
    fake.queue(FakeReply.json({**decision(), "classification": {"status": "maybe"}}))
    broken = await engine.decide(context(classify=True))
    assert not broken.fallback and broken.classification is None and len(fake.calls) == 2
    # A classified contact's call asks for no classification.
    fake.queue(FakeReply.json(decision()))
    plain = await engine.decide(context())
    assert plain.classification is None and "classification" not in json.dumps(fake.calls[-1].response_schema)


async def test_the_service_uses_gemini_when_a_key_is_set(amqp_url: str, tmp_path: Path, fake: FakeGemini) -> None:
    async def respond(call: GeminiCall) -> FakeReply:
        ids = [line[1:].split("]")[0] for line in call.prompt.splitlines() if line.startswith("[")]
        verdict = {"status": "client", "category": "prospect", "reason": "asks", "confidence": 0.9}
        return FakeReply.json({**decision(passages_used=ids[:1], reply="The ErgoPro 300 costs 89 900 ₸."),
                               "classification": verdict}, prompt_tokens=500, output_tokens=30)  # fmt: skip

    fake.responder = respond
    async with running_agent(
        amqp_url,
        f"sqlite+aiosqlite:///{tmp_path}/a.db",
        llm_engine="auto",
        gemini_api_key="k",
        gemini_base_url=fake.url,
        knowledge_embeddings=False,
    ) as agent:
        reply = await agent.say("+77010000201", "How much is the ErgoPro 300?")
        convo = await agent.conversation("+77010000201")
    assert reply.text == "The ErgoPro 300 costs 89 900 ₸."
    out = convo["messages"][-1]
    assert (out["model"], out["tokens_in"], out["tokens_out"]) == ("gemini-2.5-flash", 500, 30)
    assert out["latency_ms"] is not None and out["knowledge_refs"][0]["doc"] == "komfortoffice_catalogue.pdf"
    assert convo["contact"]["spin_stage"] == "implication"
    assert convo["contact"]["classification_reason"] == "asks"  # the model's verdict, from the same call
    assert [c.method for c in fake.calls] == ["generateContent"]  # one round trip to the first answer
