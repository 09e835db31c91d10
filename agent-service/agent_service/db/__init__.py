"""The service's own database: tables in ``tables.py``, Alembic migrations in ``migrations/``."""

from pathlib import Path

MIGRATIONS = Path(__file__).parent / "migrations"
