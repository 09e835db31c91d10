from gateway.db.tables import metadata
from parley_shared.db import run_alembic_env

run_alembic_env(metadata)
