"""Run a Parley service as a child process (``python -m gateway`` / ``python -m agent_service``).

The demo launcher uses this, and so do the end-to-end tests, the fault suite and the benchmarks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServiceProcess:
    name: str  # "gateway" | "agent"
    module: str  # "gateway" | "agent_service"
    env: dict[str, str]
    port: int
    log_path: Path
    cwd: Path | None = None
    process: asyncio.subprocess.Process | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, *, wait: bool = True, timeout: float = 60.0) -> None:
        self.starts += 1
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n----- start #{self.starts} -----\n".encode())
            log.flush()
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                self.module,
                cwd=str(self.cwd) if self.cwd else None,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # Ctrl-C in the terminal reaches the launcher only
            )
        if wait:
            await self.wait_healthy(timeout=timeout)

    async def wait_healthy(self, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: Any = None
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.returncode is not None:
                    raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
                try:
                    async with session.get(f"{self.url}/health", timeout=aiohttp.ClientTimeout(total=3)) as r:
                        last = await r.json()
                        if r.status == 200:
                            return dict(last)
                except (TimeoutError, aiohttp.ClientError) as exc:
                    last = repr(exc)
                await asyncio.sleep(0.2)
        raise TimeoutError(f"{self.name} not healthy after {timeout}s: {last}; see {self.log_path}")

    async def stop(self, timeout: float = 30.0) -> int | None:
        """Graceful stop (SIGTERM), then SIGKILL if it hangs."""
        if self.process is None or self.process.returncode is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            return await self.kill()

    async def kill(self) -> int | None:
        """SIGKILL: no shutdown hooks run."""
        if self.process is None or self.process.returncode is not None:
            return None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        return await self.process.wait()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def tasks(self, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Where each of the running service's asyncio tasks waits (SIGUSR1: the service logs its
        tasks as JSON lines; needs ``LOG_FORMAT=json``). Empty if the process is gone or silent."""
        if self.process is None or self.process.returncode is not None:
            return []
        before = self.logs().count('"service.tasks"')
        self.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        tasks: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            dumps = 0
            count, tasks = None, []
            for line in self.logs().splitlines():
                if '"service.tasks"' in line:
                    dumps += 1
                    if dumps == before + 1:
                        with contextlib.suppress(ValueError):
                            count = int(json.loads(line)["count"])
                elif dumps == before + 1 and '"service.task"' in line:
                    with contextlib.suppress(ValueError):  # a line still being written
                        tasks.append(json.loads(line))
            if count is not None and len(tasks) >= count:
                return tasks
            await asyncio.sleep(0.1)
        return tasks
