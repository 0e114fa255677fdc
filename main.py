"""Entry points. Importing this module builds nothing: no app, no database, no directories.

    gunicorn 'main:create_app()'           serve the API (gunicorn.conf.py also starts the worker)
    python main.py                         the same, on PORT (5000)
    python main.py worker                  run the OCR worker alone
    python main.py migrate [--check]       bring the database schema to this code's revision (the
                                           deploy step; --check only says whether it is needed)
    python main.py keys create --tenant NAME [--role client|admin] [--name LABEL]
                                           a new API key, printed once (stored only as a hash)
    python main.py keys list | keys revoke ID
    python main.py staff create --tenant NAME --username U [--email E] [--name SHOWN] [--role revisor|admin]
    python main.py staff reset USER | staff disable USER | staff enable USER | staff list [--tenant NAME]
                                           people of the review desk (passwords read from stdin or prompted)
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
    configure_logging(settings["LOG_LEVEL"], settings["LOG_FORMAT"], settings["HOST_NAME"])
    if (refusal := _start_up_refusal(settings)) is not None:
        return refusal
    rt = Runtime.from_settings(settings)
    worker = Worker(rt)
    # Webhooks go out from a thread of their own (with its own sending threads): OCR never waits on a receiver.
    deliverer = Deliverer(rt, worker.worker_id.replace("worker:", "webhooks:", 1), outage_log_level=logging.DEBUG) \
        if settings["WEBHOOK_DELIVER_IN_WORKER"] else None
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: (worker.stop(), deliverer and deliverer.stop()))
    if deliverer is not None:
        deliverer.start()
    # An outdated schema (MIGRATE_ON_START off) keeps it starting, checked again each backoff, until migrated.
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
    configure_logging(settings["LOG_LEVEL"], settings["LOG_FORMAT"], settings["HOST_NAME"])
    if (refusal := _start_up_refusal(settings)) is not None:
        return refusal
    deliverer = Deliverer(Runtime.from_settings(settings))
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: deliverer.stop())
    deliverer.run()
    return 0


def _start_up_refusal(settings: dict[str, Any]) -> int | None:
    """Exit code 2 and the reason when a serving process may not start with these settings."""
    try:
        config.require_shared_secrets(settings)
    except config.MissingSharedSecret as exc:
        print(f"start-up refused: {exc}", file=sys.stderr)
        return 2
    return None


def _database():
    from database import Database  # noqa: PLC0415
    from logging_setup import configure_logging  # noqa: PLC0415

    settings = config.load_settings()
    configure_logging(settings["LOG_LEVEL"], settings["LOG_FORMAT"], settings["HOST_NAME"])
    database_url = settings["DATABASE_URL"]
    if database_url.startswith("sqlite:///"):
        Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return Database(database_url), settings


def _migrated_database():
    """The database for an admin command: migrated when MIGRATE_ON_START allows it, else checked."""
    from migrations_runner import prepare_schema  # noqa: PLC0415

    db, settings = _database()
    prepare_schema(db, settings["MIGRATE_ON_START"])
    return db


def migrate(check: bool = False) -> int:
    """The deploy step. Exit 0: the schema is this code's (or newer: never downgraded); with
    --check, exit 1 when a migration is needed, changing nothing."""
    from migrations_runner import (  # noqa: PLC0415
        SchemaOutdated,
        check_schema,
        current_revision,
        head_revision,
        newer_than_code,
        upgrade_to_head,
    )

    db, _settings = _database()
    try:
        try:
            (check_schema if check else upgrade_to_head)(db)
        except SchemaOutdated as exc:
            print(json.dumps({"success": False, "needed": True, "message": str(exc)}))
            return 1
        with db.engine.connect() as connection:
            revision = current_revision(connection)
        answer: dict[str, Any] = {"success": True, "revision": revision, "code_revision": head_revision()}
        if newer_than_code(revision):
            answer["note"] = "the schema is newer than this code: left as it is"
        print(json.dumps(answer))
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


# --- staff accounts of the review desk (one block: `staff` subcommands) -------------------------
def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    import getpass  # noqa: PLC0415

    first = getpass.getpass("Contraseña: ")
    if getpass.getpass("Repítala: ") != first:
        raise SystemExit("staff: the two passwords differ")
    return first


def staff(args: argparse.Namespace) -> int:
    from service.access import AccessError  # noqa: PLC0415
    from service.staff import (  # noqa: PLC0415
        create_staff,
        find_staff_id,
        list_staff,
        reset_password,
        set_disabled,
    )

    db = _migrated_database()
    try:
        if args.staff_command == "create":
            made = create_staff(db, args.tenant, args.username, _read_password(args), args.role, args.email, args.name,
                                create_tenant=True)
            print(json.dumps({"success": True, **made.as_dict(args.tenant)}, ensure_ascii=False))
        elif args.staff_command == "list":
            from service.access import tenant_id_named  # noqa: PLC0415

            tenant_id = tenant_id_named(db, args.tenant) if args.tenant else None
            if args.tenant and tenant_id is None:
                raise AccessError(f"no tenant named {args.tenant!r}")
            for view, tenant in list_staff(db, tenant_id):
                print(json.dumps(view.as_dict(tenant), ensure_ascii=False))
        else:
            account_id = find_staff_id(db, args.user)
            if args.staff_command == "reset":
                made = reset_password(db, account_id, _read_password(args))
            else:
                made = set_disabled(db, account_id, args.staff_command == "disable")
            print(json.dumps({"success": True, **made.as_dict(), "sesiones_cerradas": args.staff_command != "enable"},
                             ensure_ascii=False))
    except AccessError as exc:
        print(f"staff: {exc}", file=sys.stderr)
        return 2
    finally:
        db.dispose()
    return 0


def _staff_parser(commands: Any) -> None:
    staff_cmd = command(commands, "staff", "people of the review desk: create, reset, disable, enable, list",
                        DATABASE_SETTINGS).add_subparsers(dest="staff_command", required=True, title="commands",
                                                           metavar="COMMAND")
    create_cmd = command(staff_cmd, "create", "a new account (password from stdin, or prompted)", DATABASE_SETTINGS)
    create_cmd.add_argument("--tenant", required=True, help="tenant name (created if new; required)")
    create_cmd.add_argument("--username", required=True, help="the name to sign in with (required)")
    create_cmd.add_argument("--email", default=None, help="an e-mail to sign in with too (default: none)")
    create_cmd.add_argument("--name", default=None, help="the name history shows (default: the username)")
    create_cmd.add_argument("--role", choices=("revisor", "admin"), default="revisor",
                            help="revisor: reviews receipts; admin: also manages the tenant's team (default: revisor)")
    create_cmd.add_argument("--password-stdin", action="store_true",
                            help="read the password from stdin (default: prompt for it)")
    reset_cmd = command(staff_cmd, "reset", "a new password; the account's sessions end", DATABASE_SETTINGS)
    reset_cmd.add_argument("user", help="username or e-mail")
    reset_cmd.add_argument("--password-stdin", action="store_true",
                           help="read the password from stdin (default: prompt for it)")
    command(staff_cmd, "disable", "disable an account; its sessions end at once", DATABASE_SETTINGS).add_argument(
        "user", help="username or e-mail")
    command(staff_cmd, "enable", "enable a disabled account", DATABASE_SETTINGS).add_argument(
        "user", help="username or e-mail")
    command(staff_cmd, "list", "every account (of one tenant)", DATABASE_SETTINGS).add_argument(
        "--tenant", default=None, help="only this tenant's accounts (default: every tenant)")
# --- end of the staff block -----------------------------------------------------------------------


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


def image_paths(arguments: list[str], note=None) -> Iterator[Path]:
    """Files as given, and the images inside each folder (sorted, not recursive). In a folder, hidden
    files and files whose extension is not an image's are skipped, with a note; so is an empty folder.
    A file named on the command line is always read (its content decides, not its name)."""
    note = note or (lambda text: print(text, file=sys.stderr, flush=True))
    for argument in arguments:
        path = Path(argument)
        if not path.is_dir():
            yield path
            continue
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        images = [p for p in files if p.suffix.lower().lstrip(".") in config.ALLOWED_EXTENSIONS]
        skipped = [p.name for p in files if p not in images]
        if skipped:
            shown = ", ".join(skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
            note(f"note: {path}: skipping {len(skipped)} file(s) that are not images: {shown}")
        if not images:
            note(f"note: {path}: no images in this folder "
                 f"(extensions read: {', '.join(sorted(config.ALLOWED_EXTENSIONS))})")
        yield from images


def extract(arguments: list[str], profile: str | None) -> int:
    from extract_cli import run_extract  # noqa: PLC0415 - loads the OCR engine

    paths = list(image_paths(arguments))
    if not paths:
        print("note: nothing to read", file=sys.stderr)
        return 0
    return run_extract(paths, profile)


# Settings each command reads, shown under its --help with their defaults (every setting: README).
SERVE_SETTINGS = {
    "HOST": "address to listen on; unset: 0.0.0.0 when an API key is configured, else 127.0.0.1",
    "PORT": "port to listen on",
    "DATABASE_URL": "SQLAlchemy URL of the database; unset: SQLite at $DATA_DIR/ocr.db",
    "STORAGE_ROOT": "root of data/ (images, results, the SQLite file)",
    "DATA_DIR": "directory of the images and results; unset: $STORAGE_ROOT/data",
    "API_KEYS": "comma-separated bootstrap keys; with none, keys come from `main.py keys create`",
    "WEB_CONCURRENCY": "gunicorn web processes",
    "WORKER_ENABLED": "start the OCR workers beside the web processes",
    "OCR_WORKERS": "OCR worker processes on this host; 0: one per core, as many as memory holds",
    "ORT_INTRA_OP_THREADS": "onnxruntime threads per OCR worker; 0: the cores shared out among the workers",
    "OCR_DEFAULT_PROFILE": "OCR profile of the background work",
    "OCR_DETECTION_RUNTIME": "where text detection runs: onnxruntime or openvino",
    "LOG_LEVEL": "log level",
    "LOG_FORMAT": "log format: text or json",
}
WORKER_SETTINGS = ("DATABASE_URL", "STORAGE_ROOT", "DATA_DIR", "ORT_INTRA_OP_THREADS", "OCR_DEFAULT_PROFILE",
                   "OCR_DETECTION_RUNTIME", "LOG_LEVEL", "LOG_FORMAT")
EXTRACT_SETTINGS = ("ORT_INTRA_OP_THREADS", "OCR_DEFAULT_PROFILE", "OCR_DETECTION_RUNTIME")
DATABASE_SETTINGS = ("DATABASE_URL", "STORAGE_ROOT", "DATA_DIR")


def settings_help(names) -> str:
    """'environment:' lines for a command's --help: each setting, what it does, its default."""
    lines = ["environment (see README, Settings, for every one):"]
    for name in names:
        default = config.Settings.model_fields[name].default
        shown = "unset" if default is None else (",".join(default) or "none") if isinstance(default, list) else \
            str(default).lower() if isinstance(default, bool) else str(default)
        if name == "STORAGE_ROOT":
            shown = "the checkout"
        lines.append(f"  {name:22} {SERVE_SETTINGS[name]} (default: {shown})")
    return "\n".join(lines)


def command(group: Any, name: str, text: str, settings: Any = (), **kwargs: Any) -> argparse.ArgumentParser:
    """A subcommand whose --help says what it does and lists the settings it reads, with their defaults."""
    return group.add_parser(name, help=text, description=text, epilog=settings_help(settings) if settings else None,
                            formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="main.py", description="Sistema OCR Empresarial Asíncrono. "
                                     "Without a command: serve (the API under gunicorn, with the OCR workers).",
                                     epilog=settings_help(SERVE_SETTINGS), formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")
    command(commands, "serve", "serve the API with gunicorn on HOST:PORT, with the OCR workers (the default)", SERVE_SETTINGS)
    command(commands, "worker", "run one OCR worker process alone, until stopped", WORKER_SETTINGS)
    migrate_cmd = command(commands, "migrate", "bring the database schema to this code's revision (the deploy step)",
                          DATABASE_SETTINGS)
    migrate_cmd.add_argument("--check", action="store_true",
                             help="change nothing; exit 1 when a migration is needed (default: migrate)")
    keys_cmd = command(commands, "keys", "create, list and revoke API keys", DATABASE_SETTINGS).add_subparsers(
        dest="keys_command", required=True, title="commands", metavar="COMMAND")
    create_cmd = command(keys_cmd, "create", "a new key, printed once (stored only as a hash)", DATABASE_SETTINGS)
    create_cmd.add_argument("--tenant", required=True, help="tenant name (created if new; required)")
    create_cmd.add_argument("--role", choices=("client", "admin", "superadmin"), default="client",
                            help="client: uploads and results; admin: its tenant's admin endpoints; superadmin: "
                                 "every tenant (X-Tenant) (default: client)")
    create_cmd.add_argument("--name", default=None, help="a label for the key (default: none)")
    command(keys_cmd, "list", "every key: id, tenant, role, label, prefix, revoked", DATABASE_SETTINGS)
    command(keys_cmd, "revoke", "revoke a key by id", DATABASE_SETTINGS).add_argument(
        "id", type=int, help="the key's id (from `keys list`)")
    hooks_cmd = command(commands, "webhooks", "webhook configuration and delivery", DATABASE_SETTINGS).add_subparsers(
        dest="webhooks_command", required=True, title="commands", metavar="COMMAND")
    set_cmd = command(hooks_cmd, "set", "create or change a tenant's (or key's) webhook configuration", DATABASE_SETTINGS)
    set_cmd.add_argument("--tenant", required=True, help="tenant name (required)")
    set_cmd.add_argument("--key-id", type=int, default=None,
                         help="configure this key of the tenant instead (default: the tenant's own configuration)")
    set_cmd.add_argument("--url", default=None, help="callback URL, http or https (default: unchanged)")
    set_cmd.add_argument("--no-url", action="store_true", help="remove the callback URL (default: keep it)")
    set_cmd.add_argument("--allowed-host", action="append", default=None,
                         help="a host a per-upload callback_url may name (repeat; replaces the list; default: unchanged)")
    set_cmd.add_argument("--rotate-secret", action="store_true",
                         help="a new signing secret, printed once (default: keep the secret)")
    command(hooks_cmd, "show", "a tenant's webhook configurations (never the secret)", DATABASE_SETTINGS).add_argument(
        "--tenant", required=True, help="tenant name (required)")
    command(hooks_cmd, "deliver", "run the webhook deliverer alone, until stopped", DATABASE_SETTINGS)
    _staff_parser(commands)
    extract_cmd = command(commands, "extract", "OCR and extract fields from image files or folders, without the server "
                          "or a database: one JSON line per image on stdout, notes and progress on stderr", EXTRACT_SETTINGS)
    extract_cmd.add_argument("images", nargs="+", help="image files, or folders of them (files in a folder that are "
                             "not images, by extension, are skipped with a note)")
    extract_cmd.add_argument("--profile", default=None, choices=sorted(config.OCR_PROFILES),
                             help="OCR profile (default: OCR_DEFAULT_PROFILE, ultra_rapido)")
    return parser


def cli(argv: list[str]) -> int:
    from app import restrict_new_files  # noqa: PLC0415 - importing app builds nothing

    restrict_new_files()  # the worker, the deliverer and every command create private files too
    args = build_parser().parse_args(argv)
    if args.command == "worker":
        return run_worker()
    if args.command == "migrate":
        return migrate(args.check)
    if args.command in ("keys", "webhooks", "staff"):
        from migrations_runner import SchemaOutdated  # noqa: PLC0415

        try:
            return {"keys": keys, "webhooks": webhooks, "staff": staff}[args.command](args)
        except SchemaOutdated as exc:
            print(f"{args.command}: {exc}", file=sys.stderr)
            return 2
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
