"""Live events for the managers' console, across every agent-service replica.

Where a conversation changes (a message recorded, a turn done, a takeover...) the code calls
:meth:`LiveFeed.changed` -- a cheap, non-blocking call made after the change committed. Events
are batched (group commit: one AMQP message for the events of a moment) and published,
transient and unconfirmed, to the ``parley.live`` fanout exchange. Every replica consumes them
from a queue of its own (``parley.live.<replica>``, exclusive, auto-deleted) and hands each
batch to its local subscribers: the console's SSE streams (``console/events.py``).

Events are hints; the database holds the state. A screen refreshes what it shows from the
database when an event arrives, so a lost event costs freshness, never correctness: a
subscriber that falls behind, a replica whose broker connection was re-established, or a
browser that reconnects (``Last-Event-ID``) gets a ``resync`` and reloads its view.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from typing import Any

import aio_pika
import structlog
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage

from parley_shared.batching import GroupCommit
from parley_shared.broker import Broker
from parley_shared.clock import Clock
from parley_shared.contracts import ContractError, LiveEvent, LiveEvents, decode, new_id
from parley_shared.shutdown import Drains
from parley_shared.topology import LIVE_EXCHANGE, LIVE_QUEUE_PREFIX, live_queue_arguments

log = structlog.get_logger(__name__)

SUBSCRIBER_BACKLOG = 256  # batches a slow stream may have waiting before it is told to resync
RESYNC = "resync"


class Subscriber:
    """One SSE stream's inbox of event batches. A full inbox drops the batch and asks for a resync."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[list[LiveEvent] | None] = asyncio.Queue(SUBSCRIBER_BACKLOG)
        self.resync_needed = False
        self.closed = False

    def put(self, events: list[LiveEvent]) -> None:
        if self.closed:
            return
        try:
            self._queue.put_nowait(events)
        except asyncio.QueueFull:
            self.resync_needed = True

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)

    async def get(self, timeout: float) -> list[LiveEvent] | None:
        """The next batch; ``[]`` after ``timeout`` seconds without one; None once closed."""
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None if self.closed else []


class LiveFeed:
    def __init__(self, broker: Broker, clock: Clock, drains: Drains, *, service: str = "agent-service") -> None:
        self.broker = broker
        self.clock = clock
        self.queue_name = f"{LIVE_QUEUE_PREFIX}{service}.{new_id()[:12]}"
        self._subscribers: set[Subscriber] = set()
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._pending: set[asyncio.Task[Any]] = set()
        self._group: GroupCommit[LiveEvent, None] = GroupCommit(
            self._publish, name="live_events", drains=drains, max_batches=1, max_size=500
        )
        self.published = 0
        self.dropped = 0
        self.received = 0
        self.closing = False  # shutting down: no new streams

    # ------------------------------------------------------------------ publishing
    def changed(
        self, contact_id: int | None, kind: str, *, label: str | None = None, needs_human: bool = False
    ) -> None:
        """Tell every replica's managers that this conversation changed (call after the commit)."""
        event = LiveEvent(
            contact_id=contact_id,
            kind=kind,
            at=self.clock.now(),
            label=label[:200] if label else None,
            needs_human=needs_human,
        )
        try:
            task = asyncio.ensure_future(self._group.submit(event))
        except RuntimeError:  # no running loop (a synchronous caller in a test)
            return
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def flush(self) -> None:
        """Wait until the events handed over so far are published (tests, shutdown)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def _publish(self, events: list[LiveEvent]) -> list[None]:
        exchange = self._exchange
        if exchange is None or not self.broker.connected:
            self.dropped += len(events)
            return [None] * len(events)
        body = LiveEvents(message_id=new_id(), correlation_id="live", events=events).encode()
        message = aio_pika.Message(
            body=body, content_type="application/json", type=LiveEvents.schema_name, expiration=60
        )
        try:
            await exchange.publish(message, routing_key="", mandatory=False)
            self.published += len(events)
        except Exception as exc:  # the broker is away: screens resync when it is back
            self.dropped += len(events)
            log.debug("live.publish_failed", error=type(exc).__name__)
        return [None] * len(events)

    # ------------------------------------------------------------------ consuming (a worker)
    async def run(self) -> None:
        """Bind this replica's queue and pass every batch to the local subscribers (until cancelled)."""
        channel = await self.broker.open_channel()
        self._channel = channel
        try:
            exchange = await channel.declare_exchange(LIVE_EXCHANGE, aio_pika.ExchangeType.FANOUT, durable=True)
            queue = await channel.declare_queue(
                self.queue_name, exclusive=True, auto_delete=True, arguments=live_queue_arguments()
            )
            await queue.bind(exchange)
            await queue.consume(self._on_message, no_ack=True)
            self._exchange = exchange
            reopen = getattr(channel, "reopen_callbacks", None)
            if reopen is not None:  # events were missed while the connection was down
                reopen.add(lambda *_: self.resync_all())
            log.info("live.consuming", queue=self.queue_name)
            await asyncio.Event().wait()
        finally:
            self._exchange = None
            self._channel = None
            with contextlib.suppress(Exception):
                await channel.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            batch = decode(LiveEvents, message.body)
        except ContractError as exc:
            log.warning("live.malformed", reason=str(exc)[:200])
            return
        self.received += len(batch.events)
        self.deliver(list(batch.events))

    # ------------------------------------------------------------------ local subscribers
    def deliver(self, events: list[LiveEvent]) -> None:
        for subscriber in list(self._subscribers):
            subscriber.put(events)

    def resync_all(self) -> None:
        self.deliver([self.resync_event()])

    def resync_event(self) -> LiveEvent:
        return LiveEvent(kind=RESYNC, at=self.clock.now())

    def subscribe(self) -> Subscriber:
        subscriber = Subscriber()
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        subscriber.close()
        self._subscribers.discard(subscriber)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    async def close_streams(self) -> None:
        """Shutdown: end every SSE stream now (browsers reconnect, to another replica or this one restarted)."""
        self.closing = True
        for subscriber in list(self._subscribers):
            self.unsubscribe(subscriber)


def event_id(at: datetime, serial: int) -> str:
    """An SSE event id: milliseconds since the epoch (what a reconnect catches up from) and a serial."""
    return f"{int(at.timestamp() * 1000)}-{serial}"


def parse_event_id(value: str | None) -> int | None:
    """The milliseconds of an SSE event id, or None for anything else."""
    if not value:
        return None
    head = value.split("-", 1)[0]
    if not head.isdigit() or len(head) > 15:
        return None
    return int(head)
