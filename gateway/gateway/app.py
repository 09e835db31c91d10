"""Composition root of the gateway: settings in, a wired aiohttp application out."""

from __future__ import annotations

from aiohttp import web

from gateway.db import MIGRATIONS, tables
from gateway.settings import GatewaySettings
from parley_shared.clock import Clock
from parley_shared.http import base_app, health_handler
from parley_shared.metrics import metrics_handler
from parley_shared.service import Runtime

RUNTIME = web.AppKey("runtime", Runtime)
SETTINGS = web.AppKey("settings", GatewaySettings)


def create_app(settings: GatewaySettings, *, clock: Clock | None = None) -> web.Application:
    token = settings.api_token.get_secret_value() if settings.api_token else None
    app = base_app(token=token, max_body_bytes=settings.max_body_bytes)
    runtime = Runtime(
        service="gateway",
        settings=settings,
        database_url=settings.database_url,
        migrations=MIGRATIONS,
        outbox_table=tables.outbox,
        inbox_table=tables.inbox,
        clock=clock,
    )
    app[RUNTIME] = runtime
    app[SETTINGS] = settings
    app.cleanup_ctx.append(runtime.cleanup_ctx)
    app.router.add_get(
        "/health",
        health_handler(
            {
                "database": runtime.database_health,
                "broker": runtime.broker_health,
                "outbox": runtime.outbox_health,
            }
        ),
        name="health",
    )
    app.router.add_get("/metrics", metrics_handler, name="metrics")
    return app
