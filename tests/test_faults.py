"""Faults are not the upload's fault: a failing disk or database hands the claim back with its
attempt refunded and the worker backs off; one image failing never fails the rest of its round;
admins requeue errored uploads. Real OCR, real files, SQLite and (with TEST_DATABASE_URL) PostgreSQL.
"""
import errno
import io
import time
from functools import lru_cache

import pytest
from sqlalchemy import select, update

import storage
from database import Batch, Result, Upload
from service.jobs import MAX_CLAIM_ATTEMPTS, give_up_poison_uploads, insert_batch
from tools.receipt_generator import generate_receipt
from worker import Worker


@lru_cache(maxsize=None)
def receipt(seed: int) -> bytes:
    return generate_receipt(seed, variant="clean").image_bytes


def upload(client, seeds):
    files = [(io.BytesIO(receipt(seed)), f"r{seed}.png") for seed in seeds]
    response = client.post("/api/upload", data={"files": files, "nombre": "Ana"}, content_type="multipart/form-data")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["files_processed"]


def uploads(rt):
    with rt.db.session() as session:
        return {u.stored_name: u for u in session.scalars(select(Upload)).all()}


def wait_until(condition, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def fail_result_writes(monkeypatch, exception, times=None, only_for=None):
    """Result files fail to be written: `times` times in all, or always for one stored name."""
    real = storage.atomic_write_bytes
    failures = []

    def failing(path, data):
        target = only_for is None or path.name == f"{only_for}.json"
        if path.parent.name == "results" and target and (times is None or len(failures) < times):
            failures.append(path.name)
            raise exception
        return real(path, data)

    monkeypatch.setattr(storage, "atomic_write_bytes", failing)
    return failures


@pytest.mark.slow
def test_a_full_disk_for_several_rounds_costs_no_attempt_and_nothing_is_given_up(client, runtime, orquestador,
                                                                                monkeypatch):
    names = [f["stored_name"] for f in upload(client, [1, 2])]
    # More failed rounds than MAX_CLAIM_ATTEMPTS: counted, they would make both permanent errors.
    failures = fail_result_writes(monkeypatch, OSError(errno.ENOSPC, "No space left on device"),
                                  times=MAX_CLAIM_ATTEMPTS + 1)
    worker = Worker(runtime, orquestador, "disk-full")
    thread = worker.run_in_thread()
    try:
        assert wait_until(lambda: all(u.status == "processed" for u in uploads(runtime).values()), 60)
    finally:
        worker.stop()
        thread.join(timeout=30)
    assert len(failures) == MAX_CLAIM_ATTEMPTS + 1
    rows = uploads(runtime)
    assert sorted(rows) == sorted(names)
    assert [(rows[n].status, rows[n].attempts, rows[n].error_code) for n in names] == [("processed", 1, None)] * 2
    assert all(runtime.storage.path("results", f"{n}.json").is_file() for n in names)


def test_one_image_whose_result_cannot_be_recorded_fails_alone(client, runtime, orquestador, monkeypatch):
    names = [f["stored_name"] for f in upload(client, [4, 5, 6])]
    culprit = names[1]
    # Not a machine fault: something in this image's outcome breaks its record (first try only).
    fail_result_writes(monkeypatch, ValueError("unencodable value in the document"), times=1, only_for=culprit)
    worker = Worker(runtime, orquestador, "w")
    worker.tick()
    rows = uploads(runtime)
    assert {n: rows[n].status for n in names} == {names[0]: "processed", culprit: "error", names[2]: "processed"}
    assert rows[culprit].error_code == "result_not_recorded"
    assert (runtime.storage.dirs["errors"] / culprit).is_file()


def test_a_database_error_of_one_round_counts_only_when_it_is_not_the_database_failing(runtime):
    from sqlalchemy.exc import IntegrityError, OperationalError

    from service.jobs import INFRASTRUCTURE_FAULTS

    assert isinstance(OperationalError("x", {}, Exception("could not connect")), INFRASTRUCTURE_FAULTS)
    assert isinstance(OSError(errno.EIO, "I/O error"), INFRASTRUCTURE_FAULTS)
    assert not isinstance(IntegrityError("x", {}, Exception("duplicate key")), INFRASTRUCTURE_FAULTS)
    assert not isinstance(ValueError("bug"), INFRASTRUCTURE_FAULTS)


# --- admin requeue ----------------------------------------------------------------------------
def make_permanent_errors(rt, names, request_id=None):
    """What a disk full for a while used to leave: uploads given up as too_many_attempts."""
    with rt.db.session() as session:
        session.execute(update(Upload).where(Upload.stored_name.in_(names))
                        .values(attempts=MAX_CLAIM_ATTEMPTS))
        session.commit()
    assert give_up_poison_uploads(rt) == len(names)
    if request_id is not None:
        with rt.db.session() as session:
            session.execute(update(Upload).where(Upload.stored_name.in_(names)).values(request_id=request_id))
            session.commit()


def test_admin_requeues_an_upload_given_up_as_too_many_attempts(client, runtime, orquestador):
    [entry] = upload(client, [7])
    name = entry["stored_name"]
    make_permanent_errors(runtime, [name])
    assert uploads(runtime)[name].error_code == "too_many_attempts"

    response = client.post(f"/api/uploads/{entry['id']}/retry")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["requeued"] == [entry["id"]]
    row = uploads(runtime)[name]
    assert (row.status, row.attempts, row.error_code, row.error_message) == ("pending", 0, None, None)
    assert (runtime.storage.dirs["inbox"] / name).is_file()

    # It is real work again: the next round processes it.
    assert Worker(runtime, orquestador, "w").tick() == 1
    assert uploads(runtime)[name].status == "processed"
    # A processed upload is not an error: nothing to retry.
    again = client.post(f"/api/uploads/{entry['id']}/retry")
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "not_retryable"


def test_retry_of_unknown_or_missing_things_is_a_clean_4xx(client, runtime):
    [entry] = upload(client, [8])
    for path in ("/api/uploads/999999/retry", "/api/batches/BATCH_20250101_000000_abc/retry",
                 "/api/batches/..%2Fetc/retry", "/api/uploads/-1/retry"):
        response = client.post(path)
        assert response.status_code == 404, path
        assert response.get_json()["success"] is False
    make_permanent_errors(runtime, [entry["stored_name"]])
    (runtime.storage.dirs["errors"] / entry["stored_name"]).unlink()  # the image is gone: retrying cannot help
    response = client.post(f"/api/uploads/{entry['id']}/retry")
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "not_retryable"
    assert uploads(runtime)[entry["stored_name"]].status == "error"


def test_admin_requeues_every_errored_upload_of_a_batch(client, runtime):
    entries = upload(client, [9, 10, 11])
    request_id = "BATCH_20250711_143052_abc"
    insert_batch(runtime.db, Batch(request_id=request_id, source="worker", profile="ultra_rapido", state="failed"))
    errored = [e["stored_name"] for e in entries[:2]]
    make_permanent_errors(runtime, errored, request_id)
    with runtime.db.session() as session:
        session.add(Result(upload_id=entries[0]["id"], filename=errored[0], processing_status="error",
                           document={"processing_status": "error"}))
        session.commit()

    response = client.post(f"/api/batches/{request_id}/retry")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["requeued"] == sorted(e["id"] for e in entries[:2])
    rows = uploads(runtime)
    assert [rows[n].status for n in errored] == ["pending", "pending"]
    assert rows[entries[2]["stored_name"]].status == "pending"  # it was never errored: untouched
    with runtime.db.session() as session:
        assert session.scalars(select(Result)).all() == []
    assert client.post(f"/api/batches/{request_id}/retry").get_json()["count"] == 0
