"""`python main.py ...` as a user runs it: extract streams JSON lines and touches no database;
importing main builds nothing."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ISOLATED_ENV, POSTGRES_SECRETS
from tools.receipt_generator import generate_receipt

ROOT = Path(__file__).resolve().parents[1]
DEAD_DATABASE = "postgresql+psycopg2://postgres@127.0.0.1:1/nothing"  # nothing listens there


def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ISOLATED_ENV}
    env.update(STORAGE_ROOT=str(tmp_path / "storage"), DATABASE_URL=DEAD_DATABASE, ORT_INTRA_OP_THREADS="1")
    env.update(POSTGRES_SECRETS)  # a PostgreSQL URL: the processes that serve it refuse to start without them
    return env


def test_importing_main_builds_no_app_and_creates_nothing(tmp_path):
    code = "import sys, main; assert 'flask' not in sys.modules and 'app' not in sys.modules; print('clean')"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=cli_env(tmp_path), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "clean", done.stderr
    assert not (tmp_path / "storage").exists()


@pytest.mark.slow
def test_extract_streams_one_line_per_file_and_touches_no_database(tmp_path):
    folder = tmp_path / "receipts"
    folder.mkdir()
    receipts = {f"r{seed:02d}.png": generate_receipt(seed, variant="lowres") for seed in range(9)}
    for name, receipt in receipts.items():
        (folder / name).write_bytes(receipt.image_bytes)
    (folder / ".hidden.png").write_bytes(b"skipped")
    (tmp_path / "notes.png").write_bytes(b"not an image at all")
    missing = tmp_path / "missing.png"
    arguments = [str(folder), str(tmp_path / "notes.png"), str(missing)]

    process = subprocess.Popen([sys.executable, "main.py", "extract", *arguments], cwd=ROOT, env=cli_env(tmp_path),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = process.stdout.readline()
    still_running = process.poll() is None  # the first document arrives while later files are still being read
    lines = [first] + process.stdout.readlines()  # the same buffered reader: communicate() would skip its buffer
    errors = process.stderr.read()
    process.wait(timeout=300)
    documents = [json.loads(line) for line in lines if line.strip()]

    assert still_running
    assert process.returncode == 1  # some files failed
    assert [d["filename"] for d in documents] == [str(folder / n) for n in sorted(receipts)] + arguments[1:]
    for document in documents[:len(receipts)]:
        assert document["processing_status"] == "success", document.get("error")
        assert set(document["extracted_fields"]) >= {"monto", "referencia"}
    assert documents[-2]["error"]["code"] == "unsupported_format"
    assert documents[-1]["error"]["code"] == "file_unreadable"
    assert "\r" not in errors  # no progress bar when stderr is not a terminal
    assert not (tmp_path / "storage").exists()  # no data/ directory, no SQLite file, no database contacted


def test_extract_refuses_an_unknown_profile(tmp_path):
    done = subprocess.run([sys.executable, "main.py", "extract", "x.png", "--profile", "nope"], cwd=ROOT,
                          env=cli_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "invalid choice" in done.stderr


def test_the_worker_logs_in_the_chosen_format(tmp_path):
    env = dict(cli_env(tmp_path), LOG_FORMAT="json", PRELOAD_MODELS="false", WORKER_POLL_INTERVAL_SECONDS="0.2")
    process = subprocess.Popen([sys.executable, "main.py", "worker"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        line = process.stderr.readline()  # the database is away: the worker says so, and keeps trying
        assert process.poll() is None
    finally:
        process.terminate()
        process.wait(timeout=60)
    entry = json.loads(line)
    assert entry["level"] == "WARNING" and "Database" in entry["message"] and entry["logger"] == "worker"
