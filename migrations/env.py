"""Alembic's entry point. The service calls it through migrations_runner.upgrade_to_head with an
open connection (under the schema lock); `alembic -c alembic.ini ...` run by hand uses DATABASE_URL."""
from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

import config as service_config
from database import Base

target_metadata = Base.metadata


def run_with(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_with(connection)
else:
    engine = create_engine(service_config.load_settings()["DATABASE_URL"])
    with engine.begin() as own_connection:
        run_with(own_connection)
    engine.dispose()
