from __future__ import annotations

import sys

from gateway.db import MIGRATIONS
from gateway.settings import GatewaySettings
from parley_shared import cli


def main(argv: list[str] | None = None) -> int:
    from gateway.app import create_app
    from gateway.privacy import erase_from_cli

    return cli.run(
        service="gateway",
        load_settings=GatewaySettings,
        database_url=lambda s: s.database_url,
        http_port=lambda s: s.http_port,
        create_app=create_app,
        migrations=MIGRATIONS,
        erase=erase_from_cli,
        argv=argv,
    )


if __name__ == "__main__":
    sys.exit(main())
