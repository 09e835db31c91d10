"""Statement helpers of ``parley_shared.db`` on a real (SQLite) database."""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table, bindparam, select, update
from sqlalchemy.ext.asyncio import create_async_engine

from parley_shared.db import per_row, per_row_params

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
                values = per_row_params([{"b_id": key, "b_label": f"{chosen[0]}:{key}"} for key in chosen])
                await conn.execute(stmt, {"b_ids": chosen, **values})
            rows = dict((await conn.execute(select(items.c.id, items.c.label))).all())
    finally:
        await engine.dispose()
    assert rows == {1: "1:1", 2: "2:2", 3: "1:3", 4: "2:4", 5: "2:5"}
    sql = str(per_row(items.c.id, 2, "v", key_param="k"))
    assert sql == "CASE WHEN (items.id = :k0) THEN :v0 WHEN (items.id = :k1) THEN :v1 END", sql
    assert per_row_params([{"k": 7, "v": "a"}, {"k": 9, "v": "b"}]) == {"k0": 7, "v0": "a", "k1": 9, "v1": "b"}
