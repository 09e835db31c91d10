"""``python -m bench`` (``make bench``): run every benchmark, write ``bench/results/latest.json``, print a table.

    python -m bench                      # everything, full size
    python -m bench pipeline knowledge   # some of them
    python -m bench --quick              # small sizes (a smoke run of the harness)

``PARLEY_BENCH_PROFILE=<dir>`` also records py-spy profiles of the services during the
pipeline and slow-model runs (see ``bench/profile.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import RESULTS, ROOT, bench_vhost, drop_databases, ensure_services, load_average, machine
from parley_shared.cli import new_event_loop

ALL = ("pipeline", "slow_model", "knowledge", "scheduler", "reporting", "console_inbox", "console_live")


async def run_pipeline(workdir: Path, quick: bool) -> dict[str, Any]:
    from bench import pipeline

    return await pipeline.run(workdir, prospects=50 if quick else 500, per_prospect=4 if quick else 10)


async def run_slow_model(workdir: Path, quick: bool) -> dict[str, Any]:
    from bench import slow_model

    return await slow_model.run(workdir, prospects=100 if quick else 2000)


async def run_knowledge(_workdir: Path, quick: bool) -> dict[str, Any]:
    args = [sys.executable, "-m", "bench.knowledge", "--pages", "100" if quick else "1000"]
    done = await asyncio.to_thread(subprocess.run, args, cwd=ROOT, capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


async def run_scheduler(_workdir: Path, quick: bool) -> dict[str, Any]:
    from bench import scheduler
    from tests.support import infra

    async with bench_vhost("scheduler") as amqp_url:
        await infra.reset_topology(amqp_url)
        if quick:
            return await scheduler.run(amqp_url, contacts=2_000, due=500)
        return await scheduler.run(amqp_url)


async def run_reporting(workdir: Path, quick: bool) -> dict[str, Any]:
    from bench import reporting

    if quick:
        return await reporting.run(workdir, contacts=2_000, messages=5, clients=5)
    return await reporting.run(workdir)
async def run_console_inbox(_workdir: Path, quick: bool) -> dict[str, Any]:
    from bench import console

    if quick:
        return await console.run_inbox(contacts=1_000, per_contact=20, requests=30)
    return await console.run_inbox()


async def run_console_live(workdir: Path, quick: bool) -> dict[str, Any]:
    from bench import console

    if quick:
        return await console.run_live(workdir, managers=10, prospects=20, messages=2)
    return await console.run_live(workdir)


RUNNERS = {
    "pipeline": run_pipeline,
    "slow_model": run_slow_model,
    "knowledge": run_knowledge,
    "scheduler": run_scheduler,
    "reporting": run_reporting,
    "console_inbox": run_console_inbox,
    "console_live": run_console_live,
}


def _commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return done.stdout.strip()


async def main(names: list[str], quick: bool, output: Path) -> dict[str, Any]:
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "machine": await asyncio.to_thread(machine),
        "git_commit": await asyncio.to_thread(_commit),
        "benchmarks": {},
    }
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp:
        try:
            for name in names:
                print(f"== {name} ...", file=sys.stderr, flush=True)
                started = time.perf_counter()
                load_before = load_average()[0]
                try:
                    outcome = await RUNNERS[name](Path(tmp), quick)
                except Exception as exc:  # one broken benchmark must not hide the others
                    outcome = {"error": f"{type(exc).__name__}: {exc}"[:500]}
                outcome["load_average_before"] = round(load_before, 2)
                outcome["load_average_after"] = round(load_average()[0], 2)
                outcome["seconds"] = round(time.perf_counter() - started, 1)
                results["benchmarks"][name] = outcome
                print(f"   done in {outcome['seconds']} s", file=sys.stderr, flush=True)
        finally:
            await drop_databases()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return results


def _batches(items_per_batch: dict[str, float], service: str) -> str:
    """A service's group commits and their mean items per batch, e.g. ``gateway: ingest 17.2, ...``."""
    mine = [(k.split(".", 1)[1], v) for k, v in items_per_batch.items() if k.startswith(service + ".")]
    return f"{service}: " + ", ".join(f"{name} {v}" for name, v in mine) if mine else f"{service}: -"


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:,}{unit}" if isinstance(value, int) else f"{value}{unit}"


def _rows(b: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    if "pipeline" in b and "error" not in b["pipeline"]:
        p, r = b["pipeline"]["parley"], b["pipeline"]["reference"]
        cpu = p["cpu_ms_per_message"]
        rows += [
            ("Pipeline: Parley", f"{p['messages_per_s']} msg/s", _latency(p)),
            ("Pipeline: reference", f"{r['messages_per_s']} msg/s", _latency(r)),
            (
                "Pipeline: ratio (target >= 0.5)",
                str(b["pipeline"]["ratio"]),
                f"{p['answered']}/{p['messages']} answered, {p['out_of_order']} out of order;"
                f" CPU ratio {b['pipeline']['cpu_ratio']}",
            ),
            (
                "Pipeline: peak RSS",
                f"gateway {p['peak_rss_mib']['gateway']} MiB",
                f"agent {p['peak_rss_mib']['agent']} MiB",
            ),
            (
                "Pipeline: CPU per message",
                f"gateway {cpu['gateway']} ms",
                f"agent {cpu['agent']} ms, PostgreSQL {cpu['postgresql']} ms, RabbitMQ {cpu['rabbitmq']} ms;"
                f" all {b['pipeline']['cpu_ms_per_message']['parley']} ms"
                f" (reference {b['pipeline']['cpu_ms_per_message']['reference']} ms)",
            ),
            (
                "Pipeline: DB transactions per message",
                f"gateway {p['db_transactions_per_message']['gateway']}",
                f"agent {p['db_transactions_per_message']['agent']} (pg_stat_database, committed and rolled back)",
            ),
            (
                "Pipeline: items per batch",
                _batches(p.get("items_per_batch", {}), "gateway"),
                _batches(p.get("items_per_batch", {}), "agent"),
            ),
            ("Pipeline: other load on the machine", f"{p['other_load_cores']} cores", "busy outside the run"),
        ]
    if "slow_model" in b and "error" not in b["slow_model"]:
        s = b["slow_model"]
        rows += [
            (
                "Slow model: all answered (target 10 s)",
                _fmt(s["all_answered_s"], " s"),
                f"{s['answered']}/{s['prospects']} prospects, {s['answered_in_order']} in order",
            ),
            ("Slow model: answer time", f"p50 {s['answer_p50_s']} s", f"p99 {s['answer_p99_s']} s"),
            (
                "Slow model: model calls",
                f"{s['model_calls']} ({s.get('model_calls_per_prospect')} per prospect)",
                f"peak in flight {s['peak_model_calls_in_flight']}",
            ),
            (
                "Slow model: CPU per model call",
                f"{s.get('engine_call_cpu_ms')} ms (engine)",
                f"{s.get('sdk_call_cpu_ms')} ms as a plain SDK call, {s.get('raw_http_call_cpu_ms')} ms as a plain"
                f" aiohttp POST; services' CPU"
                f" gateway {s['cpu_s']['gateway']} s, agent {s['cpu_s']['agent']} s",
            ),
        ]
    if "knowledge" in b and "error" not in b["knowledge"]:
        k = b["knowledge"]
        rows += [
            (
                "Knowledge: ingest",
                f"{k['ingest_s']} s",
                f"{k['pages']} pages, {k['pages_per_s']} pages/s, {k['chunks']} chunks",
            ),
            (
                "Knowledge: retrieval (target p99 < 10 ms)",
                f"p50 {k['retrieval_p50_ms']} ms",
                f"p99 {k['retrieval_p99_ms']} ms (CPU p99 {k['retrieval_cpu_p99_ms']} ms)",
            ),
            ("Knowledge: memory", f"index {k['index_rss_mib']} MiB", f"peak RSS {k['peak_rss_mib']} MiB"),
        ]
    if "scheduler" in b and "error" not in b["scheduler"]:
        s = b["scheduler"]
        rows += [
            (
                "Scheduler: claim query",
                f"{s['claim_query_ms']} ms",
                f"{s['pending_rows']:,} pending, {s['due_rows']:,} due, index used: {s['uses_index']}",
            ),
            (
                "Scheduler: claim and publish",
                f"{s['touches_per_s']} touches/s",
                f"{s['sent']:,} sent in {s['run_s']} s (batch {s['batch_size']})",
            ),
        ]
    if "reporting" in b and "error" not in b["reporting"]:
        r = b["reporting"]
        for label, key in (("cap 2 (shipped)", "guarded"), ("cap lifted to 20", "uncapped")):
            run = r[key]
            rows.append(
                (
                    f"Reporting storm, {label}: prospect reply",
                    f"p50 {run['storm']['reply_p50_s']} s",
                    f"p95 {run['storm']['reply_p95_s']} s, max {run['storm']['reply_max_s']} s"
                    f" (alone: p50 {run['quiet']['reply_p50_s']} s, p95 {run['quiet']['reply_p95_s']} s);"
                    f" reports {run['reports']['answers']}",
                )
            )
    if "console_inbox" in b and "error" not in b["console_inbox"]:
        c = b["console_inbox"]
        rows.append(
            (
                "Console: inbox page (target p99 < 100 ms)",
                f"p50 {c['p50_ms']} ms",
                f"p99 {c['p99_ms']} ms over {c['requests']} requests; {c['contacts']:,} contacts,"
                f" {c['messages']:,} messages",
            )
        )
    if "console_live" in b and "error" not in b["console_live"]:
        c = b["console_live"]
        rows.append(
            (
                "Console: live event to managers (target p99 < 500 ms)",
                f"p50 {c['p50_ms']} ms",
                f"p99 {c['p99_ms']} ms; {c['managers']} managers, {c['prospects']} prospects,"
                f" {c['samples']:,} arrivals",
            )
        )
    for name, outcome in b.items():
        if "error" in outcome:
            rows.append((f"{name}: FAILED", "", outcome["error"][:100]))
    return rows


def _latency(run: dict[str, Any]) -> str:
    return f"p50 {run['latency_p50_ms']} ms, p99 {run['latency_p99_ms']} ms"


def table(results: dict[str, Any]) -> str:
    rows = _rows(results["benchmarks"])
    width = [max([len(r[i]) for r in rows] + [9]) for i in range(2)]
    lines = [f"{'Benchmark'.ljust(width[0])} | {'Result'.ljust(width[1])} | Detail"]
    lines.append("-" * (max(len(line) for line in lines) + 60))
    lines += [f"{a.ljust(width[0])} | {c.ljust(width[1])} | {d}" for a, c, d in rows]
    return "\n".join(lines)


def cli() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Parley's benchmarks")
    parser.add_argument("names", nargs="*", choices=[*ALL, []], help="which benchmarks (default: all)")
    parser.add_argument("--quick", action="store_true", help="small sizes: check the harness, not the numbers")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    parser.add_argument("--no-services", action="store_true", help="do not run deploy/scripts/ensure-services.sh")
    args = parser.parse_args()
    if not args.no_services:
        ensure_services()
    # The services' event loop (uvloop): the scheduler benchmark runs the agent's scheduler in this
    # process, and should run it as the agent does (the load generators run on it too, alike for
    # Parley and the reference).
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        results = runner.run(main(list(args.names) or list(ALL), args.quick, args.output))
    print(table(results))
    print(f"\n(written to {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output})")
    if any("error" in o for o in results["benchmarks"].values()):
        sys.exit(1)


if __name__ == "__main__":
    cli()
