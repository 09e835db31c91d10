"""``python -m parley_demo`` (``make demo``): start both services on the sandbox, open the chat.

Both services run as child processes on the sandbox provider, the embedded SQLite default
(``data/demo/``) and the offline engine (Gemini when ``GEMINI_API_KEY`` is set), with the sample
knowledge base indexed at start. Ctrl-C (or /quit) stops the chat and both services cleanly.
Logs: ``data/demo/gateway.log`` and ``data/demo/agent.log``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import sys
import threading
from pathlib import Path

import aiohttp
from rich.console import Console

from parley_demo.chat import ChatApp
from parley_demo.client import ParleyClient
from parley_demo.processes import ServiceProcess, free_port

ROOT = Path(__file__).resolve().parents[3]
# The managers' console account of the demo (created on the first start; development only).
CONSOLE_LOGIN, CONSOLE_PASSWORD = "demo", "parley-demo"


def demo_env(data_dir: Path, token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "AGENT_", "WAPPI_", "META_"))}
    env.update(
        {
            "APP_ENV": "development",
            "API_TOKEN": token,
            "LOG_FORMAT": "json",
            "WHATSAPP_PROVIDER": "sandbox",
            "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{data_dir / 'gateway.db'}",
            "AGENT_DATABASE_URL": f"sqlite+aiosqlite:///{data_dir / 'agent.db'}",
            "DEMO_MODE": "true",
            "BUFFER_WINDOW_S": env.get("BUFFER_WINDOW_S", "1.5"),
            "FOLLOW_UP_CHECK_INTERVAL_S": env.get("FOLLOW_UP_CHECK_INTERVAL_S", "2"),
            "OUTBOX_INTERVAL_S": "0.5",
            "PYTHONUNBUFFERED": "1",
            "CONSOLE_ADMIN_LOGIN": CONSOLE_LOGIN,
            "CONSOLE_ADMIN_PASSWORD": CONSOLE_PASSWORD,
            "CONSOLE_ADMIN_NAME": "Demo manager",
        }
    )
    return env


class Services:
    def __init__(self, data_dir: Path, token: str) -> None:
        env = demo_env(data_dir, token)
        gateway_port, agent_port = free_port(), free_port()
        self.gateway = ServiceProcess(
            "gateway",
            "gateway",
            {**env, "GATEWAY_HTTP_PORT": str(gateway_port)},
            gateway_port,
            data_dir / "gateway.log",
            cwd=ROOT,
        )
        self.agent = ServiceProcess(
            "agent",
            "agent_service",
            {**env, "AGENT_HTTP_PORT": str(agent_port)},
            agent_port,
            data_dir / "agent.log",
            cwd=ROOT,
        )

    async def start(self, console: Console) -> None:
        with console.status("starting the gateway and the agent service (migrations, knowledge base)..."):
            await asyncio.gather(self.gateway.start(timeout=120), self.agent.start(timeout=120))
        console.print(
            f"[dim]gateway {self.gateway.url} · agent {self.agent.url} · logs in {self.gateway.log_path.parent}[/dim]"
        )
        console.print(
            f"[bold]Managers' console:[/bold] {self.agent.url}/console/ · sign in as "
            f"[bold]{CONSOLE_LOGIN}[/bold] / [bold]{CONSOLE_PASSWORD}[/bold] and answer as a manager in the browser"
        )

    async def stop(self) -> None:
        await asyncio.gather(self.gateway.stop(), self.agent.stop())


def _stdin_lines(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None], console: Console) -> None:
    """Read typed lines in a daemon thread (so Ctrl-C never waits for Enter)."""
    while True:
        try:
            line = console.input("[bold cyan]you ›[/bold cyan] ")
        except (EOFError, KeyboardInterrupt):
            loop.call_soon_threadsafe(queue.put_nowait, None)
            return
        loop.call_soon_threadsafe(queue.put_nowait, line)


async def run(args: argparse.Namespace) -> int:
    console = Console()
    services: Services | None = None
    token = args.token or secrets.token_urlsafe(24)
    gateway_url, agent_url = args.gateway_url, args.agent_url
    if not gateway_url:
        data_dir = Path(args.data_dir).resolve()
        if args.fresh and data_dir.exists():
            shutil.rmtree(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        services = Services(data_dir, token)
        try:
            await services.start(console)
        except (RuntimeError, TimeoutError) as exc:
            console.print(f"[red]could not start the services:[/red] {exc}")
            await services.stop()
            return 1
        gateway_url, agent_url = services.gateway.url, services.agent.url
    async with aiohttp.ClientSession() as session:
        app = ChatApp(ParleyClient(gateway_url, agent_url, token, session), console, args.phone, args.name)
        await app.start()
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        threading.Thread(target=_stdin_lines, args=(asyncio.get_running_loop(), lines, console), daemon=True).start()
        try:
            while (line := await lines.get()) is not None and await app.handle(line):
                pass
        except asyncio.CancelledError:  # Ctrl-C
            pass
        finally:
            await app.stop()
            if services is not None:
                with console.status("stopping the services..."):
                    await services.stop()
    console.print("bye")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m parley_demo", description=__doc__)
    parser.add_argument("--phone", default="+77010000001", help="the prospect you play")
    parser.add_argument("--name", default="Aigerim")
    parser.add_argument("--data-dir", default=str(ROOT / "data" / "demo"))
    parser.add_argument("--fresh", action="store_true", help="start from empty databases")
    parser.add_argument("--gateway-url", help="use running services instead of starting them")
    parser.add_argument("--agent-url")
    parser.add_argument("--token", default=os.environ.get("API_TOKEN"))
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(run(args))
    return 130


if __name__ == "__main__":
    sys.exit(main())
