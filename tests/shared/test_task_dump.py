"""``kill -USR1``: every task's frames in the log, and nothing of what the tasks hold."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from parley_shared.tasks import dump_tasks


async def _waits_for(event: asyncio.Event, secret: str) -> str:
    await event.wait()
    return secret


async def test_each_task_is_one_line_with_where_it_waits_and_no_values() -> None:
    event = asyncio.Event()
    waiter = asyncio.create_task(_waits_for(event, "+77011234567 private text"), name="waiter")
    await asyncio.sleep(0)
    try:
        with capture_logs() as logs:
            count = dump_tasks()
    finally:
        event.set()
        await waiter
    assert logs[0]["event"] == "service.tasks" and logs[0]["count"] == count >= 1
    lines = {line["task"]: line for line in logs[1:]}
    assert len(lines) == count
    assert any("test_task_dump.py" in frame and "_waits_for" in frame for frame in lines["waiter"]["frames"])
    assert "+7701" not in repr(logs) and "private text" not in repr(logs)
