"""Signing in and out, and the managers' accounts page (admins only).

``POST /console/sign-in`` checks the throttle first (per login and per address, shared by every
replica), then the argon2 hash; success starts a fresh session (new identity, new CSRF token)
and goes back to the page the manager came from (``next``, a console path only).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from aiohttp_session import get_session

from agent_service.console.accounts import AccountError, Role
from agent_service.console.web import (
    admin_only,
    anonymous,
    console_of,
    csrf_token,
    is_htmx,
    manager_of,
    render,
    safe_next,
    start_session,
)

MAX_FIELD = 200


def _address(request: web.Request) -> str:
    return (request.remote or "unknown")[:64]


def _wait_text(until: datetime, now: datetime) -> str:
    minutes = max(1, int((until - now).total_seconds() + 59) // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


@anonymous
async def sign_in_page(request: web.Request) -> web.Response:
    await csrf_token(request)
    context = {"next": safe_next(request.query.get("next")), "error": None, "login": ""}
    return await render("sign_in.html", request, context)


@anonymous
async def sign_in(request: web.Request) -> web.StreamResponse:
    console = console_of(request)
    form = await request.post()
    login = str(form.get("login", ""))[:MAX_FIELD]
    password = str(form.get("password", ""))[:MAX_FIELD]
    target = safe_next(str(form.get("next", "")))
    address = _address(request)
    context: dict[str, Any] = {"next": target, "login": login}
    until = await console.accounts.throttled(login, address)
    if until is not None:
        wait = _wait_text(until, console.desk.clock.now())
        context["error"] = f"Too many failed sign-ins. Try again in {wait}."
        response = await render("sign_in.html", request, context, status=429)
        response.headers["Retry-After"] = str(max(1, int((until - console.desk.clock.now()).total_seconds())))
        return response
    manager = await console.accounts.sign_in(login, password, address) if login and password else None
    if manager is None:
        context["error"] = "Wrong login or password."
        return await render("sign_in.html", request, context, status=401)
    await start_session(request, manager)
    raise web.HTTPSeeOther(target)


async def sign_out(request: web.Request) -> web.StreamResponse:
    session = await get_session(request)
    session.invalidate()
    if is_htmx(request):
        return web.Response(status=204, headers={"HX-Redirect": "/console/sign-in"})
    raise web.HTTPSeeOther("/console/sign-in")


async def whoami(request: web.Request) -> web.Response:
    """Whether the session still works (the page asks when its live stream fails)."""
    manager = manager_of(request)
    return web.json_response({"id": manager.id, "name": manager.display_name, "role": manager.role.value})


# ---------------------------------------------------------------------------- accounts (admins)


async def _managers_page(request: web.Request, *, error: str | None = None, notice: str | None = None) -> web.Response:
    accounts = await console_of(request).accounts.list()
    context = {"accounts": accounts, "error": error, "notice": notice, "roles": [Role.MANAGER.value, Role.ADMIN.value]}
    return await render("managers.html", request, context, status=400 if error else 200)


@admin_only
async def managers_page(request: web.Request) -> web.Response:
    return await _managers_page(request)


@admin_only
async def add_manager(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    try:
        role = Role(str(form.get("role", "manager")))
        created = await console_of(request).accounts.add(
            str(form.get("login", ""))[:MAX_FIELD],
            str(form.get("display_name", ""))[:MAX_FIELD],
            str(form.get("password", ""))[:MAX_FIELD],
            role,
        )
    except (AccountError, ValueError) as exc:
        return await _managers_page(request, error=str(exc))
    return await _managers_page(request, notice=f"Added {created.login}.")


@admin_only
async def set_active(request: web.Request) -> web.StreamResponse:
    raw = request.match_info["manager_id"]
    active = request.match_info["state"] == "enable"
    if not raw.isdigit():
        raise web.HTTPNotFound()
    if int(raw) == manager_of(request).id and not active:
        return await _managers_page(request, error="You cannot disable your own account.")
    try:
        changed = await console_of(request).accounts.set_active(int(raw), active)
    except AccountError as exc:
        return await _managers_page(request, error=str(exc))
    return await _managers_page(request, notice=f"{'Enabled' if active else 'Disabled'} {changed.login}.")


@admin_only
async def set_password(request: web.Request) -> web.StreamResponse:
    raw = request.match_info["manager_id"]
    if not raw.isdigit():
        raise web.HTTPNotFound()
    form = await request.post()
    try:
        changed = await console_of(request).accounts.set_password(int(raw), str(form.get("password", ""))[:MAX_FIELD])
    except AccountError as exc:
        return await _managers_page(request, error=str(exc))
    return await _managers_page(request, notice=f"New password set for {changed.login}; their sessions ended.")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/sign-in", sign_in_page, name="sign_in")
    app.router.add_post("/sign-in", sign_in)
    app.router.add_post("/sign-out", sign_out)
    app.router.add_get("/whoami", whoami)
    app.router.add_get("/managers", managers_page, name="managers")
    app.router.add_post("/managers", add_manager)
    app.router.add_post("/managers/{manager_id}/{state:enable|disable}", set_active)
    app.router.add_post("/managers/{manager_id}/password", set_password)
