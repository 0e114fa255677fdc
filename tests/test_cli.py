"""`python main.py ...` as a user runs it: extract streams JSON lines and touches no database;
importing main builds nothing."""
import io
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


def _subcommands(parser, path=()):
    """(path, parser) of every command and nested command of main.py."""
    import argparse  # noqa: PLC0415

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from _subcommands(sub, (*path, name))


def test_every_command_and_option_has_help_text_with_its_default():
    import argparse  # noqa: PLC0415

    import main  # noqa: PLC0415

    commands = dict(_subcommands(main.build_parser()))
    assert {("serve",), ("worker",), ("migrate",), ("keys", "create"), ("keys", "list"), ("keys", "revoke"),
            ("webhooks", "set"), ("webhooks", "show"), ("webhooks", "deliver"), ("extract",)} <= set(commands)
    for path, parser in commands.items():
        text = parser.format_help()
        assert parser.description, path
        for action in parser._actions:
            if action.dest == "help" or isinstance(action, argparse._SubParsersAction):
                continue  # a group of commands: each has its own help, checked in its turn
            assert action.help, (path, action.dest)
            optional = bool(action.option_strings) and not action.required
            if optional:
                assert "default" in action.help, (path, action.dest, action.help)
        if parser.epilog:
            assert "environment" in text and "(default: " in text, path


def test_serve_help_names_the_settings_it_reads_with_their_defaults(tmp_path):
    done = subprocess.run([sys.executable, "main.py", "serve", "--help"], cwd=ROOT, env=cli_env(tmp_path),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for line in ("PORT", "HOST", "DATABASE_URL", "WEB_CONCURRENCY", "OCR_WORKERS", "WORKER_ENABLED"):
        assert any(row.strip().startswith(line) and "(default: " in row for row in done.stdout.splitlines()), line
    assert "(default: 5000)" in done.stdout


def test_extract_skips_files_that_are_not_images_in_a_folder_and_says_so_on_an_empty_one(tmp_path):
    import main  # noqa: PLC0415

    folder, empty = tmp_path / "mixed", tmp_path / "empty"
    folder.mkdir()
    empty.mkdir()
    for name in ("a.png", "b.JPG", "notes.txt", "report.pdf", ".hidden.png"):
        (folder / name).write_bytes(b"x")
    notes = []
    paths = list(main.image_paths([str(folder), str(empty), str(tmp_path / "named.txt")], notes.append))
    assert [p.name for p in paths] == ["a.png", "b.JPG", "named.txt"]  # a file named on the command line is read
    assert any("skipping 2 file(s)" in n and "notes.txt" in n and "report.pdf" in n for n in notes), notes
    assert any(str(empty) in n and "no images" in n for n in notes), notes


def test_extract_of_an_empty_folder_is_not_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    done = subprocess.run([sys.executable, "main.py", "extract", str(tmp_path / "empty")], cwd=ROOT,
                          env=cli_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout == ""
    assert "no images" in done.stderr and "Traceback" not in done.stderr


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_extract_shows_a_spinner_while_the_models_load_and_a_line_when_they_are_loaded():
    import config  # noqa: PLC0415
    from aplicador_ocr import AplicadorOCR  # noqa: PLC0415
    from extract_cli import load_models  # noqa: PLC0415
    from main_ocr_process import OrquestadorOCR  # noqa: PLC0415

    terminal = _Terminal()
    # A fresh engine: its models are not loaded yet, so loading them takes a while.
    orchestrator = OrquestadorOCR(AplicadorOCR({**config.OCR_CONFIG, "intra_op_threads": 1}))
    seconds = load_models(orchestrator, "ultra_rapido", terminal)
    text = terminal.getvalue()
    assert "ultra_rapido" in orchestrator.aplicador.predictors
    if seconds > 0.3:  # a frame every 0.1 s
        assert "\rcargando modelos (ultra_rapido) " in text
    assert text.rstrip().endswith(f"modelos cargados (ultra_rapido) en {seconds:.1f} s")
