"""Corrections of extracted fields, the review state of uploads, idempotency keys of upload requests.

Revision ID: 0003_reviews
Revises: 0002_tenants
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0003_reviews'
down_revision = '0002_tenants'
branch_labels = None
depends_on = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table('idempotency_keys',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('response', JSON_TYPE, nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant_id', 'key', name='uq_idempotency_tenant_key')
    )
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_idempotency_keys_created_at'), ['created_at'], unique=False)

    op.create_table('corrections',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('upload_id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('campo', sa.String(length=32), nullable=False),
    sa.Column('anterior', sa.Text(), nullable=True),
    sa.Column('nuevo', sa.Text(), nullable=True),
    sa.Column('por', sa.String(length=160), nullable=False),
    sa.Column('en', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['upload_id'], ['uploads.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('corrections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_corrections_campo'), ['campo'], unique=False)
        batch_op.create_index(batch_op.f('ix_corrections_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_corrections_upload_id'), ['upload_id'], unique=False)

    op.create_table('reviews',
    sa.Column('upload_id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('estado', sa.String(length=16), nullable=False),
    sa.Column('nota', sa.Text(), nullable=True),
    sa.Column('por', sa.String(length=160), nullable=False),
    sa.Column('en', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['upload_id'], ['uploads.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('upload_id')
    )
    with op.batch_alter_table('reviews', schema=None) as batch_op:
        batch_op.create_index('ix_reviews_tenant_estado', ['tenant_id', 'estado'], unique=False)


def downgrade() -> None:
    op.drop_table('reviews')
    op.drop_table('corrections')
    op.drop_table('idempotency_keys')
