"""Who is calling: tenants, their API keys (stored only as SHA-256 hashes) and the principal a
request acts as.

Keys are 32 random bytes behind a recognisable prefix (`ocrk_`), so secret scanners can spot a
leaked one; a key that random needs no slow hash, and its SHA-256 is looked up by equality, the
stored hash compared again with hmac.compare_digest. The keys of the API_KEYS setting are
super-admin keys of the default tenant (they may act on every tenant), never stored.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from database import (
    ANONYMOUS_ACCESS,
    DEFAULT_TENANT_ID,
    AnonymousAccess,
    ApiKey,
    Database,
    InstallSetting,
    Role,
    Tenant,
    utcnow,
)

KEY_PREFIX = "ocrk_"
TENANT_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}\Z")


class AccessError(ValueError):
    """A key or tenant operation that cannot be done as asked (the message says why)."""


@dataclass(frozen=True)
class Principal:
    """What a request may do: its tenant's data, and the admin endpoints when it is an admin."""

    tenant_id: int
    role: str
    key_id: int | None  # None for API_KEYS keys and anonymous local callers
    client_key: str  # the rate-limit identity

    @property
    def is_admin(self) -> bool:
        return self.role in (Role.ADMIN, Role.SUPERADMIN)

    @property
    def is_superadmin(self) -> bool:
        """May act on any tenant (X-Tenant); a tenant's admin acts on its own tenant only."""
        return self.role == Role.SUPERADMIN


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _tenant(session: Any, name: str, create: bool) -> Tenant:
    tenant = session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None and create:
        tenant = Tenant(name=name)
        session.add(tenant)
        try:
            session.flush()
        except IntegrityError:  # created by a concurrent command
            session.rollback()
            tenant = session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        raise AccessError(f"no tenant named {name!r}")
    return tenant


def create_key(db: Database, tenant_name: str, role: str = Role.CLIENT, name: str | None = None) -> tuple[str, ApiKey]:
    """A new key of the tenant (created if new): (the key, shown only now; its stored record)."""
    if not TENANT_NAME_PATTERN.match(tenant_name):
        raise AccessError("a tenant name is 1-64 lowercase letters, digits, '_', '.' or '-'")
    if role not in Role.ALL:
        raise AccessError(f"role must be one of {', '.join(Role.ALL)}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with db.session() as session:
        tenant = _tenant(session, tenant_name, create=True)
        record = ApiKey(tenant_id=tenant.id, role=role, name=(name or None) and name[:128],
                        key_hash=key_hash(key), key_prefix=key[:12])
        session.add(record)
        # In the same transaction: once a key exists, a request without one is never let in again.
        _close_anonymous_access(session)
        session.commit()
    db.anonymous_closed = True
    return key, record


def _close_anonymous_access(session: Any) -> None:
    closed = session.execute(update(InstallSetting).where(InstallSetting.name == ANONYMOUS_ACCESS)
                             .values(value=AnonymousAccess.OFF)).rowcount
    if not closed:
        session.add(InstallSetting(name=ANONYMOUS_ACCESS, value=AnonymousAccess.OFF))


def list_keys(db: Database) -> list[dict[str, Any]]:
    with db.session() as session:
        rows = session.execute(select(ApiKey, Tenant.name).join(Tenant, Tenant.id == ApiKey.tenant_id)
                               .order_by(ApiKey.id)).all()
    return [{"id": key.id, "tenant": tenant, "role": key.role, "name": key.name, "prefix": key.key_prefix,
             "created_at": key.created_at.isoformat(), "revoked": key.revoked_at is not None} for key, tenant in rows]


def revoke_key(db: Database, key_id: int) -> None:
    with db.session() as session:
        record = session.get(ApiKey, key_id)
        if record is None:
            raise AccessError(f"no key with id {key_id}")
        record.revoked_at = record.revoked_at or utcnow()
        session.commit()


def authenticate(db: Database, supplied: str, settings_keys: list[str]) -> Principal | None:
    """The principal of a presented key, or None when no live key matches."""
    return authenticate_digest(db, key_hash(supplied), settings_keys)


def authenticate_digest(db: Database, digest: str, settings_keys: list[str]) -> Principal | None:
    """The principal of the key with this SHA-256, or None. A browser session keeps only the digest
    (never the key), so a revoked key or a removed API_KEYS entry ends its sessions at once."""
    # Compare with every setting key without stopping early, so timing reveals nothing.
    matched = False
    for key in settings_keys:
        matched |= hmac.compare_digest(digest, key_hash(key))
    if matched:
        return Principal(DEFAULT_TENANT_ID, Role.SUPERADMIN, None, "key:" + digest[:24])
    with db.session() as session:
        record = session.scalar(select(ApiKey).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None)))
    if record is None or not hmac.compare_digest(record.key_hash, digest):
        return None
    return Principal(record.tenant_id, record.role, record.id, "key:" + digest[:24])


def tenant_id_named(db: Database, name: str) -> int | None:
    if not TENANT_NAME_PATTERN.match(name):
        return None
    with db.session() as session:
        return session.scalar(select(Tenant.id).where(Tenant.name == name))


def tenant_names(db: Database) -> dict[int, str]:
    """Every tenant's name by id (for an admin choosing one)."""
    with db.session() as session:
        return dict(session.execute(select(Tenant.id, Tenant.name).order_by(Tenant.name)).all())


def anonymous_principal(remote_addr: str | None) -> Principal:
    """The caller of a deployment with no key at all: a super-admin, as the seed's single user (see README)."""
    return Principal(DEFAULT_TENANT_ID, Role.SUPERADMIN, None, f"ip:{remote_addr or 'unknown'}")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def listen_host(settings: dict[str, Any], keys_configured: bool) -> str:
    """Where to listen: closed by default. No key configured means 127.0.0.1, and an explicit
    other address then refuses to start unless ALLOW_ANONYMOUS says the operator means it."""
    host = settings.get("HOST")
    if keys_configured or settings["ALLOW_ANONYMOUS"]:
        return host or "0.0.0.0"
    if host is None or is_loopback(host):
        return host or "127.0.0.1"
    raise SystemExit(
        f"Refusing to listen on {host} with no API key configured: anyone reaching the port could read "
        "every receipt. Create a key (python main.py keys create --tenant NAME), set API_KEYS, "
        "or set ALLOW_ANONYMOUS=true to serve without keys on purpose.")


def anonymous_access(db: Database) -> str:
    """The installation's recorded anonymous mode (database/install.py). A database error
    propagates (the caller answers 503); a missing row reads as OFF."""
    if db.anonymous_closed:  # OFF is final: no query, even when the pool is exhausted
        return AnonymousAccess.OFF
    with db.session() as session:
        value = session.scalar(select(InstallSetting.value).where(InstallSetting.name == ANONYMOUS_ACCESS))
    if value != AnonymousAccess.LOOPBACK:
        db.anonymous_closed = True
        return AnonymousAccess.OFF
    return value


def anonymous_allowed(settings: dict[str, Any], db: Database, remote_addr: str | None) -> bool:
    """Whether a request without a key acts as the default tenant's super-admin: never with API_KEYS
    set, only when the database records anonymous access, and from the loopback interface unless
    ALLOW_ANONYMOUS says the operator serves key-less on purpose. Database errors propagate."""
    if settings["API_KEYS"]:
        return False
    if not settings["ALLOW_ANONYMOUS"] and not is_loopback(remote_addr or ""):
        return False
    return anonymous_access(db) == AnonymousAccess.LOOPBACK


def keys_configured(settings: dict[str, Any], db: Database, when_unknown: bool = True) -> bool:
    """Whether requests need a key: API_KEYS set or anonymous access off. When the database cannot
    say (unreachable, not migrated yet), `when_unknown`: True for what the API reports (never "open"
    by default); the listen address passes False, since loopback is its closed choice."""
    if settings["API_KEYS"]:
        return True
    try:
        return anonymous_access(db) != AnonymousAccess.LOOPBACK
    except SQLAlchemyError:
        return when_unknown
