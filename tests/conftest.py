"""Fixtures on the real engines (PostgreSQL and RabbitMQ, see tests/support/infra.py) and the test tiers.

Every test gets one tier marker, from where it lives and what it uses:

* ``e2e`` -- ``tests/e2e`` and ``tests/reliability``: both services as processes, over HTTP and
  the broker (and a real browser);
* ``integration`` -- a test that uses the real engines (the ``amqp_*`` or ``*database_url``
  fixtures);
* ``unit`` -- everything else: no PostgreSQL, no RabbitMQ, seconds for all of them
  (``pytest -m unit``).
"""

from __future__ import annotations

import asyncio
import inspect
import sys
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support import infra

ENGINE_FIXTURES = frozenset({"amqp_vhost", "amqp_url", "database_url", "pg_database_url"})
END_TO_END_DIRS = frozenset({"e2e", "reliability"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if inspect.iscoroutinefunction(getattr(item, "function", None)):
            item.fixturenames.append("_tasks_shown_before_timeout")
        parts = set(item.path.parts)
        if parts & END_TO_END_DIRS:
            item.add_marker(pytest.mark.e2e)
        elif ENGINE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
        else:
            item.add_marker(pytest.mark.unit)


@pytest.fixture
async def _tasks_shown_before_timeout(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Shortly before the run's timeout ends a hung asynchronous test, print where each of its
    tasks waits (the timeout's own dump shows threads only, and the loop thread is idle)."""
    marker = request.node.get_closest_marker("timeout")  # a test's own timeout wins over the run's
    timeout = float(marker.args[0] if marker and marker.args else request.config.getini("timeout") or 0)

    async def watch() -> None:
        await asyncio.sleep(max(timeout - 10, timeout / 2))
        print(f"== {request.node.nodeid}: tasks still waiting", file=sys.stderr)
        for task in asyncio.all_tasks():
            if task is not asyncio.current_task():
                task.print_stack(limit=12, file=sys.stderr)

    watcher = asyncio.create_task(watch()) if timeout > 0 else None
    yield
    if watcher is not None:
        watcher.cancel()


@pytest.fixture(scope="session")
def amqp_vhost() -> Iterator[str]:
    """This run's own RabbitMQ vhost (created for the run, deleted after it)."""
    infra.ensure_vhost()
    yield infra.amqp_url()
    infra.delete_vhost()


@pytest.fixture(scope="session", autouse=True)
def _drop_test_databases() -> Iterator[None]:
    yield
    asyncio.run(infra.drop_created_databases())


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
        yield await infra.recreate_database(request.node.name.split("[")[0][-40:])


@pytest.fixture
async def pg_database_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    yield await infra.recreate_database("pg_" + request.node.name.split("[")[0][-40:])
