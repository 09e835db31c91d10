"""The shipped definitions file equals the code's topology; the broker accepts it; migrations build both databases."""

from __future__ import annotations

import json
from pathlib import Path

import aio_pika
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData

from agent_service.db import MIGRATIONS as AGENT_MIGRATIONS
from agent_service.db.tables import metadata as agent_metadata
from gateway.db import MIGRATIONS as GATEWAY_MIGRATIONS
from gateway.db.tables import metadata as gateway_metadata
from parley_shared.db import create_engine, current_revision, migrate
from parley_shared.topology import LIVE_EXCHANGE, WORK_QUEUES, shipped_definitions

ROOT = Path(__file__).resolve().parents[2]


def test_definitions_file_matches_the_code() -> None:
    shipped = json.loads((ROOT / "deploy" / "rabbitmq" / "definitions.json").read_text())
    assert shipped == shipped_definitions(), (
        "regenerate with: python -m parley_shared.topology > deploy/rabbitmq/definitions.json"
    )


def test_the_consoles_live_exchange_is_shipped() -> None:
    """Every replica binds a queue of its own to it at start; the exchange itself is shipped."""
    shipped = json.loads((ROOT / "deploy" / "rabbitmq" / "definitions.json").read_text())
    live = [e for e in shipped["exchanges"] if e["name"] == LIVE_EXCHANGE]
    assert [(e["type"], e["durable"]) for e in live] == [("fanout", True)]


async def test_broker_accepts_the_shipped_queue_arguments(amqp_url: str) -> None:
    """Redeclaring every queue with the file's arguments is accepted (a mismatch closes the channel)."""
    shipped = json.loads((ROOT / "deploy" / "rabbitmq" / "definitions.json").read_text())
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        for q in shipped["queues"]:
            await channel.declare_queue(q["name"], durable=q["durable"], arguments=q["arguments"])
        assert {q["name"] for q in shipped["queues"]} == {n for w in WORK_QUEUES for n in (w.name, w.dead_letter_queue)}
    finally:
        await connection.close()


@pytest.mark.parametrize(
    ("migrations", "metadata"),
    [(GATEWAY_MIGRATIONS, gateway_metadata), (AGENT_MIGRATIONS, agent_metadata)],
    ids=["gateway", "agent"],
)
async def test_migrations_build_the_schema_from_empty(database_url: str, migrations: Path, metadata: MetaData) -> None:
    engine = create_engine(database_url)
    try:
        await migrate(engine, migrations)
        await migrate(engine, migrations)  # idempotent: a restart migrates nothing
        assert await current_revision(engine) != ()

        def diff(connection):  # type: ignore[no-untyped-def]
            return compare_metadata(MigrationContext.configure(connection, opts={"compare_type": False}), metadata)

        async with engine.connect() as conn:
            differences = await conn.run_sync(diff)
        assert differences == [], f"tables.py and the migrations disagree: {differences}"
    finally:
        await engine.dispose()


async def test_makemigration_numbers_after_the_chosen_head_and_refuses_ambiguity(tmp_path: Path) -> None:
    import shutil

    from parley_shared.db import make_revision

    scripts = tmp_path / "migrations"
    shutil.copytree(AGENT_MIGRATIONS, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/rev.db")
    try:
        await migrate(engine, scripts)
        heads = await current_revision(engine)
        if len(heads) > 1:
            with pytest.raises(ValueError, match="several heads"):
                await make_revision(engine, scripts, "ambiguous")
        main_head = min(heads)  # the main chain (the follow-ups branch is numbered 0050+)
        rev = await make_revision(engine, scripts, "nothing changed", head=main_head)
        assert int(rev) == int(main_head) + 1
        assert len(list((scripts / "versions").glob(f"{rev}_*.py"))) == 1
    finally:
        await engine.dispose()
