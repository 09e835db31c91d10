"""One way to build a google-genai client, for both services (transcription and the sales agent).

The base URL is a setting so tests point the real SDK at a local fake Gemini server
(``tests/support/fake_gemini.py``). The SDK's own retries are off: callers retry with their
own policy so that a failure ends in a safe fallback rather than an exception.
"""

from __future__ import annotations

from google import genai
from google.genai import types

from parley_shared.settings import CommonSettings


def gemini_configured(settings: CommonSettings) -> bool:
    return settings.gemini_api_key is not None and bool(settings.gemini_api_key.get_secret_value())


def make_client(settings: CommonSettings, *, timeout_s: float) -> genai.Client:
    if not gemini_configured(settings):
        raise RuntimeError("GEMINI_API_KEY is not set")
    assert settings.gemini_api_key is not None
    options = types.HttpOptions(
        base_url=settings.gemini_base_url or None,
        api_version=settings.gemini_api_version,
        timeout=int(timeout_s * 1000),
        retry_options=types.HttpRetryOptions(attempts=1),
    )
    return genai.Client(api_key=settings.gemini_api_key.get_secret_value(), http_options=options)
