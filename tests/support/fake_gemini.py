"""A fake Gemini API server that speaks the real HTTP shapes, for the real google-genai SDK.

Point the SDK at it with ``GEMINI_BASE_URL=fake.url`` (any API key). Behaviour is set per test:

* ``fake.responder = async def (call: GeminiCall) -> FakeReply`` -- full control, or
* ``fake.queue(FakeReply.text("..."), FakeReply.error(503), ...)`` -- consumed in order, then
  ``fake.default`` (a plain text reply).

Every call is recorded in ``fake.calls`` (model, method, API version, headers, JSON body, prompt
text, inline data).
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class GeminiCall:
    model: str
    method: str
    body: dict[str, Any]
    api_key: str | None
    version: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def texts(self) -> list[str]:
        out = []
        for content in self.body.get("contents", []):
            for part in content.get("parts", []):
                if "text" in part:
                    out.append(part["text"])
        return out

    @property
    def prompt(self) -> str:
        return "\n".join(self.texts)

    @property
    def system(self) -> str:
        instruction = self.body.get("systemInstruction") or self.body.get("system_instruction") or {}
        return "\n".join(p.get("text", "") for p in instruction.get("parts", []))

    @property
    def inline_data(self) -> list[dict[str, Any]]:
        out = []
        for content in self.body.get("contents", []):
            for part in content.get("parts", []):
                data = part.get("inlineData") or part.get("inline_data")
                if data:
                    out.append(data)
        return out

    @property
    def response_schema(self) -> dict[str, Any] | None:
        config = self.body.get("generationConfig") or {}
        return config.get("responseSchema") or config.get("responseJsonSchema")


@dataclass
class FakeReply:
    status: int = 200
    body: dict[str, Any] = field(default_factory=dict)
    delay_s: float = 0.0

    @classmethod
    def text(cls, text: str, *, prompt_tokens: int = 12, output_tokens: int = 7, delay_s: float = 0.0) -> FakeReply:
        return cls(
            body={
                "candidates": [
                    {"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP", "index": 0}
                ],
                "usageMetadata": {
                    "promptTokenCount": prompt_tokens,
                    "candidatesTokenCount": output_tokens,
                    "totalTokenCount": prompt_tokens + output_tokens,
                },
                "modelVersion": "fake",
            },
            delay_s=delay_s,
        )

    @classmethod
    def json(cls, data: Any, **kwargs: Any) -> FakeReply:
        return cls.text(json.dumps(data, ensure_ascii=False), **kwargs)

    @classmethod
    def error(cls, code: int = 503, message: str = "The model is overloaded.", *, delay_s: float = 0.0) -> FakeReply:
        status = {400: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}.get(
            code, "UNKNOWN"
        )
        return cls(status=code, body={"error": {"code": code, "message": message, "status": status}}, delay_s=delay_s)

    @classmethod
    def blocked(cls) -> FakeReply:
        return cls(
            body={
                "promptFeedback": {"blockReason": "SAFETY"},
                "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5},
            }
        )

    @classmethod
    def hang(cls, seconds: float = 30.0) -> FakeReply:
        return cls.text("too late", delay_s=seconds)


Responder = Callable[[GeminiCall], Awaitable[FakeReply]]


class FakeGemini:
    def __init__(self) -> None:
        self.calls: list[GeminiCall] = []
        self.default: FakeReply = FakeReply.text("ok")
        self.responder: Responder | None = None
        self._queue: deque[FakeReply] = deque()
        self._server: TestServer | None = None
        self.in_flight = 0
        self.peak_in_flight = 0

    def queue(self, *replies: FakeReply) -> None:
        self._queue.extend(replies)

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return str(self._server.make_url("")).rstrip("/")

    async def start(self) -> FakeGemini:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_post("/{version}/models/{model_action}", self._handle)
        self._server = TestServer(app)
        await self._server.start_server()
        return self

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()

    async def _handle(self, request: web.Request) -> web.Response:
        model, _, method = request.match_info["model_action"].partition(":")
        body = await request.json()
        call = GeminiCall(
            model=model,
            method=method,
            body=body,
            api_key=request.headers.get("x-goog-api-key"),
            version=request.match_info["version"],
            headers=dict(request.headers),
        )
        self.calls.append(call)
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            if method in ("batchEmbedContents", "embedContent"):
                reply = self._embed(body, method)
            elif self.responder is not None:
                reply = await self.responder(call)
            elif self._queue:
                reply = self._queue.popleft()
            else:
                reply = self.default
            if reply.delay_s:
                await asyncio.sleep(reply.delay_s)
            return web.json_response(reply.body, status=reply.status)
        finally:
            self.in_flight -= 1

    @staticmethod
    def _embed(body: dict[str, Any], method: str) -> FakeReply:
        """Deterministic bag-of-letters embeddings: similar texts get similar vectors."""

        def vector(text: str) -> list[float]:
            v = [0.0] * 32
            for ch in text.lower():
                v[ord(ch) % 32] += 1.0
            norm = sum(x * x for x in v) ** 0.5 or 1.0
            return [x / norm for x in v]

        def text_of(req: dict[str, Any]) -> str:
            content = req.get("content") or {}
            return " ".join(p.get("text", "") for p in content.get("parts", []))

        if method == "batchEmbedContents":
            return FakeReply(body={"embeddings": [{"values": vector(text_of(r))} for r in body.get("requests", [])]})
        return FakeReply(body={"embedding": {"values": vector(text_of(body))}})
