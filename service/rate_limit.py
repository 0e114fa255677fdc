"""A per-client minimum interval between actions, kept in the database so every process agrees."""
from __future__ import annotations

import math
import threading
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from database import RateLimit, utcnow
from service.runtime import Runtime


def acquire_rate_limit(rt: Runtime, key: str, interval_seconds: float) -> int | None:
    """None when the action is allowed now (and recorded); else the seconds to wait.

    Kept in the database so every gunicorn worker and host enforces the same limit.
    """
    if interval_seconds <= 0:
        return None
    now = utcnow()
    with rt.db.session() as session:
        allowed = session.execute(
            update(RateLimit).where(RateLimit.key == key, RateLimit.last_at <= now - timedelta(seconds=interval_seconds))
            .values(last_at=now)
        ).rowcount
        if allowed:
            session.commit()
            return None
        last = session.scalar(select(RateLimit.last_at).where(RateLimit.key == key))
        if last is None:
            session.add(RateLimit(key=key, last_at=now))
            try:
                session.commit()
                return None
            except IntegrityError:
                session.rollback()  # a concurrent request of the same client won
                last = session.scalar(select(RateLimit.last_at).where(RateLimit.key == key)) or now
        return max(1, math.ceil(interval_seconds - (now - last).total_seconds()))


def acquire_quota(rt: Runtime, key: str, limit: int, window_seconds: int) -> int | None:
    """None when one more action fits in the client's `limit` per window (and it is counted);
    else the seconds until the window ends. Fixed windows, counted in the database."""
    if limit <= 0:
        return None
    now = utcnow()
    window = int(now.timestamp()) // window_seconds
    window_key = f"{key}:{window}"
    with rt.db.session() as session:
        for _ in range(2):
            counted = session.execute(
                update(RateLimit).where(RateLimit.key == window_key, RateLimit.hits < limit)
                .values(hits=RateLimit.hits + 1, last_at=now)
            ).rowcount
            if counted:
                session.commit()
                return None
            if session.scalar(select(RateLimit.key).where(RateLimit.key == window_key)) is not None:
                session.rollback()
                return max(1, (window + 1) * window_seconds - int(now.timestamp()))
            session.add(RateLimit(key=window_key, last_at=now, hits=1))
            try:
                session.commit()
                return None
            except IntegrityError:
                session.rollback()  # a concurrent request of the same client opened the window: count again
    return max(1, (window + 1) * window_seconds - int(now.timestamp()))


class ConcurrencyLimit:
    """At most `limit` running actions per client in this process (streams, parses): a slot taken
    with `acquire` and given back with `release`, e.g. when a streamed response closes.

    Per process on purpose: what it bounds (threads or greenlets, memory, child processes) is the
    process's own; a database counter would outlive a crashed process's slots.
    """

    def __init__(self) -> None:
        self._running: dict[str, int] = {}
        self._lock = threading.Lock()

    def acquire(self, client: str, limit: int) -> bool:
        with self._lock:
            if self._running.get(client, 0) >= limit:
                return False
            self._running[client] = self._running.get(client, 0) + 1
            return True

    def release(self, client: str) -> None:
        with self._lock:
            left = self._running.get(client, 0) - 1
            if left > 0:
                self._running[client] = left
            else:
                self._running.pop(client, None)

    def running(self, client: str) -> int:
        with self._lock:
            return self._running.get(client, 0)
