"""Hypothesis against the parsers of what providers ANSWER (the inbound parsers -- Wappi pages,
Meta webhooks, contracts, phones, Retry-After, model decisions -- are fuzzed in tests/gateway,
tests/shared and tests/agent; this extends them to the other direction).

Each real provider client is pointed at a server that answers whatever Hypothesis draws: any
status, any ``Retry-After``, any JSON or bytes. The client must turn every answer into its typed
result or its typed error, never anything else:

* Wappi and Meta ``send`` -> ``SendResult`` or ``SendError`` (429/408/5xx always retryable, a
  ``Retry-After`` never negative);
* Wappi and Meta ``download_media`` -> ``Media`` or ``MediaError``;
* the Wappi poll (``fetch_page``) -> a page, ``PayloadError`` or ``ProviderUnavailable``;
* the Gemini engine (real google-genai SDK) given any response envelope -> a decision or the
  safe fallback, and -- for a contact not classified yet -- a verdict or None.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_service.domain.profile import BusinessProfile
from agent_service.engines.base import TurnContext
from agent_service.engines.gemini import GeminiEngine
from agent_service.prompts import PromptBook
from agent_service.settings import AgentSettings
from gateway.domain.admission import PayloadError
from gateway.domain.failures import FailureKind
from gateway.providers.base import Media, MediaError, ProviderUnavailable, SendError, SendResult
from gateway.providers.meta import MetaProvider
from gateway.providers.wappi import WappiProvider
from gateway.settings import GatewaySettings
from parley_shared.clock import ManualClock
from parley_shared.contracts import MediaRef, OutgoingKind, OutgoingMessage
from parley_shared.gemini import make_client
from tests.support.fake_gemini import FakeGemini, FakeReply, GeminiCall
from tests.support.fake_http import FakeHTTPServer

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("PARLEY_FUZZ_EXAMPLES", "12")) * 5
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=EXAMPLES <= 100,  # the CI profile is reproducible; make chaos explores
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c, max_size=5),
    max_leaves=25,
)
statuses = st.sampled_from([200, 201, 202, 204, 400, 401, 403, 404, 408, 410, 429, 500, 502, 503]) | st.integers(
    200, 599
)
retry_after = st.none() | st.integers(-5, 10**9).map(str) | st.text(max_size=30).filter(str.isprintable)


def _body(kind: str, value: Any, raw: bytes) -> bytes:
    return raw if kind == "bytes" else json.dumps(value).encode()


# Shapes that look like the real answers, with junk in the places parsers read.
wappi_like = st.fixed_dictionaries(
    {"status": st.sampled_from(["done", "error", "ok"]) | json_values},
    optional={
        "message_id": json_values,
        "detail": json_values,
        "file_b64": st.sampled_from(["", "aGVsbG8=", "not base64!"]) | json_values,
        "file_link": st.sampled_from(["http://127.0.0.1:9/f", "ftp://x", ""]) | json_values,
        "mime_type": json_values,
        "messages": st.lists(json_values, max_size=3) | json_values,
        "total_count": json_values,
    },
)
graph_like = st.fixed_dictionaries(
    {},
    optional={
        "messages": st.lists(st.fixed_dictionaries({}, optional={"id": json_values}) | json_values, max_size=2),
        "error": st.fixed_dictionaries(
            {}, optional={"code": json_values, "message": json_values, "error_data": json_values}
        )
        | json_values,
        "url": st.sampled_from(["http://127.0.0.1:9/media", "x"]) | json_values,
        "mime_type": json_values,
    },
)
answers = st.tuples(
    statuses,
    retry_after,
    st.sampled_from(["json", "bytes"]),
    wappi_like | graph_like | json_values,
    st.binary(max_size=200),
)


class AnyAnswer(FakeHTTPServer):
    """Answers every request with the example Hypothesis drew."""

    def __init__(self) -> None:
        self.status, self.headers, self.body = 200, {}, b"{}"

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self._answer)

    async def _answer(self, _request: web.Request) -> web.Response:
        return web.Response(status=self.status, body=self.body, headers=self.headers, content_type="application/json")

    def set(self, answer: tuple[int, str | None, str, Any, bytes]) -> None:
        status, retry, kind, value, raw = answer
        self.status = status
        self.headers = {"Retry-After": retry} if retry is not None else {}
        self.body = b"" if status == 204 else _body(kind, value, raw)


@pytest.fixture
async def providers() -> AsyncIterator[tuple[AnyAnswer, WappiProvider, MetaProvider]]:
    server = await AnyAnswer().start()
    config = GatewaySettings(  # type: ignore[call-arg]
        app_env="test",
        wappi_base_url=server.url,
        wappi_token="t",
        wappi_profile_id="p",
        meta_graph_base_url=server.url,
        meta_access_token="t",
        meta_phone_number_id="1",
        send_timeout_s=5,
    )
    clock = ManualClock(datetime(2026, 1, 5, 7, 0, tzinfo=UTC))
    wappi, meta = WappiProvider(config, clock), MetaProvider(config, clock)
    await wappi.start()
    await meta.start()
    yield server, wappi, meta
    await wappi.close()
    await meta.close()
    await server.close()


MESSAGE = OutgoingMessage(
    message_id="m1", correlation_id="c1", phone="+77010000001", text="hi", kind=OutgoingKind.REPLY
)


@FUZZ
@given(answer=answers)
async def test_provider_answers_become_a_result_or_a_typed_error(
    providers: tuple[AnyAnswer, WappiProvider, MetaProvider], answer: tuple[int, str | None, str, Any, bytes]
) -> None:
    server, wappi, meta = providers
    server.set(answer)
    status = answer[0]
    for provider in (wappi, meta):
        try:
            result = await provider.send(MESSAGE)
        except SendError as exc:
            failure = exc.failure
            assert failure.retry_after_s is None or failure.retry_after_s >= 0
            if status in (408, 429) or status >= 500:
                assert failure.kind is FailureKind.TRANSIENT, (provider.name, status)
        else:
            assert isinstance(result, SendResult) and status == 200
        try:
            media = await provider.download_media(MediaRef(media_id="media-1", mime_type="audio/ogg"))
        except MediaError:
            pass
        else:
            assert isinstance(media, Media)
    try:
        page, seen = await wappi.fetch_page(limit=10, offset=0)
    except (PayloadError, ProviderUnavailable):
        pass
    else:
        assert isinstance(page, list) and isinstance(seen, int)


# ------------------------------------------------------------------------------------------ Gemini
parts = st.lists(
    st.fixed_dictionaries({}, optional={"text": st.text(max_size=80) | json_values, "thought": json_values}),
    max_size=3,
)
envelopes = st.fixed_dictionaries(
    {},
    optional={
        "candidates": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "content": st.fixed_dictionaries({}, optional={"parts": parts | json_values, "role": json_values}),
                    "finishReason": st.sampled_from(["STOP", "SAFETY", "MAX_TOKENS", "OTHER"]) | st.text(max_size=10),
                    "index": st.integers(0, 3),
                },
            ),
            max_size=2,
        ),
        "promptFeedback": st.fixed_dictionaries({}, optional={"blockReason": st.sampled_from(["SAFETY", "OTHER"])}),
        "usageMetadata": st.fixed_dictionaries(
            {}, optional={"promptTokenCount": st.integers(0, 10**6), "candidatesTokenCount": st.integers(0, 10**6)}
        ),
    },
)
PROFILE = BusinessProfile("KomfortOffice", "office furniture shop in Almaty", "Asia/Almaty")


@pytest.fixture
async def gemini() -> AsyncIterator[tuple[FakeGemini, GeminiEngine]]:
    fake = await FakeGemini().start()
    settings = AgentSettings(gemini_api_key="fuzz-key", gemini_base_url=fake.url)  # type: ignore[call-arg]

    async def no_sleep(_seconds: float) -> None:
        return None

    engine = GeminiEngine(
        make_client(settings, timeout_s=5),
        model="fuzz",
        prompts=PromptBook(ROOT / "prompts"),
        attempts=1,
        timeout_s=5.0,
        sleep=no_sleep,
    )
    yield fake, engine
    await engine.close()
    await fake.close()


@FUZZ
@given(status=st.sampled_from([200, 200, 200, 400, 429, 500, 503]), body=envelopes | json_values)
async def test_any_model_envelope_gives_a_decision_or_the_fallback(
    gemini: tuple[FakeGemini, GeminiEngine], status: int, body: Any
) -> None:
    fake, engine = gemini

    async def answer(_call: GeminiCall) -> FakeReply:
        return FakeReply(status=status, body=body if isinstance(body, dict) else {"x": body})

    fake.responder = answer
    for classify in (False, True):
        context = TurnContext(
            language="en",
            spin_stage="situation",
            outcome="open",
            messages=["Do you sell chairs?"],
            history=[],
            passages=[],
            profile=PROFILE,
            now=datetime(2026, 1, 5, 7, 0, tzinfo=UTC),
            classify=classify,
        )
        result = await engine.decide(context)
        assert result.decision.reply.strip()
        if result.fallback:
            assert result.decision.action == "none" and result.error and result.classification is None
        verdict = result.classification
        assert verdict is None or (classify and verdict.status in ("client", "non_client"))
