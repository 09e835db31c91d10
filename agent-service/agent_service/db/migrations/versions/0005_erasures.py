"""erasures: the keyed hash kept of each erased contact

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 08:52:24.162757

One row per erasure of a phone (``parley_shared/privacy.py``): the HMAC of the phone under
ERASURE_KEY, who asked, when, and how many rows of each kind were removed. Never the phone.
"""

from alembic import op
import sqlalchemy as sa
import parley_shared.db


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('erasures',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('phone_hash', sa.String(length=64), nullable=False),
    sa.Column('requested_by', sa.String(length=60), nullable=False),
    sa.Column('removed', sa.Text(), nullable=False),
    sa.Column('erased_at', parley_shared.db.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_erasures'))
    )
    with op.batch_alter_table('erasures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_erasures_phone_hash'), ['phone_hash'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('erasures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_erasures_phone_hash'))

    op.drop_table('erasures')
