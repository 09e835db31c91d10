"""Meta WhatsApp Cloud API end to end: webhook verification and signatures, dedupe of retried
webhooks, delivery statuses, voice notes through the two-step media download, Graph API sends.

Done-when (issue 3): a Meta webhook delivered three times with a valid signature is published
once; a bad signature gets 401/403 and publishes nothing.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from parley_shared.clock import ManualClock
from parley_shared.contracts import OutgoingKind, OutgoingMessage, TemplateRef, stable_id
from parley_shared.topology import CAMPAIGN, INCOMING, OUTGOING, STATUS
from tests.gateway.helpers import (
    AUTH,
    META_SECRET,
    META_VERIFY,
    eventually,
    meta_settings,
    publish,
    queue_size,
    running,
    take,
)
from tests.support.fake_gemini import FakeGemini, FakeReply
from tests.support.fake_meta import (
    FakeMeta,
    audio_message,
    body_bytes,
    contact,
    envelope,
    sign,
    status,
    text_message,
)

SECRET = META_SECRET
VERIFY = META_VERIFY
WA_ID = "77010000001"


@pytest.fixture
async def graph() -> AsyncIterator[FakeMeta]:
    fake = await FakeMeta().start()
    yield fake
    await fake.close()


async def post_webhook(client: TestClient, payload: bytes | io.BytesIO, signature: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    response = await client.post("/webhook", data=payload, headers=headers)
    return response.status


async def outbox_drained(client: TestClient) -> bool:
    stats = await (await client.get("/stats", headers=AUTH)).json()
    return stats["outbox_pending"] == 0


async def test_webhook_retried_three_times_is_published_once_and_bad_signatures_publish_nothing(
    amqp_url: str, database_url: str, graph: FakeMeta
) -> None:
    settings = meta_settings(amqp_url, database_url, graph)
    payload = body_bytes(
        envelope(
            contacts=[contact(WA_ID, "Айгерим")], messages=[text_message("wamid.ONE", WA_ID, "Привет, сколько стоит?")]
        )
    )
    async with running(settings) as client:
        # Meta's subscription check
        ok = await client.get(
            "/webhook", params={"hub.mode": "subscribe", "hub.verify_token": VERIFY, "hub.challenge": "1158201444"}
        )
        assert ok.status == 200 and await ok.text() == "1158201444"
        wrong = await client.get(
            "/webhook", params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"}
        )
        assert wrong.status == 403

        # Bad signatures first: nothing is stored or published
        forged = body_bytes(envelope(messages=[text_message("wamid.FORGED", WA_ID, "fake")]))
        assert await post_webhook(client, forged, None) == 401
        assert await post_webhook(client, forged, sign("other-secret", forged)) == 403
        assert await post_webhook(client, forged, sign(SECRET, forged + b" ")) == 403  # signed other bytes
        assert await post_webhook(client, forged, "sha256=") == 403

        # The real webhook, delivered three times (two of them at once)
        assert await post_webhook(client, payload, sign(SECRET, payload)) == 200
        results = await asyncio.gather(*(post_webhook(client, payload, sign(SECRET, payload)) for _ in range(2)))
        assert results == [200, 200]
        [message] = await take(amqp_url, INCOMING.name, 1)
        await eventually(lambda: outbox_drained(client), what="outbox drained")
        assert await queue_size(amqp_url, INCOMING.name) == 0
        assert message["message_id"] == stable_id("in", "meta", "wamid.ONE")
        assert (message["phone"], message["text"], message["contact_name"]) == (
            f"+{WA_ID}",
            "Привет, сколько стоит?",
            "Айгерим",
        )
        stats = await (await client.get("/stats", headers=AUTH)).json()
        assert stats["messages"]["inbound"]["total"] == 1  # the forged one was never logged
        metrics = await (await client.get("/metrics")).text()
        assert 'parley_gateway_duplicates_total{provider="meta"}' in metrics


async def test_junk_bodies_get_400_and_unsigned_setup_refuses(amqp_url: str, tmp_path, graph: FakeMeta) -> None:  # type: ignore[no-untyped-def]
    settings = meta_settings(amqp_url, f"sqlite+aiosqlite:///{tmp_path}/g.db", graph)
    async with running(settings) as client:
        for junk in (
            b"",
            b"not json",
            b"[]",
            b'{"object":"page","entry":[]}',
            b'{"object":"whatsapp_business_account"}',
            b'{"object":"whatsapp_business_account","entry":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        ):
            assert await post_webhook(client, junk, sign(SECRET, junk)) == 400, junk
        big = b'{"object":"whatsapp_business_account","entry":[],"pad":"' + b"x" * (4 * 1024 * 1024) + b'"}'
        assert await post_webhook(client, io.BytesIO(big), sign(SECRET, big)) == 413
    no_secret = meta_settings(amqp_url, f"sqlite+aiosqlite:///{tmp_path}/h.db", graph, meta_app_secret=None)
    async with running(no_secret) as client:
        payload = body_bytes(envelope(messages=[text_message("wamid.X", WA_ID, "hi")]))
        assert await post_webhook(client, payload, sign(SECRET, payload)) == 403
        health = await (await client.get("/health")).json()
        assert health["checks"]["provider"]["missing"] == ["META_APP_SECRET"]
        assert health["checks"]["provider"]["ok"] is False


async def test_a_message_older_than_seven_days_is_skipped_counted_and_logged(
    amqp_url: str,
    tmp_path,
    graph: FakeMeta,  # type: ignore[no-untyped-def]
) -> None:
    """Meta retries a webhook for 7 days at most: an older message is a replayed body (its signature
    never expires) whose id retention may already have forgotten."""
    now = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    settings = meta_settings(amqp_url, f"sqlite+aiosqlite:///{tmp_path}/g.db", graph)
    old, late = (int((now - timedelta(days=days)).timestamp()) for days in (8, 6))
    payload = body_bytes(
        envelope(
            messages=[
                text_message("wamid.OLD", WA_ID, "replayed", old),
                text_message("wamid.LATE", WA_ID, "late", late),
            ]
        )
    )
    labels = {"provider": "meta", "reason": "stale"}
    before = REGISTRY.get_sample_value("parley_gateway_skipped_total", labels) or 0.0
    async with running(settings, clock=ManualClock(now)) as client:
        with capture_logs() as logs:
            response = await client.post(
                "/webhook", data=payload, headers={"X-Hub-Signature-256": sign(SECRET, payload)}
            )
        assert response.status == 200 and (await response.json())["received"] == 1
        [message] = await take(amqp_url, INCOMING.name, 1)
        assert message["message_id"] == stable_id("in", "meta", "wamid.LATE")
        stats = await (await client.get("/stats", headers=AUTH)).json()
        assert stats["messages"]["inbound"]["total"] == 1  # the stale one is not even logged
    assert REGISTRY.get_sample_value("parley_gateway_skipped_total", labels) == before + 1
    [line] = [entry for entry in logs if entry["event"] == "webhook.stale_messages"]
    assert line["count"] == 1 and line["oldest_sent_at"] == (now - timedelta(days=8)).isoformat()


async def test_nul_characters_are_stripped_at_ingest(amqp_url: str, database_url: str, graph: FakeMeta) -> None:
    """PostgreSQL refuses NUL in text: a name, text or id carrying one used to fail every attempt to
    store it (a 500 here for an id, ten retries and a dead letter at the agent for a name or text)."""
    settings = meta_settings(amqp_url, database_url, graph)
    payload = body_bytes(
        envelope(
            contacts=[contact(WA_ID, "Ai\x00gerim")],
            messages=[text_message("wamid.N\x00UL", WA_ID, "hi\x00 there")],
        )
    )
    async with running(settings) as client:
        assert await post_webhook(client, payload, sign(SECRET, payload)) == 200
        [message] = await take(amqp_url, INCOMING.name, 1)
    assert (message["contact_name"], message["text"], message["provider_message_id"]) == (
        "Aigerim",
        "hi there",
        "wamid.NUL",
    )


async def test_a_webhook_while_the_database_is_away_gets_503_so_meta_retries(
    amqp_url: str, tmp_path, graph: FakeMeta, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy.exc import OperationalError

    from gateway.context import GATEWAY
    from parley_shared.http import RETRY_AFTER_S

    settings = meta_settings(amqp_url, f"sqlite+aiosqlite:///{tmp_path}/g.db", graph)
    payload = body_bytes(envelope(messages=[text_message("wamid.LATER", WA_ID, "hi")]))
    async with running(settings) as client:
        ingestor = client.app[GATEWAY].ingestor
        real = ingestor.ingest

        async def away(*_args: object, **_kwargs: object) -> None:
            raise OperationalError("INSERT ...", {}, ConnectionRefusedError("database is away"))

        monkeypatch.setattr(ingestor, "ingest", away)
        response = await client.post("/webhook", data=payload, headers={"X-Hub-Signature-256": sign(SECRET, payload)})
        assert response.status == 503 and response.headers["Retry-After"] == str(RETRY_AFTER_S)
        monkeypatch.setattr(ingestor, "ingest", real)  # Meta's retry, once the database is back
        assert await post_webhook(client, payload, sign(SECRET, payload)) == 200
        [message] = await take(amqp_url, INCOMING.name, 1)
        assert message["message_id"] == stable_id("in", "meta", "wamid.LATER")


async def test_sends_statuses_and_templates_through_the_graph_api(amqp_url: str, tmp_path, graph: FakeMeta) -> None:  # type: ignore[no-untyped-def]
    settings = meta_settings(amqp_url, f"sqlite+aiosqlite:///{tmp_path}/g.db", graph)
    reply = OutgoingMessage(message_id="r1", correlation_id="c1", phone=f"+{WA_ID}", text="Кресло стоит 45 000 ₸")
    touch = OutgoingMessage(
        message_id="f1",
        correlation_id="c2",
        phone="+77010000002",
        text="Still thinking about the chair?",
        kind=OutgoingKind.FOLLOW_UP,
        template=TemplateRef(name="follow_up_1", language="ru"),
        follow_up_touch=1,
    )
    closed = OutgoingMessage(message_id="r0", correlation_id="c0", phone="+77010000003", text="Hello again")
    async with running(settings) as client:
        hello = body_bytes(envelope(messages=[text_message("wamid.HELLO", WA_ID, "Здравствуйте")]))
        assert await post_webhook(client, hello, sign(SECRET, hello)) == 200  # opens the 24-hour window
        await take(amqp_url, INCOMING.name, 1)
        await publish(amqp_url, OUTGOING, [reply, closed])
        await publish(amqp_url, CAMPAIGN, [touch])
        sent = await take(amqp_url, STATUS.name, 3)
        by_id = {s["outgoing_message_id"]: s for s in sent}
        assert {k: s["status"] for k, s in by_id.items()} == {"r1": "sent", "f1": "sent", "r0": "failed"}
        # Never wrote: a free-form message is not even attempted outside the window; a template goes.
        assert by_id["r0"]["error_code"] == "outside_24h_window" and "24-hour" in by_id["r0"]["error_reason"]
        assert [c.to for c in graph.attempts if c.to == "77010000003"] == []
        sent = [s for s in sent if s["outgoing_message_id"] != "r0"]
        by_to = {c.to: c.body for c in graph.sends}
        assert by_to[WA_ID]["type"] == "text" and by_to[WA_ID]["text"]["body"] == reply.text
        template = by_to["77010000002"]["template"]
        assert by_to["77010000002"]["type"] == "template" and template["name"] == "follow_up_1"
        assert template["language"] == {"code": "ru"}
        assert template["components"][0]["parameters"][0]["text"] == touch.text
        wamids = {s["outgoing_message_id"]: s["provider_message_id"] for s in sent}

        # Statuses arrive late, out of order and twice; the touch fails outside the 24-hour window.
        statuses = envelope(
            statuses=[
                status(wamids["r1"], "read", WA_ID, timestamp=1749416500),
                status(wamids["r1"], "delivered", WA_ID, timestamp=1749416450),
                status(wamids["r1"], "read", WA_ID, timestamp=1749416500),
                status(wamids["f1"], "failed", "77010000002", code=131047),
                status("wamid.unknown", "delivered", WA_ID),
            ]
        )
        payload = body_bytes(statuses)
        assert await post_webhook(client, payload, sign(SECRET, payload)) == 200
        later = await take(amqp_url, STATUS.name, 2)
        await eventually(lambda: outbox_drained(client), what="outbox drained")
        assert await queue_size(amqp_url, STATUS.name) == 0  # "delivered" after "read" moved nothing
        by_message = {(s["outgoing_message_id"], s["status"]): s for s in later}
        assert set(by_message) == {("r1", "read"), ("f1", "failed")}
        assert by_message[("f1", "failed")]["error_code"] == "131047"
        stats = await (await client.get("/stats", headers=AUTH)).json()
        assert stats["messages"]["outbound"]["by_status"] == {"read": 1, "failed": 2}


async def test_voice_note_via_two_step_download_with_an_expired_url(amqp_url: str, tmp_path, graph: FakeMeta) -> None:  # type: ignore[no-untyped-def]
    gemini = await FakeGemini().start()
    try:
        gemini.queue(FakeReply.text("Хочу заказать стол"))
        graph.media["media-77"] = (b"OggS-opus-bytes", "audio/ogg; codecs=opus")
        graph.expire_urls_once.add("media-77")
        settings = meta_settings(
            amqp_url, f"sqlite+aiosqlite:///{tmp_path}/g.db", graph, gemini_api_key="k", gemini_base_url=gemini.url
        )
        payload = body_bytes(envelope(messages=[audio_message("wamid.V", WA_ID, "media-77")]))
        async with running(settings) as client:
            assert await post_webhook(client, payload, sign(SECRET, payload)) == 200
            [message] = await take(amqp_url, INCOMING.name, 1)
        assert message["message_id"] == stable_id("in", "meta", "wamid.V")
        assert message["kind"] == "voice" and message["transcribed"] and message["text"] == "Хочу заказать стол"
        assert graph.media_lookups == ["media-77", "media-77"]  # the expired URL was resolved again
    finally:
        await gemini.close()
