"""Claims sized to the workers and the burst: two idle workers share one burst (issue 24)."""
import threading
import time
from datetime import timedelta

from sqlalchemy import select

from database import Upload, WorkerState, utcnow
from ocr.capacity import default_workers, resolve_workers, threads_per_worker
from service.jobs import claim_uploads, fair_claim_size
from tests.test_worker import add_uploads, upload
from worker import Worker

LEASE = timedelta(seconds=300)
GB = 1024 ** 3


def ready(rt, *worker_ids, heartbeat=None):
    with rt.db.session() as session:
        session.add_all(WorkerState(worker_id=w, hostname="h", pid=i + 1, state="ready", heartbeat_at=heartbeat or utcnow())
                        for i, w in enumerate(worker_ids))
        session.commit()


def test_the_first_of_two_idle_workers_takes_half_a_burst_and_the_second_the_rest(runtime):
    add_uploads(runtime, 40)
    ready(runtime, "a", "b")
    first = claim_uploads(runtime.db, "a", fair_claim_size(runtime.db, "a", 50), LEASE)
    # "a" now holds claims: "b" is the only idle worker and takes what is left.
    second = claim_uploads(runtime.db, "b", fair_claim_size(runtime.db, "b", 50), LEASE)
    assert (len(first), len(second)) == (20, 20)


def test_a_lone_worker_takes_up_to_the_batch_limit_and_dead_or_loading_workers_do_not_count(runtime):
    add_uploads(runtime, 30)
    ready(runtime, "a")
    ready(runtime, "gone", heartbeat=utcnow() - timedelta(minutes=5))
    with runtime.db.session() as session:
        session.add(WorkerState(worker_id="loading", hostname="h", pid=9, state="starting", heartbeat_at=utcnow()))
        session.commit()
    assert fair_claim_size(runtime.db, "a", 50) == 30
    assert fair_claim_size(runtime.db, "a", 8) == 8
    ready(runtime, "b", "c")
    assert fair_claim_size(runtime.db, "a", 50) == 10  # a third each


def test_a_worker_takes_at_least_one_and_the_size_follows_the_tenant(runtime):
    assert fair_claim_size(runtime.db, "a", 50) == 1  # nothing waits: the claim finds nothing anyway
    add_uploads(runtime, 3)
    ready(runtime, "a", "b", "c", "d")
    assert fair_claim_size(runtime.db, "a", 50) == 1


def test_two_workers_one_burst_both_read(client, runtime, orquestador):
    """Two ready workers, one burst of uploads, both rounds at once: each reads part of it."""
    assert len(upload(client, range(900, 908))) == 8
    workers = [Worker(runtime, orquestador, worker_id) for worker_id in ("left", "right")]
    for worker in workers:
        worker._state = "ready"
        worker.publish_heartbeat()
    start = threading.Barrier(2)
    done: dict[str, int] = {}

    def waiting():
        with runtime.db.session() as session:
            return session.scalars(select(Upload.id).where(Upload.status == "pending")).first() is not None

    def drain(worker):
        start.wait()
        total, deadline = 0, time.monotonic() + 240
        # A round can find nothing (on SQLite the other worker won the same rows): the real loop
        # then waits for the next wake-up; here, the next round.
        while waiting() and time.monotonic() < deadline:
            total += worker.tick()
        done[worker.worker_id] = total

    threads = [threading.Thread(target=drain, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert sum(done.values()) == 8
    assert done["left"] > 0 and done["right"] > 0, done
    with runtime.db.session() as session:
        assert set(session.scalars(select(Upload.status)).all()) == {"processed"}


def test_workers_default_to_the_cores_within_memory_and_threads_share_the_cores():
    assert default_workers(cpu=2, available_bytes=20 * GB) == 2
    assert default_workers(cpu=8, available_bytes=2 * GB) == 1  # memory bounds it
    assert default_workers(cpu=4, available_bytes=0) == 1
    assert resolve_workers(3, cpu=2, available_bytes=20 * GB) == 3  # the operator's number wins
    assert threads_per_worker(0, workers=2, cpu=2) == 1
    assert threads_per_worker(0, workers=1, cpu=2) == 2
    assert threads_per_worker(0, workers=3, cpu=2) == 1
    assert threads_per_worker(4, workers=2, cpu=2) == 4
