"""Staff accounts: people of a tenant who sign in to the review desk as themselves.

Passwords are hashed with argon2id (argon2-cffi's PasswordHasher, its recommended parameters) and
re-hashed on sign-in when those parameters change. Disabling an account or resetting its password
ends every session of it at once (service/browser_sessions.py). A failed sign-in takes as long for
an unknown name as for a wrong password, so names cannot be told apart by timing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from database import Database, StaffAccount, StaffRole, Tenant, utcnow
from service.access import TENANT_NAME_PATTERN, AccessError
from service.browser_sessions import end_sessions_of_staff

HASHER = PasswordHasher()
USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,63}\Z")
EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s]{2,}\Z")
MIN_PASSWORD = 10
MAX_PASSWORD = 256
# Verified against when the name is unknown, so a miss costs what a wrong password costs.
_DUMMY_HASH = HASHER.hash("not a password of anyone")


@dataclass(frozen=True)
class StaffView:
    id: int
    tenant_id: int
    username: str
    email: str | None
    display_name: str
    role: str
    disabled: bool

    def as_dict(self, tenant: str | None = None) -> dict[str, Any]:
        found = {"id": self.id, "usuario": self.username, "correo": self.email, "nombre": self.display_name,
                 "rol": self.role, "desactivada": self.disabled}
        return {**found, "inquilino": tenant} if tenant is not None else found


def _view(account: StaffAccount) -> StaffView:
    return StaffView(account.id, account.tenant_id, account.username, account.email, account.display_name,
                     account.role, account.disabled_at is not None)


def check_password(password: str) -> None:
    if not isinstance(password, str) or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise AccessError(f"la contraseña debe tener entre {MIN_PASSWORD} y {MAX_PASSWORD} caracteres")


def _tenant_id(session: Any, tenant: str | int, create: bool) -> int:
    if isinstance(tenant, int):
        return tenant
    if not TENANT_NAME_PATTERN.match(tenant):
        raise AccessError("a tenant name is 1-64 lowercase letters, digits, '_', '.' or '-'")
    found = session.scalar(select(Tenant.id).where(Tenant.name == tenant))
    if found is None and create:
        made = Tenant(name=tenant)
        session.add(made)
        session.flush()
        found = made.id
    if found is None:
        raise AccessError(f"no tenant named {tenant!r}")
    return found


def create_staff(db: Database, tenant: str | int, username: str, password: str, role: str = StaffRole.REVISOR,
                 email: str | None = None, display_name: str | None = None, create_tenant: bool = False) -> StaffView:
    """A new account of the tenant (a name, created if new with create_tenant, or an id)."""
    username = (username or "").strip().lower()
    email = (email or "").strip().lower() or None
    if not USERNAME_PATTERN.match(username):
        raise AccessError("el usuario debe tener de 2 a 64 letras minúsculas, dígitos, '_', '.' o '-'")
    if email is not None and not EMAIL_PATTERN.match(email):
        raise AccessError("el correo no parece una dirección de correo")
    if role not in StaffRole.ALL:
        raise AccessError(f"el rol debe ser {' o '.join(StaffRole.ALL)}")
    check_password(password)
    name = (display_name or "").strip()[:128] or username
    with db.session() as session:
        account = StaffAccount(tenant_id=_tenant_id(session, tenant, create_tenant), username=username, email=email,
                               display_name=name, role=role, password_hash=HASHER.hash(password))
        session.add(account)
        try:
            session.commit()
        except IntegrityError:
            raise AccessError("ya existe una cuenta con ese usuario o correo") from None
        return _view(account)


def _account(session: Any, account_id: int, tenant_id: int | None) -> StaffAccount:
    account = session.get(StaffAccount, account_id)
    if account is None or (tenant_id is not None and account.tenant_id != tenant_id):
        raise AccessError(f"no hay una cuenta con id {account_id}")
    return account


def find_staff_id(db: Database, name: str) -> int:
    """An account's id from its username or e-mail (for the CLI)."""
    with db.session() as session:
        found = session.scalar(select(StaffAccount.id).where(_named(name)))
    if found is None:
        raise AccessError(f"no hay una cuenta llamada {name!r}")
    return found


def _named(name: str) -> Any:
    lowered = name.strip().lower()
    return or_(StaffAccount.username == lowered, func.lower(StaffAccount.email) == lowered)


def reset_password(db: Database, account_id: int, password: str, tenant_id: int | None = None) -> StaffView:
    """A new password; every session of the account ends."""
    check_password(password)
    with db.session() as session:
        account = _account(session, account_id, tenant_id)
        account.password_hash = HASHER.hash(password)
        account.password_changed_at = utcnow()
        end_sessions_of_staff(session, account.id)
        session.commit()
        return _view(account)


def set_disabled(db: Database, account_id: int, disabled: bool, tenant_id: int | None = None) -> StaffView:
    """Disable (every session of it ends at once) or enable an account."""
    with db.session() as session:
        account = _account(session, account_id, tenant_id)
        account.disabled_at = (account.disabled_at or utcnow()) if disabled else None
        if disabled:
            end_sessions_of_staff(session, account.id)
        session.commit()
        return _view(account)


def list_staff(db: Database, tenant_id: int | None = None) -> list[tuple[StaffView, str]]:
    """Accounts (of one tenant, or all) with their tenant's name, by id."""
    query = select(StaffAccount, Tenant.name).join(Tenant, Tenant.id == StaffAccount.tenant_id).order_by(StaffAccount.id)
    if tenant_id is not None:
        query = query.where(StaffAccount.tenant_id == tenant_id)
    with db.session() as session:
        return [(_view(account), tenant) for account, tenant in session.execute(query).all()]


def verify_login(db: Database, name: str, password: str) -> StaffView | None:
    """The enabled account with this username or e-mail and password, or None."""
    if not name or not password or len(name) > 254 or len(password) > MAX_PASSWORD:
        return None
    with db.session() as session:
        account = session.scalar(select(StaffAccount).where(_named(name)))
        stored = account.password_hash if account is not None else _DUMMY_HASH
        try:
            HASHER.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if account is None or account.disabled_at is not None:
            return None
        if HASHER.check_needs_rehash(stored):
            account.password_hash = HASHER.hash(password)
            session.commit()
        return _view(account)


def staff_view(db: Database, account_id: int) -> StaffView | None:
    with db.session() as session:
        account = session.get(StaffAccount, account_id)
        return _view(account) if account is not None else None
