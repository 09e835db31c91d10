"""Which of a contact's waiting messages a turn may answer now.

The gateway links each message it publishes to the contact's previous one
(``previous_message_id``). Messages can still reach the agent out of that order -- a handler
retried after a database error, a copy redelivered after a lost channel, another replica
recording first, a voice note still being transcribed. A message whose chain back to what is
already recorded has a hole is *held*: answering it now would answer a later message before an
earlier one. It waits for the missing message, but never longer than ``max_wait`` after it was
recorded (a message that never comes -- dead-lettered, or lost by an older gateway -- must not
silence the contact); then it is answered anyway.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Waiting:
    """A recorded message that waits for a turn."""

    message_id: str
    previous_message_id: str | None
    recorded_at: datetime


@dataclass(frozen=True)
class Readiness:
    ready: tuple[str, ...]  # message ids the turn answers now (in the order given)
    held: tuple[str, ...]  # message ids behind a message that has not arrived
    retry_at: datetime | None  # when to look again at the held ones (their wait ends)
    expired: tuple[str, ...] = ()  # answered although a message before them never arrived


def missing_links(waiting: Sequence[Waiting]) -> set[str]:
    """The predecessors that are not among ``waiting`` (the caller looks them up as recorded)."""
    ids = {w.message_id for w in waiting}
    return {w.previous_message_id for w in waiting if w.previous_message_id and w.previous_message_id not in ids}


def readiness(
    waiting: Sequence[Waiting], recorded: Collection[str], *, now: datetime, max_wait: timedelta
) -> Readiness:
    """Split ``waiting`` into what a turn answers now and what waits for a missing message.

    ``recorded``: which of :func:`missing_links` are recorded already (any status)."""
    by_id = {w.message_id: w for w in waiting}
    verdict: dict[str, bool] = {}  # message id -> held

    def held(w: Waiting) -> bool:
        path: list[str] = []
        current: Waiting | None = w
        result = False
        while current is not None and current.message_id not in verdict:
            if current.message_id in path:  # a cycle (never made by a gateway): nothing to wait for
                break
            path.append(current.message_id)
            previous = current.previous_message_id
            if previous is None or previous in recorded:
                current = None
            elif previous in by_id:
                current = by_id[previous]
            else:
                result = True  # the chain reaches a message that has not arrived
                current = None
        if current is not None and current.message_id in verdict:
            result = verdict[current.message_id]
        for message_id in path:
            verdict[message_id] = result
        return result

    holding = [w for w in waiting if held(w)]
    if not holding:
        return Readiness(ready=tuple(w.message_id for w in waiting), held=(), retry_at=None)
    deadline = min(w.recorded_at for w in holding) + max_wait
    if now >= deadline:
        return Readiness(
            ready=tuple(w.message_id for w in waiting),
            held=(),
            retry_at=None,
            expired=tuple(w.message_id for w in holding),
        )
    held_ids = {w.message_id for w in holding}
    return Readiness(
        ready=tuple(w.message_id for w in waiting if w.message_id not in held_ids),
        held=tuple(w.message_id for w in holding),
        retry_at=deadline,
    )
