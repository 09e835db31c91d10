"""Both services as real processes (``python -m gateway`` / ``python -m agent_service``).

Used by end-to-end tests, the fault suite and the benchmarks: they talk to the services over
HTTP like a user, kill them with SIGKILL, restart them, and read their logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[2]


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
    process: asyncio.subprocess.Process | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, *, wait: bool = True, timeout: float = 60.0) -> None:
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"\n----- start #{self.starts} -----\n".encode())
        log.flush()
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            self.module,
            cwd=str(ROOT),
            env=self.env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
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
        """SIGKILL: no shutdown hooks, in-flight work is lost to the process (not to the system)."""
        if self.process is None or self.process.returncode is not None:
            return None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        return await self.process.wait()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Stack:
    """A gateway and an agent service wired to one RabbitMQ vhost, each with its own database."""

    workdir: Path
    amqp_url: str
    gateway_db: str
    agent_db: str
    token: str = "test-token-0123456789"
    env: dict[str, str] = field(default_factory=dict)
    gateway_env: dict[str, str] = field(default_factory=dict)
    agent_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("GEMINI_", "WAPPI_", "META_", "AGENT_", "GATEWAY_", "API_TOKEN", "APP_ENV", "LOG_"))
        }
        base.update(
            {
                "APP_ENV": "test",
                "API_TOKEN": self.token,
                "AMQP_URL": self.amqp_url,
                "LOG_FORMAT": "json",
                "LOG_LEVEL": "INFO",
                "PYTHONUNBUFFERED": "1",
                "STARTUP_TIMEOUT_S": "60",
                "OUTBOX_INTERVAL_S": "0.2",
            }
        )
        base.update(self.env)
        self.workdir.mkdir(parents=True, exist_ok=True)
        gw_port, agent_port = free_port(), free_port()
        self.gateway = ServiceProcess(
            "gateway",
            "gateway",
            {**base, "GATEWAY_DATABASE_URL": self.gateway_db, "GATEWAY_HTTP_PORT": str(gw_port), **self.gateway_env},
            gw_port,
            self.workdir / "gateway.log",
        )
        self.agent = ServiceProcess(
            "agent",
            "agent_service",
            {**base, "AGENT_DATABASE_URL": self.agent_db, "AGENT_HTTP_PORT": str(agent_port), **self.agent_env},
            agent_port,
            self.workdir / "agent.log",
        )

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def start(self) -> Stack:
        await asyncio.gather(self.gateway.start(), self.agent.start())
        return self

    async def stop(self) -> None:
        await asyncio.gather(self.gateway.stop(), self.agent.stop())

    def logs(self) -> str:
        return self.gateway.logs() + self.agent.logs()
