"""Webhooks of a tenant: its configuration, the route of each upload, the outbox and its listing.

`enqueue_upload_event(session, upload, event_type, document)` is called inside the transaction
that records an upload's outcome (service/results.py, the housekeeping that marks uploads
failed; corrections and reviews later; service/conciliation.py when a receipt's reconciliation
state changes): the event and its delivery commit or roll back with the
outcome itself, so an outcome is never recorded without its event, nor an event sent for an
outcome that was not recorded. service/webhook_delivery.py sends them.

Which configuration applies: the uploading key's own one when it has one, else the tenant's. The
URL: the upload's callback_url (a host that configuration allows), else the configuration's URL.
No URL, no event.
"""
from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from database import (
    TENANT_SCOPE,
    ApiKey,
    Database,
    DeliveryState,
    Tenant,
    Upload,
    WebhookAttempt,
    WebhookConfig,
    WebhookDelivery,
    WebhookEvent,
    WebhookUploadRoute,
    database_now,
    iso,
)
from service.webhook_secrets import encrypt_secret, new_secret
from service.webhook_targets import TargetRefused, host_allowed, normalize_hosts, parse_url, resolve

EVENT_TYPES = ("upload.processed", "upload.failed", "upload.corrected", "upload.reviewed", "upload.reconciled")
# Set when a transaction that enqueued an event commits: a deliverer in the same process (the
# worker's) sends it at once instead of at its next poll. Other processes' deliverers poll.
NEW_EVENTS = threading.Event()


def key_scope(api_key_id: int | None) -> str:
    return TENANT_SCOPE if api_key_id is None else f"key:{api_key_id}"


# --- configuration -------------------------------------------------------------------------------
def config_view(config: WebhookConfig | None) -> dict[str, Any] | None:
    """What an admin sees of a configuration: never the secret, only its first characters."""
    if config is None:
        return None
    return {"api_key_id": config.api_key_id, "url": config.url, "allowed_hosts": list(config.allowed_hosts or []),
            "secret_prefix": config.secret_prefix, "secret_rotated_at": iso(config.secret_rotated_at),
            "created_at": iso(config.created_at), "updated_at": iso(config.updated_at)}


def tenant_id_named(db: Database, name: str) -> int:
    with db.session() as session:
        found = session.scalar(select(Tenant.id).where(Tenant.name == name))
    if found is None:
        raise TargetRefused("not_found", f"no tenant named {name!r}")
    return found


def tenant_configs(db: Database, tenant_id: int) -> list[WebhookConfig]:
    with db.session() as session:
        return list(session.scalars(select(WebhookConfig).where(WebhookConfig.tenant_id == tenant_id)
                                    .order_by(WebhookConfig.id)).all())


@dataclass(frozen=True)
class SavedConfig:
    config: WebhookConfig
    secret: str | None  # the new secret, shown once: on creation and on rotation


_UNCHANGED = object()


def save_config(db: Database, settings: dict[str, Any], tenant_id: int, api_key_id: int | None = None,
                url: Any = _UNCHANGED, allowed_hosts: Any = _UNCHANGED, rotate_secret: bool = False) -> SavedConfig:
    """Create or change the tenant's (or one of its keys') configuration. A URL is checked as a
    delivery would check it (TargetRefused); a new configuration gets a secret, as does a rotation."""
    if url is not _UNCHANGED and url is not None:
        resolve(parse_url(url), settings["WEBHOOK_ALLOW_PRIVATE"])
    hosts = normalize_hosts(allowed_hosts) if allowed_hosts is not _UNCHANGED else _UNCHANGED
    scope = key_scope(api_key_id)
    for _ in range(2):  # a concurrent first save of the same scope: the second one updates it
        with db.session() as session:
            if api_key_id is not None and session.scalar(select(ApiKey.id).where(
                    ApiKey.id == api_key_id, ApiKey.tenant_id == tenant_id)) is None:
                raise TargetRefused("not_found", f"The tenant has no key with id {api_key_id}")
            now = database_now(session)
            config = session.scalar(select(WebhookConfig).where(WebhookConfig.tenant_id == tenant_id,
                                                                WebhookConfig.scope == scope))
            secret = None
            if config is None or rotate_secret:
                secret = new_secret()
            if config is None:
                config = WebhookConfig(tenant_id=tenant_id, scope=scope, api_key_id=api_key_id, allowed_hosts=[],
                                       created_at=now)
                session.add(config)
            if url is not _UNCHANGED:
                config.url = url
            if hosts is not _UNCHANGED:
                config.allowed_hosts = hosts
            if secret is not None:
                config.secret_encrypted = encrypt_secret(settings, secret)
                config.secret_prefix = secret[:12]
                config.secret_rotated_at = now
            config.updated_at = now
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
                continue
            return SavedConfig(config, secret)
    raise RuntimeError("could not save the webhook configuration")


def _applicable_config(session: Session, tenant_id: int, api_key_id: int | None) -> WebhookConfig | None:
    scopes = [key_scope(api_key_id), TENANT_SCOPE] if api_key_id is not None else [TENANT_SCOPE]
    found = {c.scope: c for c in session.scalars(select(WebhookConfig).where(
        WebhookConfig.tenant_id == tenant_id, WebhookConfig.scope.in_(scopes)))}
    return next((found[scope] for scope in scopes if scope in found), None)


# --- routes of uploads --------------------------------------------------------------------------
@dataclass(frozen=True)
class UploadRoute:
    api_key_id: int | None
    callback_url: str | None


def route_for_upload(db: Database, tenant_id: int, api_key_id: int | None, callback_url: str | None) -> UploadRoute | None:
    """The route new uploads of this key take, checked now: a callback_url must name a host the
    applicable configuration allows. None when the tenant's plain configuration applies."""
    with db.session() as session:
        config = _applicable_config(session, tenant_id, api_key_id)
    if callback_url is not None:
        target = parse_url(callback_url)
        if config is None or not host_allowed(target.host, list(config.allowed_hosts or [])):
            raise TargetRefused("callback_not_allowed", f"callback_url: the host {target.host} is not registered for "
                                "this tenant (PUT /api/webhooks/config allowed_hosts)")
    if callback_url is None and (config is None or config.api_key_id is None):
        return None
    return UploadRoute(api_key_id if config is not None and config.api_key_id is not None else None, callback_url)


def add_upload_route(session: Session, upload: Upload, route: UploadRoute | None) -> None:
    """Within the upload's own transaction."""
    if route is not None:
        session.add(WebhookUploadRoute(upload_id=upload.id, tenant_id=upload.tenant_id, api_key_id=route.api_key_id,
                                       callback_url=route.callback_url))


# --- the outbox -------------------------------------------------------------------------------------
def result_summary(document: dict[str, Any] | None) -> dict[str, Any] | None:
    if not document:
        return None
    validation = document.get("validacion") or {}
    return {"processing_status": document.get("processing_status"),
            "fields": document.get("extracted_fields"), "validacion": validation,
            "requiere_revision": validation.get("requiere_revision"), "duplicado_de": document.get("duplicado_de"),
            "posible_reutilizacion": document.get("posible_reutilizacion"), "error": document.get("error"),
            "conciliacion": document.get("conciliacion")}


def enqueue_upload_event(session: Session, upload: Upload, event_type: str,
                         document: dict[str, Any] | None = None) -> str | None:
    """Add an event about `upload` and its delivery to the open transaction (the caller commits);
    the event's id, or None when the upload's tenant (or key) has no URL to tell."""
    told = enqueue_upload_events(session, event_type, [(upload, document)])
    return told[0] if told else None


def enqueue_upload_events(session: Session, event_type: str,
                          uploads: list[tuple[Upload, dict[str, Any] | None]]) -> list[str]:
    """One event of `event_type` per (upload, document) that has a URL to tell, with its delivery,
    in the open transaction; the ids of the events added. A statement can change the state of
    thousands of receipts at once: routes are read in one query and each configuration once."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    if not uploads:
        return []
    routes = {r.upload_id: r for r in session.scalars(select(WebhookUploadRoute).where(
        WebhookUploadRoute.upload_id.in_([upload.id for upload, _ in uploads])))}
    configs: dict[tuple[int, int | None], WebhookConfig | None] = {}
    now = database_now(session)
    deliveries = []
    for upload, document in uploads:
        route = routes.get(upload.id)
        scope = (upload.tenant_id, route.api_key_id if route else None)
        if scope not in configs:
            configs[scope] = _applicable_config(session, *scope)
        config = configs[scope]
        url = (route.callback_url if route else None) or (config.url if config else None)
        if config is None or not url:
            continue
        event_id = str(uuid.uuid4())
        session.add(WebhookEvent(id=event_id, tenant_id=upload.tenant_id, upload_id=upload.id, type=event_type,
                                 payload=_payload(event_id, event_type, now, upload, document), created_at=now))
        deliveries.append(WebhookDelivery(event_id=event_id, tenant_id=upload.tenant_id, config_id=config.id,
                                          url=url, state=DeliveryState.PENDING, next_attempt_at=now,
                                          window_started_at=now, created_at=now))
    if not deliveries:
        return []
    session.flush()  # the events before their deliveries: PostgreSQL checks the foreign key at once
    session.add_all(deliveries)
    event.listen(session, "after_commit", lambda _session: NEW_EVENTS.set(), once=True)
    return [delivery.event_id for delivery in deliveries]


def _payload(event_id: str, event_type: str, now: Any, upload: Upload,
             document: dict[str, Any] | None) -> dict[str, Any]:
    return {"id": event_id, "type": event_type, "created": iso(now), "data": {
        "upload_id": upload.id, "stored_name": upload.stored_name, "original_name": upload.original_name,
        "metadata": upload.upload_metadata, "request_id": (document or {}).get("request_id", upload.request_id),
        "status": upload.status, "error": {"code": upload.error_code, "message": upload.error_message}
        if upload.error_code else None,
        "duplicado_de": upload.duplicado_de, "result": result_summary(document)}}


# --- listing and resending ----------------------------------------------------------------------
def delivery_view(delivery: WebhookDelivery, event: WebhookEvent, attempts: list[WebhookAttempt]) -> dict[str, Any]:
    return {"id": delivery.id, "event_id": event.id, "event_type": event.type, "upload_id": event.upload_id,
            "url": delivery.url, "state": delivery.state, "attempts": delivery.attempts,
            "created_at": iso(delivery.created_at), "next_attempt_at": iso(delivery.next_attempt_at)
            if delivery.state == DeliveryState.PENDING else None,
            "delivered_at": iso(delivery.delivered_at), "last_status_code": delivery.last_status_code,
            "last_error": delivery.last_error,
            "history": [{"at": iso(a.attempted_at), "status_code": a.status_code, "error": a.error,
                         "duration_ms": round(a.duration_ms, 1)} for a in attempts]}


def list_deliveries(db: Database, tenant_id: int, limit: int, after_id: int = 0, state: str | None = None,
                    upload_id: int | None = None) -> tuple[list[dict[str, Any]], int | None]:
    """A page of the tenant's deliveries in id order (with their attempts), and the id to continue after."""
    query = (select(WebhookDelivery, WebhookEvent).join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
             .where(WebhookDelivery.tenant_id == tenant_id, WebhookDelivery.id > after_id))
    if state is not None:
        query = query.where(WebhookDelivery.state == state)
    if upload_id is not None:
        query = query.where(WebhookEvent.upload_id == upload_id)
    with db.session() as session:
        rows = session.execute(query.order_by(WebhookDelivery.id).limit(limit + 1)).all()
        more = len(rows) > limit
        rows = rows[:limit]
        history: dict[int, list[WebhookAttempt]] = {}
        if rows:
            for attempt in session.scalars(select(WebhookAttempt).where(
                    WebhookAttempt.delivery_id.in_([d.id for d, _ in rows])).order_by(WebhookAttempt.id)):
                history.setdefault(attempt.delivery_id, []).append(attempt)
    views = [delivery_view(d, e, history.get(d.id, [])) for d, e in rows]
    return views, rows[-1][0].id if more else None


class NotResendable(ValueError):
    """The delivery is still under way (pending or being sent)."""


def resend(db: Database, tenant_id: int, delivery_id: int) -> dict[str, Any] | None:
    """Send a failed (or delivered) delivery again, same event, same id, with a fresh retry window;
    None when the tenant has no such delivery."""
    with db.session() as session:
        delivery = session.scalar(select(WebhookDelivery).where(WebhookDelivery.id == delivery_id,
                                                                WebhookDelivery.tenant_id == tenant_id))
        if delivery is None:
            return None
        now = database_now(session)
        changed = session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id, WebhookDelivery.state.in_(DeliveryState.FINISHED))
            .values(state=DeliveryState.PENDING, next_attempt_at=now, window_started_at=now, claimed_by=None,
                    lease_expires_at=None)
        ).rowcount
        if changed != 1:
            session.rollback()
            raise NotResendable(f"Delivery {delivery_id} is {delivery.state}; only failed or delivered ones are resent")
        session.commit()
    page, _ = list_deliveries(db, tenant_id, 1, delivery_id - 1)
    return page[0]
