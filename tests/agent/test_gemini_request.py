"""The request converted once (``engines/gemini_request.py``) against the plain SDK call.

``JsonRequest`` uses internals of the pinned google-genai. Here both paths talk to the fake
Gemini server and must agree on what the server receives (URL, headers, body: system
instruction, contents, generationConfig with the schema), on the ``GenerateContentResponse``
built from the answer (including a blocked one and one with fields the SDK does not know),
and on the ``APIError`` raised for an error status. An SDK upgrade that changes any of this
fails here.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from google.genai import errors, types
from pydantic import BaseModel

from agent_service.engines.gemini import DecisionWire, FirstContactWire, GeminiEngine, _response_schema
from agent_service.engines.gemini_request import JsonRequest
from agent_service.followups.text import FollowUpDraft, _draft_request
from agent_service.prompts import PromptBook
from parley_shared.gemini import make_client
from parley_shared.settings import CommonSettings
from tests.support.fake_gemini import FakeGemini, FakeReply, GeminiCall

ROOT = Path(__file__).resolve().parents[2]
SYSTEM = "You are the sales assistant of KomfortOffice. Quote only the passages: «89 900 ₸».\n" * 40
CONTENT = "[catalogue.pdf:p2:c1] ErgoPro 300 office chair: 89 900 ₸.\nProspect: How much?\n" * 40
ANSWER = '{"reply": "89 900 ₸", "spin_stage": "problem", "outcome": "open"}'


@pytest.fixture
async def client(fake: FakeGemini) -> AsyncIterator[Any]:
    gemini = make_client(CommonSettings(gemini_api_key="test-key", gemini_base_url=fake.url), timeout_s=5)
    yield gemini
    await gemini.aio.aclose()


def engine_request(client: Any, schema: type[BaseModel]) -> tuple[JsonRequest, types.GenerateContentConfig, Any]:
    """The engine's request for ``schema``, and the config and contents of the SDK call it replaced."""
    engine = GeminiEngine(client, model="gemini-test", prompts=PromptBook(ROOT / "prompts"))
    config = types.GenerateContentConfig(
        system_instruction=SYSTEM,
        temperature=0.3,
        response_mime_type="application/json",
        response_schema=_response_schema(schema),
    )
    return engine._requests[schema], config, CONTENT


def draft_request(client: Any) -> tuple[JsonRequest, types.GenerateContentConfig, Any]:
    """The follow-up writer's request, and the config and contents of the SDK call it replaced."""
    config = types.GenerateContentConfig(
        system_instruction=SYSTEM, temperature=0.7, response_mime_type="application/json", response_schema=FollowUpDraft
    )
    return _draft_request(client, "gemini-test"), config, [CONTENT]


REQUESTS = {
    "decision": lambda client: engine_request(client, DecisionWire),
    "first_contact": lambda client: engine_request(client, FirstContactWire),
    "follow_up": draft_request,
}


def sent(call: GeminiCall) -> dict[str, Any]:
    """What the server received, but for the headers that differ between any two requests."""
    headers = {k: v for k, v in call.headers.items() if k.lower() not in ("date",)}
    return {"model": call.model, "method": call.method, "version": call.version, "headers": headers, "body": call.body}


def fields(response: types.GenerateContentResponse) -> dict[str, Any]:
    """Everything a caller reads, but ``parsed`` (not filled in by JsonRequest), the HTTP headers and
    the automatic function calling history (the plain call's is [] without tools)."""
    return response.model_dump(exclude={"parsed", "sdk_http_response", "automatic_function_calling_history"})


@pytest.mark.parametrize("name", REQUESTS)
async def test_the_server_receives_what_the_plain_sdk_call_sends(fake: FakeGemini, client: Any, name: str) -> None:
    request, config, contents = REQUESTS[name](client)
    plain = await client.aio.models.generate_content(model="gemini-test", contents=contents, config=config)
    fast = await request.generate(SYSTEM, CONTENT)
    before, after = fake.calls
    assert sent(after) == sent(before)
    assert after.system == SYSTEM and after.prompt == CONTENT and after.api_key == "test-key"
    assert after.body["generationConfig"]["responseSchema"]["type"] == "OBJECT"
    assert fields(fast) == fields(plain) and fast.text == "ok"
    assert fast.sdk_http_response is not None and fast.sdk_http_response.headers


@pytest.mark.parametrize(
    "reply",
    [
        FakeReply.json({"reply": "89 900 ₸"}, prompt_tokens=321, output_tokens=45),
        FakeReply.blocked(),
        FakeReply(body={"candidates": [{"finishReason": "SAFETY", "index": 0}], "usageMetadata": {}}),
        FakeReply(body={}),
        # Fields the SDK does not know are dropped, as the SDK does, not an error.
        FakeReply(
            body={
                "candidates": [
                    {"content": {"parts": [{"text": ANSWER, "newPartField": 1}], "role": "model"}, "newField": 2}
                ],
                "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 3, "futureTokenCount": 1},
                "modelVersion": "fake",
                "responseId": "r1",
                "somethingNew": {"x": 1},
            }
        ),
    ],
)
async def test_the_response_is_read_as_the_plain_sdk_call_reads_it(
    fake: FakeGemini, client: Any, reply: FakeReply
) -> None:
    request, config, contents = engine_request(client, DecisionWire)
    fake.queue(reply, reply)
    plain = await client.aio.models.generate_content(model="gemini-test", contents=contents, config=config)
    fast = await request.generate(SYSTEM, CONTENT)
    assert fields(fast) == fields(plain)
    assert fast.text == plain.text and fast.usage_metadata == plain.usage_metadata
    assert fast.prompt_feedback == plain.prompt_feedback


@pytest.mark.parametrize("status", [400, 404, 429, 500, 503])
async def test_an_error_status_raises_the_plain_sdk_calls_api_error(fake: FakeGemini, client: Any, status: int) -> None:
    request, config, contents = engine_request(client, FirstContactWire)
    fake.queue(FakeReply.error(status, "nope"), FakeReply.error(status, "nope"))
    with pytest.raises(errors.APIError) as plain:
        await client.aio.models.generate_content(model="gemini-test", contents=contents, config=config)
    with pytest.raises(errors.APIError) as fast:
        await request.generate(SYSTEM, CONTENT)
    assert type(fast.value) is type(plain.value) and fast.value.code == status
    assert (fast.value.status, fast.value.message) == (plain.value.status, plain.value.message)
    assert isinstance(fast.value, errors.ClientError if status < 500 else errors.ServerError)


async def test_an_answer_given_in_parts_is_followed_by_the_sdk(fake: FakeGemini, client: Any) -> None:
    """A CONTINUATION answer goes to the SDK's own call, which follows the continuation tokens."""
    request, _config, _contents = engine_request(client, DecisionWire)
    token = base64.b64encode(b"more").decode()
    part = {"content": {"parts": [{"text": '{"reply": '}], "role": "model"}, "finishReason": "CONTINUATION"}
    fake.queue(
        FakeReply(body={"candidates": [{**part, "continuationToken": token}]}),
        FakeReply(body={"candidates": [{**part, "continuationToken": token}]}),
        FakeReply.text('"89 900 ₸"}'),
    )
    response = await request.generate(SYSTEM, CONTENT)
    assert response.text == '{"reply": "89 900 ₸"}' and len(fake.calls) == 3
    assert fake.calls[1].body["contents"] == fake.calls[0].body["contents"]
    assert fake.calls[1].system == SYSTEM
