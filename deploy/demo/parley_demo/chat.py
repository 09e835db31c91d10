"""The terminal chat: you play a prospect writing to the business on WhatsApp (sandbox).

Typed text goes in through the gateway's sandbox; replies are long-polled from the sandbox
outbox and printed as they arrive. Slash commands give the manager's view. ``ChatApp.handle``
is the single entry point for a typed line, so tests drive exactly what a user drives.
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import re
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from parley_demo.client import ParleyClient, ParleyError
from parley_shared.phone import PhoneError, to_e164

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

KIND_LABEL = {"reply": "Parley", "follow_up": "Parley · follow-up", "operator": "Manager"}


class ChatApp:
    def __init__(
        self, client: ParleyClient, console: Console, phone: str = "+77010000001", name: str = "Aigerim"
    ) -> None:
        self.client = client
        self.console = console
        self.phone = phone
        self.name = name
        self.cursors: dict[str, int] = {}
        self._watcher: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self.console.print(Panel.fit(HELP, title="Parley demo chat", border_style="cyan"))
        self._prompt_line()
        self._watch()

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watcher
            self._watcher = None

    def _prompt_line(self) -> None:
        self.console.print(f"[dim]You are {self.name} ({self.phone}).[/dim]")

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
            self.console.print(f"[red]error:[/red] {exc}")
        except (OSError, TimeoutError) as exc:
            self.console.print(f"[red]service unreachable:[/red] {type(exc).__name__}")
        return True

    async def _command(self, line: str) -> bool:
        command, _, rest = line.partition(" ")
        rest = rest.strip()
        match command.lower():
            case "/quit" | "/exit":
                return False
            case "/help":
                self.console.print(HELP)
            case "/as" | "/switch":
                await self._switch(rest)
            case "/voice":
                await self._voice(rest)
            case "/card":
                self._render_card(await self.client.contact(self.phone))
            case "/contacts":
                self._render_contacts(await self.client.contacts())
            case "/analytics":
                self._render_analytics(await self.client.analytics())
            case "/takeover":
                await self.client.takeover(self.phone)
                self.console.print("[yellow]A manager holds this conversation now; the AI stays silent.[/yellow]")
            case "/handback":
                await self.client.handback(self.phone)
                self.console.print("[yellow]Handed back to the AI.[/yellow]")
            case "/op":
                if not rest:
                    self.console.print("usage: /op <text>")
                else:
                    await self.client.operator_message(self.phone, rest)
            case "/ff":
                await self._fast_forward(rest)
            case _:
                self.console.print(f"unknown command {command}; /help lists them")
        return True

    async def _switch(self, rest: str) -> None:
        parts = rest.split(maxsplit=1)
        if not parts:
            self.console.print("usage: /as <phone> \\[name]")
            return
        try:
            phone = to_e164(parts[0])
        except PhoneError as exc:
            self.console.print(f"[red]not a phone number:[/red] {exc}")
            return
        await self.stop()
        self.phone, self.name = phone, parts[1] if len(parts) > 1 else f"Prospect {phone[-4:]}"
        self._prompt_line()
        self._watch()

    async def _voice(self, rest: str) -> None:
        path = Path(rest).expanduser()
        if not rest or not path.is_file():
            self.console.print("usage: /voice <path to an audio file>")
            return
        mime = mimetypes.guess_type(path.name)[0] or "audio/ogg"
        await self.client.send_voice(self.phone, path.read_bytes(), mime, self.name)
        self.console.print(f"[dim]voice note sent ({path.stat().st_size} bytes, {mime})[/dim]")

    async def _fast_forward(self, rest: str) -> None:
        match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([hd]?)", rest)
        if not match:
            self.console.print("usage: /ff <n>h or /ff <n>d, e.g. /ff 25h")
            return
        hours = float(match.group(1)) * (24 if match.group(2) == "d" else 1)
        result = await self.client.fast_forward(hours)
        self.console.print(
            f"[yellow]Follow-up clock moved {hours:g} h forward; it now reads {result.get('now')}.[/yellow]"
        )

    # ------------------------------------------------------------------ output
    def _watch(self) -> None:
        self._watcher = asyncio.create_task(self._watch_loop(self.phone))

    async def _watch_loop(self, phone: str) -> None:
        while True:
            try:
                messages, cursor = await self.client.outbox(phone, self.cursors.get(phone, 0), wait=20)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the service may be restarting: keep trying
                self.console.print(f"[red]outbox unavailable ({type(exc).__name__}); retrying[/red]")
                await asyncio.sleep(2)
                continue
            for message in messages:
                self.show(message)
            self.cursors[phone] = cursor

    def show(self, message: dict[str, Any]) -> None:
        label = KIND_LABEL.get(str(message.get("kind")), "Parley")
        self.console.print(f"[bold green]{label}:[/bold green] {message.get('text', '')}")

    def _render_card(self, data: dict[str, Any]) -> None:
        contact = data.get("contact", data)
        table = Table(title=f"Contact {contact.get('phone', self.phone)}", show_header=False)
        for key, value in contact.items():
            if not isinstance(value, (dict, list)):
                table.add_row(str(key), "" if value is None else str(value))
        self.console.print(table)
        conversation = data.get("conversation") or data.get("messages") or []
        for message in conversation[-12:]:
            arrow = "→" if message.get("direction") == "in" else "←"
            self.console.print(f"  {arrow} [{message.get('kind', '')}] {message.get('text') or ''}")
        for key in ("follow_ups", "scheduled_calls", "calls"):
            if data.get(key):
                self.console.print(f"  {key}: {len(data[key])}")

    def _render_contacts(self, data: dict[str, Any]) -> None:
        table = Table(title="Contacts")
        for column in ("phone", "name", "client_status", "spin_stage", "outcome", "owner", "needs_human"):
            table.add_column(column)
        for item in data.get("items", []):
            table.add_row(
                *(
                    str(item.get(c, ""))
                    for c in ("phone", "name", "client_status", "spin_stage", "outcome", "owner", "needs_human")
                )
            )
        self.console.print(table)

    def _render_analytics(self, data: dict[str, Any]) -> None:
        table = Table(title="Analytics", show_header=False)
        messages = data.get("messages")
        if isinstance(messages, dict) and isinstance(messages.get("per_day"), list):  # only days with traffic
            busy = [d for d in messages["per_day"] if isinstance(d, dict) and (d.get("in") or d.get("out"))]
            data = {**data, "messages": {**messages, "per_day": busy}}
        for key, value in _flatten(data):
            table.add_row(key, value)
        self.console.print(table)


def _flatten(data: Any, prefix: str = "", depth: int = 0) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    if isinstance(data, dict) and depth < 3:
        for key, value in data.items():
            rows.extend(_flatten(value, f"{prefix}.{key}" if prefix else str(key), depth + 1))
    elif isinstance(data, list):
        rows.append((prefix, ", ".join(str(v) if not isinstance(v, dict) else _compact(v) for v in data[:10])))
    else:
        rows.append((prefix, str(data)))
    return rows


def _compact(value: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in value.items() if not isinstance(v, (dict, list)))
