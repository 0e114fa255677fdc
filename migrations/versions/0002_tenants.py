"""Tenants and their API keys; every upload, batch and result belongs to a tenant; originals are
unique per tenant and bytes; the payment ledger; counted rate-limit windows.

Existing rows belong to the tenant "default" (id 1). Uploads that an earlier race recorded as two
originals of the same bytes become duplicates of the first, so the unique constraint can hold.
The ledger is filled from the results already stored.

Revision ID: 0002_tenants
Revises: 0001_baseline
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0002_tenants'
down_revision = '0001_baseline'
branch_labels = None
depends_on = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def _tenant_column() -> sa.Column:
    return sa.Column('tenant_id', sa.Integer(), server_default='1', nullable=False)


def upgrade() -> None:
    tenants = op.create_table('tenants',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.execute(tenants.insert().values(id=1, name='default', created_at=sa.func.now()))
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("SELECT setval(pg_get_serial_sequence('tenants', 'id'), 1)")
    op.create_table('api_keys',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=True),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('key_prefix', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_hash')
    )
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_keys_tenant_id'), ['tenant_id'], unique=False)
    op.create_table('payments',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('upload_id', sa.Integer(), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('bank', sa.String(length=128), nullable=True),
    sa.Column('reference', sa.String(length=64), nullable=False),
    sa.Column('amount', sa.Numeric(precision=18, scale=2), nullable=False),
    sa.Column('payment_date', sa.String(length=64), nullable=True),
    sa.Column('metadata', JSON_TYPE, nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('upload_id')
    )
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payments_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_payments_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index('ix_payments_reference_amount', ['reference', 'amount'], unique=False)

    for table in ('uploads', 'batches', 'results'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(_tenant_column())
            batch_op.create_index(batch_op.f(f'ix_{table}_tenant_id'), ['tenant_id'], unique=False)
            batch_op.create_foreign_key(f'fk_{table}_tenant_id', 'tenants', ['tenant_id'], ['id'])
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('original_sha256', sa.String(length=64), nullable=True))
    # Originals recorded twice by the old race: the later ones become duplicates of the first.
    op.execute("""
        UPDATE uploads SET duplicado_de = (
            SELECT MIN(first.id) FROM uploads AS first
            WHERE first.sha256 = uploads.sha256 AND first.duplicado_de IS NULL)
        WHERE duplicado_de IS NULL AND id > (
            SELECT MIN(first.id) FROM uploads AS first
            WHERE first.sha256 = uploads.sha256 AND first.duplicado_de IS NULL)
    """)
    op.execute("UPDATE uploads SET original_sha256 = sha256 WHERE duplicado_de IS NULL")
    # SQLite: AUTOINCREMENT, so ids of purged uploads are never handed out again (the ledger outlives them).
    with op.batch_alter_table('uploads', schema=None, recreate='auto',
                              table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.create_unique_constraint('uq_uploads_tenant_original', ['tenant_id', 'original_sha256'])
    with op.batch_alter_table('rate_limits', schema=None) as batch_op:
        batch_op.add_column(sa.Column('hits', sa.Integer(), server_default='1', nullable=False))
    op.execute("""
        INSERT INTO payments (tenant_id, upload_id, filename, request_id, sha256, bank, reference, amount,
                              payment_date, metadata, created_at)
        SELECT uploads.tenant_id, uploads.id, uploads.stored_name, results.request_id, uploads.sha256,
               results.banco_origen, results.referencia, results.monto, results.fecha, uploads.metadata,
               results.created_at
        FROM results JOIN uploads ON uploads.id = results.upload_id
        WHERE results.processing_status = 'success' AND results.referencia IS NOT NULL
          AND results.monto IS NOT NULL AND uploads.duplicado_de IS NULL
    """)


def downgrade() -> None:
    with op.batch_alter_table('rate_limits', schema=None) as batch_op:
        batch_op.drop_column('hits')
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.drop_constraint('uq_uploads_tenant_original', type_='unique')
        batch_op.drop_column('original_sha256')
    for table in ('results', 'batches', 'uploads'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(f'fk_{table}_tenant_id', type_='foreignkey')
            batch_op.drop_index(batch_op.f(f'ix_{table}_tenant_id'))
            batch_op.drop_column('tenant_id')
    op.drop_table('payments')
    op.drop_table('api_keys')
    op.drop_table('tenants')
