"""What every console page shares: who is signed in, CSRF, security headers, errors as HTML.

The console is an aiohttp sub-application under ``/console``. Its middleware, for every request:

1. loads the session (an encrypted cookie: HttpOnly, SameSite=Lax, Secure in production) and the
   manager it names -- an account that was disabled, or whose password was set since the session
   began (``session_epoch``), is signed out at once;
2. sends a page without a manager to sign-in (an htmx request gets ``401`` with ``HX-Redirect``,
   so the browser keeps the reply being typed in ``sessionStorage`` and restores it afterwards);
3. refuses a state-changing request (POST) whose CSRF token (``X-CSRF-Token`` header or
   ``csrf_token`` field) does not match the session's with ``403``, before its handler runs;
4. refuses admin-only pages to managers with ``403``;
5. adds a strict Content-Security-Policy (scripts only from ``/console/static``, no inline
   script or style) and the other security headers to every answer;
6. renders errors as HTML (for htmx: a message swapped into the page's flash area).
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import structlog
from aiohttp import web
from aiohttp_session import Session, get_session, new_session

from agent_service.actions import ActionError, Conflict, Desk, NotBookable, NotFound
from agent_service.console.accounts import Accounts, Manager
from agent_service.domain.working_hours import WorkingHours
from agent_service.knowledge import KnowledgeBase
from agent_service.live import LiveFeed
from parley_shared.db import SessionFactory

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PREFIX = "/console"
ANONYMOUS_ATTR = "__console_anonymous__"
ADMIN_ATTR = "__console_admin__"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@dataclass(frozen=True)
class Console:
    """What the console's pages need (``request.config_dict[CONSOLE]``)."""

    sessions: SessionFactory
    accounts: Accounts
    desk: Desk
    live: LiveFeed
    knowledge: KnowledgeBase | None
    hours: WorkingHours
    production: bool

    @property
    def tz(self) -> ZoneInfo:
        return self.hours.tz


CONSOLE = web.AppKey("console", Console)
MANAGER_KEY = web.RequestKey("console_manager", Manager)


def anonymous(handler: Handler) -> Handler:
    """A page anyone may open (sign-in, static files)."""
    setattr(handler, ANONYMOUS_ATTR, True)
    return handler


def admin_only(handler: Handler) -> Handler:
    setattr(handler, ADMIN_ATTR, True)
    return handler


def console_of(request: web.Request) -> Console:
    return request.config_dict[CONSOLE]


def manager_of(request: web.Request) -> Manager:
    return request[MANAGER_KEY]


def is_htmx(request: web.Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a console path on this site, never another site."""
    if value and value.startswith(PREFIX + "/") and not value.startswith("//") and "\\" not in value:
        return value
    return f"{PREFIX}/inbox"


async def csrf_token(request: web.Request) -> str:
    """The session's CSRF token (created with the session)."""
    session = await get_session(request)
    token = session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


async def start_session(request: web.Request, manager: Manager) -> None:
    """A fresh session for this manager (a new identity and a new CSRF token: no fixation)."""
    session = await new_session(request)
    session["mid"] = manager.id
    session["epoch"] = manager.session_epoch
    session["csrf"] = secrets.token_urlsafe(32)


async def _signed_in(request: web.Request, session: Session) -> Manager | None:
    manager_id, epoch = session.get("mid"), session.get("epoch")
    if not isinstance(manager_id, int) or not isinstance(epoch, int):
        return None
    manager = await console_of(request).accounts.get(manager_id)
    if manager is None or not manager.active or manager.session_epoch != epoch:
        session.invalidate()
        return None
    return manager


def _sign_in_url(request: web.Request) -> str:
    here = request.headers.get("HX-Current-URL", "") if is_htmx(request) else str(request.rel_url)
    if "://" in here:
        here = "/" + here.split("://", 1)[1].split("/", 1)[-1]
    if request.method != "GET" and not is_htmx(request):
        here = request.headers.get("Referer", "")
        here = "/" + here.split("://", 1)[1].split("/", 1)[-1] if "://" in here else ""
    return f"{PREFIX}/sign-in?next={quote(safe_next(here), safe='/')}"


def _not_signed_in(request: web.Request) -> web.StreamResponse:
    target = _sign_in_url(request)
    if is_htmx(request) or "text/event-stream" in request.headers.get("Accept", ""):
        return web.Response(status=401, text="signed out", headers={"HX-Redirect": target})
    raise web.HTTPSeeOther(target)


async def _csrf_ok(request: web.Request, session: Session) -> bool:
    expected = session.get("csrf")
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        field = form.get(CSRF_FIELD)
        given = field if isinstance(field, str) else None
    if not isinstance(expected, str) or not given:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


HTMX_CONFIG = json.dumps(
    {
        "includeIndicatorStyles": False,
        "allowEval": False,
        "allowScriptTags": False,
        "historyCacheSize": 0,
        "selfRequestsOnly": True,
        "responseHandling": [
            {"code": "204", "swap": False},
            {"code": "[23]..", "swap": True},
            {"code": "[45]..", "swap": True, "error": True},
        ],
    }
)


async def render(template: str, request: web.Request, context: Mapping[str, Any], *, status: int = 200) -> web.Response:
    """A template with what every page needs: the manager, the CSRF token, htmx's configuration."""
    base = {"manager": request.get(MANAGER_KEY), "csrf": await csrf_token(request), "htmx_config": HTMX_CONFIG}
    return aiohttp_jinja2.render_template(template, request, {**base, **context}, status=status)


async def error_response(request: web.Request, status: int, message: str) -> web.StreamResponse:
    """An error as HTML: for htmx the flash message (swapped into ``#flash``), else a page."""
    if is_htmx(request):
        response = await render("_flash.html", request, {"message": message, "level": "error"}, status=status)
        response.headers["HX-Retarget"] = "#flash"
        response.headers["HX-Reswap"] = "innerHTML"
        return response
    return await render("error.html", request, {"message": message, "status": status}, status=status)


def action_status(exc: ActionError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Conflict):
        return 409
    if isinstance(exc, NotBookable):
        return 422
    return 400


@web.middleware
async def console_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await _handle(request, handler)
    if response.prepared:  # a stream (the live events) sent its headers already
        return response
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Cache-Control", "no-store")  # static files say otherwise
    return response


async def _handle(request: web.Request, handler: Handler) -> web.StreamResponse:
    route_handler = request.match_info.handler
    try:
        if request.match_info.http_exception is not None:
            raise request.match_info.http_exception
        session = await get_session(request)
        if not getattr(route_handler, ANONYMOUS_ATTR, False):
            manager = await _signed_in(request, session)
            if manager is None:
                return _not_signed_in(request)
            request[MANAGER_KEY] = manager
            if getattr(route_handler, ADMIN_ATTR, False) and not manager.admin:
                return await error_response(request, 403, "Only an admin can do this.")
        if request.method not in ("GET", "HEAD", "OPTIONS") and not await _csrf_ok(request, session):
            log.warning("console.csrf_refused", path=request.path)
            return await error_response(request, 403, "This form has expired (security token): reload the page.")
        return await handler(request)
    except ActionError as exc:
        return await error_response(request, action_status(exc), str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return await error_response(request, exc.status, exc.reason or "Error")
