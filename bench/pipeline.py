"""Benchmark 1: the whole pipeline against the bare reference, side by side in one run.

Parley: the sandbox gateway (HTTP in, ``message_logs`` + outbox, ``incoming_messages``), the
agent service (offline engine, PostgreSQL), the sender (pacing off) into the sandbox outbox,
and the delivery statuses back to the agent -- both services as real processes on PostgreSQL.
The reference: ``bench/reference.py``. Both are driven by the same closed loop
(``bench/load.py``): N prospects at once, each writing its next message when the previous one
was answered. ``BUFFER_WINDOW_S=0``: the burst-buffering wait is a product choice (3 s by
default) that would make every answer at least that late; here each message is its own turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp

from bench import profile
from bench.common import ROOT, BackendCpu, CpuMeter, bench_vhost, peak_rss_mib
from bench.load import CONVERSATION, LoadResult, Replies, Retries, closed_loop, post
from parley_dev.processes import free_port


def _http(prospects: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=prospects + 10), timeout=aiohttp.ClientTimeout(total=120)
    )


# ---------------------------------------------------------------------------- the reference
@contextlib.asynccontextmanager
async def _reference_process(role: str, amqp_url: str, *args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.reference",
        role,
        "--amqp",
        amqp_url,
        *args,
        cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        if line.strip() != b"ready":
            raise RuntimeError(f"reference {role} did not start")
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()


async def run_reference(prospects: int, messages: tuple[str, ...]) -> dict[str, Any]:
    from bench import reference

    port = free_port()
    async with (
        bench_vhost("reference") as amqp_url,
        _reference_process("server", amqp_url, "--port", str(port)) as server,
        _reference_process("worker", amqp_url) as worker,
        _http(prospects) as http,
    ):
        replies = Replies()
        connection = await aio_pika.connect(amqp_url)
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=1000)
            queue = await channel.get_queue(reference.OUT)

            async def sink(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                import json

                body = json.loads(message.body)
                replies.deliver(body["phone"], body["in_reply_to"])
                await message.ack()

            await queue.consume(sink)

            retries = Retries()

            async def send(to: str, text: str, _k: int) -> str:
                url = f"http://127.0.0.1:{port}/inbound"
                return str((await post(http, url, {"from": to, "text": text}, retries=retries))["message_id"])

            meter = CpuMeter(groups={"server": [server.pid], "worker": [worker.pid]})
            meter.start()
            result = await closed_loop(send, replies, prospects=prospects, messages=messages)
            cpu = meter.stop()
            memory = {"server": peak_rss_mib(server.pid), "worker": peak_rss_mib(worker.pid)}
        finally:
            await connection.close()
    return {**_report(result, cpu, memory, meter.system), "http_retries": retries.statuses}


# ---------------------------------------------------------------------------- Parley
def parley_env() -> tuple[dict[str, str], dict[str, str]]:
    gateway = {"WHATSAPP_PROVIDER": "sandbox", "SEND_RATE_PER_MIN": "600000"}
    agent = {
        "LLM_ENGINE": "offline",
        "BUFFER_WINDOW_S": "0",
        "KNOWLEDGE_DIR": str(ROOT / "knowledge_base"),
        "PROMPTS_DIR": str(ROOT / "prompts"),
    }
    return gateway, agent


@contextlib.asynccontextmanager
async def parley_stack(
    workdir: Path, label: str, *, gateway_env: dict[str, str] | None = None, agent_env: dict[str, str] | None = None
) -> AsyncIterator[Any]:
    from tests.support import infra
    from tests.support.stack import Stack

    gw_default, agent_default = parley_env()
    async with bench_vhost(label) as amqp_url:
        stack = Stack(
            workdir / label,
            amqp_url,
            gateway_db=await infra.recreate_database(f"{label}_gateway"),
            agent_db=await infra.recreate_database(f"{label}_agent"),
            env={"LOG_LEVEL": "INFO"},
            gateway_env={**gw_default, **(gateway_env or {})},
            agent_env={**agent_default, **(agent_env or {})},
        )
        await stack.start()
        try:
            yield stack
        finally:
            await stack.stop()


async def read_sandbox_outbox(http: aiohttp.ClientSession, stack: Any, replies: Replies) -> None:
    """Follow the sandbox outbox (one long poll for everyone) and hand each answer to its prospect."""
    cursor = 0
    url = f"{stack.gateway.url}/sandbox/outbox"
    while True:
        params = {"after": str(cursor), "limit": "500", "wait": "10"}
        async with http.get(url, params=params, headers=stack.headers) as r:
            page = await r.json()
        for message in page["messages"]:
            replies.deliver(message["to"], message["in_reply_to"])
        cursor = page["next_cursor"]


async def run_parley(workdir: Path, prospects: int, messages: tuple[str, ...]) -> dict[str, Any]:
    async with parley_stack(workdir, "pipeline") as stack, _http(prospects) as http:
        replies = Replies()
        reader = asyncio.create_task(read_sandbox_outbox(http, stack, replies))
        url = f"{stack.gateway.url}/sandbox/inbound"
        retries = Retries()

        async def send(to: str, text: str, k: int) -> str:
            body = {"from": to, "text": text, "id": f"bench-{to}-{k}"}
            return str((await post(http, url, body, headers=stack.headers, retries=retries))["message_id"])

        assert stack.gateway.process and stack.agent.process
        gw_pid, agent_pid = stack.gateway.process.pid, stack.agent.process.pid
        meter = CpuMeter(groups={"gateway": [gw_pid], "agent": [agent_pid]})
        databases = {"gateway": stack.gateway_db, "agent": stack.agent_db}
        before = await transactions(databases)
        batches_before = await group_commits(http, stack)
        backends = BackendCpu(list(databases.values()))
        await backends.start()
        meter.start()
        try:
            async with profile.recording({"gateway": gw_pid, "agent": agent_pid}):
                result = await closed_loop(send, replies, prospects=prospects, messages=messages)
        finally:
            cpu = meter.stop()
            cpu["postgresql"] = await backends.stop()
            after = await transactions(databases)
            batches_after = await group_commits(http, stack)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        memory = {"gateway": peak_rss_mib(gw_pid), "agent": peak_rss_mib(agent_pid)}
    report = _report(result, cpu, memory, meter.system)
    report["http_retries"] = retries.statuses
    report["db_transactions_per_message"] = {
        k: round((after[k] - before[k]) / result.answered, 1) if result.answered else 0.0 for k in databases
    }
    report["items_per_batch"] = _items_per_batch(batches_before, batches_after)
    return report


async def group_commits(http: aiohttp.ClientSession, stack: Any) -> dict[tuple[str, str], tuple[float, float]]:
    """(service, group commit) -> (batches, items) so far, from each service's ``/metrics``; and
    (service, "acks") -> (ack frames, deliveries acknowledged)."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[tuple[str, str], list[float]] = {}
    for service in (stack.gateway, stack.agent):
        async with http.get(f"{service.url}/metrics") as r:
            text = await r.text()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                kind = {"parley_group_commit_batches_total": 0, "parley_group_commit_items_total": 1}.get(sample.name)
                if kind is not None:
                    out.setdefault((service.name, sample.labels["name"]), [0.0, 0.0])[kind] = sample.value
                kind = {"parley_broker_ack_frames_total": 0, "parley_broker_acked_total": 1}.get(sample.name)
                if kind is not None:  # the consumers' acks: deliveries per basic.ack frame
                    out.setdefault((service.name, "acks"), [0.0, 0.0])[kind] = sample.value
    return {k: (v[0], v[1]) for k, v in out.items()}


def _items_per_batch(
    before: dict[tuple[str, str], tuple[float, float]], after: dict[tuple[str, str], tuple[float, float]]
) -> dict[str, float]:
    """Mean items per batch of each group commit during the run: how much a batch shares."""
    out = {}
    for key, (batches, items) in sorted(after.items()):
        b0, i0 = before.get(key, (0.0, 0.0))
        if batches > b0:
            out[f"{key[0]}.{key[1]}"] = round((items - i0) / (batches - b0), 2)
    return out


async def transactions(databases: dict[str, str]) -> dict[str, int]:
    """Committed + rolled back transactions so far in each database (``pg_stat_database``)."""
    import asyncpg

    from tests.support import infra

    conn = await asyncpg.connect(infra.pg_url("postgres").replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        out = {}
        for name, url in databases.items():
            row = await conn.fetchrow(
                "SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = $1",
                url.rsplit("/", 1)[-1],
            )
            out[name] = int(row["n"]) if row else 0
        return out
    finally:
        await conn.close()


def _own_cpu_ms(run: dict[str, Any]) -> float:
    per_message = run["cpu_ms_per_message"]
    return round(sum(v for k, v in per_message.items() if k != "machine (all processes)"), 2)


def _report(
    result: LoadResult, cpu: dict[str, float], memory: dict[str, float], system: dict[str, float]
) -> dict[str, Any]:
    summary: dict[str, Any] = result.summary()
    summary["cpu_s"] = cpu
    summary["cpu_system_s"] = system
    summary["cpu_ms_per_message"] = {
        k: round(v * 1000 / result.answered, 2) if result.answered else 0.0 for k, v in cpu.items()
    }
    summary["peak_rss_mib"] = memory
    machine = cpu.get("machine (all processes)", 0.0)
    # Busy CPU of processes outside the run (other work on the machine meanwhile), per second.
    others = machine - sum(v for k, v in cpu.items() if k != "machine (all processes)")
    summary["other_load_cores"] = round(max(0.0, others) / result.wall_s, 2) if result.wall_s else 0.0
    return summary


async def run(workdir: Path, *, prospects: int = 500, per_prospect: int = 10) -> dict[str, Any]:
    messages = tuple((CONVERSATION * (per_prospect // len(CONVERSATION) + 1))[:per_prospect])
    started = time.perf_counter()
    reference = await run_reference(prospects, messages)
    parley = await run_parley(workdir, prospects, messages)
    ratio = parley["messages_per_s"] / reference["messages_per_s"] if reference["messages_per_s"] else 0.0
    own = {name: _own_cpu_ms(run) for name, run in (("parley", parley), ("reference", reference))}
    return {
        "prospects": prospects,
        "messages_per_prospect": per_prospect,
        "how": "closed loop: each prospect writes its next message when the previous one was answered; "
        "BUFFER_WINDOW_S=0, SEND_RATE_PER_MIN=600000, offline engine, PostgreSQL",
        "parley": parley,
        "reference": reference,
        "ratio": round(ratio, 3),
        "target_ratio": 0.5,
        # CPU per message of everything each pipeline runs on (its processes, RabbitMQ, PostgreSQL,
        # the driver): the throughput ratio two CPU-bound pipelines reach on any machine.
        "cpu_ms_per_message": own,
        "cpu_ratio": round(own["reference"] / own["parley"], 3) if own["parley"] else 0.0,
        "bench_s": round(time.perf_counter() - started, 1),
    }
