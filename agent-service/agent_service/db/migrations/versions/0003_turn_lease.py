"""turn scheduling: contacts.turn_due_at and the per-contact turn lease

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 08:00:00
"""

from alembic import op
import sqlalchemy as sa
import parley_shared.db


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('turn_due_at', parley_shared.db.UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('turn_lease_owner', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('turn_lease_until', parley_shared.db.UtcDateTime(timezone=True), nullable=True))
        batch_op.create_index(
            'ix_contacts_turn_due_at',
            ['turn_due_at'],
            unique=False,
            postgresql_where=sa.text('turn_due_at IS NOT NULL'),
            sqlite_where=sa.text('turn_due_at IS NOT NULL'),
        )


def downgrade() -> None:
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_index('ix_contacts_turn_due_at', postgresql_where=sa.text('turn_due_at IS NOT NULL'),
                            sqlite_where=sa.text('turn_due_at IS NOT NULL'))
        batch_op.drop_column('turn_lease_until')
        batch_op.drop_column('turn_lease_owner')
        batch_op.drop_column('turn_due_at')
