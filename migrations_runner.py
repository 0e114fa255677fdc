"""Bringing the database schema to the newest Alembic revision, once per process, under a lock.

Start-up (web processes, the worker, `python main.py migrate`) runs `upgrade_to_head`. Several
processes may start at once: PostgreSQL serializes them with a transaction-scoped advisory lock,
SQLite with a lock file beside the database file. A database created before migrations existed
(tables made by `create_all`, no `alembic_version`) is stamped at the baseline, whose schema it
has, and then upgraded like any other.
"""
from __future__ import annotations

import logging
from contextlib import nullcontext
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from filelock import FileLock
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from database import Database

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
BASELINE_REVISION = "0001_baseline"
# The same key the service always used for its schema lock, so old and new processes exclude each other.
SCHEMA_LOCK_KEY = 7310452
SQLITE_LOCK_TIMEOUT_SECONDS = 120


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _created_before_migrations(connection: Connection) -> bool:
    tables = set(inspect(connection).get_table_names())
    return "uploads" in tables and "alembic_version" not in tables


def _process_lock(db: Database):
    """A lock across processes for SQLite files; PostgreSQL locks inside the transaction instead."""
    database_path = db.engine.url.database if db.dialect == "sqlite" else None
    if not database_path or database_path == ":memory:":
        return nullcontext()
    return FileLock(f"{database_path}.migrate.lock", timeout=SQLITE_LOCK_TIMEOUT_SECONDS)


def upgrade_to_head(db: Database) -> None:
    """Apply every pending revision (nothing when the schema is current); idempotent and race-safe."""
    if db.schema_ready:
        return
    with db.schema_lock:
        if db.schema_ready:
            return
        with _process_lock(db), db.engine.connect() as connection:
            sqlite = db.dialect == "sqlite"
            if sqlite:
                # Batch migrations recreate SQLite tables: with foreign keys on, dropping the old
                # uploads table would cascade to results and null every duplicado_de. The pragma
                # only takes effect outside a transaction.
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                connection.commit()
            try:
                with connection.begin():
                    if db.dialect == "postgresql":
                        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
                    cfg = alembic_config(connection)
                    if _created_before_migrations(connection):
                        logger.info("Schema predates migrations: stamping it at %s", BASELINE_REVISION)
                        command.stamp(cfg, BASELINE_REVISION)
                    before = current_revision(connection)
                    command.upgrade(cfg, "head")
                    after = current_revision(connection)
                    if before != after:
                        logger.info("Database schema upgraded from %s to %s", before or "nothing", after)
            finally:
                if sqlite:
                    connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                    connection.commit()
        db.schema_ready = True
