"""``/openapi.json`` tells the truth about both services, and every management route wants the token.

The route tests read the live router and the served document, so routes added later are
covered without touching this file.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import BaseModel, ConfigDict, Field

from agent_service.app import create_app as create_agent
from agent_service.settings import AgentSettings
from gateway.app import create_app as create_gateway
from gateway.settings import GatewaySettings
from parley_shared.http import base_app, is_browser_page, json_response, public, read_model, read_query
from parley_shared.openapi import Response, build_openapi, describe, undescribed_routes

TOKEN = "openapi-test-token-0123456789"
SERVICES = ["gateway", "agent"]
# A value for each path parameter name; anything else gets "1".
PATH_VALUES = {"phone": "+77010000001"}


def make_app(service: str, amqp_url: str, database_url: str) -> web.Application:
    if service == "gateway":
        return create_gateway(GatewaySettings(amqp_url=amqp_url, database_url=database_url, api_token=TOKEN))
    return create_agent(AgentSettings(amqp_url=amqp_url, database_url=database_url, api_token=TOKEN))


@pytest.fixture(params=SERVICES)
async def served(request: pytest.FixtureRequest, amqp_url: str, tmp_path: Any) -> AsyncIterator[TestClient]:
    app = make_app(request.param, amqp_url, f"sqlite+aiosqlite:///{tmp_path}/{request.param}.db")
    async with TestClient(TestServer(app)) as client:
        yield client


def router_routes(app: web.Application) -> set[tuple[str, str]]:
    """(METHOD, path) straight from aiohttp, without the HEAD twins of GET routes and the console's pages."""
    pairs = {
        (r.method, r.resource.canonical)
        for r in app.router.routes()
        if r.resource is not None and not is_browser_page(r.handler)
    }
    return {(m, p) for m, p in pairs if not (m == "HEAD" and ("GET", p) in pairs)}


def doc_operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield method.upper(), path, op


def concrete(path: str) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: PATH_VALUES.get(m.group(1), "1"), path)


async def test_document_lists_exactly_the_registered_routes(served: TestClient) -> None:
    response = await served.get("/openapi.json")  # public: no token
    assert response.status == 200
    doc = await response.json()
    assert doc["openapi"] == "3.1.0"
    documented = {(m, p) for m, p, _ in doc_operations(doc)}
    registered = router_routes(served.app)
    assert documented - registered == set(), "documented but not registered"
    assert registered - documented == set(), "registered but missing from /openapi.json"
    assert {("GET", "/health"), ("GET", "/metrics"), ("GET", "/openapi.json")} <= documented
    if "agent" in doc["info"]["title"]:
        assert {("GET", "/contacts"), ("GET", "/contacts/export.csv"), ("PATCH", "/contacts/{phone}")} <= documented
        assert {("GET", "/analytics"), ("GET", "/stats")} <= documented


async def test_every_management_route_refuses_a_missing_or_wrong_token(served: TestClient) -> None:
    doc = await (await served.get("/openapi.json")).json()
    secured = [(m, p) for m, p, op in doc_operations(doc) if op["security"]]
    assert secured or "gateway" in doc["info"]["title"], "the agent has management routes"
    for method, path in secured:
        url = concrete(path)
        for headers, message in (
            ({}, "missing bearer token"),
            ({"Authorization": f"Bearer {TOKEN}x"}, "invalid bearer token"),
            ({"Authorization": TOKEN}, "invalid bearer token"),
        ):
            response = await served.request(method, url, headers=headers)
            assert response.status == 401, (method, path, headers)
            body = await response.json()
            assert body["error"]["status"] == 401 and body["error"]["message"] == message, (method, path)


async def test_public_routes_declare_no_security_and_answer_without_a_token(served: TestClient) -> None:
    doc = await (await served.get("/openapi.json")).json()
    public_ops = [(m, p, op) for m, p, op in doc_operations(doc) if not op["security"]]
    assert {("GET", "/health"), ("GET", "/metrics"), ("GET", "/openapi.json")} <= {(m, p) for m, p, _ in public_ops}
    for method, path, op in public_ops:
        assert "401" not in op["responses"], path
        if method == "GET":  # calling public POSTs (webhooks) could have effects; GETs are safe
            response = await served.get(concrete(path))
            assert response.status != 401, path


async def test_document_is_well_formed(served: TestClient) -> None:
    doc = await (await served.get("/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "Authorization: Bearer <API_TOKEN> (the service's API_TOKEN setting)",
    }

    def refs(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if "$ref" in node:
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for ref in refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    ids = [op["operationId"] for _, _, op in doc_operations(doc)]
    assert len(ids) == len(set(ids))
    for method, path, op in doc_operations(doc):
        declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"\{([^}]+)\}", path)), (method, path)
        assert any(status.startswith("2") for status in op["responses"]), (method, path)
        assert all(r.get("description") for r in op["responses"].values()), (method, path)
        if op["security"]:
            assert op["security"] == [{"bearer": []}] and "401" in op["responses"], (method, path)


@pytest.mark.parametrize("service", SERVICES)
def test_every_route_is_described(service: str, tmp_path: Any) -> None:
    """Routes without ``@describe`` appear with a minimal entry; this lists them so they get one."""
    app = make_app(service, "amqp://guest:guest@127.0.0.1:5672/unused", f"sqlite+aiosqlite:///{tmp_path}/x.db")
    assert undescribed_routes(app.router) == [], "add @describe(...) (parley_shared.openapi) to these handlers"


# ------------------------------------------------------------------ the builder on a toy app


class Filters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["a", "b"] | None = Field(None, description="Which kind")
    limit: int = Field(10, ge=1, le=100)


class ThingIn(BaseModel):
    name: str = Field(min_length=1)


class ThingOut(BaseModel):
    """One thing."""

    id: int
    name: str


def toy_app() -> web.Application:
    app = base_app(tokens={"test": TOKEN}, max_body_bytes=10_000)

    @describe("List things", query=Filters, responses={200: ThingOut}, tags=("things",))
    async def list_things(request: web.Request) -> web.Response:
        filters = await read_query(request, Filters)
        return json_response({"kind": filters.kind, "limit": filters.limit})

    @describe(
        "Rename a thing",
        body=ThingIn,
        path_params={"thing_id": "The thing's id"},
        responses={200: ThingOut, 404: "No such thing"},
    )
    async def rename(request: web.Request) -> web.Response:
        body = await read_model(request, ThingIn)
        return json_response(ThingOut(id=int(request.match_info["thing_id"]), name=body.name))

    @public
    @describe("Export", responses={200: Response("CSV", media_type="text/csv")})
    async def export(_request: web.Request) -> web.Response:
        return web.Response(text="a,b\n", content_type="text/csv")

    async def undocumented(_request: web.Request) -> web.Response:
        """Says hello."""
        return json_response({})

    app.router.add_get("/things", list_things)
    app.router.add_patch(r"/things/{thing_id:\d+}", rename)
    app.router.add_get("/things/export.csv", export)
    app.router.add_route("HEAD", "/ping", undocumented)
    app.router.add_delete("/ping", undocumented)
    return app


def test_builder_documents_query_body_responses_and_security() -> None:
    doc = build_openapi(toy_app().router, title="toy", version="1")
    assert set(doc["paths"]) == {"/things", "/things/{thing_id}", "/things/export.csv", "/ping"}
    assert set(doc["paths"]["/things"]) == {"get"}  # the automatic HEAD twin is left out
    assert set(doc["paths"]["/ping"]) == {"head", "delete"}  # an explicit HEAD is a route of its own

    listing = doc["paths"]["/things"]["get"]
    params = {p["name"]: p for p in listing["parameters"]}
    assert params["kind"]["in"] == "query" and not params["kind"]["required"]
    assert params["kind"]["description"] == "Which kind"
    assert params["kind"]["schema"] == {"enum": ["a", "b"], "type": "string"}  # optional, not nullable
    assert params["limit"]["schema"]["maximum"] == 100 and params["limit"]["schema"]["default"] == 10
    assert listing["security"] == [{"bearer": []}]
    assert listing["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ThingOut"
    }
    assert listing["responses"]["200"]["description"] == "One thing."
    assert set(listing["responses"]) == {"200", "400", "401"}
    assert listing["tags"] == ["things"]

    rename = doc["paths"]["/things/{thing_id}"]["patch"]
    assert rename["parameters"] == [
        {
            "name": "thing_id",
            "in": "path",
            "required": True,
            "schema": {"type": "string"},
            "description": "The thing's id",
        }
    ]
    assert rename["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ThingIn"}
    assert rename["responses"]["404"] == {"description": "No such thing"}
    assert "413" in rename["responses"] and "413" not in listing["responses"]  # a body can be too large
    assert doc["components"]["schemas"]["ThingIn"]["properties"]["name"]["minLength"] == 1

    export = doc["paths"]["/things/export.csv"]["get"]
    assert export["security"] == [] and "401" not in export["responses"]
    assert export["responses"]["200"]["content"] == {"text/csv": {"schema": {"type": "string"}}}

    ping = doc["paths"]["/ping"]["delete"]
    assert ping["x-parley-undescribed"] is True and ping["summary"] == "Says hello."
    assert undescribed_routes(toy_app().router) == ["DELETE /ping", "HEAD /ping"]


async def test_read_query_answers_400_naming_the_parameter() -> None:
    async with TestClient(TestServer(toy_app())) as client:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        ok = await client.get("/things?kind=b&limit=5", headers=auth)
        assert ok.status == 200 and await ok.json() == {"kind": "b", "limit": 5}
        for query, field in (("kind=c", "kind"), ("limit=0", "limit"), ("limit=x", "limit"), ("colour=red", "colour")):
            response = await client.get(f"/things?{query}", headers=auth)
            assert response.status == 400, query
            body = await response.json()
            assert body["error"]["message"] == "invalid query parameters"
            assert [p["field"] for p in body["error"]["problems"]] == [field], query
        csv = await client.get("/things/export.csv")  # public route, regex route next to it
        assert csv.status == 200 and await csv.text() == "a,b\n"
