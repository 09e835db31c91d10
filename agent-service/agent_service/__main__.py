from __future__ import annotations

import sys

from agent_service.db import MIGRATIONS
from agent_service.settings import AgentSettings
from parley_shared import cli


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["managers"]:  # the console's accounts (agent_service/console/cli.py)
        from agent_service.console.cli import managers

        return managers(args[1:])
    from agent_service.app import create_app
    from agent_service.privacy import erase_from_cli

    return cli.run(
        service="agent-service",
        load_settings=AgentSettings,
        database_url=lambda s: s.database_url,
        http_port=lambda s: s.http_port,
        create_app=create_app,
        migrations=MIGRATIONS,
        erase=erase_from_cli,
        argv=argv,
    )


if __name__ == "__main__":
    sys.exit(main())
