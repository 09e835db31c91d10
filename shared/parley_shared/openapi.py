"""The OpenAPI 3.1 document of a service, built from its aiohttp router.

Every registered route appears (``GET`` routes' automatic ``HEAD`` twins and pages for people,
:func:`parley_shared.http.browser_page`, excepted); what a
route says about itself comes from :func:`describe` on its handler::

    @describe("List contacts", query=ContactQuery, responses={200: ContactPage}, tags=("contacts",))
    async def list_contacts(request: web.Request) -> web.Response: ...

Pydantic models give the JSON schemas (collected once under ``components.schemas``). Routes
marked :func:`parley_shared.http.public` declare no security; every other route declares the
bearer scheme and a 401 answer, which is what the auth middleware enforces. A route without
:func:`describe` still appears, with a minimal entry flagged ``x-parley-undescribed`` (a test
lists those). ``service_app`` serves the document at ``GET /openapi.json`` for every service.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from parley_shared.http import PUBLIC_ATTR, is_browser_page, public

OPENAPI_ATTR = "__parley_openapi__"
SECURITY_SCHEME = "bearer"
_METHODS = ("GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE")
_PATH_PARAM = re.compile(r"\{([^}/:]+)\}")
_REF_PREFIX = "#/components/schemas/"

H = TypeVar("H", bound=Callable[..., Any])


class ErrorDetail(BaseModel):
    status: int
    message: str


class ErrorResponse(BaseModel):
    """Every error leaves in this shape (``parley_shared.http``); some carry extra keys (``problems``, ``hint``)."""

    error: ErrorDetail


@dataclass(frozen=True)
class Response:
    """One documented answer: a description, and a pydantic model or another media type."""

    description: str
    model: type[BaseModel] | None = None
    media_type: str = "application/json"


@dataclass(frozen=True)
class Operation:
    summary: str
    description: str | None = None
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    responses: Mapping[int, Response] = field(default_factory=dict)
    path_params: Mapping[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()


def describe(
    summary: str,
    *,
    description: str | None = None,
    query: type[BaseModel] | None = None,
    body: type[BaseModel] | None = None,
    responses: Mapping[int, type[BaseModel] | Response | str] | None = None,
    path_params: Mapping[str, str] | None = None,
    tags: tuple[str, ...] = (),
) -> Callable[[H], H]:
    """Document a route handler. ``responses`` maps a status to a model, a :class:`Response` or a description.

    ``query``: a pydantic model whose fields are the query parameters (parse the request with
    ``parley_shared.http.read_query`` and the same model). ``path_params``: descriptions of the
    ``{name}`` parts of the path (they are declared whether described or not).
    """
    normalised: dict[int, Response] = {}
    for status, spec in (responses or {}).items():
        if isinstance(spec, Response):
            normalised[status] = spec
        elif isinstance(spec, str):
            normalised[status] = Response(spec)
        else:
            normalised[status] = Response(_first_line(spec.__doc__) or spec.__name__, spec)
    operation = Operation(
        summary=summary,
        description=description,
        query=query,
        body=body,
        responses=normalised,
        path_params=dict(path_params or {}),
        tags=tags,
    )

    def decorate(handler: H) -> H:
        setattr(handler, OPENAPI_ATTR, operation)
        return handler

    return decorate


def operation_of(handler: Any) -> Operation | None:
    return getattr(handler, OPENAPI_ATTR, None)


def is_public(handler: Any) -> bool:
    return bool(getattr(handler, PUBLIC_ATTR, False))


@dataclass(frozen=True)
class RouteInfo:
    method: str
    path: str  # OpenAPI form: ``/contacts/{phone}`` (aiohttp's regex parts removed)
    handler: Any


def registered_routes(router: web.UrlDispatcher) -> list[RouteInfo]:
    """Every (method, path) of the API, without the ``HEAD`` routes aiohttp adds for ``GET`` and
    without pages for people (the console)."""
    found: dict[tuple[str, str], RouteInfo] = {}
    for route in router.routes():
        method = route.method.upper()
        if method not in _METHODS or route.resource is None or is_browser_page(route.handler):
            continue
        path = route.resource.canonical
        found.setdefault((method, path), RouteInfo(method, path, route.handler))
    return [
        info
        for (method, path), info in sorted(found.items(), key=lambda kv: (kv[0][1], kv[0][0]))
        if not (method == "HEAD" and ("GET", path) in found)
    ]


def build_openapi(
    router: web.UrlDispatcher, *, title: str, version: str, description: str | None = None
) -> dict[str, Any]:
    """The OpenAPI 3.1 document for every route of ``router``."""
    routes = registered_routes(router)
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorResponse, "serialization")]
    for info in routes:
        op = operation_of(info.handler)
        if op is None:
            continue
        if op.body is not None:
            wanted.append((op.body, "validation"))
        wanted += [(r.model, "serialization") for r in op.responses.values() if r.model is not None]
    refs, defs = models_json_schema(list(dict.fromkeys(wanted)), ref_template=_REF_PREFIX + "{model}")
    schemas: dict[str, Any] = defs.get("$defs", {})

    def ref(model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        return dict(refs[(model, mode)])

    paths: dict[str, dict[str, Any]] = {}
    for info in routes:
        paths.setdefault(info.path, {})[info.method.lower()] = _operation(info, ref, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, **({"description": description} if description else {})},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Authorization: Bearer <API_TOKEN> (the service's API_TOKEN setting)",
                }
            },
        },
    }


def _operation(
    info: RouteInfo, ref: Callable[[type[BaseModel], JsonSchemaMode], dict[str, Any]], schemas: dict[str, Any]
) -> dict[str, Any]:
    op = operation_of(info.handler)
    secured = not is_public(info.handler)
    out: dict[str, Any] = {"operationId": _operation_id(info)}
    if op is None:
        doc = _first_line(getattr(info.handler, "__doc__", None))
        out["summary"] = doc or f"{info.method} {info.path}"
        out["x-parley-undescribed"] = True
        op = Operation(summary=out["summary"])
    else:
        out["summary"] = op.summary
        if op.description:
            out["description"] = op.description
        if op.tags:
            out["tags"] = list(op.tags)
    parameters = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string"},
            **({"description": op.path_params[name]} if name in op.path_params else {}),
        }
        for name in _PATH_PARAM.findall(info.path)
    ]
    if op.query is not None:
        parameters += _query_parameters(op.query, schemas)
    if parameters:
        out["parameters"] = parameters
    if op.body is not None:
        out["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref(op.body, "validation")}}}
    responses: dict[str, Any] = {}
    for status, spec in sorted(op.responses.items()):
        entry: dict[str, Any] = {"description": spec.description}
        if spec.model is not None:
            entry["content"] = {spec.media_type: {"schema": ref(spec.model, "serialization")}}
        elif spec.media_type != "application/json":
            entry["content"] = {spec.media_type: {"schema": {"type": "string"}}}
        responses[str(status)] = entry
    if not any(s.startswith("2") for s in responses):
        responses["200"] = {"description": "OK"}
    error = {"application/json": {"schema": ref(ErrorResponse, "serialization")}}
    if (parameters or op.body is not None) and "400" not in responses:
        responses["400"] = {"description": "Invalid parameters or body", "content": error}
    if secured:
        responses["401"] = {"description": "Missing or invalid bearer token", "content": error}
    if op.body is not None and "413" not in responses:  # the body limit holds on every route, before auth
        responses["413"] = {"description": "Request body over MAX_BODY_BYTES", "content": error}
    out["responses"] = dict(sorted(responses.items()))
    out["security"] = [{SECURITY_SCHEME: []}] if secured else []
    return out


def _query_parameters(model: type[BaseModel], schemas: dict[str, Any]) -> list[dict[str, Any]]:
    """One parameter per field of the query model (by alias); its nested definitions join the components."""
    schema = model.model_json_schema(ref_template=_REF_PREFIX + "{model}")
    for name, definition in schema.get("$defs", {}).items():
        schemas.setdefault(name, definition)
    required = set(schema.get("required", ()))
    params = []
    for name, prop in schema.get("properties", {}).items():
        prop = {k: v for k, v in prop.items() if k not in ("title", "description")}
        optional = [branch for branch in prop.get("anyOf", ()) if branch != {"type": "null"}]
        if len(optional) == 1 and len(prop["anyOf"]) == 2:  # absent, not null: drop the null branch
            prop = {**{k: v for k, v in prop.items() if k != "anyOf"}, **optional[0]}
        if prop.get("default", 0) is None:
            del prop["default"]
        description = schema["properties"][name].get("description")
        params.append(
            {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": prop,
                **({"description": description} if description else {}),
            }
        )
    return params


def _operation_id(info: RouteInfo) -> str:
    slug = re.sub(r"[^0-9a-zA-Z]+", "_", info.path).strip("_") or "root"
    return f"{info.method.lower()}_{slug}"


def _first_line(doc: str | None) -> str:
    return doc.strip().splitlines()[0].strip() if doc and doc.strip() else ""


def undescribed_routes(router: web.UrlDispatcher) -> list[str]:
    """``METHOD /path`` of every route whose handler has no :func:`describe`."""
    return [f"{r.method} {r.path}" for r in registered_routes(router) if operation_of(r.handler) is None]


def openapi_handler(*, title: str, description: str | None = None) -> Callable[[web.Request], Any]:
    """``GET /openapi.json`` (public). Built on first request, once the router is frozen."""
    cache: dict[Literal["doc"], dict[str, Any]] = {}

    @public
    @describe("This service's OpenAPI 3.1 document", tags=("operations",), responses={200: "The OpenAPI document"})
    async def handler(request: web.Request) -> web.Response:
        if "doc" not in cache:
            cache["doc"] = build_openapi(request.app.router, title=title, version=_version(), description=description)
        return web.json_response(cache["doc"])

    return handler


def _version() -> str:
    try:
        return metadata.version("parley-shared")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "0.0.0"
