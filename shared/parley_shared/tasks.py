"""What a running service is waiting on: ``kill -USR1 <pid>`` logs where each asyncio task waits.

A service that looks stuck (messages unacknowledged for long, a stop that does not end) is
usually one task awaiting something that never comes. Thread dumps (py-spy, faulthandler) show
an idle event loop; this shows the tasks. Each task is one ``service.task`` log line with its
name and its frames (file, line, function; never local values, so no phone number or message
text), after a ``service.tasks`` line that counts them.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger("parley.tasks")

FRAMES = 12  # the innermost frames of each task: where it waits and who awaited it


def frames_of(task: asyncio.Task[Any], limit: int = FRAMES) -> list[str]:
    """``file:line function`` along ``task``'s await chain, outermost first, at most ``limit``
    (the innermost ones: where it waits). ``Task.get_stack`` stops at the task's own coroutine
    while it is suspended; the chain of awaited coroutines is what says where it waits."""
    frames: list[str] = []
    awaited: Any = task.get_coro()
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is None:  # a finished coroutine, a future, or a C-level awaitable: the end
            if not hasattr(awaited, "cr_frame") and not hasattr(awaited, "gi_frame"):
                frames.append(type(awaited).__qualname__)
            break
        frames.append(f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno} {frame.f_code.co_name}")
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return frames[-limit:]


def dump_tasks() -> int:
    """Log every task of the running loop (but the caller's); returns how many."""
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    log.warning("service.tasks", count=len(tasks))
    for task in sorted(tasks, key=lambda t: t.get_name()):
        log.warning("service.task", task=task.get_name(), frames=frames_of(task))
    return len(tasks)


def dump_on_signal(loop: asyncio.AbstractEventLoop, signum: int = signal.SIGUSR1) -> bool:
    """Dump the tasks whenever the process gets ``signum``; False where signals cannot be handled
    by the loop (Windows, a loop outside the main thread)."""
    try:
        loop.add_signal_handler(signum, dump_tasks)
    except (NotImplementedError, RuntimeError, ValueError):
        return False
    return True
