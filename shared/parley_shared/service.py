"""The runtime every Parley service stands on: database, broker, outbox relay, workers, health.

A service's composition root (``gateway/app.py``, ``agent_service/app.py``) builds one
:class:`Runtime` (through :func:`service_app`) and registers on it -- never on the aiohttp
application directly -- everything that has a lifecycle:

* consumers (``add_consumer``), long-running workers (``add_worker``) and periodic jobs
  (``add_periodic``: the one way to run periodic work, on the injected ``sleep``);
* ``on_start`` callbacks (after migrations and the broker connection, before any consumer or
  worker starts), ``on_stopping`` callbacks (shutdown has begun: before the HTTP server waits
  for the requests in flight -- release long polls and live streams here) and ``on_stop``
  callbacks (after the consumers and workers stopped, before the connections close; newest first);
* work that must finish before the connections close registers itself with ``runtime.drains``
  when it is created (group commits, the outbox's publishes after a commit).

Start-up order: database (waiting for it, then migrations), broker (waiting for it, topology
declared), ``on_start`` callbacks, outbox relay, workers, consumers. Shutdown runs in reverse:
``on_stopping``; stop consuming and let in-flight handlers finish; stop workers; ``on_stop``;
drain; publish what is left in the outbox once more; close the broker; dispose of the engine.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from parley_shared.broker import Broker, BrokerUnavailable, Handler, RetryPolicy
from parley_shared.clock import Clock, SystemClock
from parley_shared.db import SessionFactory, create_engine, migrate, ping, session_factory
from parley_shared.outbox import Inbox, Outbox
from parley_shared.periodic import Periodic
from parley_shared.retry import Backoff, Sleep
from parley_shared.settings import CommonSettings
from parley_shared.shutdown import Drains
from parley_shared.topology import WorkQueue

# A worker that crashed is started again after this backoff (it never gives up).
WORKER_RESTART = Backoff(first_s=0.5, max_s=30.0)

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
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.service = service
        self.settings = settings
        self.database_url = database_url
        self.migrations = migrations
        self.clock: Clock = clock or SystemClock()
        self.sleep = sleep
        self.engine: AsyncEngine = create_engine(database_url)
        self.sessions: SessionFactory = session_factory(self.engine)
        self.broker = Broker(
            settings.amqp_url.get_secret_value(),
            service=service,
            startup_timeout_s=settings.startup_timeout_s,
            retry=RetryPolicy(requeue_delay_s=settings.requeue_delay_s),
        )
        self.drains = Drains()
        self.outbox = Outbox(
            outbox_table,
            self.sessions,
            self.broker,
            drains=self.drains,
            clock=self.clock,
            relay_interval_s=settings.outbox_interval_s,
            sleep=sleep,
        )
        self.inbox = Inbox(inbox_table, clock=self.clock)
        self._consumers: list[ConsumerSpec] = []
        self._workers: list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]] = [
            ("outbox-relay", self.outbox.relay.run)
        ]
        self._periodic: dict[str, Periodic] = {"outbox-relay": self.outbox.relay}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._on_start: list[Callable[[], Awaitable[None]]] = []
        self._on_stopping: list[Callable[[], Awaitable[None]]] = []
        self._on_stop: list[Callable[[], Awaitable[None]]] = []
        # What GET /health reports (the service adds its own with add_health_check).
        self.health_checks: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {
            "database": self.database_health,
            "broker": self.broker_health,
            "outbox": self.outbox_health,
        }
        self.started = False

    # ---------------------------------------------------------------- registration
    def add_consumer(self, queue: WorkQueue, handler: Handler, *, prefetch: int | None = None) -> None:
        self._consumers.append(ConsumerSpec(queue, handler, prefetch or self.settings.amqp_prefetch))

    def add_worker(self, name: str, factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """A long-running background coroutine (the sender's pacer); restarted if it crashes."""
        self._workers.append((name, factory))

    def add_periodic(
        self, name: str, job: Callable[[], Awaitable[Any]], *, interval_s: float, backoff: Backoff | None = None
    ) -> Periodic:
        """Run ``job`` every ``interval_s`` while the service runs (see :mod:`parley_shared.periodic`)."""
        periodic = Periodic(name, job, interval_s=interval_s, backoff=backoff, sleep=self.sleep)
        self._periodic[name] = periodic
        self._workers.append((name, periodic.run))
        return periodic

    def add_health_check(self, name: str, check: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        """A check ``GET /health`` runs (its result needs ``ok``; an exception counts as not ok)."""
        self.health_checks[name] = check

    def on_start(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run at start-up, after migrations and the broker connection, before consumers and workers."""
        self._on_start.append(callback)

    def on_stopping(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run as soon as shutdown begins, before the HTTP server waits for the requests in flight."""
        self._on_stopping.append(callback)

    def on_stop(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run at shutdown after consumers and workers stopped, before the connections close (newest first)."""
        self._on_stop.append(callback)

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
        for callback in self._on_start:
            await callback()
        for name, factory in self._workers:
            self._spawn(name, factory)
        for spec in self._consumers:
            await self.broker.consume(spec.queue, spec.handler, prefetch=spec.prefetch)
        self.started = True
        log.info("service.started", service=self.service)

    async def stopping(self) -> None:
        """Shutdown has begun (aiohttp's on_shutdown): run the ``on_stopping`` callbacks."""
        log.info("service.stopping", service=self.service)
        for callback in self._on_stopping:
            await _logged(callback, "on_stopping")

    async def stop(self) -> None:
        await self.broker.stop_consuming(self.settings.shutdown_timeout_s)
        for task in self._tasks.values():
            task.cancel()
        if self._tasks:  # asyncio.wait: a cancel of this stop itself is not swallowed as a worker's
            await asyncio.wait(self._tasks.values())
        for name, task in self._tasks.items():
            if not task.cancelled() and task.exception() is not None:
                log.error("service.worker_failed", worker=name, exc_info=task.exception())
        self._tasks.clear()
        for callback in reversed(self._on_stop):
            await _logged(callback, "on_stop")
        await self.drains.drain_all(self.settings.shutdown_timeout_s)
        await _logged(self.outbox.relay_once, "final_relay")
        await self.broker.close()
        await self.engine.dispose()
        self.started = False
        log.info("service.stopped", service=self.service)

    def attach(self, app: web.Application) -> None:
        """Tie this runtime to the application's lifecycle (the only aiohttp hooks a service uses)."""

        async def lifetime(_app: web.Application) -> AsyncIterator[None]:
            await self.start()
            try:
                yield
            finally:
                await self.stop()

        async def shutting_down(_app: web.Application) -> None:
            await self.stopping()

        app.cleanup_ctx.append(lifetime)
        app.on_shutdown.append(shutting_down)

    def _spawn(self, name: str, factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
        async def supervised() -> None:
            retrying = WORKER_RESTART.retrying(
                name="service.worker", retry_if=lambda exc: isinstance(exc, Exception), sleep=self.sleep
            )
            async for attempt in retrying:
                with attempt:
                    try:
                        await factory()
                    except Exception:
                        log.exception("service.worker_crashed", worker=name)
                        raise

        self._tasks[name] = asyncio.create_task(supervised(), name=f"{self.service}:{name}")

    async def _wait_for_database(self) -> None:
        waiting = Backoff(first_s=0.25, max_s=5.0, give_up_after_s=self.settings.startup_timeout_s)
        try:
            await waiting.call(lambda: ping(self.engine), name="service.database", retry_if=_any_error)
        except Exception as exc:
            raise RuntimeError(f"database unreachable: {type(exc).__name__}") from exc

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


def _any_error(exc: BaseException) -> bool:
    return isinstance(exc, Exception)


async def _logged(callback: Callable[[], Awaitable[Any]], stage: str) -> None:
    """Run a shutdown step; a failure is logged and does not stop the others."""
    try:
        await callback()
    except Exception:
        log.exception("service.stop_step_failed", stage=stage, step=getattr(callback, "__qualname__", repr(callback)))


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
    sleep: Sleep = asyncio.sleep,
) -> tuple[web.Application, Runtime]:
    """An aiohttp application wired to a fresh :class:`Runtime`, with ``/health`` and ``/metrics``.

    The service adds its own routes, consumers, workers and health checks to what this returns.
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
        sleep=sleep,
    )
    app[RUNTIME] = runtime
    runtime.attach(app)
    app.router.add_get("/health", describe_health(health_handler(runtime.health_checks)), name="health")
    app.router.add_get("/metrics", describe_metrics(metrics_handler), name="metrics")
    app.router.add_get("/openapi.json", openapi_handler(title=f"Parley {service}"), name="openapi")
    return app, runtime
