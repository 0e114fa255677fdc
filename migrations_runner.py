"""The database schema against this code's Alembic revisions: applied by `main.py migrate`, checked at start-up.

`python main.py migrate` runs `upgrade_to_head`; so does the start-up of every process when
MIGRATE_ON_START is on (the default with SQLite, one machine). With it off (the default with
PostgreSQL, where several hosts share the schema) start-up only checks: an older schema stops it
with a message naming `main.py migrate`, so the schema changes only when an operator says so.

Either way a schema *newer* than this code (a revision it does not know: the next release migrated
first) is served as it is: migrations are written expand-then-contract (migrations/README.md), so
the previous release keeps working against them, and a rolling deploy or a rollback keeps serving.

Several processes may migrate at once: PostgreSQL serializes them with a transaction-scoped
advisory lock, SQLite with a lock file beside the database file. A database created before
migrations existed (tables made by `create_all`, no `alembic_version`) is stamped at the baseline,
whose schema it has, and then upgraded like any other.
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


class SchemaOutdated(RuntimeError):
    """The database's schema is older than this code needs, and this process may not migrate it."""


def known_revisions() -> set[str]:
    return {script.revision for script in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def newer_than_code(revision: str | None) -> bool:
    """A revision this code does not know was written after it (revisions only ever grow)."""
    return revision is not None and revision not in known_revisions()


def _serve_newer(db: Database, revision: str) -> None:
    logger.warning("Database schema is at %s, newer than this code's %s: serving it as it is "
                   "(migrations are expand-then-contract; deploy the new release to every host)",
                   revision, head_revision())
    db.schema_ready = True


def check_schema(db: Database) -> None:
    """Start-up without migrating: serve a current or newer schema, refuse an older or missing one."""
    if db.schema_ready:
        return
    with db.engine.connect() as connection:
        revision = current_revision(connection)
    head = head_revision()
    if revision == head:
        db.schema_ready = True
    elif newer_than_code(revision):
        _serve_newer(db, revision)
    else:
        raise SchemaOutdated(
            f"The database schema is at {revision or 'nothing (no alembic_version)'}; this code needs {head}. "
            "Run `python main.py migrate` once (with this release's code) before starting the service, "
            "or set MIGRATE_ON_START=true on a single machine.")


def prepare_schema(db: Database, migrate: bool) -> None:
    """What a process does with the schema at start-up: migrate it (MIGRATE_ON_START) or check it."""
    if migrate:
        upgrade_to_head(db)
    else:
        check_schema(db)


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
                    if newer_than_code(before):
                        # Never downgrade, never fail: the next release migrated first.
                        _serve_newer(db, before)
                        return
                    command.upgrade(cfg, "head")
                    after = current_revision(connection)
                    if before != after:
                        logger.info("Database schema upgraded from %s to %s", before or "nothing", after)
            finally:
                if sqlite:
                    connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                    connection.commit()
        db.schema_ready = True
