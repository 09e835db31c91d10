"""The sender: ``outgoing_messages`` (replies, operator) and ``outgoing_campaign`` (follow-ups) -> provider.

Pacing (``domain/pacing.py``): every message waits in one in-process priority buffer for its
turn; a turn needs a token of the account's bucket (``SEND_RATE_PER_MIN``), one of the account's
call slots (``SEND_CONCURRENCY``; Wappi's profile takes one call at a time) and its recipient
(a contact's messages go one provider call at a time, in line order). Replies and operator
messages always go before follow-ups; the campaign consumer has a small prefetch so campaign
traffic mostly waits in RabbitMQ.
Time comes from the injected clock and waits go through an injected ``sleep``.

Once and only once (``outbound.py``): a row per message id; a message already ``sent`` is
acknowledged without sending; ``sending`` is committed before the provider call, so a message
interrupted mid-call is reported as failed with ``unknown_outcome`` instead of being sent again.

Addressing: a message goes to the provider's own chat id the contact last wrote from
(``chains.recipient``), never to a number rebuilt from the address. Outside Meta's 24-hour
customer-service window (``domain/window.py``) a free-form message is not attempted: it is
reported failed with ``outside_24h_window`` and the reason, and the agent flags the contact;
templates still go.

Failures (``domain/failures.py``): 429, 5xx, provider rate limits and connections that never got
through are retried with exponential backoff honouring ``Retry-After`` (which also pauses the
whole account); permanent failures and exhausted retries are reported on ``delivery_status``
and dead-lettered with the reason (:class:`parley_shared.broker.PermanentFailure`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import NoReturn, TypeVar

import structlog

from gateway import chains, metrics
from gateway.domain.failures import Failure, FailureKind
from gateway.domain.pacing import PRIORITY, PriorityBuffer, TokenBucket
from gateway.domain.window import OUTSIDE_WINDOW
from gateway.outbound import DONE, Claim, OutboundLog, OutStatus
from gateway.providers.base import SendError, SendResult, WhatsAppProvider
from gateway.settings import GatewaySettings
from parley_shared.broker import PermanentFailure, is_transient
from parley_shared.clock import Clock
from parley_shared.contracts import OutgoingMessage
from parley_shared.retry import Backoff, Sleep
from parley_shared.service import Runtime

log = structlog.get_logger(__name__)
T = TypeVar("T")
UNKNOWN_OUTCOME = "unknown_outcome"


@dataclass(eq=False)
class Ticket:
    """A message's place in the account's line, taken the moment the message is delivered (so
    the line keeps RabbitMQ's order)."""

    future: asyncio.Future[None]
    recipient: str
    granted: bool = False
    released: bool = False


@dataclass(eq=False)
class _Delivery:
    """One message being delivered; every copy of it that arrives meanwhile awaits ``task``."""

    task: asyncio.Task[None]
    dead_lettered: bool = False


class AccountPacer:
    """Turns for one provider account: priority order, the token bucket, at most ``concurrency``
    provider calls at once and never two for one recipient."""

    def __init__(self, *, rate_per_min: float, clock: Clock, sleep: Sleep, provider: str, concurrency: int = 1) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.bucket = TokenBucket(rate_per_min)
        self.clock = clock
        self.sleep = sleep
        self.provider = provider
        self.concurrency = concurrency
        self._line: PriorityBuffer[Ticket] = PriorityBuffer()
        self._calls: set[Ticket] = set()  # turns granted and not yet handed back
        self._recipients: set[str] = set()  # their recipients
        self._retrying = 0  # granted turns waiting for a token to retry: served first
        self._changed = asyncio.Event()
        self._closed = False

    def waiting(self) -> dict[str, int]:
        counts = self._line.counts()
        return {"replies": counts.get(0, 0), "campaign": counts.get(1, 0)}

    def in_flight(self) -> int:
        """Provider calls running now."""
        return len(self._calls)

    def reserve(self, priority: int, recipient: str) -> Ticket:
        """Take a place in line now (synchronously, in delivery order)."""
        if self._closed:
            raise asyncio.CancelledError
        ticket = Ticket(asyncio.get_running_loop().create_future(), recipient)
        self._line.push(priority, ticket)
        self._changed.set()
        return ticket

    def cancel(self, ticket: Ticket) -> None:
        """Leave the line (nothing to send), or hand the account back if the turn was granted."""
        if self._line.remove(ticket):
            self._changed.set()
        elif ticket.granted and not ticket.released:
            self._release(ticket)

    @contextlib.asynccontextmanager
    async def turn(self, ticket: Ticket) -> AsyncIterator[None]:
        """Wait for this ticket's turn (a token and the account) and hold it while sending."""
        try:
            await ticket.future
        except asyncio.CancelledError:
            self.cancel(ticket)
            raise
        try:
            yield
        finally:
            self._release(ticket)

    async def retry_token(self) -> None:
        """Wait for a token to retry a turn's message: retries go before turns not yet granted."""
        self._retrying += 1
        try:
            await self._token()
        finally:
            self._retrying -= 1
            self._changed.set()

    async def _token(self) -> None:
        while True:
            wait = self.bucket.wait_s(self.clock.now())
            if wait <= 0 and self.bucket.take(self.clock.now()):
                return
            metrics.RATE_LIMIT_WAITS.labels(self.provider).inc()
            metrics.RATE_LIMIT_WAIT_SECONDS.labels(self.provider).inc(wait)
            await self.sleep(wait)

    def pause(self, seconds: float) -> None:
        self.bucket.pause(self.clock.now(), seconds)

    def unused(self) -> None:
        """A turn's token bought no provider call (the message turned out to need none): give it back."""
        self.bucket.give_back()

    def _release(self, ticket: Ticket) -> None:
        if ticket.released:
            return
        ticket.released = True
        self._calls.discard(ticket)
        self._recipients.discard(ticket.recipient)
        self._changed.set()

    def _next(self) -> Ticket | None:
        """The message to serve next: the first in line (priority, then arrival) whose recipient has
        no call running -- one passed over keeps its place, and so do the recipient's messages behind
        it. None while every call slot is taken or a retry waits for a token."""
        if len(self._calls) >= self.concurrency or self._retrying:
            return None
        for ticket in self._line.in_order():
            if ticket.recipient not in self._recipients:
                return ticket
        return None

    async def run(self) -> None:
        """Grant turns: wait for a token, THEN serve the next message in line (one that arrived
        meanwhile and is more urgent wins). Only a message whose contact has a call running is
        passed over, so each class keeps its order and a contact's messages reach the provider one
        at a time, in order."""
        while True:
            while self._next() is None:
                self._changed.clear()
                await self._changed.wait()
            await self._token()
            ticket = self._next()
            if ticket is None:
                self.bucket.give_back()  # the line changed while we waited: keep the token
                continue
            self._line.remove(ticket)
            if ticket.future.done():  # cancelled meanwhile
                self.bucket.give_back()
                continue
            self._calls.add(ticket)
            self._recipients.add(ticket.recipient)
            ticket.granted = True
            ticket.future.set_result(None)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Shutdown: messages still in line give up their turn (unacknowledged, RabbitMQ redelivers them)."""
        self._closed = True
        while len(self._line):
            self._line.pop().future.cancel()


class Sender:
    def __init__(
        self,
        *,
        runtime: Runtime,
        provider: WhatsAppProvider,
        outbound: OutboundLog,
        pacer: AccountPacer,
        settings: GatewaySettings,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.runtime = runtime
        self.provider = provider
        self.outbound = outbound
        self.pacer = pacer
        self.settings = settings
        self.sleep = sleep
        self.backoff = Backoff(first_s=settings.send_backoff_base_s, max_s=settings.send_backoff_max_s)
        self.name = provider.name.value
        self._in_flight: dict[str, _Delivery] = {}

    async def handle(self, message: OutgoingMessage) -> None:
        """Deliver ``message`` in a task of its own that every copy of it waits for.

        The broker already lets a handler finish when its channel is lost and holds a copy of the
        same message until then; this task map is the sender's own guard on top (a copy that
        arrives on another consumer of this process waits for the same send, and only one copy
        carries a permanent failure to the dead-letter queue). Shielded: a handler cancelled at
        shutdown leaves the send to finish unless the pacer is closed."""
        delivery = self._in_flight.get(message.message_id)
        if delivery is None:
            # Before any await: keeps delivery order.
            ticket = self.pacer.reserve(PRIORITY[message.kind], message.phone)
            delivery = _Delivery(asyncio.get_running_loop().create_task(self._deliver(message, ticket)))
            self._in_flight[message.message_id] = delivery
            key = message.message_id
            delivery.task.add_done_callback(lambda _t: self._in_flight.pop(key, None))
        else:
            # Another copy (published twice, or redelivered after a lost channel) is being sent here.
            log.info("sender.duplicate_in_flight", message_id=message.message_id)
        try:
            await asyncio.shield(delivery.task)
        except asyncio.CancelledError:
            if self.pacer.closed:
                # Shutting down (after SHUTDOWN_TIMEOUT_S): the send stops too; the next start finds
                # it "sending" and reports an unknown outcome rather than sending it again.
                delivery.task.cancel()
            raise
        except PermanentFailure:
            if delivery.dead_lettered:
                return  # another copy took the failure to the dead-letter queue
            delivery.dead_lettered = True
            raise

    async def _deliver(self, message: OutgoingMessage, ticket: Ticket) -> None:
        try:
            async with self.pacer.turn(ticket):
                # The claim marks the message ``sending`` (or finds it needs no call) once its turn
                # came; retried here while the database is away, keeping the turn (a retry of the
                # whole handler would take a new place, behind the contact's next message).
                claim = await _until_stored(lambda: self.outbound.claim(message))
                if claim.send:
                    result = await self._send_with_retries(message, chains.recipient(message.phone, claim.contact))
                else:
                    self.pacer.unused()
            # The provider call is over: the account serves the next message while this one is recorded.
            if not claim.send:
                await self._not_sent(message, claim)
            elif result is not None:
                await self._sent(message, result)
        finally:
            self.pacer.cancel(ticket)

    async def _not_sent(self, message: OutgoingMessage, claim: Claim) -> None:
        """A delivery that found nothing to send: done before (acknowledged), interrupted during an
        earlier provider call (reported ``unknown``: it may have gone out), or refused -- outside
        Meta's 24-hour customer-service window only a template may go: a free-form message is not
        attempted and is reported failed with the reason (the agent flags the contact)."""
        if claim.refused is not None:
            refused = Failure(FailureKind.PERMANENT, OUTSIDE_WINDOW, claim.refused)
            await self._give_up(message, OutStatus.FAILED, refused)
        if claim.status in DONE:
            log.info("sender.already_done", message_id=message.message_id, status=claim.status.value)
            return
        # A previous delivery of this message died during the provider call: it may have gone out.
        await self._give_up(
            message,
            OutStatus.UNKNOWN,
            Failure(FailureKind.AMBIGUOUS, UNKNOWN_OUTCOME, "interrupted during the provider call; not re-sent"),
        )

    async def _send_with_retries(self, message: OutgoingMessage, to: str) -> SendResult | None:
        """Send a message this delivery claimed (retrying transient failures); the provider's answer,
        or None if there was nothing to send."""
        failures = 0
        while True:
            if failures:
                await self.pacer.retry_token()
                if not await self.outbound.start_sending(message.message_id):
                    # Someone else moved it on meanwhile (another replica): never send it twice.
                    claim = await self.outbound.claim(message)
                    if not claim.send:
                        await self._not_sent(message, claim)
                        return None
            started = time.perf_counter()
            try:
                result = await self.provider.send(message, to)
            except SendError as exc:
                failure = exc.failure
            else:
                metrics.SEND_LATENCY.labels(self.name).observe(time.perf_counter() - started)
                return result
            metrics.SEND_LATENCY.labels(self.name).observe(time.perf_counter() - started)
            failures += 1
            if failure.kind is FailureKind.AMBIGUOUS:
                await self._give_up(message, OutStatus.UNKNOWN, failure)
            if failure.kind is FailureKind.PERMANENT:
                await self._give_up(message, OutStatus.FAILED, failure)
            if failures >= self.settings.send_max_attempts:
                exhausted = Failure(
                    FailureKind.PERMANENT, failure.code, f"gave up after {failures} attempts: {failure.reason}"
                )
                await self._give_up(message, OutStatus.FAILED, exhausted)
            delay = self.backoff.delay(failures, failure.retry_after_s)
            if failure.retry_after_s is not None:
                self.pacer.pause(delay)  # the provider asked the account to slow down
            error = f"{failure.code}: {failure.reason}"[:1000]
            # Certainly not sent: say so durably, or a redelivery would find "sending" and give up.
            await _until_stored(
                functools.partial(self.outbound.set_status, message.message_id, OutStatus.RETRY_WAIT, error=error)
            )
            metrics.SEND_RETRIES.labels(self.name).inc()
            log.warning(
                "sender.retry",
                message_id=message.message_id,
                code=failure.code,
                attempt=failures,
                retry_in_s=round(delay, 2),
            )
            await self.sleep(delay)

    async def _sent(self, message: OutgoingMessage, result: SendResult) -> None:
        # The message is out: recording it must not fail into a resend. Retry the write while
        # the database is away (a redelivery would only find "sending" and report unknown).
        # (with the outcome, the options it offered -- or none -- for a number typed back to pick one)
        await _until_stored(
            lambda: self.outbound.finish(message, OutStatus.SENT, provider_message_id=result.provider_message_id)
        )
        metrics.SENT.labels(self.name, message.kind.value).inc()
        log.info("sender.sent", message_id=message.message_id, phone=message.phone, kind=message.kind.value)
        await self._publish(message.message_id)

    async def _give_up(self, message: OutgoingMessage, status: OutStatus, failure: Failure) -> NoReturn:
        """Report the failure on ``delivery_status`` and dead-letter the message with the reason."""
        await _until_stored(
            lambda: self.outbound.finish(message, status, error_code=failure.code, error_reason=failure.reason)
        )
        reason = "unknown" if status is OutStatus.UNKNOWN else failure.kind.value
        metrics.FAILED.labels(self.name, reason).inc()
        log.warning("sender.failed", message_id=message.message_id, code=failure.code, outcome=reason)
        await self._publish(message.message_id)
        raise PermanentFailure(f"{failure.code}: {failure.reason}")

    async def _publish(self, cause_id: str) -> None:
        await self.runtime.outbox.publish_after_commit(causes=[cause_id])


# A write that records what happened at the provider is retried while the database is away:
# losing it would turn into a resend (or an "unknown outcome") on the next delivery. So is a
# message's claim, which must keep its place in line.
STORE = Backoff(first_s=0.2, max_s=5.0, give_up_after_s=300.0)


async def _until_stored(write: Callable[[], Awaitable[T]]) -> T:
    result: T = await STORE.call(write, name="sender.store", retry_if=is_transient)
    return result
