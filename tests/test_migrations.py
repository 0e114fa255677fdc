"""Alembic: the revisions build exactly the models' schema, a database created by the code before
migrations (create_all, rows in every table) is upgraded to head with nothing lost, concurrent
start-ups apply each revision once. On SQLite and, with TEST_DATABASE_URL, on PostgreSQL."""
import subprocess
import sys
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData, create_engine, insert, inspect, select, text

from database import (
    DEFAULT_TENANT_ID,
    DEFAULT_TENANT_NAME,
    Base,
    Batch,
    Correction,
    Database,
    IdempotencyKey,
    Payment,
    Result,
    Review,
    Tenant,
    Upload,
    utcnow,
)
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


def _baseline_schema(url: str) -> MetaData:
    """The tables create_all made before migrations existed (revision 0001, without alembic_version)."""
    from alembic import command

    from migrations_runner import alembic_config

    engine = create_engine(url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), BASELINE_REVISION)
        connection.execute(text("DROP TABLE alembic_version"))
    tables = MetaData()
    tables.reflect(engine)
    engine.dispose()
    return tables


def _old_deployment(url: str) -> MetaData:
    """What the service before migrations left: create_all's tables and rows in each of them,
    including two originals of the same bytes (the upload race of issue 9)."""
    tables = _baseline_schema(url)
    engine = create_engine(url)
    now = utcnow()
    with engine.begin() as connection:
        uploads = [
            {"stored_name": "20250711-A--1@lid_Ana_10-00.png", "original_name": "a.png", "sha256": "a" * 64,
             "size_bytes": 10, "image_format": "PNG", "metadata": {"nombre": "Ana"}, "source": "upload",
             "status": "processed", "created_at": now, "processed_at": now, "attempts": 1},
            {"stored_name": "copy.png", "original_name": "b.png", "sha256": "a" * 64, "size_bytes": 10,
             "metadata": {}, "source": "inbox", "status": "pending", "created_at": now, "attempts": 0, "duplicado_de": 1},
            {"stored_name": "race.png", "original_name": "c.png", "sha256": "a" * 64, "size_bytes": 10,
             "metadata": {}, "source": "upload", "status": "pending", "created_at": now, "attempts": 0},
        ]
        for row in uploads:  # one by one: the rows set different columns
            connection.execute(tables.tables["uploads"].insert(), row)
        connection.execute(tables.tables["batches"].insert(), [{
            "request_id": "BATCH_20250711_143052_a8f", "source": "manual", "profile": "ultra_rapido",
            "language": "spa", "include_coordinates": True, "state": "completed", "total_files": 1,
            "processed_count": 1, "error_count": 0, "created_at": now, "finished_at": now, "processing_time": 1.5}])
        connection.execute(tables.tables["results"].insert(), [{
            "upload_id": 1, "request_id": "BATCH_20250711_143052_a8f", "filename": "20250711-A--1@lid_Ana_10-00.png",
            "processing_status": "success", "monto": Decimal("1234.56"), "referencia": "003039376430",
            "created_at": now, "document": {"extracted_fields": {"monto": "1234.56"}, "nombre": "Añá"}}])
        connection.execute(tables.tables["rate_limits"].insert(), [{"key": "process_batch:ip:127.0.0.1", "last_at": now}])
        connection.execute(tables.tables["workers"].insert(), [{
            "worker_id": "worker:h:1:abc", "hostname": "h", "pid": 1, "state": "ready", "models_loaded": ["ultra_rapido"],
            "cache_stats": {"hits": 3}, "images_processed": 5, "batches_processed": 1, "started_at": now,
            "heartbeat_at": now - timedelta(seconds=1)}])
    engine.dispose()
    return tables


def _contents(db: Database, tables: MetaData) -> dict:
    """Every row of the old tables, as their old columns."""
    with db.engine.connect() as connection:
        return {name: [tuple(row) for row in connection.execute(
                    select(*(text(f'"{c.name}"') for c in table.columns)).select_from(text(f'"{name}"'))
                    .order_by(*(text(f'"{c.name}"') for c in table.primary_key.columns)))]
                for name, table in tables.tables.items()}


def test_a_database_created_before_migrations_is_upgraded_with_nothing_lost(empty_database_url):
    tables = _old_deployment(empty_database_url)
    before_db = Database(empty_database_url)
    before = _contents(before_db, tables)
    before_db.dispose()
    assert all(before.values())

    db = Database(empty_database_url)
    upgrade_to_head(db)
    after = _contents(db, tables)
    # Nothing lost; the second original of the same bytes became a duplicate of the first.
    race = next(i for i, row in enumerate(before["uploads"]) if "race.png" in row)
    duplicado_de = [c.name for c in tables.tables["uploads"].columns].index("duplicado_de")
    assert after["uploads"][race][duplicado_de] == 1
    after["uploads"][race] = before["uploads"][race]
    assert after == before
    with db.engine.connect() as connection:
        assert current_revision(connection) == head_revision()
        assert "alembic_version" in inspect(connection).get_table_names()
    assert schema_differences(db) == []
    with db.session() as session:
        # Existing data belongs to the tenant "default"; the stored payment is in the ledger.
        assert session.scalars(select(Tenant.name)).all() == [DEFAULT_TENANT_NAME]
        assert set(session.scalars(select(Upload.tenant_id))) == {DEFAULT_TENANT_ID}
        assert set(session.scalars(select(Batch.tenant_id))) == set(session.scalars(select(Result.tenant_id))) \
            == {DEFAULT_TENANT_ID}
        assert [(p.upload_id, p.reference, p.amount) for p in session.scalars(select(Payment))] == \
            [(1, "003039376430", Decimal("1234.56"))]
        # The service goes on using the rows: a new upload after the old ones, a new tenant after default.
        session.add(Upload(stored_name="new.png", original_name="n.png", sha256="b" * 64, size_bytes=1))
        session.add(Tenant(name="acme"))
        session.commit()
        assert session.scalar(select(Upload.id).where(Upload.stored_name == "new.png")) == 4
        assert session.scalar(select(Tenant.id).where(Tenant.name == "acme")) == DEFAULT_TENANT_ID + 1
        # 0003: corrections, reviews and idempotency keys of the old uploads; they survive a later upgrade.
        session.add_all([Correction(upload_id=1, tenant_id=DEFAULT_TENANT_ID, campo="monto", anterior="1234.56",
                                    nuevo="1234.65", por="maria"),
                         Review(upload_id=1, tenant_id=DEFAULT_TENANT_ID, estado="aprobado", nota="ñ", por="maria"),
                         IdempotencyKey(tenant_id=DEFAULT_TENANT_ID, key="k", fingerprint="f" * 64,
                                        response={"files_uploaded": 1})])
        session.commit()
    db.dispose()
    again = Database(empty_database_url)
    upgrade_to_head(again)
    with again.session() as session:
        assert [(c.upload_id, c.campo, c.nuevo) for c in session.scalars(select(Correction))] == [(1, "monto", "1234.65")]
        assert [(r.upload_id, r.estado, r.nota) for r in session.scalars(select(Review))] == [(1, "aprobado", "ñ")]
        assert session.scalar(select(IdempotencyKey.response)) == {"files_uploaded": 1}
    again.dispose()


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


WEBHOOK_TABLES = ("webhook_configs", "webhook_upload_routes", "webhook_events", "webhook_deliveries", "webhook_attempts")


def test_webhook_rows_survive_the_upgrade_to_head(empty_database_url):
    """Rows in every table of 0004_webhooks are still there, unchanged, once later revisions ran."""
    from alembic import command

    from migrations_runner import alembic_config

    engine = create_engine(empty_database_url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0004_webhooks")
    tables = MetaData()
    tables.reflect(engine, only=("uploads", "api_keys", *WEBHOOK_TABLES))
    now = utcnow()
    with engine.begin() as connection:
        connection.execute(tables.tables["api_keys"].insert(), [{
            "tenant_id": 1, "role": "admin", "name": "bot", "key_hash": "h" * 64, "key_prefix": "ocrk_x", "created_at": now}])
        connection.execute(tables.tables["uploads"].insert(), [{
            "stored_name": "w.png", "original_name": "w.png", "sha256": "c" * 64, "size_bytes": 1, "metadata": {},
            "source": "upload", "status": "processed", "created_at": now, "attempts": 1, "tenant_id": 1}])
        connection.execute(tables.tables["webhook_configs"].insert(), [
            {"tenant_id": 1, "scope": "tenant", "url": "https://hooks.example.org/ocr", "allowed_hosts": ["a.example"],
             "secret_encrypted": "gAAAA-encrypted", "secret_prefix": "whsec_abcdef", "secret_rotated_at": now,
             "created_at": now, "updated_at": now},
            {"tenant_id": 1, "scope": "key:1", "api_key_id": 1, "url": None, "allowed_hosts": [],
             "secret_encrypted": "gAAAA-other", "secret_prefix": "whsec_ghijkl", "secret_rotated_at": now,
             "created_at": now, "updated_at": now}])
        connection.execute(tables.tables["webhook_upload_routes"].insert(), [
            {"upload_id": 1, "tenant_id": 1, "api_key_id": 1, "callback_url": "https://a.example/x?ñ=1"}])
        connection.execute(tables.tables["webhook_events"].insert(), [
            {"id": "0b7c6f1e-2f0a-4c52-9d8e-3f1d2a4b5c6d", "tenant_id": 1, "upload_id": 1, "type": "upload.processed",
             "payload": {"id": "0b7c6f1e-2f0a-4c52-9d8e-3f1d2a4b5c6d", "data": {"nombre": "Añá"}}, "created_at": now}])
        connection.execute(tables.tables["webhook_deliveries"].insert(), [
            {"event_id": "0b7c6f1e-2f0a-4c52-9d8e-3f1d2a4b5c6d", "tenant_id": 1, "config_id": 1,
             "url": "https://hooks.example.org/ocr", "state": "pending", "attempts": 1, "next_attempt_at": now,
             "window_started_at": now, "last_status_code": 503, "last_error": "HTTP 503", "created_at": now}])
        connection.execute(tables.tables["webhook_attempts"].insert(), [
            {"delivery_id": 1, "attempted_at": now, "status_code": 503, "error": "HTTP 503", "duration_ms": 12.5}])
    engine.dispose()
    webhook_only = MetaData()
    for name in WEBHOOK_TABLES:
        tables.tables[name].to_metadata(webhook_only)
    before_db = Database(empty_database_url)
    before = _contents(before_db, webhook_only)
    before_db.dispose()
    assert all(before.values())

    db = Database(empty_database_url)
    upgrade_to_head(db)
    assert _contents(db, webhook_only) == before
    assert schema_differences(db) == []
    db.dispose()


def test_statement_tables_keep_their_rows_through_later_revisions(empty_database_url):
    """Rows written at 0005_statements (statements, movements, a receipt's conciliacion) survive
    the upgrade to head, and the constraints that keep one credit for one receipt hold."""
    from datetime import date

    from alembic import command
    from sqlalchemy.exc import IntegrityError

    from database import BankStatement, Conciliacion, StatementMovement
    from migrations_runner import alembic_config

    engine = create_engine(empty_database_url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0005_statements")
    engine.dispose()
    db = Database(empty_database_url)
    with db.session() as session:
        # Only the columns of 0005 (later revisions add others): as the release of 0005 wrote it.
        upload_id = session.scalar(insert(Upload).values(stored_name="r.png", original_name="r.png", sha256="c" * 64,
                                                         size_bytes=1, status="processed").returning(Upload.id))
        statement = BankStatement(tenant_id=DEFAULT_TENANT_ID, format="banesco_qif", bank_code="0134", filename="x.qif",
                                  sha256="d" * 64, size_bytes=10, period_start=date(2025, 3, 1), period_end=date(2025, 3, 2),
                                  movements_total=1, movements_added=1, credits_total=1)
        session.add(statement)
        session.flush()
        movement = StatementMovement(tenant_id=DEFAULT_TENANT_ID, statement_id=statement.id, line=3,
                                     movement_date=date(2025, 3, 1), description="PAGO MOVIL", direction="credito",
                                     amount=Decimal("1136.52"), fingerprint="f" * 32)
        session.add(movement)
        session.flush()
        session.add(Conciliacion(tenant_id=DEFAULT_TENANT_ID, upload_id=upload_id, estado="conciliado",
                                 movement_id=movement.id, evidence={"estado": "conciliado"}))
        session.commit()
        ids = (upload_id, statement.id, movement.id)
    upgrade_to_head(db)
    assert schema_differences(db) == []
    with db.session() as session:
        stored = session.scalar(select(StatementMovement))
        assert (stored.id, stored.amount, stored.movement_date) == (ids[2], Decimal("1136.52"), date(2025, 3, 1))
        assert session.scalar(select(Conciliacion.movement_id).where(Conciliacion.upload_id == ids[0])) == ids[2]
        session.add(StatementMovement(tenant_id=DEFAULT_TENANT_ID, statement_id=ids[1], line=4,
                                      movement_date=date(2025, 3, 1), description="again", direction="credito",
                                      amount=Decimal("1"), fingerprint="f" * 32))
        with pytest.raises(IntegrityError):  # the same line of an overlapping export
            session.commit()
        session.rollback()
        other = Upload(stored_name="s.png", original_name="s.png", sha256="e" * 64, size_bytes=1)
        session.add(other)
        session.flush()
        session.add(Conciliacion(tenant_id=DEFAULT_TENANT_ID, upload_id=other.id, estado="conciliado",
                                 movement_id=ids[2], evidence={}))
        with pytest.raises(IntegrityError):  # a credit already paying another receipt
            session.commit()
    db.dispose()


def test_image_storage_revision_keeps_old_uploads_local_and_old_writers_working(empty_database_url):
    """0007_image_storage only adds: uploads of 0005 read as local images, and a writer that knows
    nothing of the new columns (the previous release) still stores uploads."""
    from alembic import command

    from database import UploadImage
    from image_store import ImageRef
    from migrations_runner import alembic_config

    engine = create_engine(empty_database_url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0005_statements")
        old = {"original_name": "r.png", "size_bytes": 1, "metadata": "{}", "source": "upload", "status": "pending",
               "created_at": utcnow(), "attempts": 0, "tenant_id": DEFAULT_TENANT_ID}
        connection.execute(text("INSERT INTO uploads (stored_name, sha256, original_name, size_bytes, metadata, source, "
                                "status, created_at, attempts, tenant_id) VALUES ('before.png', :sha, :original_name, "
                                ":size_bytes, :metadata, :source, :status, :created_at, :attempts, :tenant_id)"),
                           {**old, "sha": "a" * 64})
    engine.dispose()
    db = Database(empty_database_url)
    upgrade_to_head(db)
    with db.engine.begin() as connection:  # the previous release's insert, after the upgrade
        connection.execute(text("INSERT INTO uploads (stored_name, sha256, original_name, size_bytes, metadata, source, "
                                "status, created_at, attempts, tenant_id) VALUES ('after.png', :sha, :original_name, "
                                ":size_bytes, :metadata, :source, :status, :created_at, :attempts, :tenant_id)"),
                           {**old, "sha": "b" * 64})
    with db.session() as session:
        uploads = session.scalars(select(Upload).order_by(Upload.id)).all()
        assert [(u.stored_name, u.image_store, u.image_host) for u in uploads] == \
            [("before.png", None, None), ("after.png", None, None)]
        assert not any(ImageRef.of(u).in_database for u in uploads)
        assert session.scalars(select(UploadImage)).all() == []
    db.dispose()


def test_corrections_and_reviews_keep_their_rows_through_0008_staff_accounts(empty_database_url):
    """Corrections and reviews written before staff accounts survive 0008 with no account
    (por_cuenta null, no avisos), and the new tables take accounts, sessions and decisions."""
    from alembic import command

    from database import BrowserSession, Correction, Review, ReviewDecision, StaffAccount
    from migrations_runner import alembic_config

    engine = create_engine(empty_database_url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0005_statements")
        connection.execute(text("INSERT INTO uploads (id, tenant_id, stored_name, original_name, sha256, size_bytes, "
                                "metadata, source, status, created_at, attempts) VALUES (1, 1, 'r.png', 'r.png', :sha, 1, "
                                "'{}', 'upload', 'processed', :now, 0)"), {"sha": "a" * 64, "now": datetime(2026, 1, 1)})
        connection.execute(text("INSERT INTO corrections (upload_id, tenant_id, campo, anterior, nuevo, por, en) "
                                "VALUES (1, 1, 'monto', '1.00', NULL, 'shop bot', :now)"), {"now": datetime(2026, 1, 1)})
        connection.execute(text("INSERT INTO reviews (upload_id, tenant_id, estado, nota, por, en) "
                                "VALUES (1, 1, 'aprobado', NULL, 'shop bot', :now)"), {"now": datetime(2026, 1, 1)})
    engine.dispose()
    db = Database(empty_database_url)
    upgrade_to_head(db)
    assert schema_differences(db) == []
    with db.session() as session:
        correction = session.scalar(select(Correction))
        assert (correction.por, correction.por_cuenta, correction.deshace, correction.nuevo) == ("shop bot", None, None, None)
        review = session.get(Review, 1)
        assert (review.estado, review.por_cuenta, review.avisos) == ("aprobado", None, None)
        account = StaffAccount(tenant_id=DEFAULT_TENANT_ID, username="ana", display_name="Ana", role="revisor",
                               password_hash="x")
        session.add(account)
        session.flush()
        session.add_all([BrowserSession(token_hash="b" * 64, staff_id=account.id, expires_at=datetime(2030, 1, 1)),
                         ReviewDecision(upload_id=1, tenant_id=DEFAULT_TENANT_ID, estado="aprobado", por="Ana",
                                        por_cuenta=account.id, avisos=["sin_monto"])])
        session.commit()
        assert session.scalar(select(ReviewDecision.avisos)) == ["sin_monto"]
    db.dispose()


@pytest.mark.parametrize("live_key", [True, False], ids=["with_keys", "without_keys"])
def test_an_upgraded_install_keeps_the_anonymous_mode_it_behaved_with(empty_database_url, live_key):
    """0006_install_settings records the anonymous mode: 'off' when a live key was stored (key-less
    requests were refused), 'loopback' when none was (the walk-through served without keys)."""
    from alembic import command

    from database import ApiKey, InstallSetting
    from migrations_runner import alembic_config

    engine = create_engine(empty_database_url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0005_statements")
    engine.dispose()
    db = Database(empty_database_url)
    with db.session() as session:
        session.add(ApiKey(tenant_id=DEFAULT_TENANT_ID, role="client", key_hash="e" * 64, key_prefix="ocrk_eeeeeee",
                           revoked_at=None if live_key else utcnow()))
        session.commit()
    upgrade_to_head(db)
    assert schema_differences(db) == []
    with db.session() as session:
        assert session.get(InstallSetting, "anonymous_access").value == ("off" if live_key else "loopback")
    db.dispose()
