"""The chat's terminal: reading the prospect's lines at the ``you ›`` prompt, printing beside it.

In a terminal, prompt_toolkit reads each line (with editing and history). Whatever the chat prints
while the prompt waits -- a reply that arrives, an error -- goes through ``emit``, which erases the
prompt, prints, and redraws the prompt below with what was typed so far: the prospect's lines and
the replies never share a line. Without a terminal (input or output redirected), ``piped_lines``
reads stdin and echoes each line after the prompt, so the transcript reads the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Awaitable, Callable
from typing import TextIO

from prompt_toolkit import PromptSession
from prompt_toolkit.application import get_app_or_none, run_in_terminal
from prompt_toolkit.formatted_text import FormattedText
from rich.console import Console, RenderableType

from parley_demo.render import PROMPT, prospect_line

Handler = Callable[[str], Awaitable[bool]]  # ChatApp.handle: False when the user wants to quit
PROMPT_TEXT = FormattedText([("ansicyan bold", PROMPT)])


def emit(console: Console, *renderables: RenderableType) -> None:
    """Print on ``console``; while the prompt is shown, above it (the prompt is redrawn below)."""
    app = get_app_or_none()
    if app is None or not app.is_running:
        console.print(*renderables)
    else:  # erase the prompt, print, redraw it: in order, on the application's loop
        run_in_terminal(functools.partial(console.print, *renderables))


async def prompt_lines(handle: Handler, session: PromptSession[str] | None = None) -> None:
    """Read lines at the prompt until /quit, Ctrl-D or Ctrl-C."""
    session = session or PromptSession()
    while True:
        try:
            line = await session.prompt_async(PROMPT_TEXT)
        except (EOFError, KeyboardInterrupt):
            return
        if not await handle(line):
            return


async def piped_lines(handle: Handler, console: Console, stream: TextIO) -> None:
    """Read lines from a stream that is not a terminal until it ends or /quit, echoing each."""
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:  # a daemon thread, so Ctrl-C never waits for a line
        with contextlib.suppress(RuntimeError):  # the chat ended and its loop closed first
            for line in iter(stream.readline, ""):
                loop.call_soon_threadsafe(lines.put_nowait, line)
            loop.call_soon_threadsafe(lines.put_nowait, None)

    threading.Thread(target=read, name="demo-stdin", daemon=True).start()
    while (line := await lines.get()) is not None:
        line = line.rstrip("\r\n")
        if line.strip():
            emit(console, prospect_line(line))
        if not await handle(line):
            return
