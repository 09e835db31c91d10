"""``python -m agent_service managers add|list|disable|enable|set-password``: the console's accounts.

Passwords are never command-line arguments (other users of the machine could read them in the
process list): they are asked for on the terminal, or read from standard input with
``--password-stdin`` (scripts). The database is migrated first, so this works on a fresh one.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from typing import TextIO

from pydantic import ValidationError

from agent_service.console.accounts import AccountError, Accounts, Role
from agent_service.db import MIGRATIONS
from agent_service.settings import AgentSettings
from parley_shared.clock import SystemClock
from parley_shared.db import create_engine, migrate, session_factory
from parley_shared.logging import configure_logging
from parley_shared.settings import ConfigurationError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m agent_service managers", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="create an account")
    add.add_argument("login")
    add.add_argument("--name", required=True, help="the name colleagues and the audit trail see")
    add.add_argument("--role", choices=[r.value for r in Role], default=Role.MANAGER.value)
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    sub.add_parser("list", help="list the accounts")
    for name, text in (("disable", "disable an account (its open sessions end)"), ("enable", "enable it again")):
        sub.add_parser(name, help=text).add_argument("login")
    password = sub.add_parser("set-password", help="set a new password (the account's open sessions end)")
    password.add_argument("login")
    password.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    return parser


def _password(from_stdin: bool, stdin: TextIO) -> str:
    if from_stdin:
        return stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise AccountError("the passwords differ")
    return first


async def _run(args: argparse.Namespace, settings: AgentSettings, stdin: TextIO, out: TextIO) -> None:
    engine = create_engine(settings.database_url)
    try:
        await migrate(engine, MIGRATIONS)
        accounts = Accounts(session_factory(engine), SystemClock())
        if args.command == "add":
            created = await accounts.add(args.login, args.name, _password(args.password_stdin, stdin), Role(args.role))
            print(f"added {created.login} ({created.role.value})", file=out)
        elif args.command == "list":
            for m in await accounts.list():
                state = "active" if m.active else "disabled"
                print(f"{m.login}\t{m.display_name}\t{m.role.value}\t{state}", file=out)
        elif args.command in ("disable", "enable"):
            changed = await accounts.set_active(args.login, args.command == "enable")
            print(f"{args.command}d {changed.login}", file=out)
        elif args.command == "set-password":
            changed = await accounts.set_password(args.login, _password(args.password_stdin, stdin))
            print(f"new password set for {changed.login}; their open sessions ended", file=out)
    finally:
        await engine.dispose()


def managers(argv: list[str], *, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = AgentSettings()
    except (ValidationError, ConfigurationError) as exc:
        print(f"agent-service: invalid configuration: {exc}", file=sys.stderr)
        return 2
    # Only warnings on the terminal (what was done is printed; the log keeps the details).
    configure_logging(level="WARNING", fmt=settings.log_format, production=settings.production, service="agent-service")
    try:
        asyncio.run(_run(args, settings, stdin, out))
    except AccountError as exc:
        print(f"agent-service managers: {exc}", file=sys.stderr)
        return 1
    return 0
