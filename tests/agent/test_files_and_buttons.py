"""The agent sends files and buttons: the price list and product pictures from the knowledge base
when asked (pictures inside PDF pages, linked to their product line, and image files beside the
documents, linked by name), and call slots as buttons -- a tap books the slot."""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fpdf import FPDF
from PIL import Image
from sqlalchemy import select

from agent_service.db import tables
from agent_service.domain.attachments import Picture, best_picture, wants_picture, wants_price_list
from agent_service.domain.call_slots import slot_choices, tapped_slot
from agent_service.domain.working_hours import WorkingHours
from agent_service.knowledge.media import MediaLibrary
from parley_shared.contracts import IncomingMessage, InteractiveReply, MessageKind
from parley_shared.service import RUNTIME
from tests.agent.conversation_support import inbound, running_agent


def jpeg(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), colour).save(out, "JPEG")
    return out.getvalue()


CHAIR, STOOL = jpeg((200, 0, 0)), jpeg((0, 0, 200))


@pytest.fixture
def knowledge(tmp_path: Path) -> Path:
    """A price list with a picture beside each of its two product lines, and a desk photo beside it."""
    root = tmp_path / "kb"
    root.mkdir()
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.cell(text="Price list: chairs", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(text="ErgoPro 300 ergonomic office chair: 89 900 KZT. In stock.", new_x="LMARGIN", new_y="NEXT")
    pdf.image(io.BytesIO(CHAIR), w=20)
    pdf.cell(text="Bistro stool for the kitchen: 19 900 KZT. Made to order.", new_x="LMARGIN", new_y="NEXT")
    pdf.image(io.BytesIO(STOOL), w=20)
    (root / "price_list.pdf").write_bytes(bytes(pdf.output()))
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 160, 0)).save(out, "PNG")
    (root / "standard-140-desk.png").write_bytes(out.getvalue())
    return root


def test_requests_and_pictures_are_recognised() -> None:
    assert wants_price_list("Send me your price list please") and wants_price_list("Скиньте прайс")
    assert wants_picture("Есть фото кресла?") and wants_picture("a picture of it?") and not wants_picture("hi")
    pictures = [Picture.named("ErgoPro 300 chair"), Picture.named("Standard 140 desk")]
    assert best_picture(pictures, "Can you send a photo of the desk?") == 1
    assert best_picture(pictures, "a photo of it?", earlier="How much is the ErgoPro 300?") == 0
    assert best_picture(pictures, "a photo please") is None


def test_slots_become_buttons_and_a_tap_names_its_slot() -> None:
    hours = WorkingHours(ZoneInfo("Asia/Almaty"))
    slot = datetime(2026, 1, 6, 5, 0, tzinfo=UTC)  # 10:00 in Almaty
    choices = slot_choices([slot], hours, "en")
    assert choices is not None and choices.options[0].title == "Tue 6 Jan, 10:00"
    assert tapped_slot(choices.options[0].id) == slot
    assert tapped_slot("other") is None and tapped_slot("call:not a time") is None


async def test_the_library_links_pictures_to_their_products(knowledge: Path) -> None:
    library = MediaLibrary(knowledge)
    price_list = await library.price_list()
    assert price_list is not None and price_list.file_name == "price_list.pdf" and price_list.kind == "document"
    pictures = await library.pictures()
    by_title = {file.title: file for _, file in pictures}
    assert by_title["ErgoPro 300 ergonomic office chair"].data == CHAIR
    assert by_title["Bistro stool for the kitchen"].data == STOOL
    assert by_title["standard 140 desk"].mime_type == "image/png"


def tap(phone: str, option_id: str, title: str) -> IncomingMessage:
    reply = InteractiveReply(type="button", id=option_id, title=title)
    return inbound(phone, title, kind=MessageKind.INTERACTIVE, interactive=reply)


async def test_the_agent_sends_the_price_list_and_product_pictures_when_asked(
    amqp_url: str, database_url: str, knowledge: Path
) -> None:
    phone = "+77010000031"
    async with running_agent(amqp_url, database_url, knowledge_dir=str(knowledge)) as agent:
        await agent.say(phone, "Hello! Could you send me your price list?")
        [reply, document] = await agent.replies.wait_for(2, phone=phone)
        assert reply.media is None and document.media is not None
        assert (document.media.kind, document.media.file_name) == ("document", "price_list.pdf")
        assert base64.b64decode(document.media.data_b64) == (knowledge / "price_list.pdf").read_bytes()
        await agent.say(phone, "And a photo of the ErgoPro 300 chair?")
        picture = (await agent.replies.wait_for(4, phone=phone))[-1]
        assert picture.media is not None and base64.b64decode(picture.media.data_b64) == CHAIR
        await agent.say(phone, "What about the Standard 140 desk, do you have a picture?")
        desk = (await agent.replies.wait_for(6, phone=phone))[-1]
        assert desk.media is not None and desk.media.file_name == "standard-140-desk.png"
        convo = await agent.conversation(phone)
        files = [m for m in convo["messages"] if m["direction"] == "out" and m["media"]]
        assert [m["media"]["file_name"] for m in files] == [
            "price_list.pdf",
            desk_or_chair(files[1]),
            "standard-140-desk.png",
        ]


def desk_or_chair(message: dict[str, object]) -> str:
    media = message["media"]
    assert isinstance(media, dict)
    return str(media["file_name"])


async def test_call_slots_are_offered_as_buttons_and_a_tap_books_one(amqp_url: str, database_url: str) -> None:
    phone = "+77010000032"
    async with running_agent(amqp_url, database_url) as agent:
        reply = await agent.say(phone, "Can we have a call with your manager?")
        assert reply.choices is not None and 1 <= len(reply.choices.options) <= 3
        option = reply.choices.options[1] if len(reply.choices.options) > 1 else reply.choices.options[0]
        slot = tapped_slot(option.id)
        assert slot is not None
        await agent.send(tap(phone, option.id, option.title))
        [_, booked] = await agent.replies.wait_for(2, phone=phone)
        assert option.title.split(", ")[-1] in booked.text  # "I've noted a call for ... 10:00"
        async with agent.app[RUNTIME].sessions() as session:
            calls = (await session.execute(select(tables.scheduled_calls))).mappings().all()
        assert [c["scheduled_at"] for c in calls] == [slot] and calls[0]["status"] == "pending"
