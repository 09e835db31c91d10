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
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from parley_shared.phone import MAX_ADDRESS, is_address, is_e164
from parley_shared.untrusted import json_loads


class ContractError(ValueError):
    """A queue body that is not a valid payload of the expected contract."""


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _e164(value: str) -> str:
    if not is_e164(value):
        raise ValueError("phone must be E.164, e.g. +77010000001")
    return value


def _address(value: str) -> str:
    if not is_address(value):
        raise ValueError("phone must be E.164 (+77010000001) or a LID chat id (123456789012345@lid)")
    return value


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_utc)]
E164 = Annotated[str, AfterValidator(_e164)]
# A contact's address: its number in E.164, or -- for a WhatsApp chat that shows no number -- its
# LID chat id (``...@lid``). Contacts are keyed by it on both sides (see ``parley_shared/phone.py``).
Address = Annotated[str, Field(max_length=MAX_ADDRESS), AfterValidator(_address)]
Id = Annotated[str, Field(min_length=1, max_length=200)]
MAX_TEXT = 4096
MAX_CAPTION = 1024  # what WhatsApp shows under an image or a document
MAX_INLINE_MEDIA_B64 = 8 * 1024 * 1024  # about 6 MiB of audio; larger media travel by reference
MAX_DATA_JSON = 16 * 1024  # structured answers (a flow's form) as JSON


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
    # version 3 and later
    ORDER = "order"
    EDIT = "edit"
    REVOKE = "revoke"
    SYSTEM = "system"
    UNSUPPORTED = "unsupported"


V3_KINDS = frozenset(
    {MessageKind.ORDER, MessageKind.EDIT, MessageKind.REVOKE, MessageKind.SYSTEM, MessageKind.UNSUPPORTED}
)
MEDIA_KINDS = frozenset(
    {
        MessageKind.IMAGE,
        MessageKind.VIDEO,
        MessageKind.DOCUMENT,
        MessageKind.STICKER,
        MessageKind.VOICE,
        MessageKind.AUDIO,
    }
)


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
    """Where to get a media file: a provider media id, a URL, or (sandbox) inline base64.

    From version 3 of the messages that carry it, also what the gateway kept: ``stored`` (the key
    of the file it keeps, served to managers at ``GET /media/{stored}``), its ``size`` in bytes,
    or ``error`` -- why it could not be fetched or kept (the message still reaches the agent)."""

    media_id: str | None = Field(default=None, max_length=500)
    url: str | None = Field(default=None, max_length=4000)
    mime_type: str | None = Field(default=None, max_length=200)
    file_name: str | None = Field(default=None, max_length=500)
    sha256: str | None = Field(default=None, max_length=200)
    inline_b64: str | None = Field(default=None, max_length=MAX_INLINE_MEDIA_B64)
    size: int | None = Field(default=None, ge=0)
    stored: str | None = Field(default=None, max_length=200)
    error: str | None = Field(default=None, max_length=500)

    @property
    def v3_only(self) -> bool:
        return self.size is not None or self.stored is not None or self.error is not None


def _data(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None and len(json.dumps(value, ensure_ascii=False)) > MAX_DATA_JSON:
        raise ValueError(f"data is larger than {MAX_DATA_JSON} characters as JSON")
    return value


class InteractiveReply(_Frozen):
    """A tap: a reply button, a list row, a template's quick-reply button, a flow's submitted form,
    or a number typed to pick one of the numbered options a provider without buttons was sent."""

    type: Literal["button", "list", "template_button", "flow", "typed_number"]
    id: str | None = Field(default=None, max_length=256, description="The option's id (or a template's payload)")
    title: str | None = Field(default=None, max_length=300)
    description: str | None = Field(default=None, max_length=300)
    data: Annotated[dict[str, Any] | None, AfterValidator(_data)] = Field(
        default=None, description="A flow's answers, as the prospect submitted them"
    )


class Location(_Frozen):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    name: str | None = Field(default=None, max_length=500)
    address: str | None = Field(default=None, max_length=1000)
    url: str | None = Field(default=None, max_length=2000)


class SharedPhone(_Frozen):
    phone: str = Field(min_length=1, max_length=64, description="As the card shows it")
    wa_id: str | None = Field(default=None, max_length=64)
    type: str | None = Field(default=None, max_length=50)


class SharedContact(_Frozen):
    """A contact card the prospect shared."""

    name: str | None = Field(default=None, max_length=300)
    phones: list[SharedPhone] = Field(default_factory=list, max_length=20)


class OrderItem(_Frozen):
    product_id: str = Field(min_length=1, max_length=200)
    quantity: int = Field(ge=0, le=1_000_000)
    item_price: float | None = Field(default=None, ge=0)
    currency: str | None = Field(default=None, max_length=10)


class Order(_Frozen):
    """An order from the business's WhatsApp catalogue."""

    catalog_id: str | None = Field(default=None, max_length=200)
    text: str | None = Field(default=None, max_length=MAX_TEXT)
    items: list[OrderItem] = Field(default_factory=list, max_length=100)


class Referral(_Frozen):
    """The ad or post a conversation started from (click-to-WhatsApp), kept for analytics."""

    source_url: str | None = Field(default=None, max_length=2000)
    source_id: str | None = Field(default=None, max_length=200)
    source_type: str | None = Field(default=None, max_length=50)
    headline: str | None = Field(default=None, max_length=500)
    body: str | None = Field(default=None, max_length=2000)
    media_type: str | None = Field(default=None, max_length=50)
    ctwa_clid: str | None = Field(default=None, max_length=500)


class SystemNotice(_Frozen):
    """What WhatsApp itself said about the chat: a number change, a new security code, a first visit."""

    type: str = Field(min_length=1, max_length=50)
    body: str | None = Field(default=None, max_length=1000)
    new_phone: Address | None = Field(default=None, description="user_changed_number: the contact's new number")


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

    Versions: 1; 2 adds ``previous_message_id``; 3 adds ``chat_id`` (the provider's own chat id),
    LID chats as ``phone`` (an address), the kinds ``order``, ``edit``, ``revoke``, ``system`` and
    ``unsupported``, what the gateway kept of a media file (``media.stored``, ``size``, ``error``)
    and the structured content of each kind: ``interactive``, ``location``, ``contacts``,
    ``order``, ``referral``, ``reaction`` / ``target_message_id`` (for a reaction, an edit or a
    revoke: the ``message_id`` of the message it is about), ``system`` and ``unsupported``."""

    schema_name: ClassVar[str] = "incoming_message"
    schema_: Literal["incoming_message"] = Field(default="incoming_message", alias="schema")
    v: Literal[1, 2, 3] = 3
    phone: Address
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
    # version 3
    chat_id: str | None = Field(default=None, max_length=200)
    interactive: InteractiveReply | None = None
    location: Location | None = None
    contacts: list[SharedContact] = Field(default_factory=list, max_length=50)
    order: Order | None = None
    referral: Referral | None = None
    reaction: str | None = Field(default=None, max_length=50, description="The emoji; empty when taken back")
    target_message_id: Id | None = None
    system: SystemNotice | None = None
    unsupported: str | None = Field(default=None, max_length=500, description="What could not be read, and why")

    @model_validator(mode="after")
    def _fields_of_version_3(self) -> IncomingMessage:
        if self.v >= 3:
            return self
        if not is_e164(self.phone):
            raise ValueError("a LID chat address needs version 3")
        if self.kind in V3_KINDS:
            raise ValueError(f"kind {self.kind.value} needs version 3")
        if self.media is not None and self.media.v3_only:
            raise ValueError("media.size, media.stored and media.error need version 3")
        later = ("chat_id", "interactive", "location", "order", "referral", "reaction", "target_message_id")
        if any(getattr(self, name) is not None for name in (*later, "system", "unsupported")) or self.contacts:
            raise ValueError("the structured content of a message needs version 3")
        return self


class VoiceTranscriptionRequest(_Chained):
    """``voice_transcription``: a voice note waiting to become text (gateway -> gateway worker).

    Versions: 1; 2 adds ``previous_message_id`` (carried over to the transcribed message); 3 adds
    ``chat_id`` and ``referral`` and LID chats as ``phone``."""

    schema_name: ClassVar[str] = "voice_transcription"
    schema_: Literal["voice_transcription"] = Field(default="voice_transcription", alias="schema")
    v: Literal[1, 2, 3] = 3
    phone: Address
    contact_name: str | None = Field(default=None, max_length=200)
    provider: Provider
    provider_message_id: Id
    kind: Literal[MessageKind.VOICE, MessageKind.AUDIO] = MessageKind.VOICE
    media: MediaRef
    sent_at: UtcDatetime
    received_at: UtcDatetime
    # version 3
    chat_id: str | None = Field(default=None, max_length=200)
    referral: Referral | None = None

    @model_validator(mode="after")
    def _fields_of_version_3(self) -> VoiceTranscriptionRequest:
        if self.v < 3 and (
            not is_e164(self.phone) or self.chat_id is not None or self.referral is not None or self.media.v3_only
        ):
            raise ValueError("chat_id, referral, kept media and LID chats need version 3")
        return self


class InboundMedia(Contract):
    """``inbound_media``: a prospect's image, video, document or sticker, waiting for the gateway to
    fetch and keep its file before the agent sees it (gateway -> gateway media worker).

    ``message`` is the ``IncomingMessage`` to publish once the file is kept (or could not be:
    ``media.error`` says why)."""

    schema_name: ClassVar[str] = "inbound_media"
    schema_: Literal["inbound_media"] = Field(default="inbound_media", alias="schema")
    v: Literal[1] = 1
    message: IncomingMessage

    @property
    def phone(self) -> str:
        return self.message.phone


class TemplateRef(_Frozen):
    """An approved Meta template, needed to message a prospect outside the 24-hour window."""

    name: str = Field(min_length=1, max_length=512)
    language: str = Field(default="en", min_length=2, max_length=15)


class OutgoingMedia(_Frozen):
    """A file to send: an image or a document, carried inline (base64).

    The gateway sends it the way its provider can (Meta: uploaded once and sent by media id while
    the id is valid; WebP images converted, Meta refuses them; Wappi: its image and document
    sends; the sandbox keeps it)."""

    kind: Literal["image", "document"]
    file_name: str = Field(min_length=1, max_length=240)
    mime_type: str = Field(min_length=3, max_length=200)
    data_b64: str = Field(min_length=4, max_length=MAX_INLINE_MEDIA_B64)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Of the decoded bytes: the upload is reused by it")


class Choice(_Frozen):
    """One option to tap. WhatsApp shows at most 20 characters of a button's title and 24 of a
    list row's; a longer title is refused rather than cut."""

    id: str = Field(min_length=1, max_length=200)
    title: str = Field(min_length=1, max_length=24)
    description: str | None = Field(default=None, max_length=72)


class Choices(_Frozen):
    """Options offered with a message: reply buttons (up to 3) or a list (up to 10 rows).

    A provider without buttons sends them as numbered lines, and a number typed back answers as
    if it had been tapped."""

    style: Literal["buttons", "list"] = "buttons"
    button: str | None = Field(default=None, max_length=20, description="A list's menu label")
    options: list[Choice] = Field(min_length=1, max_length=10)

    @model_validator(mode="after")
    def _fits(self) -> Choices:
        if self.style == "buttons" and (len(self.options) > 3 or any(len(o.title) > 20 for o in self.options)):
            raise ValueError("reply buttons: at most 3, titles of at most 20 characters")
        if len({o.id for o in self.options}) < len(self.options):
            raise ValueError("option ids must be unique")
        return self


class OutgoingMessage(Contract):
    """``outgoing_messages`` / ``outgoing_campaign``: what the sender delivers (agent -> gateway).

    Versions: 1; 2 adds ``media`` (an image or a document, ``text`` is its caption), ``choices``
    (buttons or a list) and LID chats as ``phone``."""

    schema_name: ClassVar[str] = "outgoing_message"
    schema_: Literal["outgoing_message"] = Field(default="outgoing_message", alias="schema")
    v: Literal[1, 2] = 2
    phone: Address
    text: str = Field(min_length=1, max_length=MAX_TEXT)
    kind: OutgoingKind = OutgoingKind.REPLY
    in_reply_to: list[Id] = Field(default_factory=list, max_length=200)
    template: TemplateRef | None = None
    follow_up_touch: int | None = Field(default=None, ge=1, le=50)
    # version 2
    media: OutgoingMedia | None = None
    choices: Choices | None = None

    @model_validator(mode="after")
    def _fields_of_version_2(self) -> OutgoingMessage:
        if self.v < 2 and (self.media is not None or self.choices is not None or not is_e164(self.phone)):
            raise ValueError("media, choices and LID chats need version 2")
        if self.media is not None and len(self.text) > MAX_CAPTION:
            raise ValueError(f"the caption of a file is at most {MAX_CAPTION} characters")
        if self.media is not None and self.choices is not None:
            raise ValueError("a message carries a file or choices, not both")
        if self.template is not None and (self.media is not None or self.choices is not None):
            raise ValueError("a template message carries neither a file nor choices")
        return self


class DeliveryStatus(Contract):
    """``delivery_status``: what became of an outgoing message (gateway -> agent)."""

    schema_name: ClassVar[str] = "delivery_status"
    schema_: Literal["delivery_status"] = Field(default="delivery_status", alias="schema")
    v: Literal[1] = 1
    outgoing_message_id: Id
    phone: Address
    status: DeliveryState
    provider: Provider
    provider_message_id: str | None = Field(default=None, max_length=200)
    error_code: str | None = Field(default=None, max_length=50)
    error_reason: str | None = Field(default=None, max_length=1000)
    occurred_at: UtcDatetime


class ContactErasure(Contract):
    """``contact_erasure``: erase everything the gateway holds about one phone (agent -> gateway).

    The agent erases its own rows first (``POST /contacts/{phone}/erase``); the gateway then keeps
    of that phone only a keyed hash and the opaque message ids it deduplicates on."""

    schema_name: ClassVar[str] = "contact_erasure"
    schema_: Literal["contact_erasure"] = Field(default="contact_erasure", alias="schema")
    v: Literal[1] = 1
    phone: Address
    requested_by: str = Field(min_length=1, max_length=60, description="the API token's name, or cli")


class LiveEvent(_Frozen):
    """Something a manager's screen should show now: a conversation changed (and how)."""

    contact_id: int | None = Field(default=None, ge=1)
    kind: str = Field(min_length=1, max_length=40)  # message_in, replied, handoff, takeover, ...
    at: UtcDatetime
    label: str | None = Field(default=None, max_length=200)  # the contact's name, for a notification
    needs_human: bool = False


class LiveEvents(Contract):
    """The ``parley.live`` fanout exchange: the console's live events, agent-service replica -> every
    replica's managers. Transient hints (the database holds the state): never persisted, never retried."""

    schema_name: ClassVar[str] = "live_events"
    schema_: Literal["live_events"] = Field(default="live_events", alias="schema")
    v: Literal[1] = 1
    events: list[LiveEvent] = Field(min_length=1, max_length=1000)


C = TypeVar("C", bound=Contract)

CONTRACTS: dict[str, type[Contract]] = {
    model.schema_name: model
    for model in (
        IncomingMessage,
        VoiceTranscriptionRequest,
        InboundMedia,
        OutgoingMessage,
        DeliveryStatus,
        ContactErasure,
        LiveEvents,
    )
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
        data = json_loads(body)
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
        got = version if isinstance(version, int) else type(version).__name__
        raise ContractError(f"{name}: unsupported version {got!r}; this build reads {', '.join(map(str, supported))}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ContractError(f"{name} v{version}: {_summarise(exc)}") from None
