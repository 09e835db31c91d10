"""The fault suite: prospects write through the sandbox while everything that can fail, fails.

Both services run as real processes (``tests/support/stack.py``): the gateway on SQLite, the
agent on PostgreSQL, one RabbitMQ vhost. While prospects converse (each burst of 1-3 messages
back to back, then waiting for the answer to its last message before writing again):

* the agent is SIGKILLed and restarted twice;
* every RabbitMQ connection of the vhost is force-closed twice (``rabbitmqctl close_all_connections``);
* the agent's PostgreSQL connections are terminated twice (``pg_terminate_backend``);
* the fake Gemini fails every third call (503s and timeouts alternately);
* the sandbox provider answers 429 to every fifth send (``SANDBOX_SEND_429_RATE=0.2``).

Then every turn must have been answered exactly once, in order per prospect; no queue holds a
message (ready or unacknowledged), no dead-letter queue holds anything, no outbox row is
unpublished, and the logs of the whole run hold no phone number, message text or secret.

Profiles: ``PARLEY_CHAOS_PROFILE=ci`` (default: 400 messages from 60 prospects, part of the normal
suite) and ``full`` (2,000 messages from 300 prospects; ``make chaos``). The figures are printed
(``-s``) and written as JSON to ``PARLEY_CHAOS_FIGURES`` when set. A prospect answered out of order
leaves ``order-report.txt`` beside the services' logs (what each side recorded for it; its path is
in the figures). To hunt an ordering bug, ``PARLEY_CHAOS_FAULTS`` replaces the fault schedule
(``share:kind,...``, kinds ``agent_kill``, ``rabbitmq_close``, ``postgres_terminate``); the
test that counts the faults then fails by design.
"""

from __future__ import annotations

import asyncio
import collections
import json
import os
import re
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import pytest_asyncio

from tests.reliability.chaos import (
    REPLY_TEXT,
    FaultyModel,
    Prospect,
    Sandbox,
    Verdict,
    check_exactly_once_in_order,
    converse,
    figures_table,
    make_prospects,
    prometheus_total,
    queue_table,
    wait_until,
)
from tests.support import infra
from tests.support.fake_gemini import FakeGemini
from tests.support.stack import Stack

PROFILES = {
    "ci": {"messages": 400, "prospects": 60, "timeout": 110},
    "full": {"messages": 2000, "prospects": 300, "timeout": 900},
}
PROFILE_NAME = os.environ.get("PARLEY_CHAOS_PROFILE", "ci")
PROFILE = PROFILES[PROFILE_NAME]
# Fault points, as the share of messages answered so far.
FAULTS = (
    (0.15, "agent_kill"),
    (0.30, "rabbitmq_close"),
    (0.45, "postgres_terminate"),
    (0.60, "agent_kill"),
    (0.75, "rabbitmq_close"),
    (0.80, "postgres_terminate"),
)

if os.environ.get("PARLEY_CHAOS_FAULTS"):  # e.g. "0.1:rabbitmq_close,0.2:postgres_terminate": more, or other, faults
    FAULTS = tuple(
        (float(at), kind) for at, kind in (f.split(":") for f in os.environ["PARLEY_CHAOS_FAULTS"].split(","))
    )
STALL_S = 45.0  # no reply at all for this long: something is lost, stop and report
pytestmark = [pytest.mark.slow, pytest.mark.timeout(PROFILE["timeout"])]


@dataclass
class ChaosRun:
    prospects: list[Prospect]
    verdict: Verdict
    figures: dict[str, Any]
    queues: dict[str, dict[str, int]]
    unpublished: dict[str, int]
    agent_rows: dict[str, int]
    logs: str
    secrets: dict[str, str]
    waiting: dict[str, list[dict[str, Any]]]  # each service's tasks, when the stack did not go quiet
    faults: collections.Counter[str] = field(default_factory=collections.Counter)


def _sqlite_unpublished(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT count(*) FROM outbox WHERE published_at IS NULL").fetchone()[0])


async def _agent_rows(database_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        row = await conn.fetchrow(
            """SELECT
                 (SELECT count(*) FROM outbox WHERE published_at IS NULL) AS unpublished,
                 (SELECT count(*) FROM messages WHERE direction = 'in' AND status = 'pending') AS pending,
                 (SELECT count(*) FROM messages WHERE direction = 'in') AS inbound,
                 (SELECT count(*) FROM messages WHERE direction = 'in' AND status = 'handled') AS handled,
                 (SELECT count(*) FROM messages WHERE direction = 'out' AND kind = 'reply') AS replies,
                 (SELECT count(*) FROM messages WHERE direction = 'out' AND status = 'queued') AS out_queued,
                 (SELECT count(*) FROM contacts WHERE turn_due_at IS NOT NULL) AS turns_due"""
        )
        return {k: int(v) for k, v in dict(row).items()}
    finally:
        await conn.close()


async def _metrics(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(f"{url}/metrics") as r:
        return await r.text()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def chaos_run(amqp_vhost: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ChaosRun]:
    await infra.reset_topology(amqp_vhost)
    workdir = tmp_path_factory.mktemp("chaos")
    agent_db = await infra.recreate_database("chaos_agent")
    gateway_db_path = workdir / "gateway.db"
    secrets_used = {
        "api_token": "chaos-api-" + secrets.token_hex(12),
        "gemini_key": "chaos-gemini-" + secrets.token_hex(12),
        "wappi_token": "chaos-wappi-" + secrets.token_hex(12),
        "meta_access_token": "chaos-meta-" + secrets.token_hex(12),
        "meta_app_secret": "chaos-secret-" + secrets.token_hex(12),
        "meta_verify_token": "chaos-verify-" + secrets.token_hex(12),
    }
    model = FaultyModel(fail_every=3, hang_s=1.6)
    fake = await FakeGemini().start()
    fake.responder = model
    stack = Stack(
        workdir,
        amqp_vhost,
        gateway_db=f"sqlite+aiosqlite:///{gateway_db_path}",
        agent_db=agent_db,
        token=secrets_used["api_token"],
        env={
            "GEMINI_API_KEY": secrets_used["gemini_key"],
            "GEMINI_BASE_URL": fake.url,
            "REQUEUE_DELAY_S": "0.1",
            "SHUTDOWN_TIMEOUT_S": "5",
        },
        gateway_env={
            "WHATSAPP_PROVIDER": "sandbox",
            "SEND_RATE_PER_MIN": "6000",
            "SEND_BACKOFF_BASE_S": "0.05",
            "SEND_BACKOFF_MAX_S": "1",
            "SANDBOX_SEND_429_RATE": "0.2",
            "SANDBOX_RETRY_AFTER_S": "0.05",
            # Provider secrets the sandbox never uses: the privacy scan proves they stay out of the logs.
            "WAPPI_TOKEN": secrets_used["wappi_token"],
            "META_ACCESS_TOKEN": secrets_used["meta_access_token"],
            "META_APP_SECRET": secrets_used["meta_app_secret"],
            "META_VERIFY_TOKEN": secrets_used["meta_verify_token"],
        },
        agent_env={
            "LLM_TIMEOUT_S": "1",
            "LLM_RETRY_BACKOFF_S": "0.05",
            "LLM_ATTEMPTS": "3",
            "BUFFER_WINDOW_S": "0.5",
            "TURN_LEASE_S": "3",
            "TURN_SWEEP_INTERVAL_S": "0.5",
            "KNOWLEDGE_EMBEDDINGS": "false",
        },
    )
    prospects = make_prospects(PROFILE["messages"], PROFILE["prospects"])
    total = sum(len(p.texts) for p in prospects)
    faults: collections.Counter[str] = collections.Counter()
    await stack.start()
    try:
        async with aiohttp.ClientSession() as session:
            sandbox = Sandbox(stack.gateway.url, stack.token, session)
            reader = asyncio.create_task(sandbox.read_forever())

            async def inject() -> None:
                for share, kind in FAULTS:
                    await wait_until(
                        lambda share=share: _answered_at_least(sandbox, share * total),  # type: ignore[misc]
                        timeout=PROFILE["timeout"],
                        what=f"{share:.0%} answered",
                        every=0.05,
                    )
                    if kind == "agent_kill":
                        await stack.agent.kill()
                        await stack.agent.start()
                        faults["agent_sigkill"] += 1
                    elif kind == "rabbitmq_close":
                        await infra.close_all_connections()
                        faults["rabbitmq_connections_closed"] += 1
                    else:
                        faults["postgres_backends_terminated"] += await infra.terminate_connections(agent_db)
                        faults["postgres_terminations"] += 1

            async def stalled() -> None:
                """Returns once nothing was answered for STALL_S (a lost message leaves its prospect waiting)."""
                last, since = -1, time.monotonic()
                while time.monotonic() - since < STALL_S:
                    if sandbox.answered != last:
                        last, since = sandbox.answered, time.monotonic()
                    await asyncio.sleep(0.5)

            started = time.monotonic()
            injector = asyncio.create_task(inject())
            watchdog = asyncio.create_task(stalled())
            conversations = [asyncio.create_task(converse(sandbox, p)) for p in prospects]
            everyone = asyncio.gather(*conversations)
            done, _ = await asyncio.wait(
                [everyone, injector, watchdog], timeout=PROFILE["timeout"] - 40, return_when=asyncio.FIRST_COMPLETED
            )
            if injector in done and injector.exception() is None:
                done, _ = await asyncio.wait(
                    [everyone, watchdog], timeout=PROFILE["timeout"] - 40, return_when=asyncio.FIRST_COMPLETED
                )
            for task in done:
                if task is not watchdog:
                    task.result()  # a failed fault injection or prospect fails the run here
            watchdog.cancel()
            everyone.cancel()
            elapsed = time.monotonic() - started
            unanswered = sum(1 for p in prospects if not p.answered.is_set())

            async def quiet() -> bool:
                rows = await _agent_rows(agent_db)
                queues = await asyncio.to_thread(queue_table, infra.VHOST)
                return (
                    rows["pending"] == 0
                    and rows["turns_due"] == 0
                    and rows["unpublished"] == 0
                    and rows["out_queued"] == 0
                    and _sqlite_unpublished(gateway_db_path) == 0
                    and all(q["ready"] == 0 and q["unacked"] == 0 for q in queues.values())
                )

            waiting: dict[str, list[dict[str, Any]]] = {}
            if not unanswered:
                # the final state is asserted by the tests below; here we only give it time to settle
                try:
                    await wait_until(quiet, timeout=30, what="the stack to go quiet")
                except AssertionError:  # where each service's tasks wait, for the report
                    for service in (stack.gateway, stack.agent):
                        waiting[service.name] = await service.tasks()
            await sandbox.read_once(wait=0)
            for task in (reader, injector, watchdog, *conversations):
                task.cancel()
            await asyncio.gather(reader, injector, watchdog, *conversations, return_exceptions=True)
            gateway_metrics = await _metrics(session, stack.gateway.url)
        queues = await asyncio.to_thread(queue_table, infra.VHOST)
        rows = await _agent_rows(agent_db)
        unpublished = {"agent": rows["unpublished"], "gateway": _sqlite_unpublished(gateway_db_path)}
        order_report = await _order_report(prospects, sandbox.delivered, agent_db, gateway_db_path, workdir)
    finally:
        await stack.stop()
        await fake.close()

    verdict = check_exactly_once_in_order(prospects, sandbox.delivered)
    sent_total = prometheus_total(gateway_metrics, "parley_gateway_sent_total")
    figures: dict[str, Any] = {
        "profile": PROFILE_NAME,
        "prospects": len(prospects),
        "messages_in": verdict.messages_in,
        "messages_planned": total,
        "replies_out": verdict.replies_out,
        "replies_answering_a_burst": verdict.turns_with_bursts,
        "provider_sends_ok": int(sent_total),
        "duplicates": verdict.duplicates + max(0, int(sent_total) - verdict.replies_out),
        "lost": verdict.lost,
        "out_of_order_prospects": verdict.out_of_order,
        "unanswered_prospects": unanswered,
        "faults": {
            **dict(faults),
            "model_calls": model.calls,
            "model_5xx": model.failed_5xx,
            "model_timeouts": model.failed_timeout,
            "send_429": int(prometheus_total(gateway_metrics, "parley_gateway_send_retries_total")),
        },
        "seconds": round(elapsed, 1),
        "dead_letters": {name: q["ready"] for name, q in queues.items() if name.endswith(".dlq")},
    }
    if order_report is not None:
        figures["order_report"] = str(order_report)
    print(f"\nFault suite ({PROFILE_NAME}):\n{figures_table(figures)}")
    if os.environ.get("PARLEY_CHAOS_FIGURES"):
        Path(os.environ["PARLEY_CHAOS_FIGURES"]).write_text(json.dumps(figures, indent=2) + "\n")
    yield ChaosRun(
        prospects=prospects,
        verdict=verdict,
        figures=figures,
        queues=queues,
        unpublished=unpublished,
        agent_rows=rows,
        logs=stack.logs(),
        secrets=secrets_used,
        waiting=waiting,
        faults=faults,
    )


async def _order_report(
    prospects: list[Prospect], delivered: list[dict[str, Any]], agent_db: str, gateway_db: Path, workdir: Path
) -> Path | None:
    """When a prospect was answered out of order: what each side recorded for that prospect (the
    agent's messages and reply outbox rows, the gateway's message log), written beside the logs.
    Message texts stay out of it. Returns the report's path, or None when every order held."""
    lines: list[str] = []
    conn = await asyncpg.connect(agent_db.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        for p in prospects:
            mine = [m for m in sorted(delivered, key=lambda m: m["cursor"]) if m["to"] == p.phone]
            answered = [i for m in mine for i in m["in_reply_to"]]
            if list(dict.fromkeys(answered)) == [s.message_id for s in p.sent]:
                continue
            lines.append(f"prospect {p.phone}: sent {[s.message_id for s in p.sent]}")
            lines += [f"  delivered #{m['cursor']} {m['message_id']} answers {m['in_reply_to']}" for m in mine]
            rows = await conn.fetch(
                "SELECT m.id, m.direction, m.kind, m.status, m.message_id, m.previous_message_id, m.turn_id,"
                " m.sent_at, m.created_at FROM messages m JOIN contacts c ON c.id = m.contact_id"
                " WHERE c.phone = $1 ORDER BY m.id",
                p.phone,
            )
            lines += [f"  agent message {dict(r)}" for r in rows]
            rows = await conn.fetch(
                "SELECT o.id, o.message_id, o.created_at, o.published_at, o.attempts FROM outbox o"
                " JOIN contacts c ON o.cause_id = 'contact:' || c.id WHERE c.phone = $1 ORDER BY o.id",
                p.phone,
            )
            lines += [f"  agent outbox {dict(r)}" for r in rows]
            with sqlite3.connect(gateway_db) as db:
                query = (
                    "SELECT id, direction, message_id, kind, status, created_at, updated_at FROM message_logs"
                    " WHERE phone = ? ORDER BY id"
                )
                lines += [f"  gateway log {r}" for r in db.execute(query, (p.phone,))]
    finally:
        await conn.close()
    if not lines:
        return None
    report = workdir / "order-report.txt"
    report.write_text("\n".join(lines) + "\n")
    return report


async def _answered_at_least(sandbox: Sandbox, count: float) -> bool:
    return sandbox.answered >= count


@pytest.mark.asyncio(loop_scope="module")
async def test_every_turn_is_answered_exactly_once_and_in_order(chaos_run: ChaosRun) -> None:
    v, f = chaos_run.verdict, chaos_run.figures
    assert v.problems == [], (v.problems, f["order_report"] if "order_report" in f else None)
    assert f["unanswered_prospects"] == 0
    assert v.messages_in == f["messages_planned"]
    assert (v.lost, v.duplicates, v.out_of_order, v.foreign) == (0, 0, 0, 0)
    assert f["duplicates"] == 0, "the provider was asked to send more replies than were delivered"
    # every message was recorded once by the agent and answered; one stored reply per delivered one
    rows = chaos_run.agent_rows
    assert rows["inbound"] == rows["handled"] == v.messages_in
    assert rows["replies"] == v.replies_out


@pytest.mark.asyncio(loop_scope="module")
async def test_every_fault_happened_and_nothing_is_stuck_or_dead_lettered(chaos_run: ChaosRun) -> None:
    faults = chaos_run.figures["faults"]
    assert faults["agent_sigkill"] == 2
    assert faults["rabbitmq_connections_closed"] == 2
    assert faults["postgres_terminations"] == 2 and faults["postgres_backends_terminated"] > 0
    assert faults["model_5xx"] > 0 and faults["model_timeouts"] > 0
    assert faults["model_5xx"] + faults["model_timeouts"] == faults["model_calls"] // 3
    # every fifth provider call was refused (calls = successful sends + refusals; no other failure)
    calls = chaos_run.figures["provider_sends_ok"] + faults["send_429"]
    assert faults["send_429"] == int(calls * 0.2) > 0
    stuck = {name: q for name, q in chaos_run.queues.items() if q["ready"] or q["unacked"]}
    waiting = "\n".join(f"{name}: {t['task']} {t['frames']}" for name, ts in chaos_run.waiting.items() for t in ts)
    assert stuck == {}, (
        f"messages left in queues (or dead-lettered): {stuck}; outboxes not yet published: "
        f"{chaos_run.unpublished}; agent rows: {chaos_run.agent_rows}; where the services' tasks wait:\n{waiting}"
    )
    assert chaos_run.unpublished == {"agent": 0, "gateway": 0}
    rows = chaos_run.agent_rows
    assert (rows["pending"], rows["turns_due"], rows["out_queued"]) == (0, 0, 0), rows


@pytest.mark.asyncio(loop_scope="module")
async def test_the_logs_of_the_run_hold_no_phone_number_message_text_or_secret(chaos_run: ChaosRun) -> None:
    logs = chaos_run.logs
    assert "----- start #2 -----" in logs and "----- start #3 -----" in logs, "both agent restarts are in the logs"
    assert len(logs) > 10_000, "the services did log"
    leaks: list[str] = []
    for p in chaos_run.prospects:
        digits = p.phone[1:]
        for form in (p.phone, digits, f"{digits}@c.us"):
            if form in logs:
                leaks.append(f"phone {p.phone[:6]}… as {form[:4]}…")
        for text in p.texts:
            tag = text.rsplit("(", 1)[1].rstrip(")")  # the secret word each message carries
            if tag in logs or text in logs:
                leaks.append(f"message text of {p.phone[:6]}…")
    if REPLY_TEXT in logs:
        leaks.append("a reply's text")
    for name, value in chaos_run.secrets.items():
        if value in logs:
            leaks.append(f"secret {name}")
    # any other long digit run that is one of our numbers in another spelling (spaces, dashes)
    ours = {p.phone[1:] for p in chaos_run.prospects}
    for run in re.findall(r"\+?\d[\d \-()]{9,}\d", logs):
        if re.sub(r"\D", "", run) in ours:
            leaks.append("a phone number in another spelling")
    assert leaks == [], sorted(set(leaks))[:20]
