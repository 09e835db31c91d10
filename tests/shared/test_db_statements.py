"""Statement helpers of ``parley_shared.db`` on a real (SQLite) database."""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, select, update
from sqlalchemy.ext.asyncio import create_async_engine

from parley_shared.db import per_row

metadata = MetaData()
items = Table("items", metadata, Column("id", Integer, primary_key=True), Column("label", String(20)))


async def test_per_row_sets_each_rows_own_value_and_leaves_others_alone() -> None:
    engine = create_async_engine("sqlite+aiosqlite://")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.execute(items.insert(), [{"id": i, "label": "old"} for i in range(1, 6)])
            stmt = (
                update(items)
                .where(items.c.id.in_(bindparam("b_ids", expanding=True)))
                .values(label=per_row(items.c.id, 3, "b_label", key_param="b_id", type_=String()))
            )
            # The same statement serves any three rows: only the parameters change.
            for chosen in ([1, 3, 5], [2, 4, 5]):
                params = {"b_ids": chosen}
                for i, key in enumerate(chosen):
                    params[f"b_id{i}"] = key
                    params[f"b_label{i}"] = f"{chosen[0]}:{key}"
                await conn.execute(stmt, params)
            rows = dict((await conn.execute(select(items.c.id, items.c.label))).all())
    finally:
        await engine.dispose()
    assert rows == {1: "1:1", 2: "2:2", 3: "1:3", 4: "2:4", 5: "2:5"}
    sql = str(per_row(items.c.id, 2, "v", key_param="k"))
    assert sql == "CASE WHEN (items.id = :k0) THEN :v0 WHEN (items.id = :k1) THEN :v1 END", sql
