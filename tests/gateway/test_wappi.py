"""Wappi end to end against the fake Wappi API, the real RabbitMQ and both databases.

Done-when (issue 3): an account of 120 messages across several pages -- duplicates across pages,
own messages, a group, ignored numbers, voice notes, images -- yields exactly the right messages
on ``incoming_messages``, once each, also when the gateway is restarted mid-poll.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.settings import GatewaySettings
from parley_shared.contracts import OutgoingMessage, stable_id
from parley_shared.topology import INCOMING, OUTGOING, STATUS
from tests.gateway.fake_wappi import FakeWappi, wappi_message
from tests.gateway.helpers import (
    AUTH,
    LOCAL_MEDIA,
    eventually,
    gateway_settings,
    publish,
    queue_size,
    running,
    take,
    take_messages,
)
from tests.support.fake_gemini import FakeGemini, FakeReply, GeminiCall

IGNORED = ["77019990001", "77019990002"]


@pytest.fixture
async def wappi() -> AsyncIterator[FakeWappi]:
    fake = await FakeWappi().start()
    yield fake
    await fake.close()


@pytest.fixture
async def gemini() -> AsyncIterator[FakeGemini]:
    fake = await FakeGemini().start()

    async def transcribe(call: GeminiCall) -> FakeReply:
        audio = base64.b64decode(call.inline_data[0]["data"]).decode()
        return FakeReply.text(f"transcript of {audio}")

    fake.responder = transcribe
    yield fake
    await fake.close()


def settings_for(
    amqp_url: str, database_url: str, wappi: FakeWappi, gemini: FakeGemini, **extra: Any
) -> GatewaySettings:
    return gateway_settings(
        amqp_url,
        database_url,
        whatsapp_provider="wappi",
        wappi_base_url=wappi.url,
        wappi_token=wappi.token,
        wappi_profile_id=wappi.profile_id,
        wappi_page_size=25,
        poll_interval_s=0.05,
        **LOCAL_MEDIA,
        ignored_numbers=",".join(f"+{n}" for n in IGNORED),
        gemini_api_key="fake-key",
        gemini_base_url=gemini.url,
        **extra,
    )


def build_account(wappi: FakeWappi, now: int) -> set[str]:
    """120 messages; returns the provider ids that must reach incoming_messages."""
    expected: set[str] = set()
    t0 = now - 1800
    add = wappi.messages.append
    for p in range(20):  # 80 texts from 20 prospects; pairs share a second (equal timestamps)
        phone = f"7701000{p:04d}"
        for k in range(4):
            mid = f"TXT{p:02d}{k}"
            add(wappi_message(mid, phone, t0 + p * 10 + (k // 2), body=f"hello {p}/{k}", name=f"P{p}"))
            expected.add(mid)
    for k in range(10):  # our own replies
        add(wappi_message(f"OWN{k}", "77010000000", t0 + 300 + k, body="our answer", from_me=True))
    for k in range(8):  # a group chat
        add(wappi_message(f"GRP{k}", "120363025246125486@g.us", t0 + 320 + k, body="group chatter"))
    for k in range(8):  # ignored numbers: logged, not published
        add(wappi_message(f"IGN{k}", IGNORED[k % 2], t0 + 340 + k, body="ignore me"))
    for k in range(6):  # voice notes (one expired link, one served as base64)
        mid = f"PTT{k}"
        add(wappi_message(mid, f"7701000{k:04d}", t0 + 400 + k, type="ptt", body="", mimetype="audio/ogg; codecs=opus"))
        wappi.media[mid] = (f"OggS-voice-{mid}".encode(), "audio/ogg; codecs=opus")
        expected.add(mid)
    wappi.expire_links_once.add("PTT1")
    wappi.media_as_base64.add("PTT2")
    for k in range(4):  # images with captions
        mid = f"IMG{k}"
        add(wappi_message(mid, f"7701000{k:04d}", t0 + 500 + k, type="image", body="/9j/thumb", caption=f"photo {k}"))
        wappi.media[mid] = (b"\xff\xd8\xff\xe0-jpeg-" + mid.encode(), "image/jpeg")
        expected.add(mid)
    for k in range(2):  # reactions: recorded on the message they react to
        add({**wappi_message(f"REA{k}", "77010000001", t0 + 600 + k, type="reaction", body="👍"), "stanzaId": "TXT000"})
        expected.add(f"REA{k}")
    for k in range(2):  # history from before the first poll's look-back
        add(wappi_message(f"OLD{k}", "77010000001", now - 7200 - k, body="last year"))
    assert len(wappi.messages) == 120
    return expected


async def test_account_of_120_messages_published_once_across_a_restart_mid_poll(
    amqp_url: str, database_url: str, wappi: FakeWappi, gemini: FakeGemini
) -> None:
    now = int(time.time())
    expected = build_account(wappi, now)
    settings = settings_for(amqp_url, database_url, wappi, gemini)

    # --- first gateway: killed while reading page 3 of its first poll
    reached_page_3 = asyncio.Event()
    gate = asyncio.Event()
    polls = 0

    async def on_page(offset: int) -> None:
        nonlocal polls
        if offset == 0:
            polls += 1
        if polls == 1 and offset == 50:
            reached_page_3.set()
            await gate.wait()
        if polls == 2 and offset == 25:  # three messages arrive mid-poll: pages shift, page 2 repeats them
            for k in range(3):
                mid = f"LIVE{k}"
                wappi.messages.append(wappi_message(mid, "77010009999", now - 5 + k, body=f"live {k}"))
                expected.add(mid)

    wappi.on_page = on_page
    async with running(settings):
        await asyncio.wait_for(reached_page_3.wait(), 20)
    gate.set()
    assert await queue_size(amqp_url, INCOMING.name) == 0  # nothing half-done survived the crash

    # --- second gateway: same database, completes the poll
    total = len(expected) + 3  # and the 3 that arrive during its first poll
    async with running(settings) as client:
        messages = await take(amqp_url, INCOMING.name, total, timeout=30)
        await eventually(lambda: _polled(wappi, 4), what="more polls")
        assert await queue_size(amqp_url, INCOMING.name) == 0, "a later poll replayed something"
        by_id = {m["provider_message_id"]: m for m in messages}
        assert len(messages) == len(by_id) == len(expected) == 95
        assert set(by_id) == expected
        for mid, message in by_id.items():
            if mid.startswith("PTT"):
                assert message["kind"] == "voice" and message["transcribed"] is True
                assert message["text"] == f"transcript of OggS-voice-{mid}"
                assert message["media"]["stored"] == message["message_id"]  # kept for managers to listen to
            elif mid.startswith("IMG"):
                assert message["kind"] == "image" and message["caption"] == f"photo {mid[-1]}"
                assert message["media"]["media_id"] == mid and message["text"] is None
                assert message["media"]["stored"] == message["message_id"] and message["media"]["size"] == 14
            elif mid.startswith("REA"):
                assert (message["kind"], message["reaction"]) == ("reaction", "👍")
                assert message["target_message_id"] == stable_id("in", "wappi", "TXT000")
            else:
                assert message["kind"] == "text" and message["text"].startswith(("hello", "live"))
            assert message["phone"].startswith("+7701")
        # one contact's texts arrive in the order they were written
        texts = [m for m in messages if m["provider_message_id"].startswith("TXT05")]
        assert [m["provider_message_id"] for m in texts] == ["TXT050", "TXT051", "TXT052", "TXT053"]
        assert wappi.media_requests.count("PTT1") == 2  # the expired link was fetched anew

        stats = await (await client.get("/stats", headers=AUTH)).json()
        inbound = stats["messages"]["inbound"]
        assert inbound["by_status"] == {"queued": 89, "transcribed": 6, "ignored": 8}
        assert stats["poller"]["ok"] and stats["poller"]["polls"] >= 3

        # --- new traffic: one in the same second as the newest seen, one late (older time)
        newest = max(m["time"] for m in wappi.messages)
        wappi.messages.append(wappi_message("SAME", "77010000042", newest, body="same second"))
        wappi.messages.append(wappi_message("LATE", "77010000043", newest - 120, body="late arrival"))
        late = await take(amqp_url, INCOMING.name, 2)
        assert {m["provider_message_id"] for m in late} == {"SAME", "LATE"}

    # --- third gateway: a plain restart replays nothing
    before = len(wappi.page_requests)
    async with running(settings):
        await eventually(lambda: _polled(wappi, 3, since=before), what="polls after restart")
        assert await queue_size(amqp_url, INCOMING.name) == 0
        assert await queue_size(amqp_url, "voice_transcription") == 0


async def _polled(wappi: FakeWappi, times: int, since: int = 0) -> bool:
    return sum(1 for _, offset in wappi.page_requests[since:] if offset == 0) >= times


async def test_wappi_sender_and_poll_errors(amqp_url: str, tmp_path, wappi: FakeWappi) -> None:  # type: ignore[no-untyped-def]
    async def unpaid(call: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        if call["recipient"] == "77010000002":
            return 402, {"status": "error", "detail": "Profile not paid"}, {}
        return None

    wappi.send_responder = unpaid
    settings = gateway_settings(
        amqp_url,
        f"sqlite+aiosqlite:///{tmp_path}/g.db",
        whatsapp_provider="wappi",
        wappi_base_url=wappi.url,
        wappi_token="wrong-token",
        wappi_profile_id=wappi.profile_id,
        poll_interval_s=0.05,
    )
    messages = [
        OutgoingMessage(message_id="o1", correlation_id="c1", phone="+77010000001", text="Здравствуйте!"),
        OutgoingMessage(message_id="o2", correlation_id="c2", phone="+77010000002", text="Hello"),
    ]
    async with running(settings) as client:

        async def poll_failed() -> bool:
            health = await client.get("/health")
            body = await health.json()
            poller = body["checks"]["provider"]["poller"]
            return health.status == 503 and not poller["ok"] and "401" in (poller["last_error"] or "")

        await eventually(poll_failed, what="the failed poll in /health")
    wappi.token = "wrong-token"  # the same token the gateway sends: now sends are accepted
    async with running(settings):
        await publish(amqp_url, OUTGOING, messages)
        statuses = await take(amqp_url, STATUS.name, 2)
        [dead] = await take_messages(amqp_url, OUTGOING.dead_letter_queue, 1)
    assert wappi.sent == [{"recipient": "77010000001", "body": "Здравствуйте!", "path": "/api/sync/message/send"}]
    by_id = {s["outgoing_message_id"]: s for s in statuses}
    assert by_id["o1"]["status"] == "sent" and by_id["o1"]["provider_message_id"].startswith("3EB0")
    assert by_id["o2"]["status"] == "failed" and by_id["o2"]["error_code"] == "402"
    assert "Profile not paid" in by_id["o2"]["error_reason"]
    assert dead.message_id == "o2" and "402" in str(dead.headers["x-parley-error"])
