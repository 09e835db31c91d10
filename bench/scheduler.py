"""Benchmark 4: the follow-up scheduler with 100,000 pending touches on PostgreSQL.

20,000 client contacts with a five-touch sequence each (100,000 ``pending`` rows); the first
touch of 10,000 of them is due. Measured: the due-row claim statement's plan (``EXPLAIN
ANALYZE``, the exact SQL the scheduler sends, captured from the engine), and the rate of
:meth:`FollowUpScheduler.run_due` -- claim a batch (lease, ``SKIP LOCKED``), write the texts
(templates: no model), finish (re-check, mark sent, record, stage in the outbox), publish to
``outgoing_campaign`` with confirms -- until every due touch is out.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, text

# Monday 5 January 2026, 11:00 in Almaty (UTC+5): inside the default working hours.
NOW = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
STRATEGIES = ("reminder", "value_proposition", "social_proof", "urgency", "farewell")


async def seed(engine: Any, *, contacts: int, due: int) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO contacts (phone, name, client_status, client_category, classified_by,"
                " classification_confidence, provider, language, first_seen_at, last_inbound_at,"
                " last_outbound_at, created_at, updated_at)"
                " SELECT '+7701' || lpad(g::text, 7, '0'), 'Prospect ' || g, 'client', 'prospect', 'moderator',"
                " 0.9, 'sandbox', 'en', :t0, :t0, :t0, :t0, :t0 FROM generate_series(1, :n) AS g"
            ),
            {"t0": NOW - timedelta(days=2), "n": contacts},
        )
        await conn.execute(
            text(
                "INSERT INTO follow_ups (contact_id, sequence_no, touch, strategy, due_at, status,"
                " created_at, updated_at)"
                " SELECT c.id, 1, t, (CAST(:strategies AS text[]))[t],"
                " CASE WHEN t = 1 AND c.id <= :due THEN CAST(:now AS timestamptz) - make_interval(secs => c.id % 3600)"
                " ELSE CAST(:now AS timestamptz) + make_interval(days => t * 3, secs => c.id) END,"
                " 'pending', :t0, :t0"
                " FROM contacts c CROSS JOIN generate_series(1, 5) AS t"
            ),
            {"strategies": list(STRATEGIES), "due": due, "now": NOW, "t0": NOW - timedelta(days=1)},
        )
        await conn.execute(text("ANALYZE contacts"))
        await conn.execute(text("ANALYZE follow_ups"))


async def explain(engine: Any, statement: str, parameters: Any) -> list[str]:
    """EXPLAIN ANALYZE the captured claim statement in a transaction that is rolled back."""
    async with engine.connect() as conn:
        transaction = await conn.begin()
        try:
            result = await conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {statement}", parameters)
            return [row[0] for row in result]
        finally:
            await transaction.rollback()


async def run(amqp_url: str, *, contacts: int = 20_000, due: int = 10_000) -> dict[str, Any]:
    from parley_shared.clock import ManualClock
    from parley_shared.topology import CAMPAIGN
    from tests.support import infra
    from tests.support.followups import make_rig

    database = await infra.recreate_database("bench_scheduler")
    rig = await make_rig(database, amqp_url, clock=ManualClock(NOW))
    engine = rig.runtime.engine
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if not captured and statement.startswith("UPDATE follow_ups") and "SKIP LOCKED" in statement:
            captured.append((statement, parameters))

    try:
        started = time.perf_counter()
        await seed(engine, contacts=contacts, due=due)
        seed_s = time.perf_counter() - started
        async with engine.connect() as conn:
            pending = (await conn.execute(text("SELECT count(*) FROM follow_ups WHERE status = 'pending'"))).scalar()
            due_rows = (
                await conn.execute(
                    text("SELECT count(*) FROM follow_ups WHERE status = 'pending' AND due_at <= :now"), {"now": NOW}
                )
            ).scalar()
        event.listen(engine.sync_engine, "before_cursor_execute", capture)
        started = time.perf_counter()
        report = await rig.scheduler.run_due(NOW)
        run_s = time.perf_counter() - started
        event.remove(engine.sync_engine, "before_cursor_execute", capture)
        queued, _ = await infra.queue_counts(amqp_url, CAMPAIGN.name)
        # Put the touches back to pending, so the plan is shown on the same 10,000 due rows.
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE follow_ups SET status = 'pending', sent_at = NULL, message_id = NULL,"
                    " claim_token = NULL, claimed_until = NULL WHERE status = 'sent'"
                )
            )
            await conn.execute(text("ANALYZE follow_ups"))
        plan = await explain(engine, *captured[0]) if captured else ["(claim statement not captured)"]
    finally:
        await rig.close()
    execution = next((line for line in plan if line.startswith("Execution Time")), "")
    return {
        "pending_rows": pending,
        "due_rows": due_rows,
        "seed_s": round(seed_s, 1),
        "batch_size": rig.settings.follow_up_batch_size,
        "claimed": report.claimed,
        "sent": report.sent,
        "published_to_outgoing_campaign": queued,
        "run_s": round(run_s, 2),
        "touches_per_s": round(report.sent / run_s, 1) if run_s else 0.0,
        "claim_query_ms": float(execution.split(":")[1].split()[0]) if execution else None,
        "uses_index": "ix_follow_ups_due" in "\n".join(plan),
        "claim_sql": captured[0][0] if captured else None,
        "explain": plan,
    }
