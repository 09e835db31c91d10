"""The managers' console: one call from the composition root (:func:`install`) sets it all up.

It mounts the console as a sub-application under ``/console`` (its own middlewares: the
encrypted session cookie and ``console/web.py``), registers every page module (one module per
page: ``auth``, ``inbox``, ``conversation``, ``calls``, ``events``), serves the vendored static
files (htmx and its SSE extension, with their versions in the file names; no CDN) and creates
the first admin from the environment at start. The live events it shows come from the service's
:class:`~agent_service.live.LiveFeed` (built and run by the composition root).
"""

from __future__ import annotations

import hashlib
import mimetypes
from importlib.resources import files
from typing import TYPE_CHECKING

import aiohttp_jinja2
import jinja2
import structlog
from aiohttp import web
from aiohttp_session import session_middleware
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography.fernet import Fernet

from agent_service.console import auth, calls, conversation, events, inbox
from agent_service.console.accounts import Accounts
from agent_service.console.templating import configure
from agent_service.console.web import CONSOLE, PREFIX, Console, anonymous, console_middleware
from parley_shared.http import browser_page

if TYPE_CHECKING:
    from agent_service.context import AgentService

log = structlog.get_logger(__name__)

COOKIE = "parley_console"
STATIC = files("agent_service.console") / "static"
STATIC_FILES = ("htmx-2.0.11.min.js", "htmx-ext-sse-2.2.4.min.js", "console.js", "console.css", "icon.svg")


class Static:
    """The console's static files, read once; served with long caching (their URLs carry a hash)."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str, str]] = {}
        for name in STATIC_FILES:
            body = (STATIC / name).read_bytes()
            kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
            self.files[name] = (body, kind, hashlib.sha256(body).hexdigest()[:12])

    def url(self, name: str) -> str:
        return f"{PREFIX}/static/{name}?v={self.files[name][2]}"

    async def handler(self, request: web.Request) -> web.Response:
        found = self.files.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        body, kind, _ = found
        charset = "utf-8" if kind.startswith("text/") or kind.endswith("javascript") else None
        return web.Response(
            body=body,
            content_type=kind,
            charset=charset,
            headers={"Cache-Control": "public, max-age=31536000, immutable"},
        )


def _mark_pages(app: web.Application) -> None:
    """Every console route is a page for people: no bearer token, not in the API document."""
    for route in app.router.routes():
        browser_page(route.handler)


def install(app: web.Application, agent: AgentService) -> web.Application:
    """Mount the console under ``/console`` and register its start-up work; returns the sub-application."""
    runtime, settings, desk, live = agent.runtime, agent.settings, agent.desk, agent.live
    storage = EncryptedCookieStorage(
        Fernet(settings.session_key()),
        cookie_name=COOKIE,
        max_age=settings.console_session_max_age_s,
        path=PREFIX,
        httponly=True,
        samesite="Lax",
        secure=settings.production,
    )
    accounts = Accounts(
        runtime.sessions,
        runtime.clock,
        max_failures=settings.console_sign_in_max_failures,
        max_failures_per_address=settings.console_sign_in_max_failures_per_address,
        window_s=settings.console_sign_in_window_s,
    )
    console = web.Application(middlewares=[session_middleware(storage), console_middleware])
    static = Static()
    env = aiohttp_jinja2.setup(
        console,
        loader=jinja2.PackageLoader("agent_service.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    configure(env, desk.follow_ups.policy.hours, static.url)
    console[CONSOLE] = Console(
        sessions=runtime.sessions,
        accounts=accounts,
        desk=desk,
        live=live,
        knowledge=agent.knowledge,
        hours=desk.follow_ups.policy.hours,
        production=settings.production,
    )

    async def home(_request: web.Request) -> web.StreamResponse:
        raise web.HTTPSeeOther(f"{PREFIX}/inbox")

    console.router.add_get("/", home)

    async def static_file(request: web.Request) -> web.Response:
        return await static.handler(request)

    console.router.add_get("/static/{name}", anonymous(static_file))
    for module in (auth, inbox, conversation, calls, events):
        module.add_routes(console)
    _mark_pages(console)

    if settings.console_admin_login and settings.console_admin_password:
        login, password = settings.console_admin_login, settings.console_admin_password.get_secret_value()

        async def first_admin() -> None:
            if await accounts.ensure_admin(login, settings.console_admin_name, password):
                log.info("console.first_admin_created")

        runtime.on_start(first_admin)

    app.add_subapp(PREFIX, console)

    async def to_console(_request: web.Request) -> web.StreamResponse:
        raise web.HTTPSeeOther(f"{PREFIX}/inbox")

    app.router.add_get("/", browser_page(to_console))
    return console
