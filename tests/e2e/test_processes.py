"""Both services as real processes: start (waiting for the engines), health, a task dump on
SIGUSR1, graceful stop, SIGKILL and restart."""

from __future__ import annotations

from pathlib import Path

import aiohttp

from tests.support import infra
from tests.support.stack import Stack


async def test_services_run_as_processes_stop_gracefully_and_survive_sigkill(amqp_url: str, tmp_path: Path) -> None:
    stack = Stack(
        tmp_path,
        amqp_url,
        gateway_db=f"sqlite+aiosqlite:///{tmp_path}/gateway.db",
        agent_db=await infra.recreate_database("proc_agent"),
    )
    await stack.start()
    try:
        async with aiohttp.ClientSession() as session:
            for service in (stack.gateway, stack.agent):
                async with session.get(f"{service.url}/health") as r:
                    body = await r.json()
                    assert r.status == 200, body
                    assert body["checks"]["database"]["ok"] and body["checks"]["broker"]["connected"]
        # SIGUSR1: every task's frames in the log, and the service carries on.
        tasks = await stack.agent.tasks()
        assert any(any(frame.startswith("periodic.py") for frame in t["frames"]) for t in tasks), tasks
        async with aiohttp.ClientSession() as session, session.get(f"{stack.agent.url}/health") as r:
            assert r.status == 200
        assert await stack.agent.kill() == -9
        await stack.agent.start()  # restarts on the same, already migrated database
        assert await stack.gateway.stop() == 0  # SIGTERM: clean shutdown, exit status 0
        assert "service.stopped" in stack.gateway.logs()
    finally:
        await stack.stop()
