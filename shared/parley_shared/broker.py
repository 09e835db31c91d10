"""AMQP plumbing: one connection, confirmed persistent publishing, consumers with clear ack rules.

Guarantees (see ``docs/architecture.md``):

* Publishing: publisher confirms, ``delivery_mode=PERSISTENT``, ``mandatory=True`` with
  ``on_return_raises`` -- a message no queue accepted raises :class:`PublishError`; so does a
  nack or a broker that is down. Nothing is buffered silently: callers publish from an outbox.
* Consuming: a message is acknowledged only after its handler returned, i.e. after the
  handler's transaction committed and whatever it had to publish was confirmed. The acks of
  handlers that finish together go out as one ``basic.ack`` with ``multiple`` where that is
  safe (:mod:`parley_shared.acks`).
  - A body that is not a valid contract is dead-lettered at once with the reason in
    ``x-parley-error`` (it can never succeed).
  - A handler failure caused by infrastructure (database or broker unreachable) is retried in
    place with backoff and does not burn the delivery limit.
  - A handler that raises :class:`PermanentFailure` has its message dead-lettered at once with
    that reason (e.g. the gateway's sender after a permanent provider error).
  - Any other handler failure is requeued; on the last allowed attempt the message is
    dead-lettered with the exception as its reason. A consumer killed mid-message is covered by
    the queue's own ``x-delivery-limit`` (reason ``delivery_limit``).
  - A lost channel does not cut a running handler short (it finishes its transaction; the
    broker redelivers the message, the inbox recognises it); shutdown waits for running
    handlers for a grace period before cancelling them.
* Start-up waits for the broker (``startup_timeout_s``); after that ``connect_robust``
  reconnects, reopens channels and re-consumes. ``health()`` says whether each consumer is
  attached right now.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import aio_pika
import aiormq
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from parley_shared.acks import Acks
from parley_shared.contracts import Contract, ContractError, decode
from parley_shared.retry import Backoff
from parley_shared.topology import DEAD_LETTER_EXCHANGE, EXCHANGE, LIVE_EXCHANGE, WORK_QUEUES, WorkQueue

log = structlog.get_logger("parley.broker")

Handler = Callable[[Any], Awaitable[None]]


class PublishError(RuntimeError):
    """The broker did not confirm a message (down, nacked, or unroutable)."""


class BrokerUnavailable(RuntimeError):
    """The broker could not be reached within the start-up timeout."""


class PermanentFailure(Exception):
    """Raised by a handler: this message can never succeed. It is dead-lettered at once with
    ``str(exc)`` as its reason and acknowledged (no requeue, no use of the delivery limit)."""


RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock detected, serialization failure


def is_transient(exc: BaseException) -> bool:
    """Infrastructure trouble worth retrying in place (not the message's fault)."""
    from sqlalchemy.exc import DBAPIError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    if isinstance(exc, (ConnectionError, OSError, asyncio.TimeoutError, PoolTimeout, PublishError)):
        return True
    if isinstance(exc, (aiormq.exceptions.AMQPConnectionError, aiormq.exceptions.ChannelInvalidStateError)):
        return True
    if isinstance(exc, OperationalError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in RETRYABLE_SQLSTATES:
        return True  # two transactions locked rows in opposite orders: the loser may simply run again
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, DBAPIError) and cause is not None:
        name = type(cause).__name__
        return "Connection" in name or "CannotConnectNow" in name or "AdminShutdown" in name
    return False


@dataclass
class ConsumerState:
    queue: WorkQueue
    prefetch: int
    consumer_tag: str | None = None
    channel: AbstractChannel | None = None
    amqp_queue: AbstractQueue | None = None
    in_flight: set[asyncio.Task[Any]] = field(default_factory=set)
    running: dict[str, asyncio.Task[Any]] = field(default_factory=dict)  # by message_id
    acks: Acks = field(default_factory=Acks)
    handled: int = 0
    held: int = 0  # copies that waited for a running handler of the same message
    failed: int = 0
    dead_lettered: int = 0

    def attached(self, connected: bool) -> bool:
        return bool(connected and self.consumer_tag and self.channel is not None and not self.channel.is_closed)


TRANSIENT = Backoff(first_s=0.5, max_s=15.0, give_up_after_s=300.0)


@dataclass(frozen=True)
class RetryPolicy:
    """How a consumer treats failures. Tests shrink the delays.

    ``transient``: infrastructure trouble is retried in place by this backoff (the delivery
    limit is not spent); ``requeue_delay_s``: the pause before any other failure is requeued."""

    requeue_delay_s: float = 1.0
    transient: Backoff = TRANSIENT


# Waiting for the broker at start-up (bounded by the start-up timeout).
CONNECT = Backoff(first_s=0.25, max_s=5.0)
# Cancelling a consumer and closing the connection at shutdown wait at most this long for the broker.
BROKER_STOP_TIMEOUT_S = 5.0


class Broker:
    """One service's connection to RabbitMQ."""

    def __init__(
        self,
        url: str,
        *,
        service: str,
        startup_timeout_s: float = 60.0,
        publish_timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.url = url
        self.service = service
        self.startup_timeout_s = startup_timeout_s
        self.publish_timeout_s = publish_timeout_s
        self.retry = retry or RetryPolicy()
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._dlx: AbstractExchange | None = None
        self._consumers: dict[str, ConsumerState] = {}
        self._closing = False

    # ------------------------------------------------------------------ lifecycle
    async def connect(self) -> None:
        """Connect (waiting for the broker up to ``startup_timeout_s``) and declare the topology."""
        waiting = replace(CONNECT, give_up_after_s=self.startup_timeout_s)
        try:
            self._connection = await waiting.call(
                lambda: aio_pika.connect_robust(self.url, client_properties={"connection_name": self.service}),
                name="broker.connect",
                retry_if=lambda exc: isinstance(exc, (ConnectionError, OSError, aiormq.exceptions.AMQPError)),
            )
        except (ConnectionError, OSError, aiormq.exceptions.AMQPError) as exc:
            raise BrokerUnavailable(f"RabbitMQ unreachable: {type(exc).__name__}") from exc
        self._publish_channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        await declare_topology(self._publish_channel)
        self._exchange = await self._publish_channel.get_exchange(EXCHANGE, ensure=False)
        self._dlx = await self._publish_channel.get_exchange(DEAD_LETTER_EXCHANGE, ensure=False)
        log.info("broker.connected")

    @property
    def connected(self) -> bool:
        return bool(self._connection is not None and self._connection.connected.is_set())

    async def stop_consuming(self, drain_timeout_s: float = 30.0) -> None:
        """Cancel every consumer, then wait for in-flight handlers to finish."""
        for state in self._consumers.values():
            if state.amqp_queue is not None and state.consumer_tag:
                with contextlib.suppress(Exception):  # a broker that does not answer must not hold up a stop
                    await state.amqp_queue.cancel(state.consumer_tag, timeout=BROKER_STOP_TIMEOUT_S)
            state.consumer_tag = None
        pending = [t for s in self._consumers.values() for t in s.in_flight]
        if pending:
            _, still = await asyncio.wait(pending, timeout=drain_timeout_s)
            for task in still:
                task.cancel()

    async def close(self) -> None:
        self._closing = True
        await self.stop_consuming()
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._connection.close(), BROKER_STOP_TIMEOUT_S)
        self._connection = None

    async def open_channel(self) -> AbstractChannel:
        """A channel of its own on the service's connection (reopened after a reconnect), for
        traffic that is not a work queue's: the console's live events."""
        if self._connection is None:
            raise RuntimeError("connect() first")
        return await self._connection.channel(publisher_confirms=False)

    # ------------------------------------------------------------------ publishing
    async def publish(self, queue: WorkQueue, payload: Contract, *, headers: dict[str, Any] | None = None) -> None:
        """Publish ``payload`` to ``queue`` and wait for the broker's confirm."""
        if not isinstance(payload, queue.contract):
            raise TypeError(f"{queue.name} carries {queue.contract.__name__}, not {type(payload).__name__}")
        await self._publish(self._exchange, queue.routing_key, payload.encode(), payload, headers or {})

    async def publish_raw(
        self,
        queue: WorkQueue,
        body: bytes,
        *,
        message_id: str,
        correlation_id: str,
        headers: dict[str, Any] | None = None,
    ) -> None:
        """Publish an already-encoded body (the outbox relay stores encoded payloads)."""
        message = _message(body, message_id, correlation_id, queue.contract.schema_name, headers or {})
        await self._send(self._exchange, queue.routing_key, message)

    async def _publish(
        self, exchange: AbstractExchange | None, key: str, body: bytes, payload: Contract, headers: dict[str, Any]
    ) -> None:
        message = _message(body, payload.message_id, payload.correlation_id, payload.schema_name, headers)
        await self._send(exchange, key, message)

    async def _send(self, exchange: AbstractExchange | None, key: str, message: aio_pika.Message) -> None:
        if exchange is None or not self.connected:
            raise PublishError("not connected to RabbitMQ")
        try:
            confirmation = await exchange.publish(
                message, routing_key=key, mandatory=True, timeout=self.publish_timeout_s
            )
        except aio_pika.exceptions.DeliveryError as exc:
            raise PublishError(f"broker refused message for {key!r}: {exc}") from exc
        except (TimeoutError, aiormq.exceptions.AMQPError, ConnectionError, OSError, RuntimeError) as exc:
            raise PublishError(f"publish to {key!r} failed: {type(exc).__name__}") from exc
        if not isinstance(confirmation, aiormq.spec.Basic.Ack):
            raise PublishError(f"broker did not confirm message for {key!r}: {type(confirmation).__name__}")

    async def dead_letter(self, queue: WorkQueue, message: AbstractIncomingMessage, reason: str) -> None:
        """Move a message to ``queue``'s dead-letter queue with a readable reason."""
        headers = dict(message.headers or {})
        headers.update(
            {
                "x-parley-error": reason[:1000],
                "x-parley-queue": queue.name,
                "x-parley-service": self.service,
                "x-parley-dead-lettered-at": int(time.time()),
            }
        )
        dead = aio_pika.Message(
            body=message.body,
            headers=headers,
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            content_type=message.content_type,
            type=message.type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await self._send(self._dlx, queue.dead_letter_queue, dead)

    # ------------------------------------------------------------------ consuming
    async def consume(self, queue: WorkQueue, handler: Handler, *, prefetch: int = 32) -> ConsumerState:
        """Start consuming ``queue``: each body is decoded to its contract and given to ``handler``."""
        if self._connection is None:
            raise RuntimeError("connect() first")
        state = ConsumerState(queue=queue, prefetch=prefetch)
        channel = await self._connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=prefetch)
        amqp_queue = await channel.get_queue(queue.name, ensure=True)
        state.channel = channel
        state.amqp_queue = amqp_queue

        async def on_message(message: AbstractIncomingMessage) -> None:
            # Registered before anything else: no multiple ack may cover it until its handler is done.
            with contextlib.suppress(aio_pika.exceptions.ChannelInvalidStateError):
                state.acks.of(message.channel).delivered(message.delivery_tag or 0)
            # A lost channel cancels this callback. The handler itself must not be cut in the
            # middle of its transaction: a database call cancelled half-way invalidates the
            # connection, and on SQLite a cancelled INSERT ... RETURNING can leave the write lock
            # held by a closed connection until garbage collection (every writer then waits).
            # So the handler runs to its end in a task of its own; its ack then fails, the broker
            # redelivers the message and the handler's inbox recognises it. Shutdown drains these
            # tasks (stop_consuming) and cancels only those still running after the grace period.
            key = message.message_id
            earlier = state.running.get(key) if key else None
            if earlier is not None:
                # A copy of a message whose handler still runs here (the orphan of a lost channel,
                # or a message published twice): it waits, so the work is not done twice at once
                # and orphans never add up beyond the prefetch; then the inbox makes it a no-op.
                state.held += 1
                log.info("broker.copy_held", queue=queue.name, message_id=key)
                await asyncio.wait({earlier})
            task = asyncio.ensure_future(self._handle(state, handler, message))
            state.in_flight.add(task)
            task.add_done_callback(state.in_flight.discard)
            if key:
                state.running[key] = task
                task.add_done_callback(lambda t: state.running.pop(key, None) if state.running.get(key) is t else None)
            await asyncio.shield(task)

        state.consumer_tag = await amqp_queue.consume(on_message)
        self._consumers[queue.name] = state
        log.info("broker.consuming", queue=queue.name, prefetch=prefetch)
        return state

    async def _handle(self, state: ConsumerState, handler: Handler, message: AbstractIncomingMessage) -> None:
        queue = state.queue
        structlog.contextvars.bind_contextvars(
            correlation_id=message.correlation_id, message_id=message.message_id, queue=queue.name
        )
        try:
            try:
                payload = decode(queue.contract, message.body)
            except ContractError as exc:
                log.warning("broker.malformed_message", reason=str(exc))
                await self._dead_letter_and_ack(state, message, f"malformed: {exc}")
                return
            try:
                await self._run_handler(handler, payload, message)
            except PermanentFailure as exc:
                log.warning("broker.permanent_failure", reason=str(exc)[:300])
                await self._dead_letter_and_ack(state, message, f"permanent: {exc}"[:1000])
                return
            except Exception as exc:
                if self._closing:
                    raise
                if not _delivery_lost(message):
                    await self._on_handler_failure(state, message, exc)
                    return
            if _delivery_lost(message):
                # The channel that delivered it is gone (before or during the backoff): the broker
                # hands the message out again, and that copy retries, requeues or dead-letters it
                # -- this one would only run the handler twice or count the failure twice.
                log.warning("broker.delivery_lost")
                return
            await self._ack(state, message)
            state.handled += 1
        except asyncio.CancelledError:
            # Shutdown (after the grace period): the broker redelivers the unacknowledged message.
            raise
        except Exception as exc:
            # Ack on a dead channel, a dead letter that could not be published, shutdown: hand
            # the message back (if the channel is gone the broker redelivers it anyway).
            log.warning("broker.settle_failed", error=type(exc).__name__)
            with contextlib.suppress(Exception):
                await self._requeue(state, message)
        finally:
            structlog.contextvars.unbind_contextvars("correlation_id", "message_id", "queue")

    async def _run_handler(self, handler: Handler, payload: Any, message: AbstractIncomingMessage) -> None:
        """Run the handler; infrastructure trouble is retried in place while the delivery still
        stands. The first attempt goes without the retry machinery (the hot path)."""
        started = time.monotonic()

        def worth_retrying(exc: BaseException) -> bool:
            return is_transient(exc) and not self._closing and not _delivery_lost(message)

        backoff = self.retry.transient
        try:
            await handler(payload)
            return
        except Exception as exc:
            if not worth_retrying(exc) or backoff.stops(1, started, exc):
                raise
            await backoff.wait_after_first(exc, name="broker.handler")
        retrying = backoff.retrying(
            name="broker.handler", retry_if=worth_retrying, after_attempts=1, started_at=started
        )
        async for attempt in retrying:
            if _delivery_lost(message):
                return  # lost during the backoff: the caller leaves it to the redelivered copy
            with attempt:
                await handler(payload)

    async def _on_handler_failure(self, state: ConsumerState, message: AbstractIncomingMessage, exc: Exception) -> None:
        state.failed += 1
        attempts = _delivery_count(message) + 1
        reason = f"handler failed {attempts} time(s): {type(exc).__name__}: {str(exc)[:300]}"
        if attempts >= state.queue.delivery_limit:
            log.error("broker.handler_failed_final", attempts=attempts, error=type(exc).__name__)
            await self._dead_letter_and_ack(state, message, reason)
            return
        log.warning("broker.handler_failed", attempts=attempts, error=type(exc).__name__, exc_info=exc)
        await asyncio.sleep(self.retry.requeue_delay_s)
        await self._requeue(state, message)

    async def _dead_letter_and_ack(self, state: ConsumerState, message: AbstractIncomingMessage, reason: str) -> None:
        await self.dead_letter(state.queue, message, reason)
        await self._ack(state, message)
        state.dead_lettered += 1

    async def _ack(self, state: ConsumerState, message: AbstractIncomingMessage) -> None:
        """Acknowledge, together with the other handlers finishing now (raises if the channel is gone)."""
        await state.acks.of(message.channel).ack(message.delivery_tag or 0)

    async def _requeue(self, state: ConsumerState, message: AbstractIncomingMessage) -> None:
        """Hand the message back to the queue; only then may a multiple ack pass over it."""
        channel = message.channel
        await message.nack(requeue=True)
        state.acks.of(channel).settled(message.delivery_tag or 0)

    # ------------------------------------------------------------------ health
    def health(self) -> dict[str, Any]:
        connected = self.connected
        consumers = {
            name: {
                "attached": s.attached(connected),
                "prefetch": s.prefetch,
                "in_flight": len(s.in_flight),
                "held_copies": s.held,
                "handled": s.handled,
                "failed": s.failed,
                "dead_lettered": s.dead_lettered,
            }
            for name, s in self._consumers.items()
        }
        ok = connected and all(c["attached"] for c in consumers.values())
        return {"ok": ok, "connected": connected, "consumers": consumers}

    async def queue_depths(self) -> dict[str, dict[str, int]]:
        """Messages waiting and consumers attached per queue (passive declares)."""
        if self._connection is None or not self.connected:
            return {}
        result: dict[str, dict[str, int]] = {}
        channel = await self._connection.channel()
        try:
            for q in WORK_QUEUES:
                for name in (q.name, q.dead_letter_queue):
                    declared = (await channel.declare_queue(name, passive=True)).declaration_result
                    # A declare-ok always carries both counts (pamqp types them optional, for building frames).
                    result[name] = {
                        "messages": declared.message_count or 0,
                        "consumers": declared.consumer_count or 0,
                    }
        finally:
            with contextlib.suppress(Exception):
                await channel.close()
        return result


def _message(
    body: bytes, message_id: str, correlation_id: str, schema: str, headers: dict[str, Any]
) -> aio_pika.Message:
    return aio_pika.Message(
        body=body,
        message_id=message_id,
        correlation_id=correlation_id,
        content_type="application/json",
        type=schema,
        headers=headers,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


def _delivery_lost(message: AbstractIncomingMessage) -> bool:
    """True when the channel ``message`` came on is closed (it can no longer be acked)."""
    try:
        message.channel  # noqa: B018 -- raises once the channel is closed
    except aio_pika.exceptions.ChannelInvalidStateError:
        return True
    return False


def _delivery_count(message: AbstractIncomingMessage) -> int:
    """How many times the broker delivered this message before (quorum queues count it)."""
    value = (message.headers or {}).get("x-delivery-count")
    if isinstance(value, int):
        return value
    return 1 if message.redelivered else 0


async def declare_topology(channel: AbstractChannel) -> None:
    """Declare exchanges, work queues, dead-letter queues and bindings (idempotent)."""
    exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True)
    dlx = await channel.declare_exchange(DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True)
    await channel.declare_exchange(LIVE_EXCHANGE, aio_pika.ExchangeType.FANOUT, durable=True)
    for q in WORK_QUEUES:
        dlq = await channel.declare_queue(q.dead_letter_queue, durable=True, arguments=q.dead_letter_arguments())
        await dlq.bind(dlx, routing_key=q.dead_letter_queue)
        work = await channel.declare_queue(q.name, durable=True, arguments=q.arguments())
        await work.bind(exchange, routing_key=q.routing_key)
