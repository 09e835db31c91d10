"""Fault-suite building blocks: scripted prospects, a model that fails on schedule, fault injection
and the figures (used by ``tests/reliability``; ``docs/reliability.md`` explains the guarantees).

The pieces talk to the services the way the outside world does: prospects POST to the gateway's
sandbox and read what the sender delivered from ``GET /sandbox/outbox``; faults are a SIGKILL of
the agent process, RabbitMQ's ``close_all_connections``, PostgreSQL's ``pg_terminate_backend``, a
fake Gemini that fails every third call and the sandbox's injected 429s (``SANDBOX_SEND_429_RATE``).
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import re
import string
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.support.fake_gemini import FakeReply, GeminiCall

QUESTIONS = (
    "Hello, do you sell office chairs?",
    "What desks do you have for a small office?",
    "Can you deliver to our office in Almaty?",
    "Which payment methods do you accept?",
    "Is there a warranty on the chairs?",
    "We are opening a new office and need furniture.",
    "Do you have ergonomic chairs in stock?",
    "Could you tell me about assembly?",
    "What about returns if the colour is wrong?",
    "Thanks, and what do you recommend for a meeting room?",
)
REPLY_TEXT = "Thank you for writing to us. Could you tell me a little more about your office?"


def secret_word(rng: random.Random, n: int = 12) -> str:
    """A lowercase word no log line has any business containing (letters only: never masked as digits)."""
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(n))


# --------------------------------------------------------------------------------------------- prospects
@dataclass
class Sent:
    message_id: str
    text: str
    at: float


@dataclass
class Prospect:
    phone: str
    rounds: list[list[str]]  # each round: a burst of texts sent back to back, then wait for the answer
    sent: list[Sent] = field(default_factory=list)
    answered: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def texts(self) -> list[str]:
        return [t for r in self.rounds for t in r]


def make_prospects(
    messages: int, prospects: int, *, seed: int = 7, max_burst: int = 3, phone_base: int = 77011000000
) -> list[Prospect]:
    """``messages`` texts over ``prospects`` numbers, cut into bursts of 1..``max_burst``."""
    rng = random.Random(seed)
    out = []
    per, extra = divmod(messages, prospects)
    for i in range(prospects):
        count = per + (1 if i < extra else 0)
        texts = [f"{rng.choice(QUESTIONS)} ({secret_word(rng)})" for _ in range(count)]
        rounds: list[list[str]] = []
        while texts:
            size = min(len(texts), rng.randint(1, max_burst))
            rounds.append(texts[:size])
            texts = texts[size:]
        out.append(Prospect(f"+{phone_base + i}", rounds))
    return out


# --------------------------------------------------------------------------------------------- the model
@dataclass
class FaultyModel:
    """A fake Gemini responder that fails every ``fail_every``-th call (503 and timeouts alternately)
    and otherwise answers a valid sales decision (with the sender's classification when asked)."""

    fail_every: int = 3
    hang_s: float = 2.0
    reply: str = REPLY_TEXT
    decide: Callable[[GeminiCall], dict[str, Any]] | None = None
    calls: int = 0
    failed_5xx: int = 0
    failed_timeout: int = 0
    answered: int = 0
    by_kind: collections.Counter[str] = field(default_factory=collections.Counter)

    @staticmethod
    def classifies(call: GeminiCall) -> bool:
        schema = call.response_schema or {}
        return "classification" in (schema.get("properties") or {})

    async def __call__(self, call: GeminiCall) -> FakeReply:
        self.calls += 1
        kind = "first_contact" if self.classifies(call) else "decision"
        self.by_kind[kind] += 1
        if self.fail_every and self.calls % self.fail_every == 0:
            if (self.calls // self.fail_every) % 2:
                self.failed_5xx += 1
                return FakeReply.error(503)
            self.failed_timeout += 1
            return FakeReply.hang(self.hang_s)
        self.answered += 1
        decision = (self.decide(call) if self.decide else None) or {
            "reply": self.reply,
            "spin_stage": "situation",
            "outcome": "open",
            "action": "none",
            "language": "en",
            "passages_used": [],
        }
        if kind == "first_contact":
            verdict = {"status": "client", "category": "prospect", "reason": "asks about products", "confidence": 0.95}
            decision = {**decision, "classification": verdict}
        return FakeReply.json(decision)


# --------------------------------------------------------------------------------------------- the sandbox
class Sandbox:
    """The prospects' side of the gateway's sandbox: POST inbound (idempotent ids, retried), and one
    reader of everything delivered (``GET /sandbox/outbox`` long polling) shared by all prospects."""

    def __init__(self, gateway_url: str, token: str, session: aiohttp.ClientSession) -> None:
        self.url = gateway_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"}
        self.session = session
        self.delivered: list[dict[str, Any]] = []
        self.post_retries = 0
        self._cursor = 0
        self._waiters: dict[str, asyncio.Event] = {}
        self._answered: set[str] = set()

    async def post(self, phone: str, text: str, provider_id: str) -> str:
        body = {"from": phone, "text": text, "id": provider_id}
        for attempt in range(30):
            try:
                async with self.session.post(
                    f"{self.url}/sandbox/inbound", json=body, headers=self.headers, timeout=aiohttp.ClientTimeout(10)
                ) as r:
                    if r.status == 202:
                        return str((await r.json())["message_id"])
                    if r.status < 500:
                        raise AssertionError(f"sandbox refused an inbound message: {r.status} {await r.text()}")
            except (TimeoutError, aiohttp.ClientError):
                pass
            self.post_retries += 1
            await asyncio.sleep(min(0.1 * 2**attempt, 2.0))
        raise AssertionError("the gateway kept refusing an inbound message")

    def waiter(self, message_id: str) -> asyncio.Event:
        event = self._waiters.setdefault(message_id, asyncio.Event())
        if message_id in self._answered:
            event.set()
        return event

    @property
    def answered(self) -> int:
        return len(self._answered)

    async def read_once(self, wait: int = 2) -> int:
        params = {"after": str(self._cursor), "limit": "500", "wait": str(wait)}
        async with self.session.get(
            f"{self.url}/sandbox/outbox", params=params, headers=self.headers, timeout=aiohttp.ClientTimeout(wait + 15)
        ) as r:
            r.raise_for_status()
            page = await r.json()
        for message in page["messages"]:
            self.delivered.append(message)
            for answered in message["in_reply_to"]:
                self._answered.add(answered)
                if answered in self._waiters:
                    self._waiters[answered].set()
        self._cursor = int(page["next_cursor"])
        return len(page["messages"])

    async def read_forever(self) -> None:
        while True:
            try:
                await self.read_once()
            except (TimeoutError, aiohttp.ClientError):
                await asyncio.sleep(0.2)


async def converse(sandbox: Sandbox, prospect: Prospect, *, burst_gap_s: float = 0.05, tag: str = "c") -> None:
    """A prospect: each burst back to back, then wait until its last message was answered."""
    n = 0
    for burst in prospect.rounds:
        for i, text in enumerate(burst):
            if i:
                await asyncio.sleep(burst_gap_s)
            provider_id = f"{tag}-{prospect.phone[1:]}-{n}"
            n += 1
            message_id = await sandbox.post(prospect.phone, text, provider_id)
            prospect.sent.append(Sent(message_id, text, time.monotonic()))
        await sandbox.waiter(prospect.sent[-1].message_id).wait()
    prospect.answered.set()


# --------------------------------------------------------------------------------------------- checking
@dataclass
class Verdict:
    messages_in: int
    replies_out: int
    turns_with_bursts: int
    duplicates: int
    lost: int
    out_of_order: int
    foreign: int
    problems: list[str]


def check_exactly_once_in_order(prospects: list[Prospect], delivered: list[dict[str, Any]]) -> Verdict:
    """Every message answered by exactly one reply; per prospect, the replies (in delivery order)
    answer the messages in sending order. A burst may be answered by one reply or several -- but
    each message once, and never a later message before an earlier one.

    Duplicates: a reply id delivered twice, or a message answered by two replies. Lost: a message
    no reply answers. Out of order: a prospect whose concatenated ``in_reply_to`` is not its sending
    order. Foreign: a reply answering an id that prospect never sent."""
    problems: list[str] = []
    by_phone: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    ids = collections.Counter(m["message_id"] for m in delivered)
    duplicates = sum(c - 1 for c in ids.values())
    if duplicates:
        problems.append(f"{duplicates} reply ids delivered more than once")
    for message in sorted(delivered, key=lambda m: m["cursor"]):
        by_phone[message["to"]].append(message)
    lost = out_of_order = foreign = bursts = 0
    for p in prospects:
        sent = [s.message_id for s in p.sent]
        answered = [i for m in by_phone.get(p.phone, []) for i in m["in_reply_to"]]
        bursts += sum(1 for m in by_phone.get(p.phone, []) if len(m["in_reply_to"]) > 1)
        counts = collections.Counter(answered)
        twice = [i for i, c in counts.items() if c > 1]
        missing = [i for i in sent if i not in counts]
        strangers = [i for i in counts if i not in set(sent)]
        duplicates += sum(counts[i] - 1 for i in twice)
        lost += len(missing)
        foreign += len(strangers)
        unique_order = list(dict.fromkeys(answered))
        if not missing and not strangers and unique_order != sent:
            out_of_order += 1
            problems.append(f"{p.phone[:6]}…: answered in order {unique_order} but sent {sent}")
        if twice:
            problems.append(f"{p.phone[:6]}…: {len(twice)} message(s) answered twice")
        if missing:
            problems.append(f"{p.phone[:6]}…: {len(missing)} message(s) never answered")
    return Verdict(
        messages_in=sum(len(p.sent) for p in prospects),
        replies_out=len(ids),
        turns_with_bursts=bursts,
        duplicates=duplicates,
        lost=lost,
        out_of_order=out_of_order,
        foreign=foreign,
        problems=problems[:20],
    )


def prometheus_total(text: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus counter's samples (optionally only those with the given labels)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        match = re.match(rf"{re.escape(name)}(?:\{{(.*)\}})?\s+([0-9.eE+-]+)$", line)
        if not match:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(2))
    return total


async def wait_until(check: Callable[[], Awaitable[bool]], *, timeout: float, what: str, every: float = 0.25) -> None:
    """Poll a condition (never a fixed sleep standing in for one)."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(every)


def figures_table(figures: dict[str, Any]) -> str:
    width = max(len(k) for k in figures)
    return "\n".join(
        f"  {k.ljust(width)}  {json.dumps(v) if not isinstance(v, str) else v}" for k, v in figures.items()
    )


def queue_table(vhost: str) -> dict[str, dict[str, int]]:
    """Every queue of the vhost: ready, unacknowledged, consumers (``rabbitmqctl list_queues``)."""
    from tests.support.infra import rabbitmqctl

    raw = rabbitmqctl(
        "list_queues",
        "-p",
        vhost,
        "name",
        "messages_ready",
        "messages_unacknowledged",
        "consumers",
        "--formatter",
        "json",
    )
    return {
        q["name"]: {
            "ready": int(q["messages_ready"]),
            "unacked": int(q["messages_unacknowledged"]),
            "consumers": int(q["consumers"]),
        }
        for q in json.loads(raw or "[]")
    }
