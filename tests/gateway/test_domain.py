"""The gateway's pure decisions: admission, contracts, Wappi paging and cursor, Meta parsing and
signatures, retry classification, pacing. Data in, data out; Hypothesis for outside input."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.domain import failures, meta, wappi
from gateway.domain.admission import (
    InboundEvent,
    PayloadError,
    SkippedItem,
    Verdict,
    admit,
    inbound_message_id,
    to_contract,
    transcribed,
)
from gateway.domain.pacing import PRIORITY, PriorityBuffer, TokenBucket
from parley_shared.contracts import (
    DeliveryState,
    IncomingMessage,
    InteractiveReply,
    MediaRef,
    MessageKind,
    OutgoingKind,
    Provider,
    VoiceTranscriptionRequest,
    stable_id,
)
from parley_shared.retry import Backoff
from parley_shared.topology import INCOMING, VOICE
from tests.gateway.fake_wappi import wappi_message
from tests.support.fake_meta import audio_message, contact, envelope, meta_message, status, text_message

NOW = datetime(2026, 1, 5, 7, 0, tzinfo=UTC)


def event(sender: str = "77010000001@c.us", **kw: Any) -> InboundEvent:
    values: dict[str, Any] = {
        "provider": Provider.WAPPI,
        "provider_message_id": "3EB0A",
        "sender": sender,
        "kind": MessageKind.TEXT,
        "sent_at": NOW,
        "text": "hi",
    }
    values.update(kw)
    return InboundEvent(**values)


# ---------------------------------------------------------------------------- admission and contracts
@pytest.mark.parametrize(
    ("sender", "from_me", "verdict", "reason"),
    [
        ("77010000001@c.us", False, Verdict.PUBLISH, None),
        ("77010000001", False, Verdict.PUBLISH, None),
        ("+7 701 000 00 01", False, Verdict.PUBLISH, None),
        ("77010000001@c.us", True, Verdict.SKIPPED, "own_message"),
        ("120363025246125486@g.us", False, Verdict.SKIPPED, "group"),
        ("1234567890@lid", False, Verdict.PUBLISH, None),
        ("85291234567", False, Verdict.PUBLISH, None),
        ("status@broadcast", False, Verdict.SKIPPED, "not_a_phone"),
        ("<WHATSAPP_USER_PHONE_NUMBER>", False, Verdict.SKIPPED, "not_a_phone"),
        ("77010000009@c.us", False, Verdict.IGNORED, "ignore_list"),
    ],
)
def test_admission_normalises_to_e164_and_filters(sender: str, from_me: bool, verdict: Verdict, reason: str) -> None:
    admission = admit(event(sender, from_me=from_me), frozenset({"+77010000009"}))
    assert admission.verdict is verdict and admission.reason == reason
    if verdict is not Verdict.SKIPPED:
        assert admission.phone in ("+77010000001", "+77010000009", "1234567890@lid", "+85291234567")


def test_text_goes_to_incoming_with_the_stable_inbound_id() -> None:
    queue, payload = to_contract(event(contact_name="  Aigerim  "), "+77010000001", NOW)
    assert queue is INCOMING and isinstance(payload, IncomingMessage)
    assert payload.message_id == stable_id("in", "wappi", "3EB0A") == inbound_message_id(Provider.WAPPI, "3EB0A")
    assert payload.correlation_id == payload.message_id
    assert (payload.text, payload.contact_name, payload.phone) == ("hi", "Aigerim", "+77010000001")


def test_voice_goes_to_transcription_and_comes_back_under_the_inbound_id() -> None:
    media = MediaRef(media_id="m1", mime_type="audio/ogg", inline_b64="AAAA")
    queue, request = to_contract(event(kind=MessageKind.VOICE, text=None, media=media), "+77010000001", NOW)
    assert queue is VOICE and isinstance(request, VoiceTranscriptionRequest)
    assert request.message_id != inbound_message_id(Provider.WAPPI, "3EB0A")  # two outbox rows, two ids
    done = transcribed(request, text=" hello there ", error=None, received_at=NOW)
    assert done.message_id == inbound_message_id(Provider.WAPPI, "3EB0A")
    assert done.transcribed and done.text == "hello there" and done.transcription_error is None
    assert done.media is not None and done.media.inline_b64 is None  # the audio does not travel on
    failed = transcribed(request, text=None, error="no key", received_at=NOW)
    assert not failed.transcribed and failed.text is None and failed.transcription_error == "no key"
    assert failed.kind is MessageKind.VOICE


# ---------------------------------------------------------------------------- Wappi messages
def read(raw: dict[str, Any]) -> InboundEvent:
    event = wappi.to_event(wappi.read_message(raw))
    assert isinstance(event, InboundEvent), event
    return event


def test_wappi_types() -> None:
    text = read(wappi_message("a", "77010000001", 100, body="Hello"))
    assert text is not None and text.kind is MessageKind.TEXT and text.text == "Hello" and text.contact_name
    voice = read(wappi_message("b", "77010000001", 100, type="ptt", body="T2dnUw==", mimetype="audio/ogg"))
    assert voice is not None and voice.kind is MessageKind.VOICE and voice.text is None
    assert voice.media == MediaRef(media_id="b", mime_type="audio/ogg")
    image = read(wappi_message("c", "77010000001", 100, type="image", body="/9j/thumb", caption="our office"))
    assert image is not None and image.kind is MessageKind.IMAGE and image.caption == "our office" and not image.text
    own = read(wappi_message("d", "77010000001", 100, body="reply", from_me=True))
    assert own is not None and own.from_me
    reaction = read({**wappi_message("e", "77010000001", 100, type="reaction", body="👍"), "stanzaId": "a"})
    assert (reaction.kind, reaction.reaction, reaction.target) == (MessageKind.REACTION, "👍", "a")
    deleted = read({**wappi_message("f", "77010000001", 100), "isDeleted": True})
    assert (deleted.kind, deleted.target, deleted.provider_message_id) == (MessageKind.REVOKE, "f", "f:revoked")
    odd = read(wappi_message("g", "77010000001", 100, type="poll_creation", body="?"))
    assert odd.kind is MessageKind.UNSUPPORTED and odd.unsupported == "wappi type poll_creation"
    group = read(wappi_message("h", "120363025246125486@g.us", 100, body="all"))
    assert admit(group, frozenset()).reason == "group"
    notice = wappi.to_event(wappi.read_message(wappi_message("i", "77010000001", 100, type="e2e_notification")))
    assert isinstance(notice, SkippedItem) and notice.reason == "system_notice" and notice.provider_message_id == "i"
    lid = read(wappi_message("j", "123456789012345@lid", 100, body="from a LID chat"))
    assert admit(lid, frozenset()).phone == "123456789012345@lid"


def test_wappi_page_drops_malformed_items_and_refuses_non_pages() -> None:
    good = wappi_message("a", "77010000001", 100)
    messages, count = wappi.read_page({"status": "done", "messages": [good, {"id": 5}, "x", {"id": "b"}]})
    assert [m.id for m in messages] == ["a"] and count == 4
    for junk in (None, [], {"status": "error", "detail": "Profile not found"}, {"status": "done"}):
        with pytest.raises(PayloadError):
            wappi.read_page(junk)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda c: st.lists(c) | st.dictionaries(st.text(max_size=10), c),
        max_leaves=20,
    )
)
def test_wappi_parsers_only_ever_raise_payload_error(junk: Any) -> None:
    for candidate in (
        junk,
        {"status": "done", "messages": [junk]},
        {"id": "x", "time": 5, **(junk if isinstance(junk, dict) else {})},
    ):
        try:
            messages, _ = wappi.read_page(candidate)
            for message in messages:
                wappi.to_event(message)
        except PayloadError:
            pass
        try:
            wappi.to_event(wappi.read_message(candidate))
        except PayloadError:
            pass


# ---------------------------------------------------------------------------- Wappi cursor
def msg(i: str, t: int) -> wappi.WappiMessage:
    return wappi.WappiMessage(i, t, {})


def test_cursor_handles_equal_timestamps_without_replay_or_skip() -> None:
    cursor = wappi.Cursor(100, {"a": 100}, 0)
    batch = wappi.PollBatch(cursor)
    batch.add_page([msg("c", 101), msg("b", 100), msg("a", 100)])  # "b" shares a's second and is new
    assert not batch.reached_cursor
    batch.add_page([msg("z", 99)])
    assert batch.reached_cursor and set(batch.new) == {"b", "c"}
    assert [m.id for m in batch.in_order()] == ["b", "c"]
    nxt = batch.next_cursor()
    assert nxt.time == 101 and dict(nxt.seen) == {"c": 101}
    same_second = wappi.PollBatch(wappi.Cursor(100, {"a": 100}, 0))
    same_second.add_page([msg("b", 100)])
    assert dict(same_second.next_cursor().seen) == {"a": 100, "b": 100}


def test_cursor_overlap_catches_a_late_message_and_forgets_old_ids() -> None:
    cursor = wappi.Cursor(1000, {"x": 990, "y": 1000}, 60)
    batch = wappi.PollBatch(cursor)
    batch.add_page([msg("new", 1005), msg("y", 1000), msg("late", 970), msg("x", 990), msg("old", 900)])
    assert set(batch.new) == {"new", "late"} and batch.reached_cursor
    assert dict(batch.next_cursor().seen) == {"x": 990, "y": 1000, "new": 1005, "late": 970}
    moved = wappi.Cursor(1000, {"x": 990}, 60).advanced([msg("far", 1100)])
    assert dict(moved.seen) == {"far": 1100} and moved.floor == 1040
    decoded = wappi.Cursor.decode(moved.time, moved.encode_seen(), 60)
    assert decoded == moved
    assert wappi.Cursor.decode(5, "not json", 60) == wappi.Cursor(5, {}, 60)
    assert wappi.Cursor.initial(500, 60).floor == 500


@settings(max_examples=150, deadline=None)
@given(
    rounds=st.lists(
        st.lists(st.tuples(st.integers(min_value=-30, max_value=5), st.booleans()), max_size=12), min_size=1, max_size=6
    ),
    page_size=st.integers(min_value=1, max_value=7),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_repeated_polls_take_every_message_exactly_once(
    rounds: list[list[tuple[int, bool]]], page_size: int, seed: int
) -> None:
    """An account where messages keep arriving (some late, some during a poll): across polls every
    message inside the overlap window is taken once, none twice."""
    rng = random.Random(seed)
    account: list[tuple[int, wappi.WappiMessage]] = []  # (arrival order, message)
    clock = 1000
    cursor = wappi.Cursor.initial(clock - 100, 60)
    taken: list[str] = []
    counter = 0

    def arrive(offset: int) -> None:
        nonlocal counter
        counter += 1
        account.append((counter, msg(f"m{counter}", clock + offset)))

    for batch_spec in rounds:
        clock += 10
        pending = list(batch_spec)
        for offset, during_poll in pending:
            if not during_poll:
                arrive(offset)
        poll = wappi.PollBatch(cursor)
        offset_index = 0
        while True:
            newest_first = [m for _, m in sorted(account, key=lambda p: (p[1].time, p[0]), reverse=True)]
            page = newest_first[offset_index : offset_index + page_size]
            poll.add_page(page)
            if pending and rng.random() < 0.5:  # messages arriving mid-poll shift the pages
                offset_, during = pending.pop()
                if during:
                    arrive(offset_)
            if poll.reached_cursor or len(page) < page_size:
                break
            offset_index += len(page)
        taken.extend(m.id for m in poll.in_order())
        cursor = poll.next_cursor()
    assert len(taken) == len(set(taken)), "a message was taken twice"
    # Messages still waiting to be seen (arrived mid-poll after their page) are taken by one more poll.
    final = wappi.PollBatch(cursor)
    final.add_page([m for _, m in sorted(account, key=lambda p: (p[1].time, p[0]), reverse=True)])
    taken.extend(m.id for m in final.in_order())
    assert len(taken) == len(set(taken))
    assert set(taken) == {m.id for _, m in account}


# ---------------------------------------------------------------------------- Meta
def test_signature_known_vectors() -> None:
    # RFC 4231 test case 2 (HMAC-SHA256, key "Jefe")
    rfc = "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    assert meta.sign(b"Jefe", b"what do ya want for nothing?") == rfc
    assert meta.check_signature(b"Jefe", b"what do ya want for nothing?", rfc) is meta.SignatureCheck.OK
    assert meta.check_signature(b"Jefe", b"what do ya want for nothing?", rfc.upper().replace("SHA256", "sha256"))
    # A Meta-style body with escaped unicode; digest computed independently (openssl dgst -sha256 -hmac).
    body = b'{"object":"whatsapp_business_account","entry":[],"text":"\\u041f\\u0440\\u0438\\u0432\\u0435\\u0442"}'
    vector = "sha256=3b5c91a9d1a1547fc4caf02f198a6f885dfcab3a17656a85a13fca51ef903051"
    assert meta.sign(b"app-secret", body) == vector
    assert meta.check_signature(b"app-secret", body, vector) is meta.SignatureCheck.OK
    assert meta.check_signature(b"app-secret", body + b" ", vector) is meta.SignatureCheck.INVALID
    assert meta.check_signature(b"other-secret", body, vector) is meta.SignatureCheck.INVALID
    assert meta.check_signature(b"app-secret", body, vector[7:]) is meta.SignatureCheck.INVALID  # no prefix
    assert meta.check_signature(b"app-secret", body, "") is meta.SignatureCheck.MISSING
    assert meta.check_signature(b"app-secret", body, None) is meta.SignatureCheck.MISSING
    assert meta.check_signature(b"app-secret", body, "sha256=ünïcode") is meta.SignatureCheck.INVALID


def test_meta_webhook_messages_and_statuses() -> None:
    wa = "16505551234"
    interactive = meta_message(
        "wamid.I", wa, "interactive", {"type": "button_reply", "button_reply": {"id": "yes", "title": "Yes, call me"}}
    )
    button = meta_message("wamid.B", wa, "button", {"payload": "STOP", "text": "Stop promotions"})
    image = meta_message(
        "wamid.P", wa, "image", {"id": "media-9", "mime_type": "image/jpeg", "sha256": "abc", "caption": "this one"}
    )
    reaction = meta_message("wamid.R", wa, "reaction", {"message_id": "wamid.X", "emoji": "👍"})
    broken = {"from": "16505551234", "id": "wamid.Z", "timestamp": "soon", "type": "text", "text": {"body": "x"}}
    body = envelope(
        contacts=[contact("16505551234", "Kerry")],
        messages=[
            text_message("wamid.T", "16505551234", "Hello"),
            audio_message("wamid.A", "16505551234", "media-1"),
            interactive,
            button,
            image,
            reaction,
            broken,
        ],
        statuses=[status("wamid.S", "failed", "16505551234", code=131047), status("wamid.S", "deleted", "1")],
    )
    batch = meta.parse_webhook(body)
    by_id = {e.provider_message_id: e for e in batch.messages}
    assert set(by_id) == {"wamid.T", "wamid.A", "wamid.I", "wamid.B", "wamid.P", "wamid.R"}
    assert by_id["wamid.T"].text == "Hello" and by_id["wamid.T"].contact_name == "Kerry"
    assert by_id["wamid.A"].kind is MessageKind.VOICE and by_id["wamid.A"].media.media_id == "media-1"  # type: ignore[union-attr]
    assert (by_id["wamid.I"].kind, by_id["wamid.I"].text) == (MessageKind.INTERACTIVE, "Yes, call me")
    assert by_id["wamid.I"].interactive == InteractiveReply(type="button", id="yes", title="Yes, call me")
    assert by_id["wamid.B"].text == "Stop promotions"
    assert by_id["wamid.B"].interactive == InteractiveReply(type="template_button", id="STOP", title="Stop promotions")
    assert (by_id["wamid.R"].kind, by_id["wamid.R"].reaction, by_id["wamid.R"].target) == (
        MessageKind.REACTION,
        "👍",
        "wamid.X",
    )
    assert by_id["wamid.P"].kind is MessageKind.IMAGE and by_id["wamid.P"].caption == "this one"
    # the broken timestamp (logged with its id and sender), the status of no state we know
    assert [(s.reason, s.provider_message_id, s.sender) for s in batch.skipped] == [
        ("malformed", "wamid.Z", "16505551234"),
        ("status_ignored", "wamid.S", "1"),
    ]
    [failed] = batch.statuses
    assert failed.state is DeliveryState.FAILED and failed.error_code == "131047"
    assert failed.error_reason and "24 hours" in failed.error_reason


@pytest.mark.parametrize(
    "junk",
    [
        None,
        [],
        "x",
        5,
        {},
        {"object": "page", "entry": []},
        {"object": "whatsapp_business_account"},
        {"object": "whatsapp_business_account", "entry": {}},
    ],
)
def test_meta_junk_envelopes_are_payload_errors(junk: Any) -> None:
    with pytest.raises(PayloadError):
        meta.parse_webhook(junk)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(
    value=st.fixed_dictionaries(
        {},
        optional={
            "messages": st.lists(
                st.dictionaries(
                    st.sampled_from(
                        [
                            "from",
                            "id",
                            "timestamp",
                            "type",
                            "text",
                            "audio",
                            "interactive",
                            "image",
                            "button",
                            "location",
                            "contacts",
                        ]
                    ),
                    json_values,
                ),
                max_size=3,
            )
            | json_values,
            "statuses": st.lists(
                st.dictionaries(st.sampled_from(["id", "status", "timestamp", "errors"]), json_values), max_size=3
            )
            | json_values,
            "contacts": json_values,
        },
    )
)
def test_meta_parser_never_fails_on_a_valid_envelope_with_junk_inside(value: dict[str, Any]) -> None:
    body = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}],
    }
    batch = meta.parse_webhook(body)
    for item in batch.messages:
        assert item.provider_message_id and item.sent_at.tzinfo is not None


# ---------------------------------------------------------------------------- retries
@pytest.mark.parametrize(
    ("status", "code", "outcome"),
    [
        (429, None, failures.FailureKind.TRANSIENT),
        (503, None, failures.FailureKind.TRANSIENT),
        (500, "131000", failures.FailureKind.TRANSIENT),
        (400, "130429", failures.FailureKind.TRANSIENT),
        (400, "131056", failures.FailureKind.TRANSIENT),
        (400, "131047", failures.FailureKind.PERMANENT),
        (400, "131026", failures.FailureKind.PERMANENT),
        (401, "190", failures.FailureKind.PERMANENT),
        (402, None, failures.FailureKind.PERMANENT),
        (200, None, failures.FailureKind.PERMANENT),
    ],
)
def test_classification(status: int, code: str | None, outcome: failures.FailureKind) -> None:
    failure = failures.classify_http(status, code, "r")
    assert failure.kind is outcome and failure.code == (code or str(status))


def test_retry_after_and_backoff() -> None:
    assert failures.parse_retry_after("7", NOW) == 7.0
    assert failures.parse_retry_after(" 0 ", NOW) == 0.0
    http_date = (NOW + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert failures.parse_retry_after(http_date, NOW) == 90.0
    assert failures.parse_retry_after("Mon, 05 Jan 2026 06:00:00 GMT", NOW) == 0.0  # in the past
    assert failures.parse_retry_after(None, NOW) is None and failures.parse_retry_after("soon", NOW) is None
    assert failures.parse_retry_after("99999999999", NOW) == failures.MAX_RETRY_AFTER_S
    assert [Backoff(first_s=2, max_s=20).delay(n) for n in (1, 2, 3, 4, 5)] == [2, 4, 8, 16, 20]
    assert Backoff(first_s=2, max_s=300).delay(1, retry_after_s=30) == 30  # Retry-After wins when longer
    assert Backoff(first_s=2, max_s=300).delay(5, retry_after_s=1) == 32
    assert Backoff(first_s=2, max_s=10).delay(1, retry_after_s=3600) == 10


@given(st.text(max_size=60))
def test_retry_after_never_raises(value: str) -> None:
    parsed = failures.parse_retry_after(value, NOW)
    assert parsed is None or 0 <= parsed <= failures.MAX_RETRY_AFTER_S


# ---------------------------------------------------------------------------- pacing
def test_token_bucket_spaces_sends_evenly_and_starts_empty() -> None:
    bucket = TokenBucket(20)
    now = NOW
    assert bucket.wait_s(now) == pytest.approx(3.0)  # empty at start: a restart loop cannot burst
    assert not bucket.take(now)
    sends = []
    for _ in range(10):
        now += timedelta(seconds=bucket.wait_s(now))
        assert bucket.take(now)
        sends.append(now)
    gaps = {round((b - a).total_seconds(), 6) for a, b in itertools.pairwise(sends)}
    assert gaps == {3.0}
    now += timedelta(minutes=10)  # idle: at most `burst` tokens saved up
    assert bucket.take(now) and not bucket.take(now)
    bucket.pause(now, 30)
    assert bucket.wait_s(now + timedelta(seconds=10)) == pytest.approx(20.0)


def test_priority_buffer_serves_replies_before_follow_ups_in_arrival_order() -> None:
    buffer: PriorityBuffer[str] = PriorityBuffer()
    arrivals = [
        ("f1", OutgoingKind.FOLLOW_UP),
        ("r1", OutgoingKind.REPLY),
        ("f2", OutgoingKind.FOLLOW_UP),
        ("o1", OutgoingKind.OPERATOR),
        ("r2", OutgoingKind.REPLY),
    ]
    for name, kind in arrivals:
        buffer.push(PRIORITY[kind], name)
    assert buffer.counts() == {0: 3, 1: 2}
    assert buffer.remove("f2") and not buffer.remove("nope")
    assert [buffer.pop() for _ in range(len(buffer))] == ["r1", "o1", "r2", "f1"]
