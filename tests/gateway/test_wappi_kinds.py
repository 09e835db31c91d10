"""Every kind Wappi reports, polled from its fake: what each becomes, what is skipped (counted and
logged), and answers both ways -- to the chat a message came from (a LID chat too), with numbered
options a typed number picks, and with images and documents through Wappi's own sends."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from parley_shared.contracts import Choice, Choices, OutgoingMedia, OutgoingMessage, stable_id
from parley_shared.topology import INCOMING, OUTGOING, STATUS
from tests.gateway.fake_wappi import FakeWappi, wappi_message
from tests.gateway.helpers import AUTH, LOCAL_MEDIA, gateway_settings, publish, running, take
from tests.support.corpus import JPEG, PDF

LID = "123456789012345@lid"
VCARD = "BEGIN:VCARD\nVERSION:3.0\nFN:Dana Serik\nTEL;type=CELL;waid=77017778899:+7 701 777 88 99\nEND:VCARD"


@pytest.fixture
async def wappi() -> AsyncIterator[FakeWappi]:
    fake = await FakeWappi().start()
    yield fake
    await fake.close()


def settings(amqp_url: str, tmp_path: Path, wappi: FakeWappi) -> Any:
    return gateway_settings(
        amqp_url,
        f"sqlite+aiosqlite:///{tmp_path}/g.db",
        whatsapp_provider="wappi",
        wappi_base_url=wappi.url,
        wappi_token=wappi.token,
        wappi_profile_id=wappi.profile_id,
        poll_interval_s=0.05,
        media_dir=str(tmp_path / "media"),
        media_download_attempts=1,
        **LOCAL_MEDIA,
    )


def account(wappi: FakeWappi, t: int) -> dict[str, str]:
    """One message of each kind; returns the expected kind of each forwarded one by provider id."""
    add = wappi.messages.append
    add(wappi_message("TXT", "77010000001", t, body="Здравствуйте"))
    add(wappi_message("PIC", "77010000001", t + 1, type="image", caption="our office", mimetype="image/jpeg"))
    wappi.media["PIC"] = (JPEG, "image/jpeg")
    add(
        {
            **wappi_message("DOC", "77010000001", t + 2, type="document", mimetype="application/pdf"),
            "file_name": "brief.pdf",
        }
    )
    wappi.media["DOC"] = (PDF, "application/pdf")
    add(wappi_message("VID", "77010000001", t + 3, type="video", mimetype="video/mp4"))  # not served: 404
    add(wappi_message("STK", "77010000001", t + 4, type="sticker", mimetype="image/webp"))
    wappi.media["STK"] = (b"<html>not a sticker</html>", "text/html")  # the wrong type
    add(wappi_message("VCF", "77010000001", t + 5, type="vcard", body=VCARD))
    add(
        {
            **wappi_message("LOC", "77010000001", t + 6, type="location", body=""),
            "lat": 43.238,
            "lng": 76.945,
            "loc": "Office",
        }
    )
    add({**wappi_message("REA", "77010000001", t + 7, type="reaction", body="👍"), "stanzaId": "TXT"})
    add(
        {
            **wappi_message("BTN", "77010000001", t + 8, type="buttons_response", body="Tomorrow"),
            "selectedButtonId": "slot-1",
        }
    )
    add({**wappi_message("LST", "77010000001", t + 9, type="list_response", body="Chairs"), "selectedRowId": "cat-2"})
    add(wappi_message("ORD", "77010000001", t + 10, type="order", body="2 chairs"))
    add({**wappi_message("DEL", "77010000001", t + 11, type="revoked"), "stanzaId": "TXT"})
    add(wappi_message("POL", "77010000001", t + 12, type="poll_creation", body="?"))
    add(wappi_message("E2E", "77010000001", t + 13, type="e2e_notification"))
    add(wappi_message("GRP", "120363025246125486@g.us", t + 14, body="group chatter"))
    add(wappi_message("LIDTXT", LID, t + 15, body="Hello from a chat without a number"))
    return {
        "TXT": "text",
        "PIC": "image",
        "DOC": "document",
        "VID": "video",
        "STK": "sticker",
        "VCF": "contact",
        "LOC": "location",
        "REA": "reaction",
        "BTN": "interactive",
        "LST": "interactive",
        "ORD": "order",
        "DEL:revoked": "revoke",
        "POL": "unsupported",
        "LIDTXT": "text",
    }


async def test_every_wappi_kind_on_purpose(amqp_url: str, tmp_path: Path, wappi: FakeWappi) -> None:
    expected = account(wappi, int(time.time()) - 60)
    with capture_logs() as logs:
        async with running(settings(amqp_url, tmp_path, wappi)) as client:
            published = await take(amqp_url, INCOMING.name, len(expected))
            by_id = {m["provider_message_id"]: m for m in published}
            assert {k: m["kind"] for k, m in by_id.items()} == expected
            picture = by_id["PIC"]["media"]
            assert picture["stored"] and picture["size"] == len(JPEG) and by_id["PIC"]["caption"] == "our office"
            got = await client.get(f"/media/{picture['stored']}", headers=AUTH)
            assert got.status == 200 and await got.read() == JPEG
            assert got.headers["Content-Disposition"].startswith("attachment")
            assert got.headers["X-Content-Type-Options"] == "nosniff"
            assert (await client.get(f"/media/{picture['stored']}")).status == 401  # managers only
            assert (await client.get("/media/no-such-file", headers=AUTH)).status == 404
            assert by_id["DOC"]["media"]["file_name"] == "brief.pdf" and by_id["DOC"]["media"]["stored"]
            assert by_id["VID"]["media"]["error"].startswith("not_found")  # recorded with its reason
            assert by_id["STK"]["media"]["error"].startswith("wrong_type")
            assert by_id["VCF"]["contacts"] == [
                {"name": "Dana Serik", "phones": [{"phone": "+7 701 777 88 99", "wa_id": "77017778899", "type": None}]}
            ]
            assert "+7 701 777 88 99" in by_id["VCF"]["text"]
            assert by_id["LOC"]["location"]["latitude"] == 43.238 and "Office" in by_id["LOC"]["text"]
            assert by_id["REA"]["target_message_id"] == stable_id("in", "wappi", "TXT")
            assert by_id["DEL:revoked"]["target_message_id"] == stable_id("in", "wappi", "TXT")
            assert by_id["BTN"]["interactive"] == {
                "type": "button",
                "id": "slot-1",
                "title": "Tomorrow",
                "description": None,
                "data": None,
            }
            assert by_id["LST"]["interactive"]["id"] == "cat-2"
            assert by_id["LIDTXT"]["phone"] == LID and by_id["LIDTXT"]["chat_id"] == LID
            assert by_id["TXT"]["chat_id"] == "77010000001@c.us"
    skipped = {(e["reason"], e["provider_message_id"]) for e in logs if e["event"] == "ingest.skipped"}
    assert {("system_notice", "E2E"), ("group", "GRP")} <= skipped


async def test_answers_go_to_the_chat_they_came_from_with_options_and_files(
    amqp_url: str, tmp_path: Path, wappi: FakeWappi
) -> None:
    t = int(time.time()) - 60
    wappi.messages.append(wappi_message("A1", LID, t, body="Which chair?"))
    wappi.messages.append(wappi_message("B1", "77010000001", t + 1, body="Send me the price list"))
    gw = settings(amqp_url, tmp_path, wappi)
    slots = Choices(
        style="buttons", options=[Choice(id="call:1", title="Mon 10:00"), Choice(id="call:2", title="Tue 11:00")]
    )
    pdf = OutgoingMedia(
        kind="document",
        file_name="price-list.pdf",
        mime_type="application/pdf",
        data_b64=base64.b64encode(PDF).decode(),
        sha256=hashlib.sha256(PDF).hexdigest(),
    )
    jpeg = OutgoingMedia(
        kind="image",
        file_name="chair.jpg",
        mime_type="image/jpeg",
        data_b64=base64.b64encode(JPEG).decode(),
        sha256=hashlib.sha256(JPEG).hexdigest(),
    )
    async with running(gw):
        await take(amqp_url, INCOMING.name, 2)
        await publish(
            amqp_url,
            OUTGOING,
            [
                OutgoingMessage(
                    message_id="o1", correlation_id="c1", phone=LID, text="When can we call?", choices=slots
                ),
                OutgoingMessage(
                    message_id="o2", correlation_id="c2", phone="+77010000001", text="Our prices", media=pdf
                ),
                OutgoingMessage(message_id="o3", correlation_id="c3", phone="+77010000001", text="ErgoPro", media=jpeg),
            ],
        )
        await take(amqp_url, STATUS.name, 3)
        by_recipient = {(c["recipient"], c["path"]): c for c in wappi.sent}
        options = by_recipient[(LID, "/api/sync/message/send")]
        assert options["body"] == "When can we call?\n\n1. Mon 10:00\n2. Tue 11:00"
        document = by_recipient[("77010000001", "/api/sync/message/document/send")]
        assert (document["caption"], document["file_name"]) == ("Our prices", "price-list.pdf")
        assert base64.b64decode(document["b64_file"]) == PDF
        image = by_recipient[("77010000001", "/api/sync/message/img/send")]
        assert image["caption"] == "ErgoPro" and base64.b64decode(image["b64_file"]) == JPEG

        # The prospect types "2": the tap it stands for.
        wappi.messages.append(wappi_message("A2", LID, int(time.time()), body=" 2. "))
        [tap] = await take(amqp_url, INCOMING.name, 1)
    assert tap["kind"] == "interactive" and tap["text"] == "Tue 11:00"
    assert tap["interactive"]["type"] == "typed_number" and tap["interactive"]["id"] == "call:2"
