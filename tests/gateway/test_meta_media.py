"""Files and buttons through Meta's fake Graph API in its real shapes: a file uploaded once and sent
by its media id while valid, WebP images converted, reply buttons and lists; and inbound files
that cannot be kept (too large, too slow) recorded with their reason."""

from __future__ import annotations

import base64
import hashlib
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

from parley_shared.contracts import Choice, Choices, OutgoingMedia, OutgoingMessage
from parley_shared.topology import INCOMING, OUTGOING, STATUS
from tests.gateway.helpers import META_SECRET, meta_settings, publish, running, take
from tests.support.corpus import PDF
from tests.support.fake_meta import FakeMeta, body_bytes, envelope, meta_message, sign, text_message

WA = "85291234567"  # a Hong Kong number: answered as +852, never as +7


@pytest.fixture
async def graph() -> AsyncIterator[FakeMeta]:
    fake = await FakeMeta().start()
    yield fake
    await fake.close()


def media(kind: str, name: str, mime: str, data: bytes) -> OutgoingMedia:
    return OutgoingMedia(
        kind=kind,  # type: ignore[arg-type]
        file_name=name,
        mime_type=mime,
        data_b64=base64.b64encode(data).decode(),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def webp(alpha: bool) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA" if alpha else "RGB", (8, 8), (200, 10, 10, 128) if alpha else (200, 10, 10)).save(out, "WEBP")
    return out.getvalue()


async def test_files_buttons_and_lists_go_in_meta_shapes(amqp_url: str, tmp_path: Path, graph: FakeMeta) -> None:
    settings = meta_settings(amqp_url, f"sqlite+aiosqlite:///{tmp_path}/g.db", graph)
    price_list = media("document", "price-list.pdf", "application/pdf", PDF)
    buttons = Choices(options=[Choice(id="call:1", title="Mon 10:00"), Choice(id="call:2", title="Tue 11:00")])
    rows = Choices(
        style="list",
        button="Categories",
        options=[Choice(id="c1", title="Chairs", description="Office chairs"), Choice(id="c2", title="Desks")],
    )
    out = [
        OutgoingMessage(message_id="d1", correlation_id="c", phone=f"+{WA}", text="Our prices", media=price_list),
        OutgoingMessage(message_id="d2", correlation_id="c", phone=f"+{WA}", text="Again", media=price_list),
        OutgoingMessage(
            message_id="i1",
            correlation_id="c",
            phone=f"+{WA}",
            text="Photo",
            media=media("image", "a.webp", "image/webp", webp(False)),
        ),
        OutgoingMessage(
            message_id="i2",
            correlation_id="c",
            phone=f"+{WA}",
            text="Logo",
            media=media("image", "b.webp", "image/webp", webp(True)),
        ),
        OutgoingMessage(message_id="b1", correlation_id="c", phone=f"+{WA}", text="When can we call?", choices=buttons),
        OutgoingMessage(message_id="l1", correlation_id="c", phone=f"+{WA}", text="What interests you?", choices=rows),
        OutgoingMessage(message_id="n1", correlation_id="c", phone=f"+{WA}", text="x" * 1100, choices=buttons),
    ]
    async with running(settings) as client:
        hello = body_bytes(envelope(messages=[text_message("wamid.H", WA, "Hello")]))
        assert (
            await client.post("/webhook", data=hello, headers={"X-Hub-Signature-256": sign(META_SECRET, hello)})
        ).status == 200
        await take(amqp_url, INCOMING.name, 1)
        await publish(amqp_url, OUTGOING, out)
        statuses = await take(amqp_url, STATUS.name, len(out))
    assert {s["status"] for s in statuses} == {"sent"}
    sends = {
        c.body["type"] + ":" + str(c.body.get("document", c.body.get("image", {})).get("caption", "")): c.body
        for c in graph.sends
    }
    assert all(c.to == WA for c in graph.sends)
    # The price list: uploaded once, sent twice by the same media id, with its file name.
    pdfs = [u for u in graph.uploads if u.mime_type == "application/pdf"]
    assert len(pdfs) == 1 and pdfs[0].data == PDF and pdfs[0].file_name == "price-list.pdf"
    assert sends["document:Our prices"]["document"] == {
        "id": pdfs[0].media_id,
        "caption": "Our prices",
        "filename": "price-list.pdf",
    }
    assert sends["document:Again"]["document"]["id"] == pdfs[0].media_id
    # WebP images: converted (JPEG without transparency, PNG with it) before the upload.
    images = {u.file_name: u for u in graph.uploads if u.mime_type.startswith("image/")}
    assert images["a.jpg"].mime_type == "image/jpeg" and images["a.jpg"].data.startswith(b"\xff\xd8\xff")
    assert images["b.png"].mime_type == "image/png" and images["b.png"].data.startswith(b"\x89PNG")
    assert sends["image:Photo"]["image"] == {"id": images["a.jpg"].media_id, "caption": "Photo"}
    interactive = [c.body["interactive"] for c in graph.sends if c.body["type"] == "interactive"]
    by_type = {i["type"]: i for i in interactive}
    assert by_type["button"] == {
        "type": "button",
        "body": {"text": "When can we call?"},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": "call:1", "title": "Mon 10:00"}},
                {"type": "reply", "reply": {"id": "call:2", "title": "Tue 11:00"}},
            ]
        },
    }
    assert by_type["list"]["action"]["button"] == "Categories"
    assert by_type["list"]["action"]["sections"][0]["rows"] == [
        {"id": "c1", "title": "Chairs", "description": "Office chairs"},
        {"id": "c2", "title": "Desks"},
    ]
    # Too long for an interactive body: the options go as numbered lines.
    [long] = [c.body for c in graph.sends if c.body["type"] == "text" and c.body["text"]["body"].startswith("xxx")]
    assert long["text"]["body"].endswith("\n\n1. Mon 10:00\n2. Tue 11:00")


@pytest.mark.parametrize("case", ["too_large", "timeout"])
async def test_an_inbound_file_that_cannot_be_kept_still_reaches_the_agent(
    amqp_url: str, tmp_path: Path, graph: FakeMeta, case: str
) -> None:
    graph.media["m-1"] = (b"\xff\xd8\xff" + b"0" * 4000, "image/jpeg")
    extra = {"max_media_bytes": 1024} if case == "too_large" else {"send_timeout_s": 0.3}
    if case == "timeout":
        graph.file_delay_s = 2.0
    settings = meta_settings(
        amqp_url,
        f"sqlite+aiosqlite:///{tmp_path}/g.db",
        graph,
        media_download_attempts=2,
        media_dir=str(tmp_path / "m"),
        **extra,
    )
    section = {"id": "m-1", "mime_type": "image/jpeg", "sha256": "x", "caption": "is this in stock?"}
    payload = body_bytes(envelope(messages=[meta_message("wamid.IMG", WA, "image", section, int(time.time()))]))
    async with running(settings) as client:
        assert (
            await client.post("/webhook", data=payload, headers={"X-Hub-Signature-256": sign(META_SECRET, payload)})
        ).status == 200
        [message] = await take(amqp_url, INCOMING.name, 1)
    assert message["kind"] == "image" and message["caption"] == "is this in stock?"
    assert message["media"]["stored"] is None and message["media"]["error"].startswith(case)
