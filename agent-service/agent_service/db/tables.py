"""The agent service's own database. Every change here comes with a migration in ``db/migrations``."""

from __future__ import annotations

from parley_shared.db import new_metadata
from parley_shared.outbox import inbox_table, outbox_table

metadata = new_metadata()

outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
