"""Webhook signing secrets: made, kept encrypted at rest, and used to sign a body.

A signing secret is an HMAC key, so unlike an API key it cannot be kept as a hash: the deliverer
needs it back. It is stored encrypted with Fernet (AES-128-CBC + HMAC-SHA256, `cryptography`)
under a key that never enters the database: WEBHOOK_SECRETS_KEY, or else a key file created once
in DATA_DIR (mode 600), shared by the processes of one host. A copy of the database alone reveals
no secret; several hosts on one PostgreSQL must share WEBHOOK_SECRETS_KEY.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

SECRET_PREFIX = "whsec_"
KEY_FILE_NAME = "webhook_secrets.key"


class SecretUnavailable(RuntimeError):
    """A stored secret cannot be decrypted with this process's key (another key, or a lost key file)."""


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _key_file(settings: dict[str, Any]) -> bytes:
    path = Path(settings["DATA_DIR"]) / KEY_FILE_NAME
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{KEY_FILE_NAME}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(Fernet.generate_key())
    try:
        os.link(temporary, path)  # fails if another process made the file first: theirs is the key
    except FileExistsError:
        pass
    finally:
        temporary.unlink(missing_ok=True)
    return path.read_bytes().strip()


def _fernet(settings: dict[str, Any]) -> Fernet:
    configured = settings.get("WEBHOOK_SECRETS_KEY")
    if not configured and str(settings.get("DATABASE_URL", "")).startswith("postgresql"):
        # Hosts share the database: a key file made on this host's disk would lock the others out.
        raise SecretUnavailable("WEBHOOK_SECRETS_KEY must be given with PostgreSQL (the same on every host); "
                                "none is generated on a host's disk")
    key = configured.encode() if configured else _key_file(settings)
    try:
        return Fernet(key)
    except ValueError as exc:
        raise SecretUnavailable("WEBHOOK_SECRETS_KEY is not a Fernet key (32 url-safe base64-encoded bytes)") from exc


def encrypt_secret(settings: dict[str, Any], secret: str) -> str:
    return _fernet(settings).encrypt(secret.encode()).decode()


def decrypt_secret(settings: dict[str, Any], stored: str) -> str:
    try:
        return _fernet(settings).decrypt(stored.encode()).decode()
    except InvalidToken:
        raise SecretUnavailable("the signing secret was encrypted with another key") from None


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`: the timestamp is signed too, so an old
    body cannot be replayed under a fresh time."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"
