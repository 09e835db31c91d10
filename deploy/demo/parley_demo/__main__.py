"""Start both Parley services on the sandbox and open a terminal chat in which
you play the prospect.

The gateway and the agent service run as child processes on the sandbox
provider, SQLite files in the data directory and the offline engine (Gemini
when GEMINI_API_KEY is set), with the sample knowledge base indexed at start.
Their addresses and the API token are printed at start, as a line to paste
into another shell for the README's curl examples. A second run continues the
conversations kept in the data directory; --fresh starts from empty databases.
Ctrl-C (or /quit) stops the chat and both services. Logs: gateway.log and
agent.log in the data directory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import sys
from pathlib import Path

import aiohttp
from rich.console import Console
from rich.text import Text

from parley_demo import render
from parley_demo.chat import ChatApp
from parley_demo.client import ParleyClient
from parley_demo.terminal import piped_lines, prompt_lines
from parley_dev.processes import ServiceProcess, free_port

ROOT = Path(__file__).resolve().parents[3]


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
        }
    )
    return env


class Services:
    def __init__(self, data_dir: Path, token: str, gateway_port: int = 0, agent_port: int = 0) -> None:
        env = demo_env(data_dir, token)
        gateway_port, agent_port = gateway_port or free_port(), agent_port or free_port()
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

    async def stop(self) -> None:
        await asyncio.gather(self.gateway.stop(), self.agent.stop())


def shown_path(path: Path) -> str:
    """``path`` relative to the working directory when it is below it (``data/demo``)."""
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


async def run(args: argparse.Namespace) -> int:
    console = Console()
    services: Services | None = None
    token = args.token or secrets.token_urlsafe(24)
    gateway_url, agent_url = args.gateway_url, args.agent_url
    if not gateway_url:
        data_dir = Path(args.data_dir).resolve()
        if args.fresh and data_dir.exists():
            shutil.rmtree(data_dir)
        resumed = (data_dir / "agent.db").exists()
        data_dir.mkdir(parents=True, exist_ok=True)
        services = Services(data_dir, token, args.gateway_port, args.agent_port)
        try:
            await services.start(console)
        except (RuntimeError, TimeoutError) as exc:
            console.print(Text.assemble(("could not start the services: ", "red"), render.visible(exc)))
            await services.stop()
            return 1
        gateway_url, agent_url = services.gateway.url, services.agent.url
        console.print(render.banner(gateway_url, agent_url, token, shown_path(data_dir), resumed))
    async with aiohttp.ClientSession() as session:
        app = ChatApp(ParleyClient(gateway_url, agent_url, token, session), console, args.phone, args.name)
        try:
            await app.start()
            if sys.stdin.isatty() and sys.stdout.isatty():
                await prompt_lines(app.handle)
            else:
                await piped_lines(app.handle, console, sys.stdin)
        except asyncio.CancelledError:  # Ctrl-C while a command runs
            pass
        finally:
            await app.stop()
            if services is not None:
                with console.status("stopping the services..."):
                    await services.stop()
    console.print("bye")
    return 0


EXAMPLES = """examples:
  make demo                                   continue the conversations kept in data/demo
  make demo DEMO_ARGS=--fresh                 start from empty databases
  make demo DEMO_ARGS="--agent-port 8081 --token demo-secret-token"
                                              the same agent address and token on every run
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m parley_demo",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--phone", default="+77010000001", help="the prospect you play (default: %(default)s)")
    parser.add_argument("--name", default="Aigerim", help="the prospect's name (default: %(default)s)")
    parser.add_argument(
        "--data-dir", default=str(ROOT / "data" / "demo"), help="databases and logs (default: data/demo)"
    )
    parser.add_argument("--fresh", action="store_true", help="start from empty databases")
    parser.add_argument("--gateway-port", type=int, default=0, help="the gateway's port (default: any free one)")
    parser.add_argument("--agent-port", type=int, default=0, help="the agent service's port (default: any free one)")
    parser.add_argument(
        "--token",
        default=os.environ.get("API_TOKEN"),
        help="the API token the services require (default: $API_TOKEN, else a random one; printed at start)",
    )
    parser.add_argument("--gateway-url", help="use running services instead of starting them (with --agent-url)")
    parser.add_argument("--agent-url", help="the running agent service (with --gateway-url)")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(run(args))
    return 130


if __name__ == "__main__":
    sys.exit(main())
