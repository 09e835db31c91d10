"""The shared error middleware: a bug is a 500 without internals; infrastructure trouble is a 503
with Retry-After (a provider or client retries), never a 500."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.exc import TimeoutError as PoolTimeout

from parley_shared.broker import PublishError
from parley_shared.http import RETRY_AFTER_S, base_app, public, read_model, read_query


async def _client(failure: Exception) -> TestClient:
    app = base_app(tokens={}, max_body_bytes=1024)

    @public
    async def fail(_request: web.Request) -> web.Response:
        raise failure

    app.router.add_get("/fail", fail)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_a_pool_timeout_or_an_unreachable_broker_is_a_503_with_retry_after() -> None:
    for failure in (
        PoolTimeout("QueuePool limit of size 10 overflow 10 reached"),
        PublishError("not connected"),
        ConnectionRefusedError(),
    ):
        client = await _client(failure)
        try:
            response = await client.get("/fail")
            assert response.status == 503, failure
            assert response.headers["Retry-After"] == str(RETRY_AFTER_S)
            body = await response.json()
            assert body == {"error": {"status": 503, "message": "temporarily unavailable, try again shortly"}}
        finally:
            await client.close()


async def test_a_bug_is_a_500_that_shows_no_internals() -> None:
    client = await _client(KeyError("secret-column"))
    try:
        response = await client.get("/fail")
        assert response.status == 500 and "Retry-After" not in response.headers
        assert "secret" not in await response.text()
    finally:
        await client.close()


def test_a_deadlock_or_serialization_failure_is_transient_other_database_errors_are_not() -> None:
    from sqlalchemy.exc import DBAPIError, IntegrityError

    from parley_shared.broker import is_transient

    class Orig(Exception):
        def __init__(self, sqlstate: str) -> None:
            super().__init__(sqlstate)
            self.sqlstate = sqlstate

    assert is_transient(DBAPIError("UPDATE ...", {}, Orig("40P01")))  # deadlock detected
    assert is_transient(DBAPIError("UPDATE ...", {}, Orig("40001")))  # serialization failure
    assert not is_transient(IntegrityError("INSERT ...", {}, Orig("23505")))  # unique violation: a real conflict
    assert not is_transient(DBAPIError("INSERT ...", {}, Orig("21000")))  # cardinality violation


async def raw_status(client: TestClient, request: bytes) -> int:
    """Send ``request`` as raw bytes (a client library would refuse to send such headers)."""
    assert client.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    try:
        writer.write(request)
        await writer.drain()
        status_line = await reader.readline()
    finally:
        writer.close()
    return int(status_line.split()[1])


async def test_an_authorization_header_that_is_not_utf8_is_a_401_not_a_500() -> None:
    app = base_app(tokens={"test": "the-right-token-0123456789"}, max_body_bytes=1024)

    async def protected(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app.router.add_get("/protected", protected)
    async with TestClient(TestServer(app)) as client:
        for value in (b"Bearer \xff\xfe\xfd", b"\xc3\x28", b"Bearer the-right-token-0123456789\x80"):
            request = b"GET /protected HTTP/1.1\r\nHost: x\r\nAuthorization: " + value + b"\r\n\r\n"
            assert await raw_status(client, request) == 401, value


async def test_a_body_nested_deeper_than_the_parser_goes_is_a_400() -> None:
    from pydantic import BaseModel

    class Body(BaseModel):
        text: object = None

    app = base_app(tokens={}, max_body_bytes=1024 * 1024)

    @public
    async def accept(request: web.Request) -> web.Response:
        await read_model(request, Body)
        return web.json_response({"ok": True})

    app.router.add_post("/accept", accept)
    async with TestClient(TestServer(app)) as client:
        response = await client.post("/accept", data=b'{"text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
        assert response.status == 400


async def test_a_nul_character_in_a_body_or_a_query_is_a_400_naming_the_field() -> None:
    """PostgreSQL refuses NUL in text: an operator message or a search holding one was a 500."""
    from pydantic import BaseModel

    class Note(BaseModel):
        text: str
        tags: list[str] = []

    class Search(BaseModel):
        q: str | None = None

    app = base_app(tokens={}, max_body_bytes=1024 * 1024)

    @public
    async def accept(request: web.Request) -> web.Response:
        await read_model(request, Note)
        await read_query(request, Search)
        return web.json_response({"ok": True})

    app.router.add_post("/accept", accept)
    async with TestClient(TestServer(app)) as client:
        assert (await client.post("/accept", json={"text": "fine"})).status == 200
        for body, query, field in (
            ({"text": "a\u0000b"}, "", "text"),
            ({"text": "ok", "tags": ["x", "\u0000"]}, "", "tags.1"),
            ({"text": "ok"}, "?q=%00", "q"),
        ):
            response = await client.post(f"/accept{query}", json=body)
            assert response.status == 400, body
            problems = (await response.json())["error"]["problems"]
            assert problems == [{"field": field, "problem": "NUL characters are not accepted"}]
