"""A Gemini ``generateContent`` request converted by the SDK once and reused for every call.

``client.aio.models.generate_content`` does all its setup again on every call. It deep-copies the
config twice, validates the parameters as pydantic models and converts them, schema included, to
the REST body. Under load that cost the agent about 2.5 ms of CPU per call, several times the HTTP
exchange itself. Parley's calls differ only in the system instruction and the content, so
:class:`JsonRequest` has the SDK convert everything else once, with the converter
``generate_content`` itself uses. Each call then goes through the client's own API client
(``async_request``), which applies the client's base URL, API key, headers, timeout and retry
options and raises the same ``errors.APIError``s. The ``GenerateContentResponse`` is built with
the SDK's response converter. The server receives exactly what ``generate_content`` would send.
``response.parsed`` is not filled in; Parley validates ``response.text`` itself.

The parts used here are internals of the pinned google-genai 3.4.0. They are looked up when the
request is built, so an SDK that lacks one fails at start-up rather than turning every model
call into a fallback. ``tests/agent/test_gemini_request.py`` compares bodies, responses and
errors with the plain SDK call against the fake Gemini server, so an upgrade that changes their
behaviour fails there.
"""

from __future__ import annotations

import json
from typing import Any

from google.genai import _common, models, types


class JsonRequest:
    """``generate_content(model=model, contents=content, config=config + system_instruction)``,
    with the config (temperature, JSON mime type, response schema ...) converted once."""

    def __init__(self, client: Any, *, model: str, config: types.GenerateContentConfig) -> None:
        api = client.aio.models._api_client
        if api.vertexai:
            raise ValueError("JsonRequest speaks the Gemini Developer API only")
        params = types._GenerateContentParameters(model=model, contents="-", config=config)
        request = _common.convert_to_dict(models._GenerateContentParameters_to_mldev(api, params, None, params))
        self._path = "{model}:generateContent".format_map(request.pop("_url"))
        for per_call in ("contents", "systemInstruction", "config"):
            request.pop(per_call, None)
        self._template = _common.encode_unserializable_types(request)
        self._send = api.async_request
        self._convert = models._GenerateContentResponse_from_mldev
        self._generate = client.aio.models.generate_content
        self._model, self._config = model, config

    async def generate(self, system: str, content: str) -> types.GenerateContentResponse:
        body = {**self._template, "contents": [_user(content)], "systemInstruction": _user(system)}
        answer = await self._send("post", self._path, body)
        raw = json.loads(answer.body) if answer.body else {}
        response = types.GenerateContentResponse._from_response(response=self._convert(raw), kwargs={})
        response.sdk_http_response = types.HttpResponse(headers=answer.headers)
        if response.candidates and response.candidates[0].continuation_token:
            # The server split the answer: the SDK's own call follows the continuation tokens.
            config = self._config.model_copy(update={"system_instruction": system})
            return await self._generate(model=self._model, contents=content, config=config)
        return response


def _user(text: str) -> dict[str, Any]:
    return {"parts": [{"text": text}], "role": "user"}
