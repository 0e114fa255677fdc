"""Settings of the installation kept in the database: `anonymous_access`.

A database created now starts with anonymous access on the loopback interface (the walk-through
needs no key); one upgraded keeps what it did before: 'off' when a live API key is stored, else
'loopback'. The first key created turns it off (service/access.py). Additive only: the previous
release never reads the table.

Revision ID: 0006_install_settings
Revises: 0005_statements
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006_install_settings'
down_revision = '0005_statements'
branch_labels = None
depends_on = None


def upgrade() -> None:
    settings = op.create_table('install_settings',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('value', sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )
    live_key = op.get_bind().scalar(sa.text("SELECT id FROM api_keys WHERE revoked_at IS NULL LIMIT 1"))
    op.bulk_insert(settings, [{"name": "anonymous_access", "value": "off" if live_key is not None else "loopback"}])


def downgrade() -> None:
    op.drop_table('install_settings')
