"""Sending the outbox: claim due deliveries with a lease, POST them signed, record every attempt,
retry with exponential backoff and jitter for WEBHOOK_RETRY_HOURS, then give up as `failed`.

At least once: a delivery is claimed (`delivering`, with a lease) before it is sent and marked
`delivered` only after a 2xx, so a deliverer that dies mid-way leaves a lease that expires and the
delivery is sent again, with the same event id and body. Claims follow service/jobs.py: PostgreSQL
picks candidates with FOR UPDATE SKIP LOCKED, and the UPDATE repeats the due test, the
compare-and-set SQLite relies on. All state is in the database, so restarts lose nothing.

The deliverer runs in its own thread (main.py worker starts it) or alone (`main.py webhooks
deliver`), with its own small pool of sending threads: a slow or dead receiver holds one of those
for at most WEBHOOK_TIMEOUT_SECONDS, never the OCR.
"""
from __future__ import annotations

import json
import logging
import random
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime, timedelta
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import DBAPIError

from database import Database, DeliveryState, WebhookAttempt, WebhookConfig, WebhookDelivery, WebhookEvent, database_now
from migrations_runner import prepare_schema
from service.runtime import Runtime, process_identity
from service.webhook_secrets import SecretUnavailable, decrypt_secret, signature_header
from service.webhook_targets import Target, TargetRefused, parse_url, resolve
from service.webhooks import NEW_EVENTS

logger = logging.getLogger(__name__)

MAX_ERROR_LENGTH = 500
USER_AGENT = "ocr-empresarial-webhooks/1"


# --- one POST, to the address that was checked ------------------------------------------------------
class _PinnedAdapter(HTTPAdapter):
    """Connections to an address chosen beforehand, while TLS still checks the certificate (and
    sends SNI) for the URL's host name: the name is resolved and checked once, not again by the
    HTTP client where a changed DNS answer could lead it elsewhere."""

    def __init__(self, host_name: str) -> None:
        self._host_name = host_name
        super().__init__(pool_connections=1, pool_maxsize=1, max_retries=0)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, server_hostname=self._host_name,
                                 assert_hostname=self._host_name, **pool_kwargs)


def post_to(target: Target, address: str, body: bytes, headers: dict[str, str], timeout: float,
            verify: bool | str = True) -> int:
    """POST `body` to the target at `address`; the status code. Redirects are not followed.
    `verify`: requests' certificate check (True: the system's CAs; a path: those CAs, for tests)."""
    literal = f"[{address}]" if ":" in address else address
    default_port = 443 if target.scheme == "https" else 80
    host_header = target.host if target.port == default_port else f"{target.host}:{target.port}"
    if ":" in target.host:  # an IPv6 literal in the URL keeps its brackets in Host
        host_header = f"[{target.host}]" if target.port == default_port else f"[{target.host}]:{target.port}"
    with requests.Session() as session:
        session.trust_env = False  # no proxy from the environment: the address checked is the one called
        session.mount(f"{target.scheme}://", _PinnedAdapter(target.host))
        with session.post(f"{target.scheme}://{literal}:{target.port}{target.path}", data=body,
                          headers={**headers, "Host": host_header}, timeout=(timeout, timeout),
                          allow_redirects=False, stream=True, verify=verify) as response:
            response.raw.read(4096, decode_content=False)  # enough to end the exchange; the body is not ours
            return response.status_code


def event_body(payload: dict[str, Any]) -> bytes:
    """The event as sent: the same bytes on every try, so a repeat is byte-for-byte a repeat."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


# --- claims ---------------------------------------------------------------------------------------------
def _due(now: datetime) -> Any:
    return or_(and_(WebhookDelivery.state == DeliveryState.PENDING, WebhookDelivery.next_attempt_at <= now),
               and_(WebhookDelivery.state == DeliveryState.DELIVERING, WebhookDelivery.lease_expires_at < now))


def lease_for(settings: dict[str, Any]) -> timedelta:
    # A try takes at most a connect and a read timeout; the lease outlasts it comfortably.
    return timedelta(seconds=3 * settings["WEBHOOK_TIMEOUT_SECONDS"] + 10)


def claim_due(db: Database, deliverer_id: str, limit: int, lease: timedelta) -> list[int]:
    with db.session() as session:
        now = database_now(session)
        candidates = session.scalars(select(WebhookDelivery.id).where(_due(now)).order_by(WebhookDelivery.next_attempt_at,
                                                                                          WebhookDelivery.id)
                                     .limit(limit).with_for_update(skip_locked=True)).all()
        if not candidates:
            session.rollback()
            return []
        claimed = session.scalars(
            update(WebhookDelivery).where(WebhookDelivery.id.in_(candidates), _due(now))
            .values(state=DeliveryState.DELIVERING, claimed_by=deliverer_id, lease_expires_at=now + lease)
            .returning(WebhookDelivery.id).execution_options(synchronize_session=False)
        ).all()
        session.commit()
        return sorted(claimed)


def release(db: Database, deliverer_id: str) -> int:
    """Claims this deliverer holds but did not send go back, due at once (at shutdown)."""
    with db.session() as session:
        released = session.execute(
            update(WebhookDelivery).where(WebhookDelivery.claimed_by == deliverer_id,
                                          WebhookDelivery.state == DeliveryState.DELIVERING)
            .values(state=DeliveryState.PENDING, claimed_by=None, lease_expires_at=None)).rowcount
        session.commit()
        return released


def backoff_seconds(settings: dict[str, Any], attempts: int) -> float:
    """Delay before try number attempts + 1: base * 2^(attempts-1), capped, then jittered into
    [half, all] of it so receivers coming back are not hit by every sender at the same moment."""
    delay = min(settings["WEBHOOK_BACKOFF_MAX_SECONDS"], settings["WEBHOOK_BACKOFF_BASE_SECONDS"] * 2 ** (attempts - 1))
    return delay * random.uniform(0.5, 1.0)


# --- one try --------------------------------------------------------------------------------------------
def _prepare(rt: Runtime, delivery_id: int) -> tuple[WebhookDelivery, bytes, str] | str:
    """The delivery, its body and its secret; or why it cannot be sent at all."""
    with rt.db.session() as session:
        row = session.execute(
            select(WebhookDelivery, WebhookEvent.payload, WebhookConfig.secret_encrypted)
            .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
            .outerjoin(WebhookConfig, WebhookConfig.id == WebhookDelivery.config_id)
            .where(WebhookDelivery.id == delivery_id)).first()
    if row is None:
        return "gone"
    delivery, payload, stored_secret = row
    if stored_secret is None:
        return "the webhook configuration was removed"
    try:
        return delivery, event_body(payload), decrypt_secret(rt.settings, stored_secret)
    except SecretUnavailable as exc:
        return str(exc)


def attempt_delivery(rt: Runtime, deliverer_id: str, delivery_id: int) -> str:
    """Send one claimed delivery once and record the outcome; its new state."""
    settings = rt.settings
    prepared = _prepare(rt, delivery_id)
    if prepared == "gone":
        return "gone"
    status_code: int | None = None
    permanent = False
    started = time.monotonic()
    if isinstance(prepared, str):
        error, permanent = prepared, True
    else:
        delivery, body, secret = prepared
        try:
            target = parse_url(delivery.url)
            address = resolve(target, settings["WEBHOOK_ALLOW_PRIVATE"])[0]
            timestamp = int(time.time())
            headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, "X-Webhook-Id": delivery.event_id,
                       "X-Signature": signature_header(secret, timestamp, body)}
            status_code = post_to(target, address, body, headers, settings["WEBHOOK_TIMEOUT_SECONDS"])
            error = None if 200 <= status_code < 300 else f"HTTP {status_code}"
        except TargetRefused as exc:
            # A name that now points somewhere forbidden is refused, not retried into.
            error, permanent = exc.message, exc.code == "callback_not_allowed"
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"
    duration_ms = (time.monotonic() - started) * 1000
    return _record(rt, deliverer_id, delivery_id, status_code, error, duration_ms, permanent)


def _record(rt: Runtime, deliverer_id: str, delivery_id: int, status_code: int | None, error: str | None,
            duration_ms: float, permanent: bool) -> str:
    error = error[:MAX_ERROR_LENGTH] if error else None
    with rt.db.session() as session:
        now = database_now(session)
        delivery = session.get(WebhookDelivery, delivery_id)
        session.add(WebhookAttempt(delivery_id=delivery_id, attempted_at=now, status_code=status_code, error=error,
                                   duration_ms=duration_ms))
        if delivery is None or delivery.claimed_by != deliverer_id or delivery.state != DeliveryState.DELIVERING:
            session.commit()  # the claim was lost (lease expired): the attempt is still history
            return "lost"
        attempts = delivery.attempts + 1
        values: dict[str, Any] = dict(attempts=attempts, last_status_code=status_code, last_error=error,
                                      claimed_by=None, lease_expires_at=None)
        if error is None:
            values.update(state=DeliveryState.DELIVERED, delivered_at=now)
        else:
            retry_at = now + timedelta(seconds=backoff_seconds(rt.settings, attempts))
            deadline = delivery.window_started_at + timedelta(hours=rt.settings["WEBHOOK_RETRY_HOURS"])
            if permanent or retry_at > deadline:
                values.update(state=DeliveryState.FAILED)
            else:
                values.update(state=DeliveryState.PENDING, next_attempt_at=retry_at)
        session.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id,
                                                      WebhookDelivery.claimed_by == deliverer_id).values(**values))
        session.commit()
        return values["state"]


def deliver_due(rt: Runtime, deliverer_id: str, pool: ThreadPoolExecutor | None = None) -> int:
    """Claim what is due (up to the pool's size) and send it; the number of tries made."""
    limit = rt.settings["WEBHOOK_CONCURRENCY"]
    claimed = claim_due(rt.db, deliverer_id, limit, lease_for(rt.settings))
    if pool is None:
        for delivery_id in claimed:
            attempt_delivery(rt, deliverer_id, delivery_id)
    else:
        list(pool.map(lambda d: attempt_delivery(rt, deliverer_id, d), claimed))
    return len(claimed)


# --- the loop ------------------------------------------------------------------------------------------
class Deliverer:
    """Sends due deliveries until stopped, WEBHOOK_CONCURRENCY at a time: a slot is refilled as soon
    as its try ends, so one slow receiver never holds back the rest for a whole round. Database
    outages back off and resume."""

    def __init__(self, rt: Runtime, deliverer_id: str | None = None, outage_log_level: int = logging.WARNING) -> None:
        self.rt = rt
        self.deliverer_id = deliverer_id or process_identity("webhooks")
        # Inside the worker process its loop already reports a database outage; alone, this one does.
        self.outage_log_level = outage_log_level
        self.stop_event = threading.Event()
        self._thread: threading.Thread | None = None

    def _claim(self, free: int) -> list[int]:
        prepare_schema(self.rt.db, self.rt.settings.get("MIGRATE_ON_START", True))
        return claim_due(self.rt.db, self.deliverer_id, free, lease_for(self.rt.settings))

    def run(self) -> None:
        settings = self.rt.settings
        slots = settings["WEBHOOK_CONCURRENCY"]
        in_flight: set[Future] = set()
        backoff = 0.0
        with ThreadPoolExecutor(slots, thread_name_prefix="webhook-send") as pool:
            while not self.stop_event.is_set():
                NEW_EVENTS.clear()
                try:
                    claimed = self._claim(slots - len(in_flight)) if len(in_flight) < slots else []
                    backoff = 0.0
                except Exception as exc:  # noqa: BLE001 - the loop outlives a database outage or a bug in one round
                    backoff = min(30.0, max(1.0, backoff * 2))
                    if isinstance(exc, (DBAPIError, OSError)):
                        logger.log(self.outage_log_level, "Database unavailable for webhook delivery (%s); retrying "
                                   "in %.0fs", type(exc).__name__, backoff)
                    else:
                        logger.exception("Claiming webhook deliveries failed; retrying in %.0fs", backoff)
                    self.stop_event.wait(backoff)
                    continue
                in_flight |= {pool.submit(attempt_delivery, self.rt, self.deliverer_id, d) for d in claimed}
                if in_flight and len(in_flight) >= slots:
                    done, in_flight = wait(in_flight, timeout=settings["WEBHOOK_POLL_INTERVAL_SECONDS"],
                                           return_when=FIRST_COMPLETED)
                else:
                    if not claimed:  # nothing due: until an event is enqueued here, or the next poll
                        NEW_EVENTS.wait(settings["WEBHOOK_POLL_INTERVAL_SECONDS"])
                    done = {f for f in in_flight if f.done()}
                    in_flight -= done
                for future in done:
                    if future.exception() is not None:  # its lease expires and the delivery is tried again
                        logger.error("Webhook delivery failed to record: %r", future.exception())
        try:
            release(self.rt.db, self.deliverer_id)
        except Exception:  # noqa: BLE001 - unreachable database: the leases expire by themselves
            logger.warning("Could not hand back webhook claims of %s; their leases will expire", self.deliverer_id)

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run, name="webhook-deliverer", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self) -> None:
        self.stop_event.set()
        NEW_EVENTS.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
