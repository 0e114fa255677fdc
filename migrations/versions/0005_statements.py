"""Bank statements, their movements (unique per tenant and fingerprint) and each receipt's
reconciliation state (a credit conciliates at most one receipt per tenant); indexes on results
for the receipts a credit could pay.

Receipts processed before this revision get their state when the first statement covering
their date arrives.

Revision ID: 0005_statements
Revises: 0004_webhooks
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0005_statements'
down_revision = '0004_webhooks'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('statements',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('format', sa.String(length=64), nullable=False),
    sa.Column('bank_code', sa.String(length=4), nullable=False),
    sa.Column('account', sa.String(length=64), nullable=True),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size_bytes', sa.Integer(), nullable=False),
    sa.Column('uploaded_at', sa.DateTime(), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=True),
    sa.Column('period_end', sa.Date(), nullable=True),
    sa.Column('movements_total', sa.Integer(), nullable=False),
    sa.Column('movements_added', sa.Integer(), nullable=False),
    sa.Column('credits_total', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('statements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_statements_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('movements',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('statement_id', sa.Integer(), nullable=False),
    sa.Column('line', sa.Integer(), nullable=False),
    sa.Column('movement_date', sa.Date(), nullable=False),
    sa.Column('movement_time', sa.Time(), nullable=True),
    sa.Column('reference', sa.String(length=64), nullable=True),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('direction', sa.String(length=8), nullable=False),
    sa.Column('amount', sa.Numeric(precision=18, scale=2), nullable=False),
    sa.Column('balance', sa.Numeric(precision=18, scale=2), nullable=True),
    sa.Column('payer_phone', sa.String(length=32), nullable=True),
    sa.Column('payer_cedula', sa.String(length=32), nullable=True),
    sa.Column('payer_rif', sa.String(length=32), nullable=True),
    sa.Column('payer_bank_code', sa.String(length=4), nullable=True),
    sa.Column('is_charge', sa.Boolean(), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['statement_id'], ['statements.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant_id', 'fingerprint', name='uq_movements_tenant_fingerprint')
    )
    with op.batch_alter_table('movements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_movements_statement_id'), ['statement_id'], unique=False)
        batch_op.create_index('ix_movements_tenant_amount_date', ['tenant_id', 'amount', 'movement_date'], unique=False)
        batch_op.create_index('ix_movements_tenant_date', ['tenant_id', 'movement_date'], unique=False)

    op.create_table('conciliaciones',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('upload_id', sa.Integer(), nullable=False),
    sa.Column('estado', sa.String(length=16), nullable=False),
    sa.Column('movement_id', sa.Integer(), nullable=True),
    sa.Column('candidates', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('evidence', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('base_requiere_revision', sa.Boolean(), nullable=True),
    sa.Column('reconciled_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['movement_id'], ['movements.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['upload_id'], ['uploads.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant_id', 'movement_id', name='uq_conciliaciones_tenant_movement'),
    sa.UniqueConstraint('upload_id')
    )
    with op.batch_alter_table('conciliaciones', schema=None) as batch_op:
        batch_op.create_index('ix_conciliaciones_tenant_estado', ['tenant_id', 'estado'], unique=False)

    with op.batch_alter_table('results', schema=None) as batch_op:
        batch_op.create_index('ix_results_tenant_fecha', ['tenant_id', 'fecha'], unique=False)
        batch_op.create_index('ix_results_tenant_monto_fecha', ['tenant_id', 'monto', 'fecha'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('results', schema=None) as batch_op:
        batch_op.drop_index('ix_results_tenant_monto_fecha')
        batch_op.drop_index('ix_results_tenant_fecha')

    with op.batch_alter_table('conciliaciones', schema=None) as batch_op:
        batch_op.drop_index('ix_conciliaciones_tenant_estado')

    op.drop_table('conciliaciones')
    with op.batch_alter_table('movements', schema=None) as batch_op:
        batch_op.drop_index('ix_movements_tenant_date')
        batch_op.drop_index('ix_movements_tenant_amount_date')
        batch_op.drop_index(batch_op.f('ix_movements_statement_id'))

    op.drop_table('movements')
    with op.batch_alter_table('statements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_statements_tenant_id'))

    op.drop_table('statements')
