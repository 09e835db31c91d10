"""The shared error middleware: a bug is a 500 without internals; infrastructure trouble is a 503
with Retry-After (a provider or client retries), never a 500."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.exc import TimeoutError as PoolTimeout

from parley_shared.broker import PublishError
from parley_shared.http import RETRY_AFTER_S, base_app, public


async def _client(failure: Exception) -> TestClient:
    app = base_app(token=None, max_body_bytes=1024)

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
