"""Staff accounts of a tenant, server-side browser sessions, the log of review decisions, and who
(which account) made each correction and decision.

Expand only: new tables and nullable columns; the previous release keeps running against it (it
writes no por_cuenta, no avisos, and its cookie sessions simply stop being accepted).

Revision ID: 0008_staff_accounts
Revises: 0007_image_storage
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0008_staff_accounts'
down_revision = '0007_image_storage'
branch_labels = None
depends_on = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table('staff_accounts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('display_name', sa.String(length=128), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('password_changed_at', sa.DateTime(), nullable=False),
    sa.Column('disabled_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('email'),
    sa.UniqueConstraint('username')
    )
    with op.batch_alter_table('staff_accounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_accounts_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('browser_sessions',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('staff_id', sa.Integer(), nullable=True),
    sa.Column('key_digest', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('ended_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['staff_id'], ['staff_accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_hash')
    )
    with op.batch_alter_table('browser_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_browser_sessions_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_browser_sessions_key_digest'), ['key_digest'], unique=False)
        batch_op.create_index(batch_op.f('ix_browser_sessions_staff_id'), ['staff_id'], unique=False)

    op.create_table('review_decisions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('upload_id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('estado', sa.String(length=16), nullable=False),
    sa.Column('nota', sa.Text(), nullable=True),
    sa.Column('por', sa.String(length=160), nullable=False),
    sa.Column('por_cuenta', sa.Integer(), nullable=True),
    sa.Column('avisos', JSON_TYPE, nullable=True),
    sa.Column('en', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['por_cuenta'], ['staff_accounts.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['upload_id'], ['uploads.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('review_decisions', schema=None) as batch_op:
        batch_op.create_index('ix_review_decisions_upload', ['upload_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_review_decisions_tenant_id'), ['tenant_id'], unique=False)

    with op.batch_alter_table('corrections', schema=None) as batch_op:
        batch_op.add_column(sa.Column('por_cuenta', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('deshace', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_corrections_por_cuenta', 'staff_accounts', ['por_cuenta'], ['id'],
                                    ondelete='SET NULL')
    with op.batch_alter_table('reviews', schema=None) as batch_op:
        batch_op.add_column(sa.Column('por_cuenta', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('avisos', JSON_TYPE, nullable=True))
        batch_op.create_foreign_key('fk_reviews_por_cuenta', 'staff_accounts', ['por_cuenta'], ['id'],
                                    ondelete='SET NULL')


def downgrade() -> None:
    with op.batch_alter_table('reviews', schema=None) as batch_op:
        batch_op.drop_constraint('fk_reviews_por_cuenta', type_='foreignkey')
        batch_op.drop_column('avisos')
        batch_op.drop_column('por_cuenta')
    with op.batch_alter_table('corrections', schema=None) as batch_op:
        batch_op.drop_constraint('fk_corrections_por_cuenta', type_='foreignkey')
        batch_op.drop_column('deshace')
        batch_op.drop_column('por_cuenta')
    op.drop_table('review_decisions')
    op.drop_table('browser_sessions')
    op.drop_table('staff_accounts')
