"""The sandbox provider end to end on the real RabbitMQ and databases: inbound through the one
ingest path, voice notes through the transcriber (fake Gemini via the real SDK), replies through
the sender into the sandbox outbox, the ignore list API, /stats, /health and /metrics."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from gateway.app import create_app
from gateway.context import GATEWAY
from gateway.db import tables
from gateway.domain.admission import InboundEvent
from gateway.outbound import OutStatus
from gateway.providers.sandbox import SandboxProvider
from parley_shared.contracts import (
    Choice,
    Choices,
    MessageKind,
    OutgoingKind,
    OutgoingMedia,
    OutgoingMessage,
    Provider,
    stable_id,
)
from parley_shared.db import create_engine
from parley_shared.phone import mask_phone
from parley_shared.service import RUNTIME
from parley_shared.topology import INCOMING, OUTGOING, STATUS
from tests.gateway.helpers import AUTH, eventually, gateway_settings, publish, queue_size, running, take
from tests.support.fake_gemini import FakeGemini, FakeReply

# google-genai subclasses aiohttp.ClientSession, which aiohttp 3.14 warns about (-W error).
PHONE = "+77010000001"
AUDIO = b"OggS\x00\x02fake-opus-audio" * 20


@pytest.fixture
async def gemini() -> AsyncIterator[FakeGemini]:
    fake = await FakeGemini().start()
    yield fake
    await fake.close()


def reply(n: int, phone: str = PHONE, kind: OutgoingKind = OutgoingKind.REPLY) -> OutgoingMessage:
    return OutgoingMessage(
        message_id=f"reply-{n}",
        correlation_id=f"corr-{n}",
        phone=phone,
        text=f"Answer number {n}",
        kind=kind,
        in_reply_to=[f"in-{n}"],
    )


async def log_rows(database_url: str, direction: str) -> list[tuple[str, str, str]]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            t = tables.message_logs
            rows = await conn.execute(
                select(t.c.message_id, t.c.status, t.c.phone_masked).where(t.c.direction == direction).order_by(t.c.id)
            )
            return [tuple(r) for r in rows]
    finally:
        await engine.dispose()


async def test_sandbox_round_trip_once_each_way(amqp_url: str, database_url: str) -> None:
    settings = gateway_settings(amqp_url, database_url)
    async with running(settings) as client:
        first = await client.post(
            "/sandbox/inbound", json={"from": "8 701 000 00 01", "text": "Hi!", "name": "Aru", "id": "p1"}, headers=AUTH
        )
        assert first.status == 202, await first.text()
        body = await first.json()
        assert body == {"message_id": stable_id("in", "sandbox", "p1"), "status": "published"}
        again = await client.post("/sandbox/inbound", json={"from": PHONE, "text": "Hi!", "id": "p1"}, headers=AUTH)
        assert (await again.json())["status"] == "duplicate"
        [incoming] = await take(amqp_url, INCOMING.name, 1)
        assert (incoming["phone"], incoming["text"], incoming["contact_name"]) == (PHONE, "Hi!", "Aru")
        assert incoming["provider"] == "sandbox" and incoming["provider_message_id"] == "p1"
        assert incoming["message_id"] == body["message_id"] and incoming["kind"] == "text"

        # The agent answers twice with the same message id (a redelivery): delivered once.
        await publish(amqp_url, OUTGOING, [reply(1), reply(1)])
        page = await client.get("/sandbox/outbox", params={"to": PHONE, "wait": "10"}, headers=AUTH)
        assert page.status == 200
        data = await page.json()
        [delivered] = data["messages"]
        assert delivered["text"] == "Answer number 1" and delivered["kind"] == "reply" and delivered["to"] == PHONE
        assert delivered["message_id"] == "reply-1" and delivered["in_reply_to"] == ["in-1"]
        assert data["next_cursor"] == delivered["cursor"]
        [status] = await take(amqp_url, STATUS.name, 1)
        assert status["status"] == "sent" and status["outgoing_message_id"] == "reply-1"
        assert status["provider_message_id"] == delivered["provider_message_id"]
        await eventually(lambda: _queue_empty(amqp_url, OUTGOING.name), what="outgoing drained")
        empty = await client.get(
            "/sandbox/outbox", params={"to": PHONE, "after": str(data["next_cursor"])}, headers=AUTH
        )
        assert (await empty.json())["messages"] == []
    assert [(r[0], r[1]) for r in await log_rows(database_url, "inbound")] == [(body["message_id"], "queued")]
    assert await log_rows(database_url, "outbound") == [("reply-1", "sent", mask_phone(PHONE))]


async def test_concurrent_inbound_posts_share_transactions_each_answered_for_itself(
    amqp_url: str, database_url: str
) -> None:
    """Group commit: 60 POSTs at once (with a repeat and an ignored number among them) are logged
    in fewer transactions than requests, and each request still gets its own outcome."""
    settings = gateway_settings(amqp_url, database_url, ignored_numbers="+77010000099")
    async with running(settings) as client:
        bodies = [{"from": f"+7701000{i:04d}", "text": f"hello {i}", "id": f"burst-{i}"} for i in range(58)]
        bodies += [{"from": "+77010000099", "text": "ignored", "id": "burst-ignored"}, dict(bodies[7])]
        responses = await asyncio.gather(*(client.post("/sandbox/inbound", json=b, headers=AUTH) for b in bodies))
        outcomes = Counter([(r.status, (await r.json())["status"]) for r in responses])
        assert outcomes == {(202, "published"): 58, (202, "duplicate"): 1, (202, "ignored"): 1}
        group = client.app[GATEWAY].ingestor.group_commit
        assert group.items == 60 and group.batches < group.items
        published = await take(amqp_url, INCOMING.name, 58)
        assert sorted(m["text"] for m in published) == sorted(f"hello {i}" for i in range(58))
    logged = await log_rows(database_url, "inbound")
    assert len(logged) == 59 and sorted(status for _, status, _ in logged).count("ignored") == 1


async def test_ingest_metrics_count_only_what_committed(amqp_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A batch that rolls back (and is then retried) counts its messages once, after the commit."""
    settings = gateway_settings(amqp_url, f"sqlite+aiosqlite:///{tmp_path}/g.db", ignored_numbers="+77010000099")
    async with running(settings) as client:
        ingestor = client.app[GATEWAY].ingestor
        now = datetime.now(UTC)

        def event(n: int, sender: str = PHONE) -> InboundEvent:
            return InboundEvent(Provider.SANDBOX, f"m-{n}", sender, MessageKind.TEXT, now, text=f"hi {n}")

        events = [event(1), event(2, "+77010000099"), event(1), event(3, "hello")]
        names = ("received", "published", "ignored", "duplicates", "skipped")
        before = {name: _metric(name) for name in names}

        async def fail(_session: object) -> None:
            raise ConnectionError("database went away before the commit")

        with pytest.raises(ConnectionError):
            await ingestor.ingest(events, within=fail)
        assert {name: _metric(name) for name in names} == before  # rolled back: nothing counted
        report = await ingestor.ingest(events)
        assert [o.status for o in report.outcomes] == ["published", "ignored", "duplicate", "skipped"]
        after = {name: _metric(name) - before[name] for name in names}
        assert after == {"received": 4, "published": 1, "ignored": 1, "duplicates": 1, "skipped": 1}


def _metric(name: str) -> float:
    """The sandbox provider's total of ``parley_gateway_<name>_total`` over its other labels."""
    return sum(
        sample.value
        for metric in REGISTRY.collect()
        if metric.name == f"parley_gateway_{name}"
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels.get("provider") == "sandbox"
    )


async def _queue_empty(amqp_url: str, queue: str) -> bool:
    return await queue_size(amqp_url, queue) == 0


async def test_outbox_long_poll_answers_when_a_message_arrives(amqp_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = gateway_settings(amqp_url, f"sqlite+aiosqlite:///{tmp_path}/g.db")
    async with running(settings) as client:
        waiting = asyncio.create_task(client.get("/sandbox/outbox", params={"to": PHONE, "wait": "30"}, headers=AUTH))
        await asyncio.sleep(0.2)  # the request is parked
        assert not waiting.done()
        started = asyncio.get_running_loop().time()
        await publish(amqp_url, OUTGOING, [reply(7)])
        response = await asyncio.wait_for(waiting, 15)
        assert asyncio.get_running_loop().time() - started < 10
        assert [m["message_id"] for m in (await response.json())["messages"]] == ["reply-7"]
        other = await client.get("/sandbox/outbox", params={"to": "+77010000002"}, headers=AUTH)
        assert (await other.json())["messages"] == []


async def test_stopping_answers_a_parked_long_poll_at_once(amqp_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An idle gateway stops at once: a long poll parked for 30 s (the demo chat keeps one open)
    is answered when shutdown begins instead of holding the server until it times out."""
    settings = gateway_settings(amqp_url, f"sqlite+aiosqlite:///{tmp_path}/g.db")
    server = TestServer(create_app(settings))
    client = TestClient(server)
    await client.start_server()
    try:
        sandbox = client.app[GATEWAY].provider
        waiting = asyncio.create_task(client.get("/sandbox/outbox", params={"wait": "30"}, headers=AUTH))

        async def parked() -> bool:
            return sandbox.parked == 1

        await eventually(parked, what="the long poll to park")
        stopping = asyncio.create_task(server.close())  # SIGTERM's path: on_shutdown, requests, cleanup
        response = await asyncio.wait_for(waiting, 10)  # far less than the poll's 30 s
        assert response.status == 200 and (await response.json())["messages"] == []
        await asyncio.wait_for(stopping, 10)
        assert not client.app[RUNTIME].started
    finally:
        await client.close()


async def test_voice_note_is_transcribed_through_the_real_sdk(amqp_url: str, tmp_path, gemini: FakeGemini) -> None:  # type: ignore[no-untyped-def]
    gemini.queue(FakeReply.error(503), FakeReply.text("Сколько стоит кресло?"))
    settings = gateway_settings(
        amqp_url, f"sqlite+aiosqlite:///{tmp_path}/g.db", gemini_api_key="fake-key", gemini_base_url=gemini.url
    )
    async with running(settings) as client:
        payload = {
            "from": PHONE,
            "voice_base64": base64.b64encode(AUDIO).decode(),
            "mime_type": "audio/ogg; codecs=opus",
            "id": "v1",
        }
        response = await client.post("/sandbox/inbound", json=payload, headers=AUTH)
        assert response.status == 202 and (await response.json())["status"] == "published"
        [message] = await take(amqp_url, INCOMING.name, 1)
        assert message["message_id"] == stable_id("in", "sandbox", "v1")
        assert message["kind"] == "voice" and message["transcribed"] is True
        assert message["text"] == "Сколько стоит кресло?" and message["transcription_error"] is None
        assert message["media"]["inline_b64"] is None
        assert len(gemini.calls) == 2  # one 503, then the answer
        [inline] = gemini.calls[-1].inline_data
        assert base64.b64decode(inline["data"]) == AUDIO
        assert inline.get("mimeType", inline.get("mime_type")) == "audio/ogg"
        assert gemini.calls[-1].model == settings.gemini_transcription_model
    rows = await log_rows(settings.database_url, "inbound")
    assert [r[1] for r in rows] == ["transcribed"]


@pytest.mark.parametrize("case", ["no_key", "gemini_down", "blocked"])
async def test_voice_note_without_transcription_still_reaches_the_agent(
    amqp_url: str,
    tmp_path,
    gemini: FakeGemini,
    case: str,  # type: ignore[no-untyped-def]
) -> None:
    extra = {}
    if case != "no_key":
        extra = {"gemini_api_key": "fake-key", "gemini_base_url": gemini.url, "transcription_attempts": 2}
        gemini.default = FakeReply.error(503) if case == "gemini_down" else FakeReply.blocked()
    settings = gateway_settings(amqp_url, f"sqlite+aiosqlite:///{tmp_path}/g.db", **extra)
    async with running(settings) as client:
        payload = {"from": PHONE, "voice_base64": base64.b64encode(AUDIO).decode(), "id": "v2"}
        assert (await client.post("/sandbox/inbound", json=payload, headers=AUTH)).status == 202
        [message] = await take(amqp_url, INCOMING.name, 1)
    assert message["kind"] == "voice" and message["text"] is None and message["transcribed"] is False
    expected = {"no_key": "not configured", "gemini_down": "gemini error 503", "blocked": "blocked"}[case]
    assert expected in message["transcription_error"]
    assert len(gemini.calls) == {"no_key": 0, "gemini_down": 2, "blocked": 1}[case]


async def test_each_message_names_the_contacts_previous_one_voice_notes_and_batches_included(
    amqp_url: str, database_url: str
) -> None:
    """The chain the agent uses to keep a contact's order: every published message carries the id
    of the one published for the same contact just before it -- across concurrent requests sharing
    a transaction, across contacts, and through a voice note's transcription (which reaches the
    agent after the text sent behind it). Ignored and duplicate messages are not links."""
    other = "+77010000002"
    settings = gateway_settings(amqp_url, database_url, ignored_numbers="+77010000099")
    async with running(settings) as client:

        async def post(body: dict[str, object]) -> str:
            response = await client.post("/sandbox/inbound", json=body, headers=AUTH)
            assert response.status == 202, await response.text()
            return str((await response.json())["message_id"])

        first = await post({"from": PHONE, "text": "one", "id": "c1"})
        voice = await post({"from": PHONE, "voice_base64": base64.b64encode(AUDIO).decode(), "id": "c2"})
        await post({"from": "+77010000099", "text": "ignored", "id": "c-ignored"})
        third = await post({"from": PHONE, "text": "three", "id": "c3"})
        await post({"from": PHONE, "text": "three", "id": "c3"})  # a repeat: no new link
        # Concurrent requests (sharing transactions by group commit) still form one chain per contact.
        burst = [{"from": p, "text": f"burst {i}", "id": f"b-{p[-1]}-{i}"} for i in range(10) for p in (PHONE, other)]
        await asyncio.gather(*(post(b) for b in burst))
        published = await take(amqp_url, INCOMING.name, 3 + len(burst))
    by_id = {m["message_id"]: m for m in published}
    assert by_id[first]["previous_message_id"] is None and by_id[first]["v"] == 3
    assert by_id[voice]["kind"] == "voice" and by_id[voice]["previous_message_id"] == first  # after transcription
    assert by_id[third]["previous_message_id"] == voice

    def chain(phone: str, start: str | None) -> list[str]:
        """Follow the links from ``start`` through every message of ``phone``."""
        after = {m["previous_message_id"]: m["message_id"] for m in published if m["phone"] == phone}
        walked: list[str] = []
        current = after.get(start)
        while current is not None:
            walked.append(current)
            current = after.get(current)
        return walked

    # One chain per contact: from its first message, every message once (a fork would lose one).
    walked = chain(PHONE, None)
    assert walked[:3] == [first, voice, third]
    assert sorted(walked) == sorted(m["message_id"] for m in published if m["phone"] == PHONE)
    assert sorted(chain(other, None)) == sorted(m["message_id"] for m in published if m["phone"] == other)


async def test_ignore_list_api_and_ignored_messages(amqp_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = gateway_settings(amqp_url, f"sqlite+aiosqlite:///{tmp_path}/g.db", ignored_numbers="8 701 000 00 09")
    async with running(settings) as client:
        listed = await (await client.get("/ignore-list", headers=AUTH)).json()
        assert [(n["phone"], n["source"]) for n in listed["numbers"]] == [("+77010000009", "config")]
        added = await client.post("/ignore-list", json={"phone": "77010000003@c.us", "note": "supplier"}, headers=AUTH)
        assert added.status == 201 and await added.json() == {"phone": "+77010000003", "added": True}
        assert (await client.post("/ignore-list", json={"phone": "+77010000003"}, headers=AUTH)).status == 200
        assert (await client.post("/ignore-list", json={"phone": "not a phone"}, headers=AUTH)).status == 400
        assert (await client.post("/ignore-list", json={"phone": "+77010000003"})).status == 401
        for sender in ("+77010000009", "+77010000003", PHONE):
            response = await client.post(
                "/sandbox/inbound", json={"from": sender, "text": "hello", "id": sender}, headers=AUTH
            )
            assert response.status == 202
        [only] = await take(amqp_url, INCOMING.name, 1)
        assert only["phone"] == PHONE
        assert (await client.delete("/ignore-list/%2B77010000009", headers=AUTH)).status == 409  # configured
        assert (await client.delete("/ignore-list/%2B77010000003", headers=AUTH)).status == 204
        assert (await client.delete("/ignore-list/%2B77010000003", headers=AUTH)).status == 404
        await client.post(
            "/sandbox/inbound", json={"from": "+77010000003", "text": "now heard", "id": "x2"}, headers=AUTH
        )
        [heard] = await take(amqp_url, INCOMING.name, 1)
        assert heard["phone"] == "+77010000003"

        stats = await (await client.get("/stats", headers=AUTH)).json()
        inbound = stats["messages"]["inbound"]
        assert inbound["by_status"] == {"ignored": 2, "queued": 2} and inbound["by_provider"] == {"sandbox": 4}
        assert stats["provider"] == "sandbox" and stats["queues"]["incoming_messages"]["messages"] == 0
        assert (await client.get("/stats")).status == 401
        health = await (await client.get("/health")).json()
        assert health["checks"]["provider"] == {"ok": True, "provider": "sandbox", "missing": []}
        metrics = await (await client.get("/metrics")).text()
        for name in ("parley_gateway_received_total", "parley_gateway_ignored_total", "parley_gateway_published_total"):
            assert name in metrics


BAD_BODIES: list[object] = [
    {"from": PHONE},
    {"from": PHONE, "text": "  "},
    {"from": PHONE, "text": "x", "voice_base64": "AAAA"},
    {"from": PHONE, "voice_base64": "%%%not base64"},
    {"from": "hello", "text": "x"},
    {"from": "120363025246125486@g.us", "text": "x"},
    {"from": PHONE, "text": "x", "surprise": 1},
    {"from": PHONE, "text": "x", "id": ""},
    [],
]


async def test_sandbox_refuses_bad_input_with_400(amqp_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = gateway_settings(amqp_url, f"sqlite+aiosqlite:///{tmp_path}/g.db")
    async with running(settings) as client:
        for body in BAD_BODIES:
            response = await client.post("/sandbox/inbound", json=body, headers=AUTH)
            assert response.status == 400, (body, await response.text())
        assert (await client.post("/sandbox/inbound", data=b"{not json", headers=AUTH)).status == 400
        for query in ({"after": "-1"}, {"limit": "0"}, {"wait": "31"}, {"to": "nope"}, {"after": "x"}, {"x": "1"}):
            assert (await client.get("/sandbox/outbox", params=query, headers=AUTH)).status == 400, query
        assert await queue_size(amqp_url, INCOMING.name) == 0


async def test_a_crash_between_the_log_write_and_the_publish_is_covered_by_the_relay(
    amqp_url: str, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running(gateway_settings(amqp_url, database_url)) as client:
        gateway = client.app[GATEWAY]

        async def crashed(**_staged: object) -> bool:  # committed, then "died" before publishing
            return False

        async def nothing() -> int:  # and its relay never ran again (no drain at exit either)
            return 0

        monkeypatch.setattr(gateway.runtime.outbox, "publish_after_commit", crashed)
        monkeypatch.setattr(gateway.runtime.outbox, "relay_once", nothing)
        response = await client.post(
            "/sandbox/inbound", json={"from": PHONE, "text": "lost?", "id": "c1"}, headers=AUTH
        )
        assert response.status == 202
        assert await gateway.runtime.outbox.pending() == 1
    assert await queue_size(amqp_url, INCOMING.name) == 0
    # The next start's relay publishes what the "crashed" process committed; exactly once.
    async with running(gateway_settings(amqp_url, database_url)) as client:
        [message] = await take(amqp_url, INCOMING.name, 1)
        await eventually(lambda: _no_pending(client), what="outbox drained")
        again = await client.post("/sandbox/inbound", json={"from": PHONE, "text": "lost?", "id": "c1"}, headers=AUTH)
        assert (await again.json())["status"] == "duplicate"
    assert message["provider_message_id"] == "c1" and message["text"] == "lost?"
    assert await queue_size(amqp_url, INCOMING.name) == 0


async def _no_pending(client: TestClient) -> bool:
    return await client.app[GATEWAY].runtime.outbox.pending() == 0


async def test_the_sandbox_keeps_files_and_numbers_its_options(amqp_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A provider without buttons: options as numbered lines; a file kept and shown by the outbox."""
    data = b"%PDF-1.4 price list"
    document = OutgoingMedia(
        kind="document",
        file_name="price-list.pdf",
        mime_type="application/pdf",
        data_b64=base64.b64encode(data).decode(),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    options = Choices(options=[Choice(id="call:1", title="Mon 10:00"), Choice(id="call:2", title="Tue 11:00")])
    settings = gateway_settings(amqp_url, f"sqlite+aiosqlite:///{tmp_path}/g.db", media_dir=str(tmp_path / "media"))
    async with running(settings) as client:
        await publish(
            amqp_url,
            OUTGOING,
            [
                OutgoingMessage(message_id="f1", correlation_id="c", phone=PHONE, text="Our prices", media=document),
                OutgoingMessage(message_id="f2", correlation_id="c", phone=PHONE, text="When?", choices=options),
            ],
        )
        await take(amqp_url, STATUS.name, 2)
        page = await (await client.get("/sandbox/outbox", params={"to": PHONE}, headers=AUTH)).json()
        by_id = {m["message_id"]: m for m in page["messages"]}
        sent = by_id["f1"]["media"]
        assert (sent["kind"], sent["file_name"], sent["size"]) == ("document", "price-list.pdf", len(data))
        fetched = await client.get(f"/media/{sent['key']}", headers=AUTH)
        assert fetched.status == 200 and await fetched.read() == data
        assert by_id["f2"]["text"] == "When?\n\n1. Mon 10:00\n2. Tue 11:00"
        assert [o["id"] for o in by_id["f2"]["choices"]["options"]] == ["call:1", "call:2"]
        # A number typed back answers like a tap.
        response = await client.post("/sandbox/inbound", json={"from": PHONE, "text": "1"}, headers=AUTH)
        assert response.status == 202
        [tap] = await take(amqp_url, INCOMING.name, 1)
    assert tap["interactive"]["id"] == "call:1" and tap["text"] == "Mon 10:00" and tap["kind"] == "interactive"


async def test_claims_made_together_share_a_transaction_and_one_copy_owns_each_send(
    amqp_url: str, database_url: str
) -> None:
    """The sends whose turns come at about the same time are claimed in one transaction, their rows
    created already ``sending``; two copies of one message (published twice) never both own the
    send, a message claimed again is not started twice, and a retry starts it once."""
    async with running(gateway_settings(amqp_url, database_url)) as client:
        outbound = client.app[GATEWAY].outbound
        messages = [
            OutgoingMessage(message_id=f"s{n}", correlation_id="c", phone=PHONE, text=f"reply {n}") for n in range(4)
        ]
        claims = await asyncio.gather(*(outbound.claim(m) for m in [*messages, messages[0]]))
        # Each message is owned by exactly one of its copies (the first of a batch; which batch
        # commits first is the database's choice); the other finds it being sent.
        assert [c.send for c in claims[1:4]] == [True, True, True], claims
        owner, copy = sorted([claims[0], claims[4]], key=lambda c: c.send, reverse=True)
        assert owner.send and not copy.send and copy.status is OutStatus.SENDING, claims
        assert outbound.writes.batches < outbound.writes.items
        assert {c.refused for c in claims} == {None} and claims[1].contact is None  # never wrote: no chat known

        # Committed as ``sending`` before any provider call.
        async with client.app[RUNTIME].sessions() as session:
            rows = await session.execute(
                select(tables.message_logs.c.message_id, tables.message_logs.c.status).where(
                    tables.message_logs.c.direction == "outbound"
                )
            )
            assert dict(rows.all()) == {f"s{n}": "sending" for n in range(4)}

        again = await outbound.claim(messages[1])  # redelivered while (or after) it was being sent
        assert not again.send and again.status is OutStatus.SENDING

        # A transient failure puts it back to wait; the retry starts it once.
        await outbound.set_status("s2", OutStatus.RETRY_WAIT)
        assert sorted(await asyncio.gather(*(outbound.start_sending("s2") for _ in range(2)))) == [False, True]
        assert await outbound.start_sending("s2") is False  # already sending

        # A redelivery after the crash of a retry's wait claims it again.
        await outbound.set_status("s2", OutStatus.RETRY_WAIT)
        assert (await outbound.claim(messages[2])).send

        # Done: a copy finds it sent and sends nothing.
        await outbound.finish(messages[3], OutStatus.SENT, provider_message_id="sandbox-3")
        done = await outbound.claim(messages[3])
        assert not done.send and done.status is OutStatus.SENT

        # Claims and outcomes made at about the same time share a transaction, outcomes first: a
        # copy claimed in the batch that records its message's outcome finds it done.
        batches = outbound.writes.batches
        late = OutgoingMessage(message_id="s5", correlation_id="c", phone=PHONE, text="reply 5")
        _, _, copy_of_sent = await asyncio.gather(
            outbound.claim(late),  # starts a batch at once; the next two wait and go together
            outbound.finish(messages[0], OutStatus.SENT, provider_message_id="sandbox-0"),
            outbound.claim(messages[0]),
        )
        assert outbound.writes.batches == batches + 2
        assert not copy_of_sent.send and copy_of_sent.status is OutStatus.SENT


async def test_a_reader_paging_by_cursor_misses_nothing_while_sends_run_side_by_side(
    amqp_url: str, pg_database_url: str
) -> None:
    """A send stored while an earlier one is still in its transaction commits after it: a reader
    paging with ``after`` sees every message (a row committed after one with a higher cursor would
    be passed over for good). The earlier store is held open by another transaction inserting the
    same message id, which the store's insert waits for."""
    async with running(gateway_settings(amqp_url, pg_database_url)) as client:
        provider = client.app[GATEWAY].provider
        assert isinstance(provider, SandboxProvider)
        first, *later = [reply(n, phone=f"+7701{n:07d}") for n in range(4)]
        engine = create_engine(pg_database_url)
        try:
            async with engine.connect() as blocker:
                row = {
                    "message_id": first.message_id,
                    "correlation_id": "other",
                    "phone": first.phone,
                    "text": "held",
                    "kind": "reply",
                    "in_reply_to": "[]",
                    "created_at": datetime.now(UTC),
                }
                await blocker.execute(tables.sandbox_outbox.insert().values(row))  # not committed
                held = asyncio.create_task(provider.send(first))

                async def store_waits_for_the_row() -> bool:
                    async with engine.connect() as conn:
                        waiting = await conn.scalar(text("SELECT count(*) FROM pg_locks WHERE NOT granted"))
                    return bool(waiting)

                await eventually(store_waits_for_the_row, what="the first store waiting inside its transaction")
                assert not held.done() and provider.stores.batches == 0
                sends = [asyncio.create_task(provider.send(m)) for m in later]
                await asyncio.sleep(0.3)  # time for the later stores to pass it, if they could
                seen = [d.message_id for d in await provider.outbox(to=None, after=0, limit=50)]
                assert seen == [] and not any(t.done() for t in sends)  # nothing passed the held one
                await blocker.rollback()
            results = await asyncio.gather(held, *sends)
        finally:
            await engine.dispose()
        page = await provider.outbox(to=None, after=0, limit=50)
        assert [d.message_id for d in page] == [m.message_id for m in [first, *later]]
        assert [r.provider_message_id for r in results] == [d.provider_message_id for d in page]
        assert provider.stores.batches == 2 and provider.stores.items == 4  # the three later ones together
        # Stored again: the same cursor, nothing new for a reader.
        assert (await provider.send(later[0])).provider_message_id == results[1].provider_message_id
        assert len(await provider.outbox(to=None, after=0, limit=50)) == 4


async def test_a_store_that_meets_the_database_away_is_retried_like_a_providers_503(
    amqp_url: str, database_url: str
) -> None:
    """Nothing was stored, so the sender retries it (not an "unknown outcome"): delivered once."""
    async with running(gateway_settings(amqp_url, database_url, send_backoff_base_s=0.05)) as client:
        provider = client.app[GATEWAY].provider
        assert isinstance(provider, SandboxProvider)
        store = provider.stores.run_batch
        failures = [OperationalError("INSERT ...", {}, ConnectionResetError("server closed the connection"))]

        async def away_once(batch: list[Any]) -> list[Any]:
            if failures:
                raise failures.pop()
            return list(await store(batch))

        provider.stores.run_batch = away_once
        await publish(amqp_url, OUTGOING, [reply(1)])
        [status] = await take(amqp_url, STATUS.name, 1)
        page = await (await client.get("/sandbox/outbox", params={"to": PHONE}, headers=AUTH)).json()
        metrics = await (await client.get("/metrics")).text()
    assert status["status"] == "sent" and failures == []
    assert [m["message_id"] for m in page["messages"]] == ["reply-1"]
    assert 'parley_gateway_send_retries_total{provider="sandbox"}' in metrics
