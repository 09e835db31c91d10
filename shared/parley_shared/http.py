"""aiohttp pieces both services use: JSON errors, request correlation ids, bearer auth, health.

* Every error leaves as ``{"error": {"status": 4xx/5xx, "message": ...}}``; an unhandled
  exception is logged and becomes a 500 without internals -- unless it is infrastructure
  trouble (database or broker away, no pooled connection free in time): then a 503 with
  ``Retry-After``, so that a client (or a provider's webhook delivery) comes back.
* ``X-Correlation-ID`` (or a fresh one) is bound to the log context for the request and echoed.
* Management routes need ``Authorization: Bearer <token>``, one of the named tokens
  (``API_TOKENS``, ``API_TOKEN``; constant-time compare). The token's name is bound to every log
  line of the request (``api_client``) and each request that changes something is logged as
  ``api.action``. Routes marked with :func:`public` (health, metrics, provider webhooks, the
  OpenAPI document) stay open, and so do pages for people marked with :func:`browser_page` (the
  managers' console signs its users in with sessions of its own; such pages are not part of the
  API document).
"""

from __future__ import annotations

import hmac
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware
from pydantic import BaseModel, ValidationError

from parley_shared.broker import is_transient

log = structlog.get_logger("parley.http")
HandlerT = Callable[[web.Request], Awaitable[web.StreamResponse]]
PUBLIC_ATTR = "__parley_public__"
BROWSER_ATTR = "__parley_browser__"
CORRELATION_HEADER = "X-Correlation-ID"


def public(handler: HandlerT) -> HandlerT:
    """Mark a route handler as open (no bearer token)."""
    setattr(handler, PUBLIC_ATTR, True)
    return handler


def browser_page(handler: HandlerT) -> HandlerT:
    """Mark a route handler as a page for people: no bearer token (it checks its own session), and
    left out of ``/openapi.json``."""
    setattr(handler, PUBLIC_ATTR, True)
    setattr(handler, BROWSER_ATTR, True)
    return handler


def is_browser_page(handler: object) -> bool:
    return bool(getattr(handler, BROWSER_ATTR, False))


RETRY_AFTER_S = 2  # what a 503 asks the client to wait


def json_error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": {"status": status, "message": message, **extra}}, status=status)


def json_response(data: Any, status: int = 200) -> web.Response:
    if isinstance(data, BaseModel):
        return web.Response(text=data.model_dump_json(), status=status, content_type="application/json")
    return web.Response(text=json.dumps(data, default=str), status=status, content_type="application/json")


M = TypeVar("M", bound=BaseModel)


async def read_model(request: web.Request, model: type[M]) -> M:
    """Parse the request body as ``model``; a bad body is a 400 with the reasons (never a 500)."""
    try:
        raw = await request.read()
        parsed = model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        raise HTTPError(400, "invalid request body", problems=_problems(exc, "body")) from None
    _refuse_nul(parsed, "invalid request body")
    return parsed


async def read_query(request: web.Request, model: type[M]) -> M:
    """Parse the query string as ``model`` (declare ``extra="forbid"`` to refuse unknown parameters);
    a bad value is a 400 naming the parameter (never a 500). A repeated parameter keeps its last value."""
    try:
        parsed = model.model_validate(dict(request.query))
    except ValidationError as exc:
        raise HTTPError(400, "invalid query parameters", problems=_problems(exc, "query")) from None
    _refuse_nul(parsed, "invalid query parameters")
    return parsed


def _refuse_nul(parsed: BaseModel, message: str) -> None:
    """A NUL character in any text is a 400: PostgreSQL refuses to store it (a 500 otherwise)."""
    field = _nul_field(parsed.model_dump(), "")
    if field is not None:
        raise HTTPError(
            400, message, problems=[{"field": field or "body", "problem": "NUL characters are not accepted"}]
        )


def _nul_field(value: Any, path: str) -> str | None:
    if isinstance(value, str):
        return path if "\x00" in value else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list | tuple) else ()
    for key, item in items:
        found = _nul_field(item, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


def _problems(exc: ValidationError, where: str) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(p) for p in e["loc"]) or where, "problem": e["msg"]}
        for e in exc.errors(include_input=False, include_url=False)[:10]
    ]


class HTTPError(Exception):
    """Raise from a handler to answer with a JSON error (``headers``: e.g. ``Retry-After``)."""

    def __init__(self, status: int, message: str, *, headers: Mapping[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})
        self.extra = extra


@web.middleware
async def error_middleware(request: web.Request, handler: HandlerT) -> web.StreamResponse:
    try:
        return await handler(request)
    except HTTPError as exc:
        response = json_error(exc.status, exc.message, **exc.extra)
        response.headers.update(exc.headers)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.reason if exc.status != 413 else "request body too large"
        return json_error(exc.status, message)
    except Exception as exc:
        if is_transient(exc):
            # The database or broker is away or saturated (a pooled connection not free in time):
            # not the request's fault and not a bug -- the client should come back shortly.
            log.warning("http.unavailable", path=request.path, method=request.method, exc_info=exc)
            response = json_error(503, "temporarily unavailable, try again shortly")
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
            return response
        log.exception("http.unhandled_error", path=request.path, method=request.method)
        return json_error(500, "internal error")


@web.middleware
async def correlation_middleware(request: web.Request, handler: HandlerT) -> web.StreamResponse:
    incoming = request.headers.get(CORRELATION_HEADER, "")
    correlation_id = incoming if 0 < len(incoming) <= 100 and incoming.isprintable() else str(uuid.uuid4())
    structlog.contextvars.bind_contextvars(correlation_id=correlation_id)
    started = time.perf_counter()
    try:
        response = await handler(request)
        response.headers[CORRELATION_HEADER] = correlation_id
        return response
    finally:
        log.debug(
            "http.request",
            method=request.method,
            path=request.path,
            ms=round((time.perf_counter() - started) * 1000, 2),
        )
        structlog.contextvars.unbind_contextvars("correlation_id")


API_CLIENT = web.RequestKey("api_client", str)  # the name of the token a request came with
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


def bearer_auth_middleware(
    tokens: Mapping[str, str],
) -> Middleware:
    """Bearer auth against named tokens (none configured: open, as in development)."""
    expected = [(name, f"Bearer {token}".encode()) for name, token in tokens.items()]

    @web.middleware
    async def middleware(request: web.Request, handler: HandlerT) -> web.StreamResponse:
        route_handler = getattr(request.match_info, "handler", None)
        if not expected or getattr(route_handler, PUBLIC_ATTR, False) or request.match_info.http_exception:
            return await handler(request)
        # aiohttp keeps bytes that are not UTF-8 as surrogates: turn them back, never fail on them.
        given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
        client = None
        for name, value in expected:  # every token is compared, whichever matches
            if hmac.compare_digest(given, value):
                client = name
        if client is None:
            reason = "missing bearer token" if not given else "invalid bearer token"
            return json_error(401, reason, hint="send Authorization: Bearer <API_TOKEN>")
        request[API_CLIENT] = client
        structlog.contextvars.bind_contextvars(api_client=client)
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except (HTTPError, web.HTTPException) as exc:
            status = exc.status
            raise
        finally:
            if request.method not in _READS:  # who changed what (the log line carries api_client)
                resource = request.match_info.route.resource
                route = resource.canonical if resource is not None else request.path
                log.info("api.action", api_client=client, method=request.method, route=route, status=status)
            structlog.contextvars.unbind_contextvars("api_client")

    return middleware


def body_limit_middleware(max_body_bytes: int) -> Middleware:
    """413 for a declared body over the limit on EVERY route, before auth and the handler.

    aiohttp's ``client_max_size`` only acts when a handler reads the body; a route that never
    reads it (``POST .../handback``) would otherwise answer 200 to a 100 MB upload."""

    @web.middleware
    async def middleware(request: web.Request, handler: HandlerT) -> web.StreamResponse:
        if request.content_length is not None and request.content_length > max_body_bytes:
            return json_error(413, "request body too large")
        return await handler(request)

    return middleware


def base_app(*, tokens: Mapping[str, str], max_body_bytes: int) -> web.Application:
    """An application with the shared middlewares (outermost first); ``tokens``: the management
    API's bearer tokens by name (empty: the routes are open)."""
    return web.Application(
        client_max_size=max_body_bytes,
        middlewares=[
            correlation_middleware,
            error_middleware,
            body_limit_middleware(max_body_bytes),
            bearer_auth_middleware(tokens),
        ],
    )


HealthCheck = Callable[[], Awaitable[dict[str, Any]]]


def health_handler(checks: dict[str, HealthCheck]) -> HandlerT:
    """``GET /health``: 200 when every check says ok, 503 otherwise, with each check's detail."""

    @public
    async def handler(_request: web.Request) -> web.Response:
        results: dict[str, Any] = {}
        for name, check in checks.items():
            try:
                results[name] = await check()
            except Exception as exc:
                results[name] = {"ok": False, "error": type(exc).__name__}
        ok = all(bool(r.get("ok")) for r in results.values())
        return json_response({"status": "ok" if ok else "degraded", "checks": results}, status=200 if ok else 503)

    return handler
