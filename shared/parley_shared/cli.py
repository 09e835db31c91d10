"""``python -m gateway`` / ``python -m agent_service``: serve (default), migrate, makemigration, erase."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from parley_shared.db import create_engine, make_revision, migrate
from parley_shared.logging import configure_logging
from parley_shared.phone import PhoneError, typed_address
from parley_shared.settings import CommonSettings, ConfigurationError
from parley_shared.tasks import dump_on_signal

# The service's own settings class (GatewaySettings, AgentSettings).
S = TypeVar("S", bound=CommonSettings)

# What ``erase PHONE`` runs: the service's erasure on a migrated engine; its JSON-able report.
Erase = Callable[[S, AsyncEngine, str], Awaitable[dict[str, Any]]]


def run(
    *,
    service: str,
    load_settings: Callable[[], S],
    database_url: Callable[[S], str],
    http_port: Callable[[S], int],
    create_app: Callable[[S], web.Application],
    migrations: Path,
    erase: Erase[S] | None = None,
    argv: list[str] | None = None,
) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {service}")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the service (default)")
    sub.add_parser("migrate", help="apply database migrations and exit")
    rev = sub.add_parser("makemigration", help="autogenerate a migration from the table definitions")
    rev.add_argument("message")
    rev.add_argument("--head", help="the revision to build on when there are several heads")
    if erase is not None:
        gone = sub.add_parser("erase", help="erase everything held about one phone (see docs/operations.md)")
        gone.add_argument("phone", help="the number, any format")
    args = parser.parse_args(argv)

    try:
        settings = load_settings()
    except (ValidationError, ConfigurationError) as exc:
        print(f"{service}: invalid configuration: {exc}", file=sys.stderr)
        return 2
    configure_logging(
        level=settings.log_level,
        fmt=settings.log_format,
        production=settings.production,
        log_content=settings.log_message_content,
        service=service,
    )
    command = args.command or "serve"
    if command == "erase" and erase is not None:
        return _erase(service, settings, database_url(settings), migrations, erase, args.phone)
    if command in ("migrate", "makemigration"):

        async def _db() -> None:
            engine = create_engine(database_url(settings))
            try:
                await migrate(engine, migrations)
                if command == "makemigration":
                    await make_revision(engine, migrations, args.message, head=args.head)
            finally:
                await engine.dispose()

        try:
            asyncio.run(_db())
        except ValueError as exc:
            print(f"{service}: {exc}", file=sys.stderr)
            return 2
        print(f"{service}: database at head")
        return 0
    app = create_app(settings)
    loop = new_event_loop()
    dump_on_signal(loop)  # kill -USR1: where each task waits, in the log
    web.run_app(
        app,
        host=settings.http_host,
        port=http_port(settings),
        print=None,
        shutdown_timeout=settings.shutdown_timeout_s,
        loop=loop,
    )
    return 0


def _erase(service: str, settings: S, url: str, migrations: Path, erase: Erase[S], raw: str) -> int:
    try:
        phone = typed_address(raw, settings.phone_default_region)
    except PhoneError as exc:
        print(f"{service}: not a phone number: {exc}", file=sys.stderr)
        return 2

    async def _run() -> dict[str, Any]:
        engine = create_engine(url)
        try:
            await migrate(engine, migrations)
            return await erase(settings, engine, phone)
        finally:
            await engine.dispose()

    print(json.dumps(asyncio.run(_run()), sort_keys=True))
    return 0


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where it exists (Linux, macOS): the services spend much of their CPU in the event
    loop (sockets to RabbitMQ, PostgreSQL and HTTP clients); asyncio's own loop elsewhere."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
