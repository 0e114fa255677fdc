"""Rules learned from a tenant's corrections (issue 20 item 7): one new table, nothing else
changed, so the previous release runs unchanged against this schema.

Revision ID: 0009_learned_rules
Revises: 0008_staff_accounts
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0009_learned_rules'
down_revision = '0008_staff_accounts'
branch_labels = None
depends_on = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table('learned_rules',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('clave', sa.String(length=64), nullable=False),
    sa.Column('campo', sa.String(length=32), nullable=False),
    sa.Column('etiqueta', sa.String(length=200), nullable=False),
    sa.Column('posicion', sa.String(length=8), nullable=False),
    sa.Column('banco', sa.String(length=120), nullable=True),
    sa.Column('etiquetas_pagina', JSON_TYPE, nullable=False),
    sa.Column('reglas_corregidas', JSON_TYPE, nullable=False),
    sa.Column('estado', sa.String(length=16), nullable=False),
    sa.Column('upload_id', sa.Integer(), nullable=True),
    sa.Column('valor_ejemplo', sa.Text(), nullable=True),
    sa.Column('veces', sa.Integer(), nullable=False),
    sa.Column('propuesta_por', sa.String(length=160), nullable=False),
    sa.Column('propuesta_en', sa.DateTime(), nullable=False),
    sa.Column('aceptada_por', sa.String(length=160), nullable=True),
    sa.Column('aceptada_en', sa.DateTime(), nullable=True),
    sa.Column('desactivada_por', sa.String(length=160), nullable=True),
    sa.Column('desactivada_en', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['upload_id'], ['uploads.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant_id', 'clave', 'banco', name='uq_learned_rules_tenant_clave_banco')
    )
    with op.batch_alter_table('learned_rules', schema=None) as batch_op:
        batch_op.create_index('ix_learned_rules_tenant_estado', ['tenant_id', 'estado'], unique=False)


def downgrade() -> None:
    op.drop_table('learned_rules')
