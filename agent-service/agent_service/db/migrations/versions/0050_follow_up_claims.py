"""follow-ups: a scheduler's lease on a due row (claim_token, claimed_until)

Revision ID: 0050
Revises: 0002
Create Date: 2026-11-24 12:00:00

First revision of the follow-ups branch (branch label ``followups``); the agent core's
migrations continue the main chain from 0002 independently. ``migrate()`` applies all heads.
"""

from alembic import op
import sqlalchemy as sa
import parley_shared.db


revision = '0050'
down_revision = '0002'
branch_labels = ('followups',)
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('follow_ups', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claim_token', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('claimed_until', parley_shared.db.UtcDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('follow_ups', schema=None) as batch_op:
        batch_op.drop_column('claimed_until')
        batch_op.drop_column('claim_token')
