"""Composition root of the gateway: settings in, a wired aiohttp application out."""

from __future__ import annotations

from aiohttp import web

from gateway.db import MIGRATIONS, tables
from gateway.settings import GatewaySettings
from parley_shared.clock import Clock
from parley_shared.service import service_app

SETTINGS = web.AppKey("settings", GatewaySettings)


def create_app(settings: GatewaySettings, *, clock: Clock | None = None) -> web.Application:
    app, _runtime = service_app(
        service="gateway",
        settings=settings,
        database_url=settings.database_url,
        migrations=MIGRATIONS,
        outbox_table=tables.outbox,
        inbox_table=tables.inbox,
        clock=clock,
    )
    app[SETTINGS] = settings
    return app
