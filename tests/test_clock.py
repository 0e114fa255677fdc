"""One clock: leases, heartbeats and lost-worker decisions read the database's time, never a host's.

The skew is injected the way a host whose clock runs ahead would show it: every `utcnow` the
service modules call returns a time 31 s in the future (longer than LOST_WORKER_SECONDS).
On SQLite and (with TEST_DATABASE_URL) PostgreSQL.
"""
import io
import sys
import time
from datetime import timedelta

from sqlalchemy import select

import database
from database import Upload, WorkerState
from service.jobs import LOST_WORKER_SECONDS, claim_uploads, live_workers
from tools.receipt_generator import generate_receipt
from worker import Worker

SKEW = timedelta(seconds=LOST_WORKER_SECONDS + 1)


def skew_host_clock(monkeypatch, skew: timedelta) -> None:
    real = database.utcnow

    def ahead():
        return real() + skew

    for module in list(sys.modules.values()):
        if getattr(module, "utcnow", None) is real:
            monkeypatch.setattr(module, "utcnow", ahead)


def upload_receipts(client, count):
    files = [(io.BytesIO(generate_receipt(seed, variant="clean").image_bytes), f"r{seed}.png") for seed in range(count)]
    response = client.post("/api/upload", data={"files": files}, content_type="multipart/form-data")
    assert response.status_code == 200, response.get_json()


def owners(rt):
    with rt.db.session() as session:
        return sorted(session.scalars(select(Upload.claimed_by)).all())


def ready_worker(rt, worker_id):
    worker = Worker(rt, worker_id=worker_id)
    worker._state = "ready"
    worker.publish_heartbeat()
    return worker


def test_a_worker_whose_clock_runs_31s_ahead_never_takes_over_a_live_claim(client, runtime, monkeypatch):
    upload_receipts(client, 2)
    ready_worker(runtime, "healthy")
    assert len(claim_uploads(runtime.db, "healthy", 10, timedelta(seconds=20))) == 2

    skew_host_clock(monkeypatch, SKEW)
    assert database.utcnow() - time_of_database(runtime) > SKEW - timedelta(seconds=5)  # the skew is in place
    ahead = ready_worker(runtime, "ahead")
    for _ in range(3):  # whole rounds of the skewed worker: recovery, poison check, claims
        assert ahead.tick() == 0
    assert owners(runtime) == ["healthy", "healthy"]
    with runtime.db.session() as session:
        states = dict(session.execute(select(WorkerState.worker_id, WorkerState.state)).all())
        heartbeats = dict(session.execute(select(WorkerState.worker_id, WorkerState.heartbeat_at)).all())
    assert states == {"healthy": "ready", "ahead": "ready"}
    # The skewed worker's heartbeat is stamped by the database, not 31 s in the future.
    assert abs(heartbeats["ahead"] - heartbeats["healthy"]) < timedelta(seconds=5)
    assert {w.worker_id for w in live_workers(runtime.db)} == {"healthy", "ahead"}


def test_an_expired_lease_is_still_taken_over_by_a_skewed_worker(client, runtime, monkeypatch):
    upload_receipts(client, 1)
    ready_worker(runtime, "short")
    assert len(claim_uploads(runtime.db, "short", 10, timedelta(seconds=1))) == 1
    skew_host_clock(monkeypatch, -SKEW)  # behind, this time: expiry is still the database's to decide
    time.sleep(1.5)
    assert [u.claimed_by for u in claim_uploads(runtime.db, "behind", 10, timedelta(seconds=60))] == ["behind"]


def time_of_database(rt):
    return rt.db.now()
