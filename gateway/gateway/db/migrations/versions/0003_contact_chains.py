"""contact chains: each contact's latest published message (previous_message_id of the next)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 09:00:00
"""

from alembic import op
import sqlalchemy as sa
import parley_shared.db


revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contact_chains",
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("last_message_id", sa.String(length=200), nullable=True),
        sa.Column("updated_at", parley_shared.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("phone", name=op.f("pk_contact_chains")),
    )


def downgrade() -> None:
    op.drop_table("contact_chains")
