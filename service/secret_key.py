"""The secret that signs session cookies when SECRET_KEY is not set: made once, kept under data/.

Every web process (and every host sharing the data directory) must sign with the same secret, or a
sign-in made through one process would be refused by the next. The first process to start writes
it; the others read it. The file is created complete or not at all (written aside, then linked into
place), readable by the service's user only, and lives in data/, which is never committed. Only with
SQLite: with PostgreSQL SECRET_KEY must be given (config.require_shared_secrets), as hosts share no disk.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

FILE_NAME = "secret_key"


def persisted_secret(data_dir: Path) -> str:
    path = Path(data_dir) / FILE_NAME
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32))
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(aside, path)  # fails if another process got there first: its secret wins
        except FileExistsError:
            pass
    finally:
        aside.unlink(missing_ok=True)
    return _read(path)


def _read(path: Path) -> str:
    secret = path.read_text().strip()
    if len(secret) < 32:
        raise RuntimeError(f"{path} holds no usable secret; remove it to have a new one made, or set SECRET_KEY")
    return secret
