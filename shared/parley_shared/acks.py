"""Acknowledgements sent together: one ``basic.ack`` with ``multiple`` for the handlers that
finished at about the same time.

A consumer's handlers finish in batches (the group commits settle many callers at once), and
every ``basic.ack`` is an AMQP frame on the client and a settlement the quorum queue logs on the
broker. :class:`ChannelAcks` collects the acks asked for while the event loop runs one step and
sends them in the next, as few frames as the rule below allows:

* ``basic.ack(tag, multiple=True)`` settles *every* unsettled delivery up to ``tag`` on the
  channel, so it may only cover deliveries known to be finished. Every delivery is registered
  (:meth:`ChannelAcks.delivered`) the moment it arrives; the multiple ack covers the run of
  deliveries from the oldest unsettled one on whose every member an ack was asked for or that
  was already settled on its own (a requeue, an ack beyond a gap). A delivery whose handler
  still runs, or one never registered, ends the run.
* An ack asked for beyond that run is sent on its own in the same flush: a slow handler never
  holds back the others' acks (RabbitMQ counts unacknowledged deliveries against the prefetch).
* Frames go out in the order they are decided, one flush at a time, so a requeue (``nack``)
  sent for a delivery is always on the wire before a multiple ack that passes over it.

A caller awaits its ack as before (:meth:`ChannelAcks.ack` returns once the frame is written, or
raises if the channel is gone -- whatever way the write failed, every caller waiting gets an
error of its own, and the channel's later acks go alone). Delivery tags count per channel from 1; a consumer whose
channel was reopened gets a new :class:`ChannelAcks` (:class:`Acks` keeps one per channel).
"""

from __future__ import annotations

import asyncio
import enum
from typing import Any

import aiormq
from prometheus_client import Counter

ACK_FRAMES = Counter("parley_broker_ack_frames_total", "basic.ack frames sent by this service's consumers")
ACKED = Counter("parley_broker_acked_total", "Deliveries those frames acknowledged")


class _Mark(enum.Enum):
    PENDING = "pending"  # delivered, its handler not done
    SETTLED = "settled"  # settled on its own (acked alone, requeued)


_PENDING, _SETTLED = _Mark.PENDING, _Mark.SETTLED


class ChannelAcks:
    """The acks of one channel (see the module's doc)."""

    def __init__(self, channel: aiormq.abc.AbstractChannel) -> None:
        self.channel = channel
        self.settled_upto = 0  # every delivery up to this tag is settled
        self._state: dict[int, _Mark | asyncio.Future[None]] = {}  # tag -> pending, settled, or ack asked
        self._flushing: asyncio.Task[None] | None = None
        self._dirty = False
        self.dead = False  # a flush failed: nothing is collected any more
        self.frames = 0  # ack frames sent (for tests and metrics)
        self.acked = 0  # deliveries they settled

    def delivered(self, tag: int) -> None:
        """A delivery arrived: it must not be covered by a multiple ack before its handler is done."""
        if tag > self.settled_upto and not self.dead:
            self._state.setdefault(tag, _PENDING)

    def settled(self, tag: int) -> None:
        """The delivery was settled on its own (requeued, or acked outside this class)."""
        if tag > self.settled_upto and tag in self._state and not self.dead:
            self._state[tag] = _SETTLED
            self._schedule()

    def ack(self, tag: int) -> asyncio.Future[None]:
        """Ask for the delivery's ack; the future is done once its frame is written."""
        if self.dead:  # after a failed flush (the channel is most likely gone): alone, as asked
            return asyncio.ensure_future(self.channel.basic_ack(tag))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if tag <= self.settled_upto:
            future.set_result(None)  # a multiple ack covered it already (cannot happen for a pending one)
            return future
        self._state[tag] = future
        self._schedule()
        return future

    def _schedule(self) -> None:
        self._dirty = True
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        try:
            while self._dirty:
                self._dirty = False
                await asyncio.sleep(0)  # let every handler finishing in this step ask first
                await self._flush()
        except BaseException as exc:
            # The channel is gone -- aiormq may even fail a pending write with CancelledError when
            # the connection dies: every caller waiting hears it as an error of its own.
            self._fail_all(exc)
            task = asyncio.current_task()
            if not isinstance(exc, Exception) and task is not None and task.cancelling():
                raise  # this task itself was cancelled

    async def _flush(self) -> None:
        # The run from the oldest unsettled delivery: every member asked for its ack or is settled.
        tag, covered, last_asked = self.settled_upto, [], 0
        while (state := self._state.get(tag + 1)) is not None and state is not _PENDING:
            tag += 1
            if isinstance(state, asyncio.Future):
                covered.append(state)
                last_asked = tag
        if covered:
            await self.channel.basic_ack(last_asked, multiple=len(covered) > 1)
            self._sent(covered)
        for done in range(self.settled_upto + 1, tag + 1):
            del self._state[done]
        self.settled_upto = tag
        # Beyond the run: each on its own, at once (one FIFO write queue: waiting for the last
        # frame's write waits for all of them).
        alone = [(t, state) for t, state in sorted(self._state.items()) if isinstance(state, asyncio.Future)]
        for index, (t, _) in enumerate(alone):
            await self.channel.basic_ack(t, wait=index == len(alone) - 1)
            self._state[t] = _SETTLED
        for _, state in alone:
            self._sent([state])

    def _sent(self, futures: list[asyncio.Future[None]]) -> None:
        self.frames += 1
        self.acked += len(futures)
        ACK_FRAMES.inc()
        ACKED.inc(len(futures))
        for future in futures:
            if not future.done():
                future.set_result(None)

    def _fail_all(self, exc: BaseException) -> None:
        """Every ack asked for fails (a fresh error each); from now on each ack goes alone."""
        self.dead = True
        for state in self._state.values():
            if isinstance(state, asyncio.Future) and not state.done():
                state.set_exception(aiormq.exceptions.ChannelInvalidStateError(f"ack not sent: {exc!r}"))
        self._state.clear()


class Acks:
    """One :class:`ChannelAcks` per channel a consumer received on (a reconnect opens a new one)."""

    def __init__(self) -> None:
        self._channels: dict[int, ChannelAcks] = {}

    def of(self, channel: Any) -> ChannelAcks:
        acks = self._channels.get(id(channel))
        if acks is None or acks.channel is not channel:
            for key, old in list(self._channels.items()):  # forget channels that closed
                if old.channel.is_closed:
                    del self._channels[key]
            acks = self._channels[id(channel)] = ChannelAcks(channel)
        return acks

    @property
    def frames(self) -> int:
        return sum(a.frames for a in self._channels.values())

    @property
    def acked(self) -> int:
        return sum(a.acked for a in self._channels.values())
