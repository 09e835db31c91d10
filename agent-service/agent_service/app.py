"""Composition root of the agent service: settings in, a wired aiohttp application out."""

from __future__ import annotations

from aiohttp import web

from agent_service import wiring as conversation_wiring
from agent_service.api import analytics as analytics_api
from agent_service.api import contacts as contacts_api
from agent_service.api import demo as demo_api
from agent_service.api import stats as stats_api
from agent_service.business import load_business
from agent_service.db import MIGRATIONS, tables
from agent_service.engines.base import Engine
from agent_service.followups import wiring as followups_wiring
from agent_service.settings import AgentSettings
from parley_shared.clock import Clock, OffsetClock
from parley_shared.service import service_app

SETTINGS = web.AppKey("settings", AgentSettings)


def create_app(settings: AgentSettings, *, clock: Clock | None = None, engine: Engine | None = None) -> web.Application:
    """``engine``: a decision engine to use instead of the configured one (tests pass fakes)."""
    if clock is None and settings.demo_mode:
        clock = OffsetClock()  # the demo's fast-forward moves it (POST /demo/clock)
    app, runtime = service_app(
        service="agent-service",
        settings=settings,
        database_url=settings.database_url,
        migrations=MIGRATIONS,
        outbox_table=tables.outbox,
        inbox_table=tables.inbox,
        clock=clock,
    )
    app[SETTINGS] = settings
    contacts_api.add_routes(app)  # before any /contacts/{phone} route: it adds /contacts/export.csv
    analytics_api.add_routes(app, working_tz=settings.working_tz)
    stats_api.add_routes(app)
    demo_api.add_routes(app)
    business = load_business(settings)  # the business file: refuses to start on a bad one
    knowledge = conversation_wiring.build_knowledge(settings, business)
    follow_ups, booker = followups_wiring.install(app, runtime, settings, business=business, knowledge=knowledge)
    conversation_wiring.install(
        app, runtime, settings, business, follow_ups=follow_ups, booker=booker, knowledge=knowledge, engine=engine
    )
    return app
