"""Fixtures on the real engines: PostgreSQL and RabbitMQ (see tests/support/infra.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support import infra


@pytest.fixture(scope="session")
def amqp_vhost() -> str:
    infra.ensure_vhost()
    return infra.amqp_url()


@pytest.fixture
async def amqp_url(amqp_vhost: str) -> AsyncIterator[str]:
    """A vhost whose Parley topology is freshly declared and empty."""
    await infra.reset_topology(amqp_vhost)
    yield amqp_vhost


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    """An empty database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/test.db"
    else:
        name = "parley_test_" + request.node.name.split("[")[0][-40:].lower()
        yield await infra.recreate_database(name)


@pytest.fixture
async def pg_database_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    name = "parley_test_pg_" + request.node.name.split("[")[0][-40:].lower()
    yield await infra.recreate_database(name)
