"""Deploys on several hosts: `main.py migrate` is the step that changes the schema; a process that finds a
newer schema (the next release migrated first) keeps serving, an older one stops it naming `main.py migrate`;
no secret is made on a host's disk with PostgreSQL; each host keeps its own metrics and names itself in its
logs. SQLite and, with TEST_DATABASE_URL, PostgreSQL."""
import io
import json
import logging
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect, select

import config
from benchmarks.service_process import running_service
from database import Database
from logging_setup import JsonFormatter, RequestIdFilter, configure_logging, make_formatter
from metrics_dir import fresh_host_directory
from migrations_runner import (
    MIGRATIONS_DIR,
    SchemaOutdated,
    alembic_config,
    current_revision,
    head_revision,
    prepare_schema,
    upgrade_to_head,
)
from request_context import upload_scope
from tests.conftest import BACKENDS, ISOLATED_ENV, POSTGRES_SECRETS, TEST_OVERRIDES, fresh_postgres_schema
from tools.receipt_generator import generate_receipt

ROOT = Path(__file__).resolve().parents[1]
NEXT_REVISION = "0999_next_release"
# What the next release's revision could be, written by the rules of migrations/README.md: only additions.
NEXT_RELEASE = '''"""next release: a column and a table (expand only)"""
import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("uploads", sa.Column("next_release_note", sa.String(40), nullable=True))
    op.create_table("next_release_things", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("upload_id", sa.Integer, nullable=False))


def downgrade():
    op.drop_table("next_release_things")
    op.drop_column("uploads", "next_release_note")
'''


@pytest.fixture(params=BACKENDS)
def fresh_url(request, tmp_path, monkeypatch):
    """A database with no tables (a new SQLite file or PostgreSQL schema); the shared secrets set for PostgreSQL."""
    for name in ISOLATED_ENV:
        monkeypatch.delenv(name, raising=False)
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ocr.db'}"
        return
    for name, value in POSTGRES_SECRETS.items():
        monkeypatch.setenv(name, value)
    with fresh_postgres_schema("deploy") as url:
        yield url


def migrate_to_next_release(url: str, tmp_path: Path) -> None:
    """Run the next release's `main.py migrate`: these revisions plus one this code does not have."""
    scripts = tmp_path / "next_release_migrations"
    shutil.copytree(MIGRATIONS_DIR, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / f"{NEXT_REVISION}.py").write_text(NEXT_RELEASE.format(revision=NEXT_REVISION,
                                                                                  down=head_revision()))
    cfg = Config()
    cfg.set_main_option("script_location", str(scripts))
    engine = create_engine(url)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")
    engine.dispose()


def revision_of(url: str) -> str | None:
    engine = create_engine(url)
    with engine.connect() as connection:
        revision = current_revision(connection)
    engine.dispose()
    return revision


def app_for(url: str, tmp_path: Path, **settings):
    from app import create_app

    return create_app({**TEST_OVERRIDES, "DATABASE_URL": url, "STORAGE_ROOT": str(tmp_path / "storage"),
                       "WORKER_ENABLED": False, **settings})


def run_main(url: str, tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {"PATH": "/usr/bin:/bin", "DATABASE_URL": url, "STORAGE_ROOT": str(tmp_path / "storage"), **env}
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, env=environment, capture_output=True,
                          text=True, timeout=120)


# --- the schema at start-up -------------------------------------------------------------------
def test_migrate_on_start_defaults_to_sqlite_only(monkeypatch):
    for name in ("MIGRATE_ON_START", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    assert config.load_settings({"DATABASE_URL": "sqlite:////tmp/x.db"})["MIGRATE_ON_START"] is True
    assert config.load_settings({"DATABASE_URL": "postgresql+psycopg2://u@h/db"})["MIGRATE_ON_START"] is False
    assert config.load_settings({"DATABASE_URL": "postgresql+psycopg2://u@h/db", "MIGRATE_ON_START": True}
                                )["MIGRATE_ON_START"] is True
    assert config.load_settings({"DATABASE_URL": "sqlite:////tmp/x.db", "MIGRATE_ON_START": False}
                                )["MIGRATE_ON_START"] is False


@pytest.mark.parametrize("migrate_on_start", [True, False])
def test_this_code_keeps_serving_a_schema_the_next_release_migrated(fresh_url, tmp_path, orquestador,
                                                                   migrate_on_start):
    """The rolling deploy: the next release ran `main.py migrate` first; this (older) code still starts,
    accepts, reads and answers uploads, and neither downgrades nor fails on the revision it does not know."""
    db = Database(fresh_url)
    upgrade_to_head(db)
    db.dispose()
    migrate_to_next_release(fresh_url, tmp_path)
    assert revision_of(fresh_url) == NEXT_REVISION

    app = app_for(fresh_url, tmp_path, MIGRATE_ON_START=migrate_on_start)
    client = app.test_client()
    image = generate_receipt(3, variant="clean").image_bytes
    sent = client.post("/api/upload", data={"files": [(io.BytesIO(image), "r.png")]}, content_type="multipart/form-data")
    assert sent.status_code == 200, sent.get_json()
    upload_id = sent.get_json()["files_processed"][0]["id"]
    batch = client.post("/api/ocr/process_batch", json={"profile": "ultra_rapido"})
    assert batch.status_code == 200 and batch.get_json()["files_processed"] == 1, batch.get_json()
    followed = client.get(f"/api/uploads/{upload_id}").get_json()["upload"]
    assert followed["status"] == "processed" and followed["result"]["extracted_fields"]["monto"]
    assert client.get("/api/health/ready").status_code == 200
    app.extensions["ocr_runtime"].db.dispose()

    # The worker and the deliverer start the same way; `main.py migrate` of this code leaves the schema be.
    worker_db = Database(fresh_url)
    prepare_schema(worker_db, migrate_on_start)
    assert worker_db.schema_ready
    worker_db.dispose()
    migrated = run_main(fresh_url, tmp_path, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    answer = json.loads(migrated.stdout.strip().splitlines()[-1])
    assert answer["revision"] == NEXT_REVISION and answer["code_revision"] == head_revision() and "newer" in answer["note"]
    assert run_main(fresh_url, tmp_path, "migrate", "--check").returncode == 0
    assert revision_of(fresh_url) == NEXT_REVISION
    engine = create_engine(fresh_url)
    assert "next_release_note" in {c["name"] for c in inspect(engine).get_columns("uploads")}
    engine.dispose()


def test_an_older_schema_stops_start_up_until_main_py_migrate_runs(fresh_url, tmp_path):
    engine = create_engine(fresh_url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0004_webhooks")
    engine.dispose()

    with pytest.raises(SchemaOutdated, match=r"0004_webhooks.*main\.py migrate"):
        app_for(fresh_url, tmp_path, MIGRATE_ON_START=False)
    db = Database(fresh_url)
    with pytest.raises(SchemaOutdated):
        prepare_schema(db, False)  # the worker's and the deliverer's start
    db.dispose()
    assert revision_of(fresh_url) == "0004_webhooks"  # nothing changed by a process that may not migrate

    checked = run_main(fresh_url, tmp_path, "migrate", "--check", MIGRATE_ON_START="false")
    assert checked.returncode == 1 and json.loads(checked.stdout)["needed"] is True
    keys = run_main(fresh_url, tmp_path, "keys", "list", MIGRATE_ON_START="false")
    assert keys.returncode == 2 and "main.py migrate" in keys.stderr and "Traceback" not in keys.stderr
    migrated = run_main(fresh_url, tmp_path, "migrate", MIGRATE_ON_START="false")
    assert migrated.returncode == 0, migrated.stderr
    assert json.loads(migrated.stdout)["revision"] == head_revision() == revision_of(fresh_url)
    app = app_for(fresh_url, tmp_path, MIGRATE_ON_START=False)
    assert app.test_client().get("/api/status").status_code == 200
    app.extensions["ocr_runtime"].db.dispose()


def test_an_empty_database_needs_main_py_migrate_when_start_up_may_not(fresh_url, tmp_path):
    with pytest.raises(SchemaOutdated, match="nothing"):
        app_for(fresh_url, tmp_path, MIGRATE_ON_START=False)
    engine = create_engine(fresh_url)
    assert inspect(engine).get_table_names() == []
    engine.dispose()


# --- no state on a host's disk with PostgreSQL ---------------------------------------------------
def test_postgresql_needs_the_shared_secrets_given(monkeypatch):
    for name in ("SECRET_KEY", "SESSION_SECRET", "WEBHOOK_SECRETS_KEY"):
        monkeypatch.delenv(name, raising=False)
    postgres = {"DATABASE_URL": "postgresql+psycopg2://ocr@db.example/ocr"}
    with pytest.raises(config.MissingSharedSecret, match="SECRET_KEY.*WEBHOOK_SECRETS_KEY"):
        config.require_shared_secrets(config.load_settings(postgres))
    with pytest.raises(config.MissingSharedSecret) as refused:
        config.require_shared_secrets(config.load_settings({**postgres, "SECRET_KEY": "s" * 32}))
    assert "WEBHOOK_SECRETS_KEY" in str(refused.value) and "SECRET_KEY (" not in str(refused.value)
    config.require_shared_secrets(config.load_settings({**postgres, **POSTGRES_SECRETS}))
    config.require_shared_secrets(config.load_settings({"DATABASE_URL": "sqlite:////tmp/x.db"}))  # one machine


@pytest.mark.parametrize("command_line", [["main.py", "worker"], ["main.py", "webhooks", "deliver"],
                                          ["-m", "gunicorn", "-c", "gunicorn.conf.py", "main:create_app()"]])
def test_every_serving_process_refuses_postgresql_without_the_secrets(tmp_path, command_line):
    env = {"PATH": "/usr/bin:/bin", "STORAGE_ROOT": str(tmp_path), "PORT": "1",
           "DATABASE_URL": "postgresql+psycopg2://nobody@127.0.0.1:1/none"}
    done = subprocess.run([sys.executable, *command_line], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0 and "SECRET_KEY" in done.stderr and "WEBHOOK_SECRETS_KEY" in done.stderr
    # Refused before anything was made on this host's disk.
    assert not (tmp_path / "data" / "secret_key").exists() and not (tmp_path / "data" / "webhook_secrets.key").exists()


# --- per-host metrics and logs --------------------------------------------------------------------
def test_each_host_empties_only_its_own_metrics_directory(tmp_path):
    shared = {"DATA_DIR": str(tmp_path / "shared-data"), "PROMETHEUS_MULTIPROC_DIR": None}
    a = Path(fresh_host_directory({**shared, "HOST_NAME": "host-a"}))
    (a / "counter_123.db").write_bytes(b"a's samples")
    b = Path(fresh_host_directory({**shared, "HOST_NAME": "host-b"}))
    assert a != b and a.parent == b.parent == tmp_path / "shared-data" / "prometheus"
    assert (a / "counter_123.db").read_bytes() == b"a's samples"  # B's start left A's samples alone
    (a / "notes.txt").write_text("not prometheus_client's")
    assert Path(fresh_host_directory({**shared, "HOST_NAME": "host-a"})) == a
    assert sorted(p.name for p in a.iterdir()) == ["notes.txt"]  # A's own restart empties A's samples only
    # The master re-reading its configuration (HUP) sees the directory it set: not nested again.
    assert Path(fresh_host_directory({**shared, "PROMETHEUS_MULTIPROC_DIR": str(a), "HOST_NAME": "host-a"})) == a


def test_log_lines_name_the_host_and_the_upload(capsys):
    configure_logging("INFO", "text", "host-a")
    logger = logging.getLogger("tests.deploys")
    with upload_scope(42):
        logger.warning("recording")
    logger.warning("between uploads")
    lines = capsys.readouterr().err.splitlines()
    assert any(" host-a " in line and "upload=42 " in line and line.endswith(": recording") for line in lines)
    assert any("upload=- " in line and line.endswith(": between uploads") for line in lines)
    record = logging.LogRecord("tests.deploys", logging.WARNING, __file__, 1, "recording", None, None)
    with upload_scope(7):
        RequestIdFilter().filter(record)
        entry = json.loads(JsonFormatter().format(record))
    assert entry["host"] == "host-a" and entry["upload_id"] == 7
    assert isinstance(make_formatter("text"), logging.Formatter)


def test_the_worker_logs_under_the_upload_it_records_and_names_its_host(make_app, orquestador, capsys, monkeypatch):
    import service.batches as batches
    from database import WorkerState
    from worker import Worker

    client = make_app(HOST_NAME="host-a").test_client()
    image = generate_receipt(5, variant="clean").image_bytes
    sent = client.post("/api/upload", data={"files": [(io.BytesIO(image), "r.png")]}, content_type="multipart/form-data")
    upload_id = sent.get_json()["files_processed"][0]["id"]
    rt = client.application.extensions["ocr_runtime"]
    record = batches.finish_upload

    def record_and_log(*args, **kwargs):
        logging.getLogger("tests.deploys").warning("recording its result")
        return record(*args, **kwargs)

    monkeypatch.setattr(batches, "finish_upload", record_and_log)
    worker = Worker(rt)
    worker.orchestrator = orquestador
    try:
        worker.start()
        assert worker.tick() == 1
    finally:
        worker.shutdown()
    lines = capsys.readouterr().err.splitlines()
    assert any(" host-a " in line and f"upload={upload_id} " in line and line.endswith(": recording its result")
               for line in lines), lines
    with rt.db.session() as session:
        assert set(session.scalars(select(WorkerState.hostname))) == {"host-a"}


@pytest.mark.slow
def test_a_second_host_on_a_shared_data_dir_leaves_the_first_hosts_metrics(tmp_path):
    """Two hosts (web-only, one SQLite file on the shared disk): B's start once emptied A's counters."""
    shared = tmp_path / "shared"
    pattern = 'http_requests_total{method="GET",route="/api/status",status="200"}'

    def status_count(base: str) -> float:
        text = requests.get(f"{base}/metrics", timeout=10).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(pattern))

    with running_service(shared, WORKER_ENABLED="false", HOST_NAME="host-a", WEB_CONCURRENCY="1") as a:
        for _ in range(3):
            assert requests.get(f"{a.base}/api/status", timeout=10).status_code == 200
        assert status_count(a.base) == 3
        with running_service(shared, WORKER_ENABLED="false", HOST_NAME="host-b", WEB_CONCURRENCY="1") as b:
            assert requests.get(f"{b.base}/api/status", timeout=10).status_code == 200
            time.sleep(0.2)
            assert status_count(a.base) == 3  # A's samples survived B's start
            assert status_count(b.base) == 1  # and each host sums its own processes
        assert sorted(p.name for p in (shared / "data" / "prometheus").iterdir()) == ["host-a", "host-b"]


# --- README's "Several hosts" ----------------------------------------------------------------------
def several_hosts_section() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Several hosts"):]
    return section[:section.index("\n## ", 1)]


def test_readme_several_hosts_names_real_settings_commands_and_secrets():
    import argparse

    import main

    section = several_hosts_section()
    named = set(re.findall(r"`([A-Z][A-Z0-9_]+)(?:=[^`]*)?`", section))
    assert named - set(config.Settings.model_fields) == set()
    assert {"DATABASE_URL", "IMAGE_STORAGE", "HOST_NAME", "MIGRATE_ON_START", "WORKER_ENABLED",
            "PROMETHEUS_MULTIPROC_DIR", "API_KEYS"} <= named
    assert set(config.SHARED_SECRETS) <= named  # the secrets start-up requires with PostgreSQL
    if "IMAGE_STORAGE" in config.Settings.model_fields:
        storage = config.Settings.model_fields["IMAGE_STORAGE"].annotation
        assert {"local", "postgresql"} <= set(getattr(storage, "__args__", ()))
    parser = main.build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name, rest in re.findall(r"main\.py (\w+)((?: --[a-z-]+)*)", section):
        assert name in commands, name
        for flag in rest.split():
            assert flag in commands[name]._option_string_actions, (name, flag)
    # The folders a local-storage backup copies are the service's own.
    folders = re.search(r"image folders \(([^)]*)\)", section).group(1)
    assert set(re.findall(r"`(\w+)`", folders)) <= set(config.load_settings()["ASYNC_DIRECTORIES"])
    assert "pg_dump" in section and "pg_restore" in section and "main.py migrate" in section


def test_the_secrets_readme_makes_are_accepted(tmp_path):
    """The two commands README gives make a SECRET_KEY and a WEBHOOK_SECRETS_KEY the service accepts."""
    from service.webhook_secrets import decrypt_secret, encrypt_secret

    made = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout.strip()
            for code in re.findall(r'python -c "([^"]+)"', several_hosts_section())]
    assert len(made) == 2
    settings = config.load_settings({"DATABASE_URL": "postgresql+psycopg2://ocr@db.example/ocr", "SECRET_KEY": made[0],
                                     "WEBHOOK_SECRETS_KEY": made[1], "STORAGE_ROOT": str(tmp_path)})
    config.require_shared_secrets(settings)
    assert decrypt_secret(settings, encrypt_secret(settings, "whsec_x")) == "whsec_x"
    assert not (tmp_path / "data").exists()  # nothing was made on this host's disk


def test_no_webhook_key_file_is_made_for_a_postgresql_database(tmp_path):
    """`main.py webhooks set` and anything else that encrypts: refused, rather than a key of this host's own."""
    from service.webhook_secrets import SecretUnavailable, encrypt_secret

    settings = config.load_settings({"DATABASE_URL": "postgresql+psycopg2://ocr@db.example/ocr",
                                     "STORAGE_ROOT": str(tmp_path)})
    with pytest.raises(SecretUnavailable, match="WEBHOOK_SECRETS_KEY"):
        encrypt_secret(settings, "whsec_x")
    assert not (tmp_path / "data").exists()


@pytest.mark.slow
@pytest.mark.e2e
def test_the_served_release_keeps_serving_under_gunicorn_after_the_next_one_migrates(fresh_url, tmp_path):
    """The whole process tree of this release (gunicorn, web processes, the supervised OCR worker)
    started, as at a worker recycle, against a schema the next release migrated: it becomes ready and
    reads an upload. The code before this change failed to boot there ("Can't locate revision")."""
    db = Database(fresh_url)
    upgrade_to_head(db)
    db.dispose()
    migrate_to_next_release(fresh_url, tmp_path)
    with running_service(tmp_path / "storage", fresh_url, start_timeout=180, HOST_NAME="host-old",
                         WEB_CONCURRENCY="1") as old:
        image = generate_receipt(4, variant="clean").image_bytes
        sent = requests.post(f"{old.base}/api/upload", files=[("files", ("r.png", image, "image/png"))], timeout=30)
        assert sent.status_code == 200, sent.text
        upload_id = sent.json()["files_processed"][0]["id"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = requests.get(f"{old.base}/api/uploads/{upload_id}", timeout=10).json()["upload"]["status"]
            if state in ("processed", "error"):
                break
            time.sleep(0.3)
        assert state == "processed"
        ready = requests.get(f"{old.base}/api/health/ready", timeout=10).json()
        assert ready["checks"]["worker"]["host"] == "host-old" and ready["checks"]["worker"]["on_host"] == 1
    assert revision_of(fresh_url) == NEXT_REVISION
