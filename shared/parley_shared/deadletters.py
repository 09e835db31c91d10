"""Dead letters: list them, put chosen ones back on their work queue, or delete them.

``python -m parley_shared.deadletters list [--queue Q] [--json] [--body]``
``python -m parley_shared.deadletters requeue --queue Q (--id MESSAGE_ID ... | --all)``
``python -m parley_shared.deadletters purge --queue Q (--id MESSAGE_ID ... | --all)``

``Q`` is a work queue (``incoming_messages``) or its dead-letter queue (``incoming_messages.dlq``).
The broker is ``--url`` or ``AMQP_URL`` (as for the services).

How it works: messages are taken from the dead-letter queue with ``basic.get`` and held
unacknowledged, so one pass sees each message once; what is not chosen goes back when the channel
closes (never rejected, so no delivery limit is spent). A requeued message is republished to the
``parley`` exchange with the work queue's routing key -- persistent, ``mandatory``, with publisher
confirms -- keeping its body, ``message_id``, ``correlation_id``, type and headers, minus the
dead-letter bookkeeping (``x-death``, ``x-first-death-*``, ``x-last-death-*``,
``x-delivery-count`` and Parley's ``x-parley-error``/``-queue``/``-service``/``-dead-lettered-at``);
``x-parley-requeued`` counts how often it was. Only after the broker confirmed the copy is the dead
letter acknowledged: a crash in between leaves a duplicate that the consumer's inbox (keyed on
``message_id``) turns into a no-op, never a loss.

Listing shows ids, reasons and sizes, not bodies (they hold phone numbers and message text);
``--body`` prints them for the operator who asks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from parley_shared.topology import BY_NAME, EXCHANGE, WORK_QUEUES, WorkQueue

BOOKKEEPING = ("x-death", "x-delivery-count", "x-parley-error", "x-parley-queue", "x-parley-service")
BOOKKEEPING_PREFIXES = ("x-first-death-", "x-last-death-", "x-parley-dead-lettered-at")
REQUEUED = "x-parley-requeued"


class DeadLetterError(RuntimeError):
    """A bad command (unknown queue, nothing chosen) or a requeue the broker did not confirm."""


@dataclass(frozen=True)
class DeadLetter:
    queue: str  # the work queue it came from
    message_id: str | None
    correlation_id: str | None
    type: str | None
    reason: str
    dead_lettered_at: str | None
    requeued_before: int
    size: int
    body: str | None = None


@dataclass
class Report:
    queue: str
    seen: int = 0
    chosen: int = 0
    missing: tuple[str, ...] = ()


def work_queue(name: str) -> WorkQueue:
    """A work queue by its name or its dead-letter queue's name."""
    base = name.removesuffix(".dlq")
    if base not in BY_NAME:
        raise DeadLetterError(f"unknown queue {name!r}; one of: {', '.join(q.name for q in WORK_QUEUES)}")
    return BY_NAME[base]


def reason_of(headers: dict[str, Any]) -> str:
    """Parley's own reason, else RabbitMQ's (``delivery_limit``, ``rejected``, ``expired``...)."""
    if headers.get("x-parley-error"):
        return _text(headers["x-parley-error"])
    first = headers.get("x-first-death-reason")
    if first:
        return f"rabbitmq: {_text(first)}"
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict) and deaths[0].get("reason"):
        return f"rabbitmq: {_text(deaths[0]['reason'])}"
    return "unknown"


def clean_headers(headers: dict[str, Any]) -> dict[str, Any]:
    """The headers a requeued copy keeps: everything but the dead-letter bookkeeping."""
    kept = {
        k: v
        for k, v in headers.items()
        if k not in BOOKKEEPING and not any(k.startswith(p) for p in BOOKKEEPING_PREFIXES)
    }
    kept[REQUEUED] = _int(headers.get(REQUEUED)) + 1
    return kept


def describe(queue: WorkQueue, message: AbstractIncomingMessage, *, with_body: bool = False) -> DeadLetter:
    headers = dict(message.headers or {})
    at = headers.get("x-parley-dead-lettered-at")
    when = datetime.fromtimestamp(at, UTC).isoformat() if isinstance(at, int) else None
    first_death = headers.get("x-first-death-time")
    if when is None and isinstance(first_death, datetime):
        when = first_death.isoformat()
    return DeadLetter(
        queue=queue.name,
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        type=message.type,
        reason=reason_of(headers),
        dead_lettered_at=when,
        requeued_before=_int(headers.get(REQUEUED)),
        size=len(message.body),
        body=message.body.decode("utf-8", "replace") if with_body else None,
    )


async def _take_all(channel: AbstractChannel, queue: WorkQueue, limit: int) -> list[AbstractIncomingMessage]:
    """Every message of the queue's DLQ, held unacknowledged (so none comes twice)."""
    dlq = await channel.get_queue(queue.dead_letter_queue, ensure=False)
    taken: list[AbstractIncomingMessage] = []
    while len(taken) < limit:
        message = await dlq.get(no_ack=False, fail=False, timeout=10)
        if message is None:
            break
        taken.append(message)
    return taken


async def list_dead_letters(
    url: str, queues: Iterable[str] | None = None, *, with_body: bool = False, limit: int = 10_000
) -> list[DeadLetter]:
    chosen = [work_queue(q) for q in queues] if queues else list(WORK_QUEUES)
    out: list[DeadLetter] = []
    connection = await aio_pika.connect(url)
    try:
        for queue in chosen:
            channel = await connection.channel()
            try:
                out += [describe(queue, m, with_body=with_body) for m in await _take_all(channel, queue, limit)]
            finally:
                await channel.close()  # everything goes back, in place, unrejected
    finally:
        await connection.close()
    return out


async def requeue(url: str, queue_name: str, ids: Sequence[str] | None, *, limit: int = 10_000) -> Report:
    """Republish the chosen dead letters (``ids``; None = all) to their work queue, then ack them."""
    return await _settle(url, queue_name, ids, limit=limit, republish=True)


async def purge(url: str, queue_name: str, ids: Sequence[str] | None, *, limit: int = 10_000) -> Report:
    """Delete the chosen dead letters (``ids``; None = all)."""
    return await _settle(url, queue_name, ids, limit=limit, republish=False)


async def purge_mentioning(url: str, needle: bytes, *, limit: int = 10_000) -> int:
    """Delete, from every dead-letter queue, the dead letters whose body contains ``needle`` (an
    erased phone); the others go back untouched. How many were deleted."""
    removed = 0
    connection = await aio_pika.connect(url)
    try:
        for queue in WORK_QUEUES:
            channel = await connection.channel()
            try:
                for message in await _take_all(channel, queue, limit):
                    if needle in message.body:
                        await message.ack()
                        removed += 1
            finally:
                await channel.close()  # the rest go back, in place, unrejected
    finally:
        await connection.close()
    return removed


async def _settle(url: str, queue_name: str, ids: Sequence[str] | None, *, limit: int, republish: bool) -> Report:
    queue = work_queue(queue_name)
    wanted = set(ids) if ids is not None else None
    if wanted is not None and not wanted:
        raise DeadLetterError("choose messages with --id, or --all")
    report = Report(queue.name)
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange(EXCHANGE, ensure=False)
        found: set[str] = set()
        for message in await _take_all(channel, queue, limit):
            report.seen += 1
            if wanted is not None and message.message_id not in wanted:
                continue
            if republish:
                copy = aio_pika.Message(
                    body=message.body,
                    headers=clean_headers(dict(message.headers or {})),
                    message_id=message.message_id,
                    correlation_id=message.correlation_id,
                    content_type=message.content_type,
                    type=message.type,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                )
                try:
                    await exchange.publish(copy, routing_key=queue.routing_key, mandatory=True, timeout=10)
                except Exception as exc:
                    raise DeadLetterError(f"the broker did not take {message.message_id}: {exc}") from exc
            await message.ack()
            report.chosen += 1
            if message.message_id:
                found.add(message.message_id)
        report.missing = tuple(sorted((wanted or set()) - found))
        await channel.close()
    finally:
        await connection.close()
    return report


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# ---------------------------------------------------------------------------------------------- CLI
def _print_table(letters: list[DeadLetter]) -> None:
    if not letters:
        print("no dead letters")
        return
    for d in letters:
        print(
            f"{d.queue}.dlq  {d.message_id}  {d.type or '-'}  at={d.dead_lettered_at or '-'}  "
            f"requeued={d.requeued_before}  {d.size}B  reason: {d.reason}"
        )
        if d.body is not None:
            print(f"    body: {d.body}")
    print(f"{len(letters)} dead letter(s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m parley_shared.deadletters", description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="RabbitMQ URL (default: AMQP_URL)")
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="show dead letters (all dead-letter queues, or --queue)")
    listing.add_argument("--queue", action="append", help="work queue or its .dlq (repeatable)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.add_argument("--body", action="store_true", help="also print bodies (they hold personal data)")
    for name, text in (("requeue", "put chosen dead letters back on their work queue"), ("purge", "delete them")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--queue", required=True, help="work queue or its .dlq")
        which = cmd.add_mutually_exclusive_group(required=True)
        which.add_argument("--id", nargs="+", dest="ids", metavar="MESSAGE_ID")
        which.add_argument("--all", action="store_true")
    args = parser.parse_args(argv)
    url = args.url
    if not url:
        from parley_shared.settings import CommonSettings

        url = CommonSettings().amqp_url.get_secret_value()
    try:
        if args.command == "list":
            letters = asyncio.run(list_dead_letters(url, args.queue, with_body=args.body))
            if args.json:
                for d in letters:
                    print(json.dumps({k: v for k, v in asdict(d).items() if v is not None}, ensure_ascii=False))
            else:
                _print_table(letters)
            return 0
        action = requeue if args.command == "requeue" else purge
        report = asyncio.run(action(url, args.queue, None if args.all else args.ids))
    except DeadLetterError as exc:
        print(f"deadletters: {exc}", file=sys.stderr)
        return 2
    verb = "requeued to" if args.command == "requeue" else "purged from"
    print(f"{report.chosen} of {report.seen} dead letter(s) {verb} {report.queue}")
    if report.missing:
        print(f"not found in {report.queue}.dlq: {', '.join(report.missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
