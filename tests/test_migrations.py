"""Alembic: the revisions build exactly the models' schema, a database created by the code before
migrations (create_all, rows in every table) is upgraded to head with nothing lost, concurrent
start-ups apply each revision once. On SQLite and, with TEST_DATABASE_URL, on PostgreSQL."""
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, select, text

from database import Base, Batch, Database, RateLimit, Result, Upload, WorkerState, utcnow
from migrations_runner import BASELINE_REVISION, current_revision, head_revision, upgrade_to_head
from tests.conftest import BACKENDS, ISOLATED_ENV, fresh_postgres_schema

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(params=BACKENDS)
def empty_database_url(request, tmp_path):
    """A database with no tables at all: a new SQLite file, or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ocr.db'}"
        return
    with fresh_postgres_schema("migr") as url:
        yield url


def schema_differences(db: Database) -> list:
    with db.engine.connect() as connection:
        return compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata)


def test_revisions_build_exactly_the_schema_of_the_models(empty_database_url):
    db = Database(empty_database_url)
    upgrade_to_head(db)
    assert schema_differences(db) == []
    with db.engine.connect() as connection:
        assert current_revision(connection) == head_revision()
    db.dispose()


def _old_deployment(url: str) -> dict:
    """What the service before migrations left: create_all's tables and rows in each of them."""
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    now = utcnow()
    with engine.begin() as connection:
        uploads = [
            {"stored_name": "20250711-A--1@lid_Ana_10-00.png", "original_name": "a.png", "sha256": "a" * 64,
             "size_bytes": 10, "image_format": "PNG", "metadata": {"nombre": "Ana"}, "source": "upload",
             "status": "processed", "created_at": now, "processed_at": now, "attempts": 1},
            {"stored_name": "copy.png", "original_name": "b.png", "sha256": "a" * 64, "size_bytes": 10,
             "metadata": {}, "source": "inbox", "status": "pending", "created_at": now, "attempts": 0, "duplicado_de": 1},
        ]
        for row in uploads:  # one by one: the rows set different columns
            connection.execute(Upload.__table__.insert(), row)
        connection.execute(Batch.__table__.insert(), [{
            "request_id": "BATCH_20250711_143052_a8f", "source": "manual", "profile": "ultra_rapido",
            "language": "spa", "include_coordinates": True, "state": "completed", "total_files": 1,
            "processed_count": 1, "error_count": 0, "created_at": now, "finished_at": now, "processing_time": 1.5}])
        connection.execute(Result.__table__.insert(), [{
            "upload_id": 1, "request_id": "BATCH_20250711_143052_a8f", "filename": "20250711-A--1@lid_Ana_10-00.png",
            "processing_status": "success", "monto": Decimal("1234.56"), "referencia": "003039376430",
            "created_at": now, "document": {"extracted_fields": {"monto": "1234.56"}, "nombre": "Añá"}}])
        connection.execute(RateLimit.__table__.insert(), [{"key": "process_batch:ip:127.0.0.1", "last_at": now}])
        connection.execute(WorkerState.__table__.insert(), [{
            "worker_id": "worker:h:1:abc", "hostname": "h", "pid": 1, "state": "ready", "models_loaded": ["ultra_rapido"],
            "cache_stats": {"hits": 3}, "images_processed": 5, "batches_processed": 1, "started_at": now,
            "heartbeat_at": now - timedelta(seconds=1)}])
    engine.dispose()
    return {table.name: table for table in Base.metadata.sorted_tables}


def _contents(db: Database) -> dict:
    with db.engine.connect() as connection:
        return {name: [tuple(row) for row in connection.execute(select(table).order_by(*table.primary_key.columns))]
                for name, table in {t.name: t for t in Base.metadata.sorted_tables}.items()}


def test_a_database_created_before_migrations_is_upgraded_with_nothing_lost(empty_database_url):
    _old_deployment(empty_database_url)
    before_db = Database(empty_database_url)
    before = _contents(before_db)
    before_db.dispose()
    assert all(before.values())

    db = Database(empty_database_url)
    upgrade_to_head(db)
    assert _contents(db) == before
    with db.engine.connect() as connection:
        assert current_revision(connection) == head_revision()
        assert "alembic_version" in inspect(connection).get_table_names()
    assert schema_differences(db) == []
    # The service goes on using the rows: a new upload after the old ones.
    with db.session() as session:
        session.add(Upload(stored_name="new.png", original_name="n.png", sha256="b" * 64, size_bytes=1))
        session.commit()
        assert session.scalar(select(Upload.id).where(Upload.stored_name == "new.png")) == 3
    db.dispose()


def test_upgrading_again_changes_nothing(empty_database_url):
    first = Database(empty_database_url)
    upgrade_to_head(first)
    first.dispose()
    again = Database(empty_database_url)
    upgrade_to_head(again)
    with again.engine.connect() as connection:
        assert current_revision(connection) == head_revision()
        assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
    again.dispose()


def test_the_baseline_is_the_first_revision():
    from alembic.script import ScriptDirectory

    from migrations_runner import alembic_config

    base = ScriptDirectory.from_config(alembic_config()).get_base()
    assert base == BASELINE_REVISION


@pytest.mark.slow
def test_concurrent_start_ups_migrate_once(empty_database_url, tmp_path):
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": empty_database_url, "STORAGE_ROOT": str(tmp_path / "storage")}
    for name in ISOLATED_ENV:
        env.pop(name, None)
    env.update(DATABASE_URL=empty_database_url, STORAGE_ROOT=str(tmp_path / "storage"))
    runs = [subprocess.Popen([sys.executable, "main.py", "migrate"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], outputs
    assert all(f'"revision": "{head_revision()}"' in out for out, _ in outputs)
    db = Database(empty_database_url)
    assert schema_differences(db) == []
    db.dispose()
