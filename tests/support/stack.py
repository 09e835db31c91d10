"""Both services as real processes (``python -m gateway`` / ``python -m agent_service``).

Used by end-to-end tests, the fault suite and the benchmarks: they talk to the services over
HTTP like a user, kill them with SIGKILL, restart them, and read their logs.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path

from parley_dev.processes import ServiceProcess, free_port

ROOT = Path(__file__).resolve().parents[2]


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
            cwd=ROOT,
        )
        self.agent = ServiceProcess(
            "agent",
            "agent_service",
            {**base, "AGENT_DATABASE_URL": self.agent_db, "AGENT_HTTP_PORT": str(agent_port), **self.agent_env},
            agent_port,
            self.workdir / "agent.log",
            cwd=ROOT,
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
