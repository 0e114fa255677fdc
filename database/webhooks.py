"""Webhooks: where a tenant (or one of its keys) is told about its uploads, and the outbox of what
it is told.

An event is written in the transaction that records an upload's outcome, with one delivery per
event: the delivery row is the outbox entry a deliverer claims, retries and finally marks
delivered or failed; each try is kept as an attempt. Events and deliveries name their upload by
id without a foreign key: the upload may be purged by the file retention before its event is out.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from database.core import Base, utcnow


class DeliveryState:
    PENDING = "pending"
    DELIVERING = "delivering"
    DELIVERED = "delivered"
    FAILED = "failed"
    ALL = (PENDING, DELIVERING, DELIVERED, FAILED)
    FINISHED = (DELIVERED, FAILED)


# The scope of a tenant's own configuration; a key's configuration is "key:<id>".
TENANT_SCOPE = "tenant"


class WebhookConfig(Base):
    """A callback URL, the hosts a per-upload callback_url may name, and the signing secret: of a
    tenant (scope "tenant") or of one of its keys (scope "key:<id>", which wins for that key's uploads).
    The secret is stored encrypted (service/webhook_secrets.py): it signs, so it must be recoverable."""

    __tablename__ = "webhook_configs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(String(32), default=TENANT_SCOPE)
    api_key_id: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    url: Mapped[str | None] = mapped_column(String(2048))
    allowed_hosts: Mapped[list[Any]] = mapped_column(default=list)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    # The first characters of the secret, so an operator can tell which one a receiver holds.
    secret_prefix: Mapped[str] = mapped_column(String(16))
    secret_rotated_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("tenant_id", "scope", name="uq_webhook_configs_tenant_scope"),)


class WebhookUploadRoute(Base):
    """Where one upload's events go when it is not simply the tenant's URL: the key that sent it
    (when that key has its own configuration) and the upload's own callback_url."""

    __tablename__ = "webhook_upload_routes"

    upload_id: Mapped[int] = mapped_column(ForeignKey("uploads.id", ondelete="CASCADE"), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    api_key_id: Mapped[int | None] = mapped_column(Integer)
    callback_url: Mapped[str | None] = mapped_column(String(2048))


class WebhookEvent(Base):
    """What happened, as sent: `payload` is the JSON body ({id, type, created, data}), the same on every try."""

    __tablename__ = "webhook_events"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)  # a UUID, the receiver's key to drop repeats
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    upload_id: Mapped[int | None] = mapped_column(Integer, index=True)
    type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class WebhookDelivery(Base):
    """The outbox entry of one event to one URL: claimed with a lease, retried with backoff."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("webhook_events.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    # The configuration whose secret signs it (the key's, else the tenant's).
    config_id: Mapped[int | None] = mapped_column(ForeignKey("webhook_configs.id", ondelete="SET NULL"))
    url: Mapped[str] = mapped_column(String(2048))
    state: Mapped[str] = mapped_column(String(16), default=DeliveryState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Retries stop this long after the window opened (created, or resent).
    window_started_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_webhook_deliveries_state_next", "state", "next_attempt_at"),)


class WebhookAttempt(Base):
    """One try of a delivery: when, the answer's status code or the error, how long it took."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True)
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[float] = mapped_column(Float)
