"""Entry points. Importing this module builds nothing: no app, no database, no directories.

    gunicorn 'main:create_app()'           serve the API (gunicorn.conf.py also starts the worker)
    python main.py                         the same, on PORT (5000)
    python main.py worker                  run the OCR worker alone
    python main.py migrate                 bring the database schema to the newest revision
    python main.py keys create --tenant NAME [--role client|admin] [--name LABEL]
                                           a new API key, printed once (stored only as a hash)
    python main.py keys list | keys revoke ID
    python main.py webhooks set --tenant NAME [--key-id ID] [--url URL | --no-url] [--allowed-host H ...]
                               [--rotate-secret]     a tenant's (or key's) webhook; a new secret is printed once
    python main.py webhooks show --tenant NAME | webhooks deliver (the deliverer alone)
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
    import logging  # noqa: PLC0415

    from logging_setup import configure_logging  # noqa: PLC0415
    from service.runtime import Runtime  # noqa: PLC0415 - the worker's imports load onnxruntime
    from service.webhook_delivery import Deliverer  # noqa: PLC0415
    from worker import Worker  # noqa: PLC0415

    settings = config.load_settings()
    configure_logging(settings["LOG_LEVEL"], settings["LOG_FORMAT"])
    rt = Runtime.from_settings(settings)
    worker = Worker(rt)
    # Webhooks go out from a thread of their own (with its own sending threads): OCR never waits on a receiver.
    deliverer = Deliverer(rt, worker.worker_id.replace("worker:", "webhooks:", 1), outage_log_level=logging.DEBUG) \
        if settings["WEBHOOK_DELIVER_IN_WORKER"] else None
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: (worker.stop(), deliverer and deliverer.stop()))
    if deliverer is not None:
        deliverer.start()
    worker.run()
    if deliverer is not None:
        deliverer.stop()
        deliverer.join(timeout=settings["WEBHOOK_TIMEOUT_SECONDS"] * 2 + 5)
    return 0


def run_deliverer() -> int:
    from logging_setup import configure_logging  # noqa: PLC0415
    from service.runtime import Runtime  # noqa: PLC0415
    from service.webhook_delivery import Deliverer  # noqa: PLC0415

    settings = config.load_settings()
    configure_logging(settings["LOG_LEVEL"], settings["LOG_FORMAT"])
    deliverer = Deliverer(Runtime.from_settings(settings))
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: deliverer.stop())
    deliverer.run()
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


def webhooks(args: argparse.Namespace) -> int:
    if args.webhooks_command == "deliver":
        return run_deliverer()
    from service.webhook_secrets import SecretUnavailable  # noqa: PLC0415
    from service.webhook_targets import TargetRefused  # noqa: PLC0415
    from service.webhooks import config_view, save_config, tenant_configs, tenant_id_named  # noqa: PLC0415

    db = _migrated_database()
    settings = config.load_settings()
    try:
        tenant = tenant_id_named(db, args.tenant)
        if args.webhooks_command == "show":
            for entry in tenant_configs(db, tenant):
                print(json.dumps(config_view(entry)))
            return 0
        changes: dict[str, Any] = {}
        if args.url is not None or args.no_url:
            changes["url"] = None if args.no_url else args.url
        if args.allowed_host is not None:
            changes["allowed_hosts"] = args.allowed_host
        saved = save_config(db, settings, tenant, args.key_id, rotate_secret=args.rotate_secret, **changes)
        answer = {"success": True, "config": config_view(saved.config)}
        if saved.secret is not None:
            answer.update(secret=saved.secret, note="shown once; --rotate-secret makes a new one")
        print(json.dumps(answer))
    except (TargetRefused, SecretUnavailable) as exc:
        print(f"webhooks: {exc}", file=sys.stderr)
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
    from app import restrict_new_files  # noqa: PLC0415 - importing app builds nothing

    restrict_new_files()  # the worker, the deliverer and every command create private files too
    parser = argparse.ArgumentParser(prog="main.py", description="Sistema OCR Empresarial Asíncrono")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve the API with gunicorn (the default)")
    commands.add_parser("worker", help="run the OCR worker process alone")
    commands.add_parser("migrate", help="bring the database schema to the newest revision")
    keys_cmd = commands.add_parser("keys", help="create, list and revoke API keys").add_subparsers(
        dest="keys_command", required=True)
    create_cmd = keys_cmd.add_parser("create", help="a new key, printed once")
    create_cmd.add_argument("--tenant", required=True, help="tenant name (created if new)")
    create_cmd.add_argument("--role", choices=("client", "admin", "superadmin"), default="client",
                            help="admin: its tenant's admin endpoints; superadmin: every tenant (X-Tenant)")
    create_cmd.add_argument("--name", default=None, help="a label for the key")
    keys_cmd.add_parser("list", help="every key: id, tenant, role, label, prefix, revoked")
    keys_cmd.add_parser("revoke", help="revoke a key by id").add_argument("id", type=int)
    hooks_cmd = commands.add_parser("webhooks", help="webhook configuration and delivery").add_subparsers(
        dest="webhooks_command", required=True)
    set_cmd = hooks_cmd.add_parser("set", help="create or change a tenant's (or key's) webhook configuration")
    set_cmd.add_argument("--tenant", required=True, help="tenant name")
    set_cmd.add_argument("--key-id", type=int, default=None, help="configure this key of the tenant instead")
    set_cmd.add_argument("--url", default=None, help="callback URL (http or https)")
    set_cmd.add_argument("--no-url", action="store_true", help="remove the callback URL")
    set_cmd.add_argument("--allowed-host", action="append", default=None,
                         help="a host a per-upload callback_url may name (repeat; replaces the list)")
    set_cmd.add_argument("--rotate-secret", action="store_true", help="a new signing secret, printed once")
    hooks_cmd.add_parser("show", help="a tenant's webhook configurations (never the secret)").add_argument(
        "--tenant", required=True)
    hooks_cmd.add_parser("deliver", help="run the webhook deliverer alone, until stopped")
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
    if args.command == "webhooks":
        return webhooks(args)
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
