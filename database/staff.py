"""The desk's people and sessions: staff accounts of a tenant (password hashed with argon2), the
server-side record of every browser session (so sign-out, a revoked key or a disabled account end
it at once), and the log of review decisions (who decided what, when, and what they were warned of)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from database.core import Base, utcnow


class StaffRole:
    ADMIN = "admin"  # manages the tenant's accounts in the desk, and reviews
    REVISOR = "revisor"
    ALL = (ADMIN, REVISOR)


class StaffAccount(Base):
    """A person of a tenant. Usernames and e-mails are unique across the deployment: the sign-in
    form asks for one of them and a password, never for the tenant."""

    __tablename__ = "staff_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str | None] = mapped_column(String(254), unique=True)
    display_name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))  # admin | revisor
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None]


class BrowserSession(Base):
    """One signed-in browser. The cookie carries a random token; only its SHA-256 is stored. A
    session is a staff account's (staff_id) or an API key's (key_digest, the key's SHA-256)."""

    __tablename__ = "browser_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff_accounts.id", ondelete="CASCADE"), index=True)
    key_digest: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    ended_at: Mapped[datetime | None]


class ReviewDecision(Base):
    """Every review decision of an upload, in order (`reviews` keeps only the latest)."""

    __tablename__ = "review_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    upload_id: Mapped[int] = mapped_column(ForeignKey("uploads.id", ondelete="CASCADE"))
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    estado: Mapped[str] = mapped_column(String(16))
    nota: Mapped[str | None] = mapped_column(Text)
    por: Mapped[str] = mapped_column(String(160))
    por_cuenta: Mapped[int | None] = mapped_column(ForeignKey("staff_accounts.id", ondelete="SET NULL"))
    # What the decision was warned of and taken anyway (approved with no amount, not reconciled...).
    avisos: Mapped[list[Any] | None]
    en: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_review_decisions_upload", "upload_id", "id"),)
