"""Baseline: the schema the service created with create_all before it had migrations, exactly.

Databases made by that code are stamped at this revision (migrations_runner) instead of running it.

Revision ID: 0001_baseline
Revises:
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0001_baseline'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('batches',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('profile', sa.String(length=64), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=False),
    sa.Column('include_coordinates', sa.Boolean(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('client_key', sa.String(length=128), nullable=True),
    sa.Column('cutoff_upload_id', sa.Integer(), nullable=True),
    sa.Column('total_files', sa.Integer(), nullable=False),
    sa.Column('processed_count', sa.Integer(), nullable=False),
    sa.Column('error_count', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('processing_time', sa.Float(), nullable=True),
    sa.Column('claimed_by', sa.String(length=128), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('request_id')
    )
    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_batches_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_batches_state'), ['state'], unique=False)

    op.create_table('rate_limits',
    sa.Column('key', sa.String(length=160), nullable=False),
    sa.Column('last_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('uploads',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('stored_name', sa.String(length=255), nullable=False),
    sa.Column('original_name', sa.String(length=255), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size_bytes', sa.Integer(), nullable=False),
    sa.Column('image_format', sa.String(length=16), nullable=True),
    sa.Column('metadata', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('claimed_at', sa.DateTime(), nullable=True),
    sa.Column('processed_at', sa.DateTime(), nullable=True),
    sa.Column('error_code', sa.String(length=64), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('claimed_by', sa.String(length=128), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('duplicado_de', sa.Integer(), nullable=True),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['duplicado_de'], ['uploads.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('stored_name')
    )
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_uploads_duplicado_de'), ['duplicado_de'], unique=False)
        batch_op.create_index(batch_op.f('ix_uploads_request_id'), ['request_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_uploads_sha256'), ['sha256'], unique=False)
        batch_op.create_index('ix_uploads_status_id', ['status', 'id'], unique=False)

    op.create_table('workers',
    sa.Column('worker_id', sa.String(length=128), nullable=False),
    sa.Column('hostname', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('models_loaded', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('cache_stats', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('rss_bytes', sa.BigInteger(), nullable=True),
    sa.Column('images_processed', sa.Integer(), nullable=False),
    sa.Column('batches_processed', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('worker_id')
    )
    with op.batch_alter_table('workers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_workers_heartbeat_at'), ['heartbeat_at'], unique=False)

    op.create_table('results',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('upload_id', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('processing_status', sa.String(length=16), nullable=False),
    sa.Column('monto', sa.Numeric(precision=18, scale=2), nullable=True),
    sa.Column('referencia', sa.String(length=64), nullable=True),
    sa.Column('telefono', sa.String(length=32), nullable=True),
    sa.Column('cedula', sa.String(length=32), nullable=True),
    sa.Column('fecha', sa.String(length=64), nullable=True),
    sa.Column('banco_origen', sa.String(length=128), nullable=True),
    sa.Column('banco_destino', sa.String(length=128), nullable=True),
    sa.Column('concepto', sa.String(length=255), nullable=True),
    sa.Column('beneficiario', sa.String(length=255), nullable=True),
    sa.Column('cuenta_origen', sa.String(length=64), nullable=True),
    sa.Column('cuenta_destino', sa.String(length=64), nullable=True),
    sa.Column('tipo_transaccion', sa.String(length=128), nullable=True),
    sa.Column('hora_operacion', sa.String(length=32), nullable=True),
    sa.Column('identificador_fiscal', sa.String(length=32), nullable=True),
    sa.Column('comprobante', sa.String(length=64), nullable=True),
    sa.Column('canal_pago', sa.String(length=128), nullable=True),
    sa.Column('confidence_average', sa.Float(), nullable=True),
    sa.Column('coordinates_available', sa.Integer(), nullable=True),
    sa.Column('text_length', sa.Integer(), nullable=True),
    sa.Column('profile_used', sa.String(length=64), nullable=True),
    sa.Column('processing_time', sa.Float(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('document', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['upload_id'], ['uploads.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('upload_id')
    )
    with op.batch_alter_table('results', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_results_cedula'), ['cedula'], unique=False)
        batch_op.create_index(batch_op.f('ix_results_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_results_filename'), ['filename'], unique=False)
        batch_op.create_index(batch_op.f('ix_results_referencia'), ['referencia'], unique=False)
        batch_op.create_index(batch_op.f('ix_results_request_id'), ['request_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_results_telefono'), ['telefono'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('results', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_results_telefono'))
        batch_op.drop_index(batch_op.f('ix_results_request_id'))
        batch_op.drop_index(batch_op.f('ix_results_referencia'))
        batch_op.drop_index(batch_op.f('ix_results_filename'))
        batch_op.drop_index(batch_op.f('ix_results_created_at'))
        batch_op.drop_index(batch_op.f('ix_results_cedula'))

    op.drop_table('results')
    with op.batch_alter_table('workers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_workers_heartbeat_at'))

    op.drop_table('workers')
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.drop_index('ix_uploads_status_id')
        batch_op.drop_index(batch_op.f('ix_uploads_sha256'))
        batch_op.drop_index(batch_op.f('ix_uploads_request_id'))
        batch_op.drop_index(batch_op.f('ix_uploads_duplicado_de'))

    op.drop_table('uploads')
    op.drop_table('rate_limits')
    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_batches_state'))
        batch_op.drop_index(batch_op.f('ix_batches_created_at'))

    op.drop_table('batches')
