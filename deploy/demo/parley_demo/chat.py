"""The terminal chat: you play a prospect writing to the business on WhatsApp (sandbox).

Typed text goes in through the gateway's sandbox; replies are long-polled from the sandbox
outbox and printed as they arrive. Slash commands give the manager's view. ``ChatApp.handle``
is the single entry point for a typed line, so tests drive exactly what a user drives. Everything
is printed through ``terminal.emit`` (above the prompt while it is shown) and drawn by
``render`` (outside text verbatim).

The first time a prospect is shown, the replies already delivered are not replayed: the chat
starts reading the outbox after them and shows the end of the stored conversation instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import re
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console, RenderableType
from rich.panel import Panel
from rich.text import Text

from parley_demo import render
from parley_demo.client import ParleyClient, ParleyError
from parley_demo.terminal import emit
from parley_shared.phone import PhoneError, from_typed

HELP = """[bold]Type a message[/bold] to write to the business as the prospect. Commands:
  /as <phone> \\[name]   switch to another prospect (e.g. /as +77010000002 Dana)
  /voice <file>        send an audio file as a voice note
  /card                the prospect's contact card (classification, stage, outcome, conversation)
  /contacts            all contacts, as a manager sees them
  /analytics           funnel and activity
  /takeover            a manager takes the conversation over (the AI goes silent)
  /op <text>           the manager writes to the prospect
  /handback            hand the conversation back to the AI
  /ff <n>h | <n>d      fast-forward the follow-up clock (demo only) to watch a sequence
  /help                this text          /quit (or Ctrl-C)  stop everything"""

HISTORY_LINES = 6  # of an earlier conversation, when a prospect is first shown


class ChatApp:
    def __init__(
        self, client: ParleyClient, console: Console, phone: str = "+77010000001", name: str = "Aigerim"
    ) -> None:
        self.client = client
        self.console = console
        self.phone = phone
        self.name = name
        self.cursors: dict[str, int] = {}  # per prospect: the last outbox message shown
        self._watcher: asyncio.Task[None] | None = None

    def print(self, *renderables: RenderableType) -> None:
        emit(self.console, *renderables)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self.print(Panel.fit(HELP, title="Parley demo chat", border_style="cyan"))
        await self._open()

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watcher
            self._watcher = None

    async def _open(self) -> None:
        """Show who the user plays, the end of an earlier conversation the first time, then watch replies."""
        self.print(render.you_are(self.name, self.phone))
        if self.phone not in self.cursors:
            with contextlib.suppress(ParleyError, OSError, TimeoutError, aiohttp.ClientError):  # the watcher says
                await self._catch_up(self.phone)
        self._watcher = asyncio.create_task(self._watch_loop(self.phone))

    async def _catch_up(self, phone: str) -> None:
        cursor = 0
        while True:  # past what was delivered before this chat started
            messages, cursor = await self.client.outbox(phone, cursor, limit=500)
            self.cursors[phone] = cursor
            if not messages:
                break
        try:
            conversation = await self.client.contact(phone, limit=500)
        except ParleyError as exc:
            if exc.status == 404:  # a new prospect
                return
            raise
        messages = list(conversation.get("messages") or [])
        if messages:
            more = conversation.get("older_before") is not None
            self.print(render.history(self.name, phone, messages, more, HISTORY_LINES))

    # ------------------------------------------------------------------ input
    async def handle(self, line: str) -> bool:
        """Handle one typed line; False when the user wants to quit."""
        line = line.strip()
        if not line:
            return True
        try:
            if line.startswith("/"):
                return await self._command(line)
            await self.client.send_text(self.phone, line, self.name)
        except ParleyError as exc:
            self.print(Text.assemble(("error: ", "red"), render.visible(exc)))
        except (OSError, TimeoutError) as exc:
            self.print(Text.assemble(("service unreachable: ", "red"), type(exc).__name__))
        return True

    async def _command(self, line: str) -> bool:
        command, _, rest = line.partition(" ")
        rest = rest.strip()
        match command.lower():
            case "/quit" | "/exit":
                return False
            case "/help":
                self.print(HELP)
            case "/as" | "/switch":
                await self._switch(rest)
            case "/voice":
                await self._voice(rest)
            case "/card":
                self.print(render.card(await self.client.contact(self.phone)))
            case "/contacts":
                self.print(render.contacts(await self.client.contacts()))
            case "/analytics":
                self.print(render.analytics(await self.client.analytics()))
            case "/takeover":
                await self.client.takeover(self.phone)
                self.print("[yellow]A manager holds this conversation now; the AI stays silent.[/yellow]")
            case "/handback":
                await self.client.handback(self.phone)
                self.print("[yellow]Handed back to the AI.[/yellow]")
            case "/op":
                if not rest:
                    self.print("usage: /op <text>")
                else:
                    await self.client.operator_message(self.phone, rest)
            case "/ff":
                await self._fast_forward(rest)
            case _:
                self.print(render.plain(f"unknown command {command}; /help lists them"))
        return True

    async def _switch(self, rest: str) -> None:
        parts = rest.split(maxsplit=1)
        if not parts:
            self.print("usage: /as <phone> \\[name]")
            return
        try:
            phone = from_typed(parts[0])
        except PhoneError as exc:
            self.print(Text.assemble(("not a phone number: ", "red"), render.visible(exc)))
            return
        await self.stop()
        self.phone, self.name = phone, parts[1] if len(parts) > 1 else f"Prospect {phone[-4:]}"
        await self._open()

    async def _voice(self, rest: str) -> None:
        path = Path(rest).expanduser()
        if not rest or not path.is_file():
            self.print("usage: /voice <path to an audio file>")
            return
        mime = mimetypes.guess_type(path.name)[0] or "audio/ogg"
        await self.client.send_voice(self.phone, path.read_bytes(), mime, self.name)
        self.print(render.plain(f"voice note sent ({path.stat().st_size} bytes, {mime})", "dim"))

    async def _fast_forward(self, rest: str) -> None:
        match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([hd]?)", rest)
        if not match:
            self.print("usage: /ff <n>h or /ff <n>d, e.g. /ff 25h")
            return
        hours = float(match.group(1)) * (24 if match.group(2) == "d" else 1)
        result = await self.client.fast_forward(hours)
        self.print(
            render.plain(f"Follow-up clock moved {hours:g} h forward; it now reads {result.get('now')}.", "yellow")
        )

    # ------------------------------------------------------------------ output
    async def _watch_loop(self, phone: str) -> None:
        while True:
            try:
                messages, cursor = await self.client.outbox(phone, self.cursors.get(phone, 0), wait=20)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the service may be restarting: keep trying
                self.print(Text(f"outbox unavailable ({type(exc).__name__}); retrying", style="red"))
                await asyncio.sleep(2)
                continue
            for message in messages:
                self.show(message)
            self.cursors[phone] = cursor

    def show(self, message: dict[str, Any]) -> None:
        """A delivered message (``GET /sandbox/outbox``), on its own line."""
        self.print(render.reply_line(message.get("kind"), message.get("text"), message.get("media")))
