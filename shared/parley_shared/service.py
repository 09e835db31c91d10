"""The runtime every Parley service stands on: database, broker, outbox relay, workers, health.

A service's composition root (``gateway/app.py``, ``agent_service/app.py``) builds one
:class:`Runtime`, registers its consumers and background workers, and hands
:meth:`Runtime.cleanup_ctx` to aiohttp. Start-up order: database (waiting for it, then
migrations), broker (waiting for it, topology declared), outbox relay, consumers and workers.
Shutdown runs in reverse: stop consuming and let in-flight handlers finish, stop workers,
drain the outbox once more, close the broker, dispose of the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from parley_shared.batching import GroupCommit
from parley_shared.broker import Broker, BrokerUnavailable, Handler, RetryPolicy
from parley_shared.clock import Clock, SystemClock
from parley_shared.db import SessionFactory, create_engine, migrate, ping, session_factory
from parley_shared.outbox import Inbox, Outbox
from parley_shared.settings import CommonSettings
from parley_shared.topology import WorkQueue

log = structlog.get_logger("parley.service")


@dataclass(frozen=True)
class ConsumerSpec:
    queue: WorkQueue
    handler: Handler
    prefetch: int


class Runtime:
    def __init__(
        self,
        *,
        service: str,
        settings: CommonSettings,
        database_url: str,
        migrations: Path,
        outbox_table: Table,
        inbox_table: Table,
        clock: Clock | None = None,
    ) -> None:
        self.service = service
        self.settings = settings
        self.database_url = database_url
        self.migrations = migrations
        self.clock: Clock = clock or SystemClock()
        self.engine: AsyncEngine = create_engine(database_url)
        self.sessions: SessionFactory = session_factory(self.engine)
        self.broker = Broker(
            settings.amqp_url.get_secret_value(),
            service=service,
            startup_timeout_s=settings.startup_timeout_s,
            retry=RetryPolicy(requeue_delay_s=settings.requeue_delay_s),
        )
        self.outbox = Outbox(outbox_table, self.sessions, self.broker, clock=self.clock)
        self.inbox = Inbox(inbox_table, clock=self.clock)
        self._consumers: list[ConsumerSpec] = []
        self._workers: list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]] = []
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._on_stop: list[Callable[[], Awaitable[None]]] = []
        self._group_commits: list[GroupCommit[Any, Any]] = [self.outbox.group_commit]
        self.started = False

    # ---------------------------------------------------------------- registration
    def add_consumer(self, queue: WorkQueue, handler: Handler, *, prefetch: int | None = None) -> None:
        self._consumers.append(ConsumerSpec(queue, handler, prefetch or self.settings.amqp_prefetch))

    def add_worker(self, name: str, factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """A long-running background coroutine (a poller, a scheduler); restarted if it crashes."""
        self._workers.append((name, factory))

    def on_stop(self, callback: Callable[[], Awaitable[None]]) -> None:
        self._on_stop.append(callback)

    def drain_at_stop(self, *groups: GroupCommit[Any, Any]) -> None:
        """Group commits whose running batches shutdown waits for, before the connections close."""
        self._group_commits.extend(groups)

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        await self._wait_for_database()
        if self.settings.db_auto_migrate:
            await migrate(self.engine, self.migrations)
        try:
            await self.broker.connect()
        except BrokerUnavailable:
            await self.engine.dispose()
            raise
        self._spawn("outbox-relay", lambda: self.outbox.run(self.settings.outbox_interval_s))
        for name, factory in self._workers:
            self._spawn(name, factory)
        for spec in self._consumers:
            await self.broker.consume(spec.queue, spec.handler, prefetch=spec.prefetch)
        self.started = True
        log.info("service.started", service=self.service)

    async def stop(self) -> None:
        log.info("service.stopping", service=self.service)
        await self.broker.stop_consuming(self.settings.shutdown_timeout_s)
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        for callback in reversed(self._on_stop):
            with contextlib.suppress(Exception):
                await callback()
        # Latest registered first: the outbox's publishes (registered first) come last, since the
        # other batches end by publishing through it. One budget for all of them.
        deadline = time.monotonic() + self.settings.shutdown_timeout_s
        for group in reversed(self._group_commits):
            await group.drain(max(0.0, deadline - time.monotonic()))
        with contextlib.suppress(Exception):
            await self.outbox.relay_once()
        await self.broker.close()
        await self.engine.dispose()
        self.started = False
        log.info("service.stopped", service=self.service)

    async def cleanup_ctx(self, _app: web.Application) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    def _spawn(self, name: str, factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
        async def supervised() -> None:
            delay = 0.5
            while True:
                try:
                    await factory()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("service.worker_crashed", worker=name, restart_in_s=delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)

        self._tasks[name] = asyncio.create_task(supervised(), name=f"{self.service}:{name}")

    async def _wait_for_database(self) -> None:
        deadline = time.monotonic() + self.settings.startup_timeout_s
        delay = 0.25
        while True:
            try:
                await ping(self.engine)
                return
            except Exception as exc:
                if time.monotonic() + delay > deadline:
                    raise RuntimeError(f"database unreachable: {type(exc).__name__}") from exc
                log.warning("service.database_retry", error=type(exc).__name__, retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    # ---------------------------------------------------------------- health
    async def database_health(self) -> dict[str, Any]:
        try:
            latency = await asyncio.wait_for(ping(self.engine), timeout=5)
        except Exception as exc:
            return {"ok": False, "error": type(exc).__name__}
        return {"ok": True, "latency_ms": round(latency, 2), "dialect": self.engine.dialect.name}

    async def broker_health(self) -> dict[str, Any]:
        return self.broker.health()

    async def outbox_health(self) -> dict[str, Any]:
        pending = await self.outbox.pending()
        oldest = await self.outbox.oldest_pending_at()
        age = (self.clock.now() - oldest).total_seconds() if oldest else 0.0
        # Pending rows are normal for a moment; a backlog older than a minute means the relay is stuck.
        return {"ok": age < 60, "pending": pending, "oldest_pending_age_s": round(age, 1)}

    def workers_health(self) -> dict[str, Any]:
        return {name: not task.done() for name, task in self._tasks.items()}


RUNTIME = web.AppKey("runtime", Runtime)


def service_app(
    *,
    service: str,
    settings: CommonSettings,
    database_url: str,
    migrations: Path,
    outbox_table: Table,
    inbox_table: Table,
    clock: Clock | None = None,
    health_checks: dict[str, Callable[[], Awaitable[dict[str, Any]]]] | None = None,
) -> tuple[web.Application, Runtime]:
    """An aiohttp application wired to a fresh :class:`Runtime`, with ``/health`` and ``/metrics``.

    The service adds its own routes, consumers and workers to what this returns.
    """
    from parley_shared.http import base_app, health_handler
    from parley_shared.metrics import metrics_handler
    from parley_shared.openapi import Response, describe, openapi_handler

    describe_health = describe(
        "Health of the database, the broker, the outbox and the service's own checks",
        tags=("operations",),
        responses={200: "Every check is ok", 503: "At least one check failed (each check's detail in the body)"},
    )
    describe_metrics = describe(
        "Prometheus metrics",
        tags=("operations",),
        responses={200: Response("Prometheus text exposition format", media_type="text/plain")},
    )

    app = base_app(tokens=settings.api_clients(), max_body_bytes=settings.max_body_bytes)
    runtime = Runtime(
        service=service,
        settings=settings,
        database_url=database_url,
        migrations=migrations,
        outbox_table=outbox_table,
        inbox_table=inbox_table,
        clock=clock,
    )
    app[RUNTIME] = runtime
    app.cleanup_ctx.append(runtime.cleanup_ctx)
    checks = {
        "database": runtime.database_health,
        "broker": runtime.broker_health,
        "outbox": runtime.outbox_health,
        **(health_checks or {}),
    }
    app.router.add_get("/health", describe_health(health_handler(checks)), name="health")
    app.router.add_get("/metrics", describe_metrics(metrics_handler), name="metrics")
    app.router.add_get("/openapi.json", openapi_handler(title=f"Parley {service}"), name="openapi")
    return app, runtime
