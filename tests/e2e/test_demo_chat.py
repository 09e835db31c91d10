"""The demo chat as a user drives it: both services as processes, the chat's own code path, what the screen shows.

Each typed line goes through ``ChatApp.handle`` (the function the terminal loop calls), replies
arrive through the chat's own long-polling watcher, and the assertions read the rendered
console -- what the user sees -- plus the managers' API for the contact and the analytics.
"""

from __future__ import annotations

import asyncio
import io
import re
import time
from pathlib import Path

import aiohttp
from rich.console import Console

from parley_demo.chat import ChatApp
from parley_demo.client import ParleyClient, ParleyError
from tests.support import infra
from tests.support.stack import Stack


class Screen:
    def __init__(self) -> None:
        self.console = Console(file=io.StringIO(), record=True, width=160, color_system=None)

    @property
    def text(self) -> str:
        return self.console.export_text(clear=False)

    async def shows(self, needle: str, *, after: int = 0, timeout: float = 30.0) -> str:
        """Wait until ``needle`` appears on the screen after position ``after``; returns the new part."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            new = self.text[after:]
            if needle in new:
                return new
            await asyncio.sleep(0.1)
        raise AssertionError(f"{needle!r} never appeared; the screen shows:\n{self.text[after:]}")


async def test_a_user_chats_switches_prospect_reads_card_and_analytics_takes_over_and_fast_forwards(
    amqp_url: str, tmp_path: Path
) -> None:
    stack = Stack(
        tmp_path,
        amqp_url,
        gateway_db=f"sqlite+aiosqlite:///{tmp_path}/gateway.db",
        agent_db=f"sqlite+aiosqlite:///{tmp_path}/agent.db",
        gateway_env={"WHATSAPP_PROVIDER": "sandbox", "SEND_RATE_PER_MIN": "600"},
        agent_env={
            "DEMO_MODE": "true",
            "LLM_ENGINE": "offline",
            "BUFFER_WINDOW_S": "0.3",
            "FOLLOW_UP_CHECK_INTERVAL_S": "0.5",
            # open every day and hour, so the fast-forwarded touch is due whenever CI runs
            "WORKING_DAYS": "mon-sun",
            "WORKING_HOURS_START": "0",
            "WORKING_HOURS_END": "24",
            "FOLLOW_UP_SPREAD_MINUTES": "0",
        },
    )
    await stack.start()
    screen = Screen()
    try:
        async with aiohttp.ClientSession() as session:
            client = ParleyClient(stack.gateway.url, stack.agent.url, stack.token, session)
            chat = ChatApp(client, screen.console, phone="+77010000001", name="Aigerim")
            await chat.start()
            assert "Parley demo chat" in screen.text

            # the prospect asks for a price: the catalogue's price comes back
            mark = len(screen.text)
            assert await chat.handle("Hello! How much is the ErgoPro 300 chair?")
            reply = await screen.shows("Parley:", after=mark)
            await screen.shows("89 900", after=mark)
            assert "ErgoPro 300" in reply

            # the contact card, as a manager sees it
            mark = len(screen.text)
            await chat.handle("/card")
            card = await screen.shows("+77010000001", after=mark)
            assert "client" in card and "Aigerim" in card
            assert "How much is the ErgoPro 300 chair?" in card  # the conversation is on the card

            # a manager takes over: the AI stays silent, the manager's words reach the prospect
            mark = len(screen.text)
            await chat.handle("/takeover")
            await screen.shows("A manager holds this conversation now", after=mark)
            await chat.handle("Is anybody there?")
            await chat.handle("/op Hello Aigerim, this is Dana from KomfortOffice.")
            shown = await screen.shows("Manager: Hello Aigerim, this is Dana", after=mark)
            await asyncio.sleep(1.5)  # time enough for a buffered turn that must not happen
            assert "Parley:" not in screen.text[mark:], f"the AI answered during a takeover:\n{shown}"

            # handed back, the AI answers again; a fast-forward brings the first follow-up touch
            mark = len(screen.text)
            await chat.handle("/handback")
            await screen.shows("Handed back to the AI", after=mark)
            await chat.handle("Do you deliver to Almaty?")
            await screen.shows("Parley:", after=mark)
            await asyncio.sleep(1.0)  # the sequence is planned with the reply
            mark = len(screen.text)
            await chat.handle("/ff 25h")
            await screen.shows("Follow-up clock moved 25 h forward", after=mark)
            await screen.shows("Parley · follow-up:", after=mark, timeout=30)

            # another prospect, in Russian, with a voice note (no Gemini key: asked to type)
            mark = len(screen.text)
            await chat.handle("/as +77010000002 Dana")
            await screen.shows("You are Dana (+77010000002)", after=mark)
            await chat.handle("Здравствуйте! Сколько стоит кресло ErgoPro 300?")
            answer = await screen.shows("Parley:", after=mark)
            await screen.shows("89 900", after=mark)
            assert any("\u0400" <= ch <= "\u04ff" for ch in answer.split("Parley:", 1)[1]), "answered in Russian"
            voice = tmp_path / "note.ogg"
            voice.write_bytes(b"OggS" + bytes(200))
            mark = len(screen.text)
            await chat.handle(f"/voice {voice}")
            await screen.shows("voice note sent", after=mark)
            await screen.shows("Parley:", after=mark)

            # the managers' view counts both conversations
            mark = len(screen.text)
            await chat.handle("/contacts")
            listing = await screen.shows("+77010000002", after=mark)
            assert "+77010000001" in listing
            await chat.handle("/analytics")
            analytics = await screen.shows("SPIN funnel", after=mark)
            counted = re.search(r"│ contacts +│ +(\d+) │", analytics)
            assert counted and counted.group(1) == "2", analytics

            contacts = await client.contacts()
            assert {c["phone"] for c in contacts["items"]} == {"+77010000001", "+77010000002"}
            numbers = await client.analytics()
            assert numbers["funnel"]["contacts"] == 2 and numbers["messages"]["in"] >= 5

            # a mistyped command and a bad phone are explained, not fatal
            mark = len(screen.text)
            await chat.handle("/as not-a-phone")
            await screen.shows("not a phone number", after=mark)
            assert await chat.handle("/nonsense")
            assert not await chat.handle("/quit")
            await chat.stop()

            # the next run continues: the end of the stored conversation, not a replay of the outbox
            mark = len(screen.text)
            again = ChatApp(client, screen.console, phone="+77010000001", name="Aigerim")
            await again.start()
            shown = screen.text[mark:]
            stored = (await client.contact("+77010000001", limit=500))["messages"]
            assert len(stored) > 6
            assert f"Earlier with Aigerim (+77010000001): {len(stored)} messages, the last 6:" in shown, shown
            assert stored[-1]["text"][:40] in shown and stored[0]["text"] not in shown
            assert (await client.outbox("+77010000001", again.cursors["+77010000001"]))[0] == []
            await again.stop()

            # the demo clock is a management route like the others
            anonymous = ParleyClient(stack.gateway.url, stack.agent.url, None, session)
            try:
                await anonymous.fast_forward(1)
            except ParleyError as exc:
                assert str(exc).startswith("401")
            else:
                raise AssertionError("the demo clock moved without a token")
    finally:
        await stack.stop()
        (tmp_path / "screen.txt").write_text(screen.text)
    logs = stack.logs()
    assert "Сколько стоит" not in logs and "77010000002" not in logs  # bodies and phones stay out of logs
    assert await infra.queue_counts(amqp_url, "incoming_messages.dlq") == (0, 0)
