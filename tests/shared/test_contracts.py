"""Contracts round-trip; junk, unknown versions and wrong schemas are refused with a clear error."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parley_shared.contracts import (
    CONTRACTS,
    ContractError,
    DeliveryStatus,
    IncomingMessage,
    MediaRef,
    MessageKind,
    OutgoingKind,
    OutgoingMessage,
    VoiceTranscriptionRequest,
    decode,
    stable_id,
)
from parley_shared.topology import CAMPAIGN, OUTGOING, outgoing_queue

phones = st.from_regex(r"\+[1-9][0-9]{7,14}", fullmatch=True)
ids = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=60)
aware = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5))]),
)
texts = st.text(max_size=300)


@st.composite
def incoming(draw: st.DrawFn) -> IncomingMessage:
    return IncomingMessage(
        message_id=draw(ids),
        correlation_id=draw(ids),
        phone=draw(phones),
        contact_name=draw(st.none() | st.text(max_size=50)),
        provider=draw(st.sampled_from(["wappi", "meta", "sandbox"])),
        provider_message_id=draw(ids),
        kind=draw(st.sampled_from(list(MessageKind))),
        text=draw(st.none() | texts),
        media=draw(
            st.none() | st.builds(MediaRef, media_id=st.none() | ids, mime_type=st.none() | st.just("audio/ogg"))
        ),
        transcribed=draw(st.booleans()),
        sent_at=draw(aware),
        received_at=draw(aware),
    )


@st.composite
def outgoing(draw: st.DrawFn) -> OutgoingMessage:
    return OutgoingMessage(
        message_id=draw(ids),
        correlation_id=draw(ids),
        phone=draw(phones),
        text=draw(st.text(min_size=1, max_size=300)),
        kind=draw(st.sampled_from(list(OutgoingKind))),
        in_reply_to=draw(st.lists(ids, max_size=3)),
    )


@given(incoming())
def test_incoming_round_trips(message: IncomingMessage) -> None:
    decoded = decode(IncomingMessage, message.encode())
    assert decoded == message
    assert decoded.sent_at.tzinfo is UTC


@given(outgoing())
def test_outgoing_round_trips_and_routes_by_kind(message: OutgoingMessage) -> None:
    assert decode(OutgoingMessage, message.encode()) == message
    expected = CAMPAIGN if message.kind is OutgoingKind.FOLLOW_UP else OUTGOING
    assert outgoing_queue(message) is expected


def test_voice_and_status_round_trip() -> None:
    now = datetime.now(UTC)
    voice = VoiceTranscriptionRequest(
        message_id="v1",
        correlation_id="c1",
        phone="+77010000001",
        provider="wappi",
        provider_message_id="3EB0",
        media=MediaRef(media_id="3EB0", mime_type="audio/ogg"),
        sent_at=now,
        received_at=now,
    )
    status = DeliveryStatus(
        message_id="s1",
        correlation_id="c1",
        outgoing_message_id="o1",
        phone="+77010000001",
        status="failed",
        provider="meta",
        error_code="131047",
        error_reason="outside 24h window",
        occurred_at=now,
    )
    assert decode(VoiceTranscriptionRequest, voice.encode()) == voice
    assert decode(DeliveryStatus, status.encode()) == status


@settings(max_examples=300)
@given(st.binary(max_size=500))
def test_arbitrary_bytes_are_refused_cleanly(body: bytes) -> None:
    for model in CONTRACTS.values():
        try:
            decode(model, body)
        except ContractError as exc:
            assert str(exc).startswith(model.schema_name)
        else:  # pragma: no cover - random bytes are never a valid contract
            pytest.fail("junk accepted")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300)
@given(st.dictionaries(st.text(max_size=15), json_values, max_size=8), st.sampled_from(list(CONTRACTS.values())))
def test_arbitrary_json_objects_are_refused_cleanly(data: dict, model: type) -> None:  # type: ignore[type-arg]
    data.setdefault("schema", model.schema_name)
    data.setdefault("v", 1)
    with pytest.raises(ContractError):
        decode(model, json.dumps(data))


@given(incoming(), st.sampled_from(["phone", "sent_at", "provider", "message_id"]))
def test_a_broken_field_is_named_and_its_value_not_echoed(message: IncomingMessage, field: str) -> None:
    data = json.loads(message.encode())
    data[field] = "79115576362-secret" if field != "message_id" else ""
    with pytest.raises(ContractError) as info:
        decode(IncomingMessage, json.dumps(data))
    assert field in str(info.value)
    assert "79115576362" not in str(info.value)


def test_json_nested_deeper_than_the_parser_goes_is_refused_cleanly() -> None:
    body = b'{"schema": "incoming_message", "v": 1, "text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(ContractError, match="not valid JSON"):
        decode(IncomingMessage, body)


def test_unknown_version_and_wrong_schema_are_explained() -> None:
    now = datetime.now(UTC)
    message = OutgoingMessage(message_id="m", correlation_id="c", phone="+77010000001", text="hi", created_at=now)
    data = json.loads(message.encode())
    data["v"] = 7
    with pytest.raises(ContractError, match=r"unsupported version 7; this build reads 1"):
        decode(OutgoingMessage, json.dumps(data))
    data["v"] = 1
    with pytest.raises(ContractError, match="unexpected schema 'outgoing_message'"):
        decode(IncomingMessage, json.dumps(data))
    with pytest.raises(ContractError, match="not valid JSON"):
        decode(IncomingMessage, b"\xff{")
    with pytest.raises(ContractError, match="JSON object"):
        decode(IncomingMessage, b"[1]")


def test_unknown_fields_and_naive_times_are_refused() -> None:
    now = datetime.now(UTC)
    data = json.loads(OutgoingMessage(message_id="m", correlation_id="c", phone="+77010000001", text="hi").encode())
    with pytest.raises(ContractError, match="surprise: Extra inputs"):
        decode(OutgoingMessage, json.dumps({**data, "surprise": 1}))
    with pytest.raises(ContractError, match="created_at"):
        decode(OutgoingMessage, json.dumps({**data, "created_at": now.replace(tzinfo=None).isoformat()}))


def test_stable_ids_are_deterministic_and_distinct() -> None:
    assert stable_id("in", "wappi", "3EB0") == stable_id("in", "wappi", "3EB0")
    assert stable_id("in", "wappi", "3EB0") != stable_id("in", "meta", "3EB0")
    assert stable_id("a", "bc") != stable_id("ab", "c")
