"""Database helpers shared by both services (each service has its own database and schema).

* ``create_engine(url)``: SQLite (embedded default, a file under ``./data/``) or PostgreSQL
  (asyncpg), chosen by URL. SQLite gets WAL, a busy timeout and foreign keys.
* ``migrate(engine, script_location)``: Alembic to head from inside the running loop; on
  PostgreSQL an advisory lock makes concurrent replicas migrate one at a time.
* ``insert_ignore``: ``INSERT ... ON CONFLICT DO NOTHING`` for either dialect (built once, the
  rows as parameters) -- the primitive every idempotent write stands on.
* ``as_utc``: SQLite returns naive datetimes; everything leaving the database is UTC-aware.
* Engines hide bound parameters in their errors: a database exception (and so a logged
  traceback) never carries a phone number or a message text.
"""

from __future__ import annotations

import functools
import time
import zlib
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, Table, bindparam, case, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, CursorResult, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.types import DateTime, TypeDecorator

# The largest integer a PostgreSQL BIGINT and a SQLite INTEGER hold: bound every id, offset or cursor
# taken from outside with it, or a larger one overflows in the driver (a 500 instead of a 400).
SQL_INT_MAX = 2**63 - 1

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp that always comes back as UTC, on SQLite too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return as_utc(value) if value is not None else None


def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int | None = None,
    statement_timeout_s: float | None = None,
    echo: bool = False,
) -> AsyncEngine:
    """An engine for ``url``. PostgreSQL: ``pool_size`` connections plus ``max_overflow`` more when
    busy (as many again by default); ``statement_timeout_s`` makes the server cancel any statement
    running longer (SQLite has no such thing: the setting is ignored there)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, echo=echo, hide_parameters=True, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    connect_args: dict[str, Any] = {}
    if statement_timeout_s is not None:
        connect_args["server_settings"] = {"statement_timeout": str(int(statement_timeout_s * 1000))}
    engine = create_async_engine(
        url,
        echo=echo,
        hide_parameters=True,
        pool_size=pool_size,
        max_overflow=pool_size if max_overflow is None else max_overflow,
        pool_recycle=1800,
        connect_args=connect_args,
    )
    _check_on_checkout(engine)
    return engine


PING_AFTER_IDLE_S = 1.0


def _check_on_checkout(engine: AsyncEngine) -> None:
    """Never hand out a dead pooled connection, without a round trip per transaction.

    SQLAlchemy's ``pool_pre_ping`` costs three round trips on asyncpg (BEGIN, ``;``, ROLLBACK)
    at every checkout -- nearly half of a short transaction's. Instead: a connection the server
    closed (restart, ``pg_terminate_backend``: its socket saw EOF) is replaced at once, for free;
    one that sat idle for more than ``PING_AFTER_IDLE_S`` is pinged first (a silent network
    failure); a busy one is used as it is. Anything that still fails mid-statement is a
    transient error: consumers retry it in place, the outbox relay on its next round.
    """

    @event.listens_for(engine.sync_engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        driver = record.driver_connection
        if driver is None or driver.is_closed():
            raise DisconnectionError("the server closed this pooled connection")
        idle_since = record.info.get("idle_since")
        if idle_since is not None and time.monotonic() - idle_since > PING_AFTER_IDLE_S:
            try:
                dbapi_connection.ping()
            except Exception as exc:
                raise DisconnectionError(f"pooled connection failed its ping: {type(exc).__name__}") from exc


# Parley speaks SQLAlchemy Core only (tables, no mapped classes): a unit of work is a connection
# with its transaction. ``AsyncConnection`` has the API an ``AsyncSession`` offers for Core
# statements (execute, scalar, begin) without the ORM session's bookkeeping, which cost about a
# tenth of a short transaction's CPU.
Session = AsyncConnection

# A result (or its ``.all()``) read as plain tuples, for the type checker only: SQLAlchemy 2.1 types
# the rows of a statement over untyped table columns as ``Row[*tuple[Any, ...]]``, which mypy
# unpacks into ``object`` (``Result.tuples()``, the typed view, is deprecated in 2.1). Annotated
# as this, ``for a, b in rows`` gives ``Any``, as indexing a row does.
TupleRows = Iterable[tuple[Any, ...]]


class SessionFactory:
    """``async with sessions() as session, session.begin(): ...`` -- a pooled connection."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    def __call__(self) -> AsyncConnection:
        return self.engine.connect()


def session_factory(engine: AsyncEngine) -> SessionFactory:
    return SessionFactory(engine)


def dialect_name(session: Session) -> str:
    return session.dialect.name


def insert_ignore(
    session: Session,
    table: Table,
    values: dict[str, Any] | Sequence[dict[str, Any]],
    index_elements: Sequence[str],
    *,
    returning: Sequence[str] = (),
) -> Awaitable[CursorResult[*tuple[Any, ...]]]:
    """Run ``INSERT ... ON CONFLICT (index_elements) DO NOTHING`` for PostgreSQL or SQLite.

    The statement is built once per (dialect, table, key) and the row(s) travel as parameters:
    building and cache-keying a statement with its values inside costs more CPU than running it.
    A list of rows is an executemany (one multi-row statement on PostgreSQL); ``returning`` names
    columns to return for the rows actually inserted.
    """
    stmt = _insert_ignore_statement(dialect_name(session), table, tuple(index_elements), tuple(returning))
    return session.execute(stmt, values if isinstance(values, dict) else list(values))


@functools.cache
def _insert_ignore_statement(
    dialect: str, table: Table, index_elements: tuple[str, ...], returning: tuple[str, ...]
) -> Any:
    module = postgresql if dialect == "postgresql" else sqlite
    stmt = module.insert(table).on_conflict_do_nothing(index_elements=list(index_elements))
    return stmt.returning(*(table.c[name] for name in returning)) if returning else stmt


def per_row(key: Any, count: int, value: str, *, key_param: str = "b_key", type_: Any = None) -> Any:
    """``CASE WHEN key = :{key_param}0 THEN :{value}0 ... END`` for ``count`` rows: the per-row
    values of a multi-row ``UPDATE`` as parameters (``{key_param}{i}``, ``{value}{i}``; see
    :func:`per_row_params`), so that
    the statement is built and compiled once per row count (cache its builder by count) instead of
    on every call: with the values inside, building it cost more than running it."""
    whens = [(key == bindparam(f"{key_param}{i}"), bindparam(f"{value}{i}", type_=type_)) for i in range(count)]
    return case(*whens)


def per_row_params(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The parameters of :func:`per_row` expressions: row ``i``'s value of ``name`` as ``{name}{i}``."""
    return {f"{name}{i}": value for i, row in enumerate(rows) for name, value in row.items()}


async def ping(engine: AsyncEngine) -> float:
    """Round-trip the database; returns the latency in milliseconds."""
    started = time.perf_counter()
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    return (time.perf_counter() - started) * 1000


def alembic_config(script_location: Path, connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


async def migrate(engine: AsyncEngine, script_location: Path, revision: str = "heads") -> None:
    """Bring the schema to ``revision`` (every branch head by default); replicas migrate one at a time."""
    lock_key = zlib.crc32(str(script_location.name).encode()) & 0x7FFFFFFF

    def _upgrade(connection: Connection) -> None:
        command.upgrade(alembic_config(script_location, connection), revision)

    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key})
        await conn.run_sync(_upgrade)


def run_alembic_env(metadata: MetaData) -> None:
    """Body of each service's ``migrations/env.py``: run against the connection handed in."""
    from alembic import context

    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations with `python -m <service> migrate` (online, async engine)")
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def make_revision(engine: AsyncEngine, script_location: Path, message: str, head: str | None = None) -> str:
    """Autogenerate a new revision on top of ``head`` by comparing the models with the migrated database.

    With several Alembic branches (e.g. the agent's ``followups`` branch) ``head`` must name the
    revision to build on. The new revision is numbered after it (the next free number).
    Returns the new revision id.
    """
    from alembic.script import ScriptDirectory

    cfg = alembic_config(script_location)
    heads = ScriptDirectory.from_config(cfg).get_heads()
    if head is None:
        if len(heads) > 1:
            raise ValueError(f"several heads ({', '.join(sorted(heads))}): say which one to build on with --head")
        head = heads[0] if heads else None
    elif head not in heads:
        raise ValueError(f"{head!r} is not a head; heads are {', '.join(sorted(heads))}")
    taken = {p.name[:4] for p in (script_location / "versions").glob("[0-9][0-9][0-9][0-9]_*.py")}
    number = int(head) + 1 if head and head.isdigit() else 1
    while f"{number:04d}" in taken:
        number += 1
    rev_id = f"{number:04d}"

    def _revision(connection: Connection) -> None:
        run_cfg = alembic_config(script_location, connection)
        run_cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
        command.revision(run_cfg, message=message, autogenerate=True, rev_id=rev_id, head=head or "base")

    async with engine.begin() as conn:
        await conn.run_sync(_revision)
    return rev_id


async def current_revision(engine: AsyncEngine) -> tuple[str, ...]:
    """The applied head revision(s) (empty for an unmigrated database)."""
    from alembic.runtime.migration import MigrationContext

    def _rev(connection: Connection) -> tuple[str, ...]:
        return tuple(MigrationContext.configure(connection).get_current_heads())

    async with engine.connect() as conn:
        return await conn.run_sync(_rev)
