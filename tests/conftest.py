"""Shared fixtures. The OCR engine is loaded once per test session: model loading is the slow part.

Service tests run against SQLite always and against PostgreSQL too when TEST_DATABASE_URL is set
(e.g. postgresql+psycopg2://postgres@127.0.0.1:5432/test). Each test session gets its own
PostgreSQL schema, dropped at the end, and each test starts from empty tables.
"""
import os
import uuid
from contextlib import contextmanager
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text

from aplicador_ocr import get_aplicador

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "").strip()
BACKENDS = ["sqlite"] + ([pytest.param("postgresql", marks=pytest.mark.postgres)] if TEST_DATABASE_URL else [])
# Settings that a developer's shell could carry into the tests and change their meaning.
ISOLATED_ENV = ("API_KEYS", "DATA_DIR", "DATABASE_URL", "STORAGE_ROOT", "WORKER_ENABLED", "CORS_ORIGINS", "PROMETHEUS_MULTIPROC_DIR",
                "SESSION_SECRET", "SECRET_KEY", "TRUSTED_PROXY_COUNT", "MAX_FILES_PER_UPLOAD", "MAX_FILE_SIZE_MB",
                "MAX_REQUEST_SIZE_MB", "PROCESS_BATCH_MIN_INTERVAL_SECONDS", "RETENTION_HOURS", "HOST", "ALLOW_ANONYMOUS",
                "UPLOAD_RATE_LIMIT_PER_MINUTE", "PAYMENT_MEMORY_DAYS", "REUSE_CHECK_ACROSS_TENANTS", "IMAGE_STORAGE", "STATEMENT_RATE_LIMIT_PER_MINUTE",
                "S3_BUCKET", "S3_PREFIX", "S3_ENDPOINT_URL", "S3_REGION")


@pytest.fixture(scope="session")
def engine():
    aplicador = get_aplicador()
    aplicador.preload("ultra_rapido")
    return aplicador


@pytest.fixture(scope="session")
def orquestador(engine):
    """The process-wide OrquestadorOCR the app and worker use, with its models already warm."""
    from main_ocr_process import shared_orchestrator

    orchestrator = shared_orchestrator()
    assert orchestrator.aplicador is engine
    return orchestrator


def with_search_path(url: str, schema: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(f'-csearch_path={schema}')}"


@contextmanager
def fresh_postgres_schema(prefix: str = "test"):
    """The URL of a new, empty PostgreSQL schema on TEST_DATABASE_URL, dropped afterwards."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(TEST_DATABASE_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield with_search_path(TEST_DATABASE_URL, schema)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


# With PostgreSQL every host must be given these (config.require_shared_secrets): the same ones as the
# services tests start (benchmarks/service_process.py), made once per test process.
from benchmarks.service_process import POSTGRES_TEST_SECRETS as POSTGRES_SECRETS  # noqa: E402


@pytest.fixture(scope="session")
def postgres_url():
    """A fresh schema for this test session (one per xdist worker), migrated as a deploy does
    (`main.py migrate`: with PostgreSQL the service does not migrate at start), dropped afterwards."""
    from database import Database
    from migrations_runner import upgrade_to_head

    with fresh_postgres_schema() as url:
        db = Database(url)
        upgrade_to_head(db)
        db.dispose()
        yield url


def _empty_postgres_tables(url: str) -> None:
    from database import DEFAULT_TENANT_ID, DEFAULT_TENANT_NAME, Base

    engine = create_engine(url)
    with engine.begin() as connection:
        existing = [t.name for t in Base.metadata.sorted_tables if engine.dialect.has_table(connection, t.name)]
        if existing:
            connection.execute(text(f"TRUNCATE {', '.join(existing)} RESTART IDENTITY CASCADE"))
        if "tenants" in existing:  # the row migration 0002 creates, as on a fresh database
            connection.execute(text("INSERT INTO tenants (id, name, created_at) VALUES (:id, :name, now())"),
                               {"id": DEFAULT_TENANT_ID, "name": DEFAULT_TENANT_NAME})
            connection.execute(text("SELECT setval(pg_get_serial_sequence('tenants', 'id'), :id)"), {"id": DEFAULT_TENANT_ID})
        if "install_settings" in existing:  # the row migration 0006 writes on a fresh database
            connection.execute(text("INSERT INTO install_settings (name, value) VALUES ('anonymous_access', 'loopback')"))
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ocr.db'}"
    url = request.getfixturevalue("postgres_url")
    _empty_postgres_tables(url)
    return url


@pytest.fixture
def service_env(monkeypatch, tmp_path, database_url):
    """Environment of a service whose storage lives in this test's tmp_path."""
    for name in ISOLATED_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STORAGE_ROOT", str(tmp_path / "storage"))
    monkeypatch.setenv("DATABASE_URL", database_url)
    if database_url.startswith("postgresql"):
        for name, value in POSTGRES_SECRETS.items():
            monkeypatch.setenv(name, value)
    return tmp_path / "storage"


TEST_OVERRIDES = {
    "TESTING": True,
    "PROCESS_BATCH_MIN_INTERVAL_SECONDS": 0,
    "INBOX_ADOPT_MIN_AGE_SECONDS": 0,
    "CLEANUP_INTERVAL_SECONDS": 0,
    # Tests upload far faster than a client may; tests/test_tenants.py checks the limit itself.
    "UPLOAD_RATE_LIMIT_PER_MINUTE": 0,
    # The same for statements: tests/test_hostile_statements.py checks that limit.
    "STATEMENT_RATE_LIMIT_PER_MINUTE": 0,
}


@pytest.fixture
def make_app(service_env):
    from app import create_app

    apps = []

    def factory(**overrides):
        app = create_app({**TEST_OVERRIDES, **overrides})
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.extensions["ocr_runtime"].db.dispose()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runtime(app):
    return app.extensions["ocr_runtime"]
