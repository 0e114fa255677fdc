"""Claims, leases, recovery and the worker loop, on SQLite and (with TEST_DATABASE_URL) PostgreSQL."""
import io
import multiprocessing
import threading
import time
from datetime import timedelta
from functools import lru_cache

import pytest
from sqlalchemy import func, select, update

from database import Batch, Database, Result, Upload, WorkerState, utcnow
from service.housekeeping import purge_finished, reconcile_files
from service.jobs import (
    MAX_CLAIM_ATTEMPTS,
    claim_uploads,
    expire_leases_of_lost_workers,
    give_up_poison_uploads,
    insert_batch,
    release_claims,
)
from service.results import finish_upload
from tools.receipt_generator import generate_receipt
from worker import Worker

LEASE = timedelta(seconds=300)


@lru_cache(maxsize=None)
def receipt(seed: int) -> bytes:
    return generate_receipt(seed, variant="clean").image_bytes


def add_uploads(rt, count, status="pending", **values):
    with rt.db.session() as session:
        rows = [Upload(stored_name=f"f{i:04d}_{status}.png", original_name="x.png", sha256=f"{i:064d}", size_bytes=10,
                       status=status, **values) for i in range(count)]
        session.add_all(rows)
        session.commit()
        return [row.id for row in rows]


def upload(client, seeds, name="r.png"):
    data = {"files": [(io.BytesIO(receipt(seed)), name) for seed in seeds], "nombre": "Ana"}
    response = client.post("/api/upload", data=data, content_type="multipart/form-data")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["files_processed"]


def statuses(rt):
    with rt.db.session() as session:
        return dict(session.execute(select(Upload.stored_name, Upload.status)).all())


# --- claims -----------------------------------------------------------------------------------
def _claim_all(url, worker_id, out):
    db = Database(url)
    taken = []
    while batch := claim_uploads(db, worker_id, 7, LEASE):
        taken.extend(u.id for u in batch)
    db.dispose()
    out[worker_id] = taken


def test_concurrent_claimers_take_each_row_exactly_once(runtime, database_url):
    ids = add_uploads(runtime, 120)
    results = {}
    threads = [threading.Thread(target=_claim_all, args=(database_url, f"w{i}", results)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claimed = [i for taken in results.values() for i in taken]
    assert sorted(claimed) == ids  # all of them, none twice
    with runtime.db.session() as session:
        owners = dict(session.execute(select(Upload.id, Upload.claimed_by)).all())
    for worker_id, taken in results.items():
        assert all(owners[i] == worker_id for i in taken)


def _claim_in_process(url, worker_id, queue):
    results = {}
    _claim_all(url, worker_id, results)
    queue.put(results[worker_id])


@pytest.mark.slow
def test_claimers_in_separate_processes_take_each_row_exactly_once(runtime, database_url):
    ids = add_uploads(runtime, 150)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    processes = [context.Process(target=_claim_in_process, args=(database_url, f"p{i}", queue)) for i in range(4)]
    for process in processes:
        process.start()
    claimed = [i for _ in processes for i in queue.get(timeout=120)]
    for process in processes:
        process.join(timeout=30)
    assert sorted(claimed) == ids


def test_a_live_lease_is_respected_and_an_expired_one_taken_over(runtime):
    add_uploads(runtime, 3)
    first = claim_uploads(runtime.db, "alive", 10, LEASE)
    assert len(first) == 3 and claim_uploads(runtime.db, "other", 10, LEASE) == []

    with runtime.db.session() as session:  # the holder died: its lease runs out
        session.execute(update(Upload).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()
    taken = claim_uploads(runtime.db, "successor", 10, LEASE)
    assert [u.id for u in taken] == [u.id for u in first]
    assert all(u.claimed_by == "successor" and u.attempts == 2 for u in taken)

    # The old holder wakes up: its finish is refused, the successor's is recorded.
    document = {"processing_status": "success", "request_id": None, "extracted_fields": {}}
    assert finish_upload(runtime, "alive", first[0], dict(document)) is False
    assert finish_upload(runtime, "successor", taken[0], dict(document)) is True
    with runtime.db.session() as session:
        assert session.get(Upload, first[0].id).status == "processed"
        assert session.scalar(select(func.count()).select_from(Result)) == 1


def test_an_upload_that_keeps_killing_workers_is_given_up(runtime):
    (runtime.storage.dirs["processing"] / "f0000_processing.png").write_bytes(b"x")
    add_uploads(runtime, 1, status="processing", claimed_by="dead", attempts=MAX_CLAIM_ATTEMPTS,
                lease_expires_at=utcnow() - timedelta(seconds=1))
    assert claim_uploads(runtime.db, "w", 10, LEASE) == []
    assert give_up_poison_uploads(runtime) == 1
    with runtime.db.session() as session:
        row = session.scalars(select(Upload)).one()
    assert row.status == "error" and row.error_code == "too_many_attempts"
    assert (runtime.storage.dirs["errors"] / row.stored_name).is_file()


def test_released_claims_go_back_to_the_queue(runtime):
    add_uploads(runtime, 2)
    claim_uploads(runtime.db, "w", 10, LEASE)
    assert release_claims(runtime.db, "w") == 2  # shutdown or outage: the attempt is given back
    assert set(statuses(runtime).values()) == {"pending"}
    assert [u.attempts for u in claim_uploads(runtime.db, "w2", 10, LEASE)] == [1, 1]


def test_an_upload_that_breaks_every_round_is_given_up(runtime):
    add_uploads(runtime, 1)
    for _ in range(MAX_CLAIM_ATTEMPTS):
        assert len(claim_uploads(runtime.db, "w", 10, LEASE)) == 1
        release_claims(runtime.db, "w", refund_attempt=False)  # an unexpected error: the attempt counts
    assert claim_uploads(runtime.db, "w", 10, LEASE) == []
    assert give_up_poison_uploads(runtime) == 1
    assert statuses(runtime) == {"f0000_pending.png": "error"}


def test_claims_of_a_worker_without_heartbeat_are_taken_over(runtime):
    add_uploads(runtime, 2)
    with runtime.db.session() as session:
        session.add_all([
            WorkerState(worker_id="gone", hostname="elsewhere", pid=1, state="ready", heartbeat_at=utcnow() - timedelta(minutes=2)),
            WorkerState(worker_id="busy", hostname="elsewhere", pid=2, state="ready", heartbeat_at=utcnow()),
        ])
        session.commit()
    assert len(claim_uploads(runtime.db, "gone", 1, LEASE)) == 1
    assert len(claim_uploads(runtime.db, "busy", 1, LEASE)) == 1
    assert expire_leases_of_lost_workers(runtime.db) == 1
    taken = claim_uploads(runtime.db, "successor", 10, LEASE)
    assert [u.attempts for u in taken] == [2]
    with runtime.db.session() as session:
        owners = dict(session.execute(select(Upload.id, Upload.claimed_by)).all())
        assert session.get(WorkerState, "gone").state == "lost"
    assert sorted(owners.values()) == ["busy", "successor"]


def test_a_taken_request_id_is_replaced(runtime):
    first = insert_batch(runtime.db, Batch(request_id="BATCH_20250711_143052_a8f", source="manual", profile="ultra_rapido"))
    second = insert_batch(runtime.db, Batch(request_id="BATCH_20250711_143052_a8f", source="manual", profile="ultra_rapido"))
    assert first.request_id == "BATCH_20250711_143052_a8f" != second.request_id and second.id != first.id
    with runtime.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Batch)) == 2


# --- the worker loop with real OCR -------------------------------------------------------------
def test_worker_round_processes_uploads(client, runtime, orquestador):
    files = upload(client, [1, 2, 3])
    worker = Worker(runtime, orquestador, "test-worker")
    worker.start()
    try:
        assert worker.tick() == 3
    finally:
        worker.shutdown()
    with runtime.db.session() as session:
        batch = session.scalars(select(Batch)).one()
        results = session.scalars(select(Result).order_by(Result.id)).all()
        state = session.get(WorkerState, "test-worker")
    assert batch.source == "worker" and batch.state == "completed" and batch.processed_count == 3
    assert [r.filename for r in results] == [f["stored_name"] for f in files]
    assert all(r.request_id == batch.request_id and r.processing_status == "success" for r in results)
    assert state.state == "stopped" and "ultra_rapido" in state.models_loaded
    for entry in files:
        assert (runtime.storage.dirs["processed"] / entry["stored_name"]).is_file()
        assert (runtime.storage.dirs["results"] / f"{entry['stored_name']}.json").is_file()


def test_duplicate_is_served_from_the_original_without_a_second_ocr(client, runtime, orquestador):
    original, duplicate = upload(client, [6, 6])
    assert duplicate["duplicado_de"] == original["id"]
    worker = Worker(runtime, orquestador, "w")
    assert worker.tick() == 1  # the duplicate waits for its original
    engine_calls, cache = orquestador.aplicador.images_processed, orquestador.aplicador.cache_stats()
    assert worker.tick() == 1
    assert orquestador.aplicador.images_processed == engine_calls
    assert orquestador.aplicador.cache_stats()["hits"] == cache["hits"]
    first = client.get(f"/api/ocr/result_data/{original['stored_name']}").get_json()["data"]
    second = client.get(f"/api/ocr/result_data/{duplicate['stored_name']}").get_json()["data"]
    assert second["processing_metadata"]["reused_from"] == original["stored_name"]
    assert second["processing_metadata"]["duplicado_de"] == original["id"]
    assert second["filename"] == duplicate["stored_name"]
    assert second["extracted_fields"] == first["extracted_fields"]
    assert second["original_text_ocr"] == first["original_text_ocr"]


def test_files_dropped_into_the_inbox_are_registered_and_processed(runtime, orquestador):
    inbox = runtime.storage.dirs["inbox"]
    (inbox / "20250711-B--999@lid_Ana_09-15.png").write_bytes(receipt(1))
    (inbox / "My Receipt (1).PNG").write_bytes(receipt(2))
    (inbox / "notes.png").write_bytes(b"not an image at all")
    worker = Worker(runtime, orquestador, "w")
    assert worker.tick() == 2
    with runtime.db.session() as session:
        rows = {u.stored_name: u for u in session.scalars(select(Upload))}
    seeded = rows["20250711-B--999@lid_Ana_09-15.png"]
    assert seeded.source == "inbox" and seeded.status == "processed"
    assert seeded.upload_metadata == {"numerosorteo": "B", "fechasorteo": "20250711", "idWhatsapp": "999@lid",
                                      "nombre": "Ana", "horamin": "09-15"}
    assert rows["My_Receipt_1.png"].status == "processed"
    assert rows["notes.png"].status == "error" and rows["notes.png"].error_code == "unsupported_format"
    assert (runtime.storage.dirs["errors"] / "notes.png").is_file()
    assert list(inbox.iterdir()) == []


def test_work_of_a_crashed_worker_is_completed(runtime, orquestador):
    storage = runtime.storage
    # Crashed mid-OCR: the row is claimed by a dead worker and the image sits in processing/.
    (storage.dirs["processing"] / "crashed.png").write_bytes(receipt(1))
    # Crashed after recording the result but before moving the image.
    (storage.dirs["processing"] / "recorded.png").write_bytes(receipt(2))
    with runtime.db.session() as session:
        session.add_all([
            Upload(stored_name="crashed.png", original_name="c.png", sha256="c" * 64, size_bytes=10, status="processing",
                   claimed_by="dead", attempts=1, lease_expires_at=utcnow() - timedelta(seconds=5)),
            Upload(stored_name="recorded.png", original_name="r.png", sha256="r" * 64, size_bytes=10, status="processed",
                   processed_at=utcnow()),
        ])
        session.commit()
    assert reconcile_files(runtime) == 1
    assert (storage.dirs["processed"] / "recorded.png").is_file()
    assert Worker(runtime, orquestador, "w").tick() == 1
    assert statuses(runtime) == {"crashed.png": "processed", "recorded.png": "processed"}
    assert (storage.dirs["processed"] / "crashed.png").is_file() and not list(storage.dirs["processing"].iterdir())


def test_a_manual_batch_is_left_to_a_live_worker(client, runtime, orquestador):
    files = upload(client, [1, 2])
    worker = Worker(runtime, orquestador, "live")
    worker.start()  # heartbeat says ready: the web process must not run the batch itself
    try:
        response = client.post("/api/ocr/process_batch", json={"async": True, "include_coordinates": False})
        assert response.status_code == 202
        request_id = response.get_json()["request_id"]
        time.sleep(0.3)
        assert client.get(f"/api/ocr/result/{request_id}").get_json()["state"] == "queued"
        assert worker.tick() == 2
    finally:
        worker.shutdown()
    state = client.get(f"/api/ocr/result/{request_id}").get_json()
    assert state["state"] == "completed" and state["source"] == "manual"
    assert [f["filename"] for f in state["files"]] == [f["stored_name"] for f in files]
    document = client.get(f"/api/ocr/result_data/{files[0]['stored_name']}").get_json()["data"]
    assert document["request_id"] == request_id
    assert "coordenadas" not in document["palabras_detectadas"][0]


def test_worker_backs_off_while_the_database_is_away_and_resumes(client, runtime, orquestador):
    healthy_db = runtime.db
    runtime.db = Database("postgresql+psycopg2://postgres@127.0.0.1:1/test")  # nothing listens there
    worker = Worker(runtime, orquestador, "resilient")
    thread = worker.run_in_thread()
    try:
        time.sleep(1.5)
        assert thread.is_alive()
        runtime.db = healthy_db  # the database is back
        files = upload(client, [3])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and statuses(runtime).get(files[0]["stored_name"]) != "processed":
            time.sleep(0.2)
        assert statuses(runtime)[files[0]["stored_name"]] == "processed"
    finally:
        worker.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()


# --- retention --------------------------------------------------------------------------------
def test_purge_keeps_pending_and_processing_work(runtime):
    old = utcnow() - timedelta(hours=48)
    for status in ("pending", "processing", "processed", "error"):
        add_uploads(runtime, 1, status=status, created_at=old,
                    processed_at=old if status in ("processed", "error") else None)
        directory = {"pending": "inbox", "processing": "processing", "processed": "processed", "error": "errors"}[status]
        (runtime.storage.dirs[directory] / f"f0000_{status}.png").write_bytes(b"img")
    report = purge_finished(runtime, 24)
    assert sorted(report["removed"]) == ["f0000_error.png", "f0000_processed.png"]
    assert set(statuses(runtime)) == {"f0000_pending.png", "f0000_processing.png"}
    assert (runtime.storage.dirs["inbox"] / "f0000_pending.png").is_file()
    assert (runtime.storage.dirs["processing"] / "f0000_processing.png").is_file()
