"""Message contracts: the only shapes that cross a queue.

Every payload is a frozen, versioned pydantic model with:

* ``schema`` and ``v`` -- what it is and which version of it (readers refuse what they do not know);
* ``message_id`` -- the idempotency key: a consumer that sees it twice has one effect;
* ``correlation_id`` -- follows one conversation turn from gateway to agent and back;
* ``created_at`` -- UTC.

Bodies are decoded only through :func:`decode`, which turns every failure into a
:class:`ContractError` with a short, body-free explanation (it never echoes input values,
which may hold phone numbers or message text).
"""

from __future__ import annotations

import enum
import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, ClassVar, Literal, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from parley_shared.phone import is_e164


class ContractError(ValueError):
    """A queue body that is not a valid payload of the expected contract."""


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _e164(value: str) -> str:
    if not is_e164(value):
        raise ValueError("phone must be E.164, e.g. +77010000001")
    return value


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_utc)]
E164 = Annotated[str, AfterValidator(_e164)]
Id = Annotated[str, Field(min_length=1, max_length=200)]
MAX_TEXT = 4096
MAX_INLINE_MEDIA_B64 = 8 * 1024 * 1024  # about 6 MiB of audio; larger media travel by reference


def utcnow() -> datetime:
    return datetime.now(UTC)


def stable_id(*parts: str) -> str:
    """A deterministic id from its parts (uuid5): the same inputs always give the same id."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "parley:" + "\x1f".join(parts)))


def new_id() -> str:
    return str(uuid.uuid4())


class Provider(enum.StrEnum):
    WAPPI = "wappi"
    META = "meta"
    SANDBOX = "sandbox"


class MessageKind(enum.StrEnum):
    TEXT = "text"
    VOICE = "voice"
    AUDIO = "audio"
    IMAGE = "image"
    DOCUMENT = "document"
    VIDEO = "video"
    STICKER = "sticker"
    LOCATION = "location"
    CONTACT = "contact"
    REACTION = "reaction"
    INTERACTIVE = "interactive"
    OTHER = "other"


class OutgoingKind(enum.StrEnum):
    REPLY = "reply"
    FOLLOW_UP = "follow_up"
    OPERATOR = "operator"


class DeliveryState(enum.StrEnum):
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)


class Contract(_Frozen):
    """Base of every queue payload."""

    schema_name: ClassVar[str]
    schema_: str = Field(alias="schema")
    v: int
    message_id: Id
    correlation_id: Id
    created_at: UtcDatetime = Field(default_factory=utcnow)

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    def encode(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


class MediaRef(_Frozen):
    """Where to get a media file: a provider media id, a URL, or (sandbox) inline base64."""

    media_id: str | None = Field(default=None, max_length=500)
    url: str | None = Field(default=None, max_length=4000)
    mime_type: str | None = Field(default=None, max_length=200)
    file_name: str | None = Field(default=None, max_length=500)
    sha256: str | None = Field(default=None, max_length=200)
    inline_b64: str | None = Field(default=None, max_length=MAX_INLINE_MEDIA_B64)


class _Chained(Contract):
    """A prospect's message with its place in the contact's sequence (version 2 and later).

    ``previous_message_id`` is the ``message_id`` of the message the gateway published for the
    same contact just before this one (None for the contact's first). It lets the agent see that
    an earlier message has not reached it yet -- delayed by a retry, a redelivery, another replica
    or a voice note's transcription -- and wait for it instead of answering out of order.
    """

    previous_message_id: Id | None = None

    @model_validator(mode="after")
    def _known_in_this_version(self) -> _Chained:
        if self.v < 2 and self.previous_message_id is not None:
            raise ValueError("previous_message_id needs version 2")
        return self


class IncomingMessage(_Chained):
    """``incoming_messages``: one message a prospect sent, normalised (gateway -> agent).

    Versions: 1; 2 adds ``previous_message_id``."""

    schema_name: ClassVar[str] = "incoming_message"
    schema_: Literal["incoming_message"] = Field(default="incoming_message", alias="schema")
    v: Literal[1, 2] = 2
    phone: E164
    contact_name: str | None = Field(default=None, max_length=200)
    provider: Provider
    provider_message_id: Id
    kind: MessageKind = MessageKind.TEXT
    text: str | None = Field(default=None, max_length=MAX_TEXT * 4)
    caption: str | None = Field(default=None, max_length=MAX_TEXT)
    media: MediaRef | None = None
    transcribed: bool = False
    transcription_error: str | None = Field(default=None, max_length=500)
    sent_at: UtcDatetime
    received_at: UtcDatetime


class VoiceTranscriptionRequest(_Chained):
    """``voice_transcription``: a voice note waiting to become text (gateway -> gateway worker).

    Versions: 1; 2 adds ``previous_message_id`` (carried over to the transcribed message)."""

    schema_name: ClassVar[str] = "voice_transcription"
    schema_: Literal["voice_transcription"] = Field(default="voice_transcription", alias="schema")
    v: Literal[1, 2] = 2
    phone: E164
    contact_name: str | None = Field(default=None, max_length=200)
    provider: Provider
    provider_message_id: Id
    kind: Literal[MessageKind.VOICE, MessageKind.AUDIO] = MessageKind.VOICE
    media: MediaRef
    sent_at: UtcDatetime
    received_at: UtcDatetime


class TemplateRef(_Frozen):
    """An approved Meta template, needed to message a prospect outside the 24-hour window."""

    name: str = Field(min_length=1, max_length=512)
    language: str = Field(default="en", min_length=2, max_length=15)


class OutgoingMessage(Contract):
    """``outgoing_messages`` / ``outgoing_campaign``: text for the sender to deliver (agent -> gateway)."""

    schema_name: ClassVar[str] = "outgoing_message"
    schema_: Literal["outgoing_message"] = Field(default="outgoing_message", alias="schema")
    v: Literal[1] = 1
    phone: E164
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    kind: OutgoingKind = OutgoingKind.REPLY
    in_reply_to: list[Id] = Field(default_factory=list, max_length=200)
    template: TemplateRef | None = None
    follow_up_touch: int | None = Field(default=None, ge=1, le=50)


class DeliveryStatus(Contract):
    """``delivery_status``: what became of an outgoing message (gateway -> agent)."""

    schema_name: ClassVar[str] = "delivery_status"
    schema_: Literal["delivery_status"] = Field(default="delivery_status", alias="schema")
    v: Literal[1] = 1
    outgoing_message_id: Id
    phone: E164
    status: DeliveryState
    provider: Provider
    provider_message_id: str | None = Field(default=None, max_length=200)
    error_code: str | None = Field(default=None, max_length=50)
    error_reason: str | None = Field(default=None, max_length=1000)
    occurred_at: UtcDatetime


C = TypeVar("C", bound=Contract)

CONTRACTS: dict[str, type[Contract]] = {
    model.schema_name: model for model in (IncomingMessage, VoiceTranscriptionRequest, OutgoingMessage, DeliveryStatus)
}


def _supported_versions(model: type[Contract]) -> tuple[int, ...]:
    annotation = model.model_fields["v"].annotation
    return tuple(getattr(annotation, "__args__", ()))


def _summarise(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_input=False, include_url=False)[:5]:
        loc = ".".join(str(p) for p in item["loc"]) or "body"
        parts.append(f"{loc}: {item['msg']}")
    more = error.error_count() - len(parts)
    if more > 0:
        parts.append(f"... and {more} more")
    return "; ".join(parts)


def decode(model: type[C], body: bytes | str) -> C:
    """Parse a queue body as ``model``; every failure is a :class:`ContractError`."""
    name = model.schema_name
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ContractError(f"{name}: body is not valid JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise ContractError(f"{name}: body must be a JSON object, got {type(data).__name__}")
    schema = data.get("schema")
    if schema != name:
        shown = schema if isinstance(schema, str) and len(schema) < 60 else type(schema).__name__
        raise ContractError(f"{name}: unexpected schema {shown!r}")
    version = data.get("v")
    supported = _supported_versions(model)
    if type(version) is not int or version not in supported:
        shown = version if isinstance(version, int) else type(version).__name__
        raise ContractError(f"{name}: unsupported version {shown!r}; this build reads {', '.join(map(str, supported))}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ContractError(f"{name} v{version}: {_summarise(exc)}") from None
