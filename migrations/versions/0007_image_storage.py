"""Where each upload's image is (uploads.image_store, and for a local image the data directory
holding it, uploads.image_host) and the images kept in the database (upload_images, for
IMAGE_STORAGE=postgresql).

Additive only (expand): the previous release goes on writing uploads with image_store NULL,
which this release reads as the local data directory, as before.

Revision ID: 0007_image_storage
Revises: 0006_install_settings
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007_image_storage'
down_revision = '0006_install_settings'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('image_store', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('image_host', sa.String(length=64), nullable=True))

    op.create_table('upload_images',
    sa.Column('upload_id', sa.Integer(), nullable=False),
    sa.Column('chunk', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['upload_id'], ['uploads.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('upload_id', 'chunk')
    )


def downgrade() -> None:
    op.drop_table('upload_images')
    with op.batch_alter_table('uploads', schema=None) as batch_op:
        batch_op.drop_column('image_host')
        batch_op.drop_column('image_store')
