"""Voice notes: ``voice_transcription`` -> download and keep -> Gemini -> ``incoming_messages``.

* The audio is downloaded with retries and backoff (every attempt resolves the provider's link
  anew, so an expired link is simply fetched again) and kept in the media store for managers to
  listen to (``gateway/media.py``).
* Gemini is called through the real google-genai SDK (``parley_shared.gemini.make_client``)
  with the audio as an inline part, retried on 408/429/5xx and timeouts.
* The result goes to ``incoming_messages`` with the id every inbound message of that provider id
  gets (``stable_id("in", ...)``), marked ``transcribed``. Without a Gemini key, or when download
  or transcription keep failing, it goes WITHOUT text and with ``transcription_error``: the agent
  still hears that a voice note arrived and can ask the prospect to type. Never dropped.
* Idempotent: the voice request id is claimed in the inbox in the same transaction as the
  outbox row; a redelivery finds it taken.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from gateway import metrics
from gateway.domain.admission import inbound_message_id, transcribed
from gateway.media import Kept, MediaKeeper, already_forwarded, forward
from gateway.providers.base import Media
from gateway.settings import GatewaySettings
from parley_shared.contracts import VoiceTranscriptionRequest
from parley_shared.gemini import gemini_configured, make_client
from parley_shared.retry import Backoff
from parley_shared.service import Runtime
from parley_shared.topology import VOICE

log = structlog.get_logger(__name__)
Sleep = Callable[[float], Awaitable[None]]

PROMPT = (
    "Transcribe this WhatsApp voice message word for word, in the language it is spoken in "
    "(often Russian, Kazakh or English; do not translate). Answer with the transcript only, "
    "without quotes, labels or comments. If there is no speech, answer with nothing."
)
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class TranscriptionFailed(Exception):
    pass


class Transcriber:
    def __init__(
        self,
        *,
        runtime: Runtime,
        keeper: MediaKeeper,
        settings: GatewaySettings,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.runtime = runtime
        self.keeper = keeper
        self.settings = settings
        self.sleep = sleep
        self._client: genai.Client | None = None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aio.aclose()
            self._client = None

    async def handle(self, request: VoiceTranscriptionRequest) -> None:
        if await already_forwarded(self.runtime, request.message_id):
            return
        message_id = inbound_message_id(request.provider, request.provider_message_id)
        kept = await self.keeper.keep(message_id, request.kind, request.media)
        text, error = await self._transcribe(kept)
        message = transcribed(request, text=text, error=error, received_at=self.runtime.clock.now(), media=kept.ref)
        forwarded = await forward(
            self.runtime,
            queue=VOICE.name,
            request_id=request.message_id,
            message=message,
            kept=kept,
            status="transcribed" if message.transcribed else "untranscribed",
            error=message.transcription_error,
        )
        if forwarded:
            metrics.TRANSCRIPTIONS.labels("transcribed" if message.transcribed else "untranscribed").inc()

    async def _transcribe(self, kept: Kept) -> tuple[str | None, str | None]:
        """(transcript, None) or (None, why not)."""
        if kept.media is None:
            return None, f"audio download failed: {kept.ref.error}"[:500]
        if not gemini_configured(self.settings):
            return None, "transcription is not configured (no GEMINI_API_KEY)"
        try:
            return await self._gemini(kept.media), None
        except TranscriptionFailed as exc:
            log.warning("transcriber.failed", reason=str(exc))
            return None, f"transcription failed: {exc}"[:500]

    def _backoff(self, attempts: int) -> Backoff:
        return Backoff(first_s=self.settings.media_backoff_s, max_s=30.0, attempts=attempts)

    def _gemini_client(self) -> genai.Client:
        if self._client is None:
            self._client = make_client(self.settings, timeout_s=self.settings.transcription_timeout_s)
        return self._client

    async def _gemini(self, media: Media) -> str:
        mime = media.mime_type.split(";", 1)[0].strip() or "audio/ogg"
        contents: list[types.PartUnion] = [types.Part.from_bytes(data=media.data, mime_type=mime), PROMPT]

        async def call() -> Any:
            return await self._gemini_client().aio.models.generate_content(
                model=self.settings.gemini_transcription_model,
                contents=contents,
                config=types.GenerateContentConfig(temperature=0.0),
            )

        def retryable(exc: BaseException) -> bool:
            if isinstance(exc, genai_errors.APIError):
                return exc.code in RETRYABLE_STATUS
            return isinstance(exc, Exception)  # timeouts and connection errors of the SDK's HTTP client

        try:
            response = await self._backoff(self.settings.transcription_attempts).call(
                call, name="transcriber.gemini", retry_if=retryable, sleep=self.sleep
            )
        except genai_errors.APIError as exc:
            raise TranscriptionFailed(f"gemini error {exc.code}") from exc
        except Exception as exc:
            raise TranscriptionFailed(f"gemini unreachable: {type(exc).__name__}") from exc
        text = (response.text or "").strip()
        if not text:
            blocked = response.prompt_feedback.block_reason if response.prompt_feedback else None
            raise TranscriptionFailed("blocked" if blocked else "no speech recognised")
        return text
