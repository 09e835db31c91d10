"""Provider-neutral inbound data: what every provider's payload is parsed into.

A provider parser (``domain/wappi.py``, ``domain/meta.py``, the sandbox route) turns its own
shape into :class:`InboundEvent` values; :func:`admit` decides what happens to each one and
:func:`to_contract` builds the queue payload. No I/O here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from parley_shared.contracts import (
    MAX_TEXT,
    Contract,
    DeliveryState,
    IncomingMessage,
    MediaRef,
    MessageKind,
    Provider,
    VoiceTranscriptionRequest,
    stable_id,
)
from parley_shared.phone import PhoneError, to_e164
from parley_shared.topology import INCOMING, VOICE, WorkQueue

VOICE_KINDS = frozenset({MessageKind.VOICE, MessageKind.AUDIO})
MAX_NAME = 200


class PayloadError(ValueError):
    """A provider payload that cannot be read (the HTTP edge answers 400)."""


@dataclass(frozen=True)
class InboundEvent:
    """One message as a provider reported it, before any decision is taken."""

    provider: Provider
    provider_message_id: str
    sender: str  # the provider's own identity format: "7701...@c.us", "7701...", "+7701..."
    kind: MessageKind
    sent_at: datetime
    text: str | None = None
    caption: str | None = None
    media: MediaRef | None = None
    contact_name: str | None = None
    from_me: bool = False


@dataclass(frozen=True)
class StatusEvent:
    """A delivery status a provider reported for one of our outgoing messages."""

    provider: Provider
    provider_message_id: str
    state: DeliveryState
    occurred_at: datetime
    error_code: str | None = None
    error_reason: str | None = None


class Verdict(enum.StrEnum):
    PUBLISH = "publish"
    IGNORED = "ignored"  # logged, not published
    SKIPPED = "skipped"  # not logged: own message, group chat, not a phone


@dataclass(frozen=True)
class Admission:
    verdict: Verdict
    phone: str | None = None
    reason: str | None = None


def admit(event: InboundEvent, ignored: set[str] | frozenset[str]) -> Admission:
    """Own messages, group chats and non-phones are skipped; ignored numbers are logged only."""
    if event.from_me:
        return Admission(Verdict.SKIPPED, reason="own_message")
    try:
        phone = to_e164(event.sender)
    except PhoneError:
        lowered = event.sender.lower()
        return Admission(Verdict.SKIPPED, reason="group" if lowered.endswith("@g.us") else "not_a_phone")
    if phone in ignored:
        return Admission(Verdict.IGNORED, phone=phone, reason="ignore_list")
    return Admission(Verdict.PUBLISH, phone=phone)


def inbound_message_id(provider: Provider, provider_message_id: str) -> str:
    """The id the agent sees for a provider message (the same for its transcription)."""
    return stable_id("in", provider.value, provider_message_id)


def voice_request_id(provider: Provider, provider_message_id: str) -> str:
    return stable_id("voice", provider.value, provider_message_id)


def _clip(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value[:limit] if value else None


def to_contract(event: InboundEvent, phone: str, received_at: datetime) -> tuple[WorkQueue, Contract]:
    """The queue and payload for an admitted event: voice notes wait for transcription first."""
    name = _clip(event.contact_name, MAX_NAME)
    if event.kind in VOICE_KINDS and event.media is not None:
        request = VoiceTranscriptionRequest(
            message_id=voice_request_id(event.provider, event.provider_message_id),
            correlation_id=inbound_message_id(event.provider, event.provider_message_id),
            phone=phone,
            contact_name=name,
            provider=event.provider,
            provider_message_id=event.provider_message_id,
            kind=event.kind,
            media=event.media,
            sent_at=event.sent_at,
            received_at=received_at,
        )
        return VOICE, request
    message_id = inbound_message_id(event.provider, event.provider_message_id)
    message = IncomingMessage(
        message_id=message_id,
        correlation_id=message_id,
        phone=phone,
        contact_name=name,
        provider=event.provider,
        provider_message_id=event.provider_message_id,
        kind=event.kind,
        text=_clip(event.text, MAX_TEXT * 4),
        caption=_clip(event.caption, MAX_TEXT),
        media=event.media,
        sent_at=event.sent_at,
        received_at=received_at,
    )
    return INCOMING, message


def transcribed(
    request: VoiceTranscriptionRequest, *, text: str | None, error: str | None, received_at: datetime
) -> IncomingMessage:
    """The voice note as the agent sees it: with its transcript, or without text and a reason."""
    message_id = inbound_message_id(request.provider, request.provider_message_id)
    return IncomingMessage(
        message_id=message_id,
        correlation_id=request.correlation_id,
        phone=request.phone,
        contact_name=request.contact_name,
        provider=request.provider,
        provider_message_id=request.provider_message_id,
        kind=request.kind,
        text=_clip(text, MAX_TEXT * 4),
        media=request.media.model_copy(update={"inline_b64": None}) if request.media.inline_b64 else request.media,
        transcribed=text is not None and bool(text.strip()),
        transcription_error=None if text and text.strip() else (error or "empty transcript")[:500],
        sent_at=request.sent_at,
        received_at=received_at,
        previous_message_id=request.previous_message_id,
    )
