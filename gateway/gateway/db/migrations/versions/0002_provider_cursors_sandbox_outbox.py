"""provider cursors (Wappi polling) and the sandbox outbox

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 12:00:00
"""

from alembic import op
import sqlalchemy as sa
import parley_shared.db


revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "provider_cursors",
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("account", sa.String(length=200), nullable=False),
        sa.Column("cursor_time", sa.BigInteger(), nullable=False),
        sa.Column("cursor_ids", sa.Text(), nullable=False),
        sa.Column("updated_at", parley_shared.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("provider", "account", name=op.f("pk_provider_cursors")),
    )
    op.create_table(
        "sandbox_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("correlation_id", sa.String(length=200), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("in_reply_to", sa.Text(), nullable=False),
        sa.Column("created_at", parley_shared.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sandbox_outbox")),
        sa.UniqueConstraint("message_id", name=op.f("uq_sandbox_outbox_message_id")),
    )
    with op.batch_alter_table("sandbox_outbox", schema=None) as batch_op:
        batch_op.create_index("ix_sandbox_outbox_phone_id", ["phone", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sandbox_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_sandbox_outbox_phone_id")
    op.drop_table("sandbox_outbox")
    op.drop_table("provider_cursors")
