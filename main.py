"""Entry points. Importing this module builds nothing: no app, no database, no directories.

    gunicorn 'main:create_app()'           serve the API (gunicorn.conf.py also starts the worker)
    python main.py                         the same, on PORT (5000)
    python main.py worker                  run the OCR worker alone
    python main.py migrate                 bring the database schema to the newest revision
    python main.py keys create --tenant NAME [--role client|admin] [--name LABEL]
                                           a new API key, printed once (stored only as a hash)
    python main.py keys list | keys revoke ID
    python main.py extract PATH [PATH...] [--profile P]
                                           OCR + extraction of files or directories without the
                                           server or a database; one JSON line per file as it finishes
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import config

BASE_DIR = Path(__file__).resolve().parent
APP_FACTORY = "main:create_app()"


def create_app(test_config: dict[str, Any] | None = None):
    """The WSGI app, for gunicorn's factory syntax; the web layer is imported only when asked for."""
    from app import create_app as build  # noqa: PLC0415 - keeps `extract` free of Flask and the database

    return build(test_config)


def serve() -> int:
    os.chdir(BASE_DIR)
    argv = [sys.executable, "-m", "gunicorn", "-c", str(BASE_DIR / "gunicorn.conf.py"), APP_FACTORY]
    os.execvp(argv[0], argv)
    return 1  # not reached


def run_worker() -> int:
    from logging_setup import configure_logging  # noqa: PLC0415
    from service.runtime import Runtime  # noqa: PLC0415 - the worker's imports load onnxruntime
    from worker import Worker  # noqa: PLC0415

    settings = config.load_settings()
    configure_logging(settings["LOG_LEVEL"], settings["LOG_FORMAT"])
    worker = Worker(Runtime.from_settings(settings))
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: worker.stop())
    worker.run()
    return 0


def _migrated_database():
    from database import Database  # noqa: PLC0415
    from logging_setup import configure_logging  # noqa: PLC0415
    from migrations_runner import upgrade_to_head  # noqa: PLC0415

    settings = config.load_settings()
    configure_logging(settings["LOG_LEVEL"], settings["LOG_FORMAT"])
    database_url = settings["DATABASE_URL"]
    if database_url.startswith("sqlite:///"):
        Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    db = Database(database_url)
    upgrade_to_head(db)
    return db


def migrate() -> int:
    from migrations_runner import current_revision  # noqa: PLC0415

    db = _migrated_database()
    try:
        with db.engine.connect() as connection:
            print(json.dumps({"success": True, "revision": current_revision(connection)}))
    finally:
        db.dispose()
    return 0


def keys(args: argparse.Namespace) -> int:
    from service.access import AccessError, create_key, list_keys, revoke_key  # noqa: PLC0415

    db = _migrated_database()
    try:
        if args.keys_command == "create":
            key, record = create_key(db, args.tenant, args.role, args.name)
            print(json.dumps({"success": True, "id": record.id, "tenant": args.tenant, "role": record.role,
                              "key": key, "note": "shown once; only its hash is stored"}))
        elif args.keys_command == "revoke":
            revoke_key(db, args.id)
            print(json.dumps({"success": True, "revoked": args.id}))
        else:
            for entry in list_keys(db):
                print(json.dumps(entry))
    except AccessError as exc:
        print(f"keys: {exc}", file=sys.stderr)
        return 2
    finally:
        db.dispose()
    return 0


def image_paths(arguments: list[str]) -> Iterator[Path]:
    """Files as given, and the files inside each directory (sorted, hidden ones skipped, not recursive)."""
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            yield from sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        else:
            yield path


def extract(arguments: list[str], profile: str | None) -> int:
    from extract_cli import run_extract  # noqa: PLC0415 - loads the OCR engine

    return run_extract(list(image_paths(arguments)), profile)


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="main.py", description="Sistema OCR Empresarial Asíncrono")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve the API with gunicorn (the default)")
    commands.add_parser("worker", help="run the OCR worker process alone")
    commands.add_parser("migrate", help="bring the database schema to the newest revision")
    keys_cmd = commands.add_parser("keys", help="create, list and revoke API keys").add_subparsers(
        dest="keys_command", required=True)
    create_cmd = keys_cmd.add_parser("create", help="a new key, printed once")
    create_cmd.add_argument("--tenant", required=True, help="tenant name (created if new)")
    create_cmd.add_argument("--role", choices=("client", "admin"), default="client")
    create_cmd.add_argument("--name", default=None, help="a label for the key")
    keys_cmd.add_parser("list", help="every key: id, tenant, role, label, prefix, revoked")
    keys_cmd.add_parser("revoke", help="revoke a key by id").add_argument("id", type=int)
    extract_cmd = commands.add_parser("extract", help="OCR and extract fields from image files or directories")
    extract_cmd.add_argument("images", nargs="+", help="image files, or directories of them")
    extract_cmd.add_argument("--profile", default=None, choices=sorted(config.OCR_PROFILES))
    args = parser.parse_args(argv)
    if args.command == "worker":
        return run_worker()
    if args.command == "migrate":
        return migrate()
    if args.command == "keys":
        return keys(args)
    if args.command == "extract":
        return extract(args.images, args.profile)
    return serve()


def console() -> None:
    """The `ocr-service` console script of pyproject.toml."""
    sys.exit(cli(sys.argv[1:]))


def __getattr__(name: str):
    # `gunicorn main:app` of earlier deployments: build the app on first access, never at import.
    if name == "app":
        return create_app()
    raise AttributeError(name)


if __name__ == "__main__":
    console()
