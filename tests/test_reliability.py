"""Nothing lost, nothing twice, no reused receipt: durable uploads, duplicates, payment reuse,
database outages, corrupt images, limits and the retention schedule.

Runs on SQLite and, with TEST_DATABASE_URL, on PostgreSQL. OCR is real (shared warm engine).
Multi-process claims, kill -9 and SIGTERM are in test_multiprocess.py.
"""
import errno
import hashlib
import io
import json
import logging
import os
import signal
import threading
import time
from datetime import timedelta
from functools import lru_cache

import pytest
import urllib3
from PIL import Image
from sqlalchemy import create_engine, event, func, select, text, update
from sqlalchemy.exc import OperationalError

import service.reuse as reuse_module
from benchmarks.service_process import running_service
from database import Batch, Database, Result, Upload, utcnow
from service.housekeeping import adopt_inbox_files, purge_finished
from service.jobs import claim_uploads, hand_back, insert_batch
from service.results import finish_upload
from service.runtime import Runtime
from storage import STAGING_PREFIX
from tools.receipt_generator import generate_receipt
from worker import Worker

METADATA = {"numerosorteo": "A", "fechasorteo": "20250711", "idWhatsapp": "123456@lid", "nombre": "Juan",
            "horamin": "14-30"}
DEAD_DATABASE = "postgresql+psycopg2://postgres@127.0.0.1:1/test"  # nothing listens there
LEASE = timedelta(seconds=300)


@lru_cache(maxsize=None)
def receipt(seed: int, variant: str = "clean") -> bytes:
    return generate_receipt(seed, variant=variant).image_bytes


def upload(client, contents, metadata=None):
    data = dict(METADATA if metadata is None else metadata)
    data["files"] = [(io.BytesIO(content), f"r{i}.png") for i, content in enumerate(contents)]
    return client.post("/api/upload", data=data, content_type="multipart/form-data")


def uploaded(client, contents, metadata=None):
    response = upload(client, contents, metadata)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["files_processed"]


def every_file(directory):
    """Hidden staging files included: a half-written upload must not hide behind a dot."""
    return sorted(p.name for p in directory.iterdir())


def rows(rt, model):
    with rt.db.session() as session:
        return session.scalars(select(model).order_by(model.id)).all()


def assert_503_retry(response, code):
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == code
    assert int(response.headers["Retry-After"]) >= 1


def assert_each_processed_once(rt, names):
    """One processed row, one result row and one result file per upload; nothing in flight."""
    with rt.db.session() as session:
        uploads = {u.stored_name: u for u in session.scalars(select(Upload))}
        per_upload = dict(session.execute(select(Result.upload_id, func.count()).group_by(Result.upload_id)).all())
    assert sorted(uploads) == sorted(names)
    assert all(u.status == "processed" and u.claimed_by is None for u in uploads.values())
    assert {uploads[n].id: 1 for n in names} == per_upload
    results = rt.storage.dirs["results"]
    assert every_file(results) == sorted(f"{n}.json" for n in names)
    assert every_file(rt.storage.dirs["processed"]) == sorted(names)
    assert every_file(rt.storage.dirs["processing"]) == [] and every_file(rt.storage.dirs["inbox"]) == []


# --- 1. durable acceptance ----------------------------------------------------------------------
def _fd_path(fd):
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"


def test_a_200_means_the_whole_file_was_flushed_and_renamed_before_the_commit(client, runtime, monkeypatch):
    data = receipt(1)
    events = []
    real_fsync, real_link = os.fsync, os.link

    def fsync(fd):
        events.append(("fsync", os.path.basename(_fd_path(fd))))
        return real_fsync(fd)

    def link(src, dst, *args, **kwargs):
        events.append(("link", os.path.basename(src), os.path.basename(dst)))
        return real_link(src, dst, *args, **kwargs)

    def before_commit(session):
        names = [u.stored_name for u in session.new if isinstance(u, Upload)] or \
                [u.stored_name for u in session.identity_map.values() if isinstance(u, Upload)]
        for name in names:
            on_disk = (runtime.storage.dirs["inbox"] / name).read_bytes()
            events.append(("commit", name, hashlib.sha256(on_disk).hexdigest()))

    event.listen(runtime.db.sessions, "before_commit", before_commit)
    try:
        with monkeypatch.context() as patch:
            patch.setattr(os, "fsync", fsync)
            patch.setattr(os, "link", link)
            entry = uploaded(client, [data])[0]
    finally:
        event.remove(runtime.db.sessions, "before_commit", before_commit)

    name = entry["stored_name"]
    relevant = [e for e in events if e[0] != "fsync" or e[1].startswith(STAGING_PREFIX) or e[1] == "inbox"]
    staged = relevant[0][1]
    assert staged.startswith(STAGING_PREFIX)  # written under a hidden temp name...
    assert relevant == [("fsync", staged),  # ...flushed to disk...
                        ("link", staged, name),  # ...given its final name...
                        ("fsync", "inbox"),  # ...the directory entry flushed...
                        ("commit", name, hashlib.sha256(data).hexdigest())]  # ...complete when the row commits
    assert every_file(runtime.storage.dirs["inbox"]) == [name]  # the temp name is gone
    assert [u.stored_name for u in rows(runtime, Upload)] == [name]


def _fail_the_commit(rt, database_url):
    """Make the next commit fail the way a lost database does."""
    def before_commit(session):
        event.remove(rt.db.sessions, "before_commit", before_commit)
        if database_url.startswith("postgresql"):
            # The real thing: the server drops this session's connection just before COMMIT.
            pid = session.connection().connection.dbapi_connection.get_backend_pid()
            admin = create_engine(database_url)
            with admin.begin() as connection:
                connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            admin.dispose()
        else:
            raise OperationalError("COMMIT", {}, Exception("disk I/O error (injected)"))

    event.listen(rt.db.sessions, "before_commit", before_commit)


def test_a_failed_commit_leaves_no_file_and_a_retry_succeeds(client, runtime, database_url):
    _fail_the_commit(runtime, database_url)
    response = upload(client, [receipt(1), receipt(2)])
    assert_503_retry(response, "database_unavailable")
    assert every_file(runtime.storage.dirs["inbox"]) == []
    assert rows(runtime, Upload) == []

    entries = uploaded(client, [receipt(1), receipt(2)])  # the database is back (pre-ping reconnects)
    assert every_file(runtime.storage.dirs["inbox"]) == sorted(e["stored_name"] for e in entries)
    assert len(rows(runtime, Upload)) == 2


@pytest.mark.parametrize("failing", ["fsync", "link"])
def test_a_failed_write_leaves_no_row_and_no_file(client, runtime, monkeypatch, failing):
    real = getattr(os, failing)
    calls = []

    def broken(*args, **kwargs):
        calls.append(args)
        if failing == "fsync" and not os.path.basename(_fd_path(args[0])).startswith(STAGING_PREFIX):
            return real(*args, **kwargs)
        if failing == "link" and len(calls) == 1:
            return real(*args, **kwargs)  # the first file of the request is linked; the second fails
        raise OSError(errno.ENOSPC if failing == "fsync" else errno.EIO, "injected write failure")

    with monkeypatch.context() as patch:
        patch.setattr(os, failing, broken)
        response = upload(client, [receipt(1), receipt(2)])
    assert_503_retry(response, "storage_unavailable")
    assert "injected" not in response.get_data(as_text=True)
    assert every_file(runtime.storage.dirs["inbox"]) == []
    assert rows(runtime, Upload) == []


def test_an_upload_cut_off_between_link_and_commit_is_never_registered(client, runtime):
    """The web process died after linking the file but before its commit: the client got no 200."""
    storage = runtime.storage
    uncommitted = storage.stage(io.BytesIO(receipt(1)), 1 << 24)
    storage.publish(uncommitted, "20250711-A--1@lid_Cut_10-00.png")
    committed = uploaded(client, [receipt(2)])[0]["stored_name"]
    leftover = storage.dirs["inbox"] / f"{STAGING_PREFIX}leftover.tmp"  # died after commit, before unlinking
    os.link(storage.dirs["inbox"] / committed, leftover)
    assert adopt_inbox_files(runtime) == 0  # still linked to its staging file: not a dropped-in file

    two_days_ago = time.time() - 2 * 86400  # older than any retention: left by a crash
    for path in (uncommitted.path, leftover):
        os.utime(path, (two_days_ago, two_days_ago))
    report = purge_finished(runtime, 24)
    assert report["uncommitted_uploads_removed"] == 1
    assert every_file(storage.dirs["inbox"]) == [committed]
    assert adopt_inbox_files(runtime) == 0
    assert [u.stored_name for u in rows(runtime, Upload)] == [committed]


# --- 4. duplicates and reused receipts ----------------------------------------------------------
def _whatsapp_copy(data: bytes) -> bytes:
    """The same receipt forwarded: downscaled and re-encoded, so other bytes, same payment."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    image = image.resize((image.width * 3 // 4, image.height * 3 // 4))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=70)
    return buffer.getvalue()


def test_same_bytes_are_served_without_ocr_and_the_same_payment_on_another_image_is_flagged(client, runtime,
                                                                                               orquestador):
    engine = orquestador.aplicador
    original_bytes = receipt(2)  # BNC: origin bank, reference and amount all printed
    first = uploaded(client, [original_bytes])[0]
    first_batch = client.post("/api/ocr/process_batch", json={}).get_json()
    assert first_batch["files_processed"] == 1

    # 1. The same bytes again: recognized at upload, served from the first result, no OCR at all.
    again = uploaded(client, [original_bytes], {**METADATA, "nombre": "Pedro"})[0]
    assert again["duplicado_de"] == first["id"]
    ocr_runs, cache = engine.images_processed, engine.cache_stats()
    assert client.post("/api/ocr/process_batch", json={}).get_json()["files_processed"] == 1
    assert engine.images_processed == ocr_runs
    assert (engine.cache_stats()["hits"], engine.cache_stats()["misses"]) == (cache["hits"], cache["misses"])
    copy = client.get(f"/api/ocr/result_data/{again['stored_name']}").get_json()["data"]
    assert copy["processing_metadata"]["reused_from"] == first["stored_name"]
    # An exact copy is a duplicate, and flagged for review as the same image.
    assert {k: copy["posible_reutilizacion"][k] for k in ("reason", "upload_id", "filename")} == {
        "reason": "misma_imagen", "upload_id": first["id"], "filename": first["stored_name"]}
    assert copy["validacion"]["requiere_revision"] is True

    # 2. The same receipt forwarded as another image: OCR'd, and flagged as a possible reuse.
    forwarded = uploaded(client, [_whatsapp_copy(original_bytes)], {**METADATA, "nombre": "Maria"})[0]
    assert forwarded["duplicado_de"] is None
    second_batch = client.post("/api/ocr/process_batch", json={}).get_json()
    lookups = engine.cache_stats()["hits"] + engine.cache_stats()["misses"]
    assert lookups == cache["hits"] + cache["misses"] + 1  # this one went through the OCR engine
    original_doc = client.get(f"/api/ocr/result_data/{first['stored_name']}").get_json()["data"]
    document = client.get(f"/api/ocr/result_data/{forwarded['stored_name']}").get_json()["data"]
    fields = ("banco_origen", "referencia", "monto")
    assert [document["extracted_fields"][f] for f in fields] == [original_doc["extracted_fields"][f] for f in fields]
    assert None not in [document["extracted_fields"][f] for f in fields]

    flag = document["posible_reutilizacion"]
    assert {k: flag[k] for k in ("upload_id", "filename", "request_id", "metadata")} == {
        "upload_id": first["id"], "filename": first["stored_name"], "request_id": first_batch["request_id"],
        "metadata": METADATA}
    assert flag["detected_at"].endswith("Z")
    assert (flag["reason"], flag["confidence"]) == ("mismo_pago", "alta")
    assert document["validacion"]["requiere_revision"] is True
    assert original_doc["posible_reutilizacion"] is None  # the first presentation is not the suspect
    listed = client.get("/api/extract_results", query_string={"request_id": second_batch["request_id"]}).get_json()
    assert [d["posible_reutilizacion"] for d in listed["results"]] == [flag]
    on_disk = json.loads((runtime.storage.dirs["results"] / f"{forwarded['stored_name']}.json").read_text("utf-8"))
    assert on_disk["posible_reutilizacion"] == flag


def _finish(rt, row, **fields):
    """Record a synthetic OCR outcome for one upload, as the worker holding it would (no OCR needed)."""
    with rt.db.session() as session:
        session.execute(update(Upload).where(Upload.id == row.id).values(
            status="processing", claimed_by="w", lease_expires_at=utcnow() + LEASE, attempts=1))
        session.commit()
    document = {"processing_status": "success", "request_id": "BATCH_20250711_143052_abc",
                "extracted_fields": {"banco_origen": None, "referencia": None, "monto": None, **fields}}
    assert finish_upload(rt, "w", row, document)


def _add_upload(rt, name, sha=None, duplicado_de=None):
    with rt.db.session() as session:
        row = Upload(stored_name=name, original_name=name, sha256=sha or hashlib.sha256(name.encode()).hexdigest(),
                     size_bytes=1, upload_metadata={"nombre": name}, attempts=0, duplicado_de=duplicado_de)
        session.add(row)
        session.commit()
    (rt.storage.dirs["inbox"] / name).write_bytes(b"x")
    return row


def _flags(rt):
    return {r.filename: (r.document["posible_reutilizacion"] or {}).get("filename") for r in rows(rt, Result)}


PAYMENT = {"banco_origen": "Banesco", "referencia": "405622415499", "monto": "20.57"}


def test_reuse_needs_reference_and_amount_and_the_same_bank(runtime):
    cases = [
        ("a1.png", PAYMENT), ("a2.png", PAYMENT),  # flagged
        ("b1.png", {**PAYMENT, "referencia": None}), ("b2.png", {**PAYMENT, "referencia": None}),
        ("c1.png", {**PAYMENT, "monto": None}), ("c2.png", {**PAYMENT, "monto": None}),
        ("d1.png", {**PAYMENT, "banco_origen": "Bancamiga"}),  # another bank: another payment
        ("e1.png", {**PAYMENT, "monto": "20.58"}),
        ("f1.png", {**PAYMENT, "referencia": "1111", "banco_origen": None}),
        ("f2.png", {**PAYMENT, "referencia": "1111", "banco_origen": None}),  # unknown bank on both: same
        ("g1.png", {**PAYMENT, "referencia": "2222"}),
        ("g2.png", {**PAYMENT, "referencia": "2222", "banco_origen": None}),  # the bank painted over: still the same
        ("h1.png", {**PAYMENT, "referencia": "3333", "fecha": "2025-07-11"}),
        ("h2.png", {**PAYMENT, "referencia": "3333", "fecha": "2025-07-12"}),  # another day: another payment
        ("h3.png", {**PAYMENT, "referencia": "3333"}),  # no date on one side: matches
    ]
    for name, fields in cases:
        _finish(runtime, _add_upload(runtime, name), **fields)
    assert _flags(runtime) == {"a1.png": None, "a2.png": "a1.png", "b1.png": None, "b2.png": None, "c1.png": None,
                               "c2.png": None, "d1.png": None, "e1.png": None, "f1.png": None, "f2.png": "f1.png",
                               "g1.png": None, "g2.png": "g1.png", "h1.png": None, "h2.png": None, "h3.png": "h1.png"}
    reasons = {r.filename: (r.document["posible_reutilizacion"] or {}).get("reason") for r in rows(runtime, Result)}
    assert (reasons["a2.png"], reasons["f2.png"], reasons["g2.png"]) == ("mismo_pago", "mismo_pago_sin_banco",
                                                                          "mismo_pago_sin_banco")
    confidences = {r.filename: (r.document["posible_reutilizacion"] or {}).get("confidence") for r in rows(runtime, Result)}
    assert (confidences["a2.png"], confidences["g2.png"]) == ("alta", "media")
    assert all(r.document["validacion"]["requiere_revision"] for r in rows(runtime, Result)
               if r.document["posible_reutilizacion"])


def test_reuse_points_at_the_earliest_upload_whatever_the_finishing_order(runtime):
    first, second, third = (_add_upload(runtime, n) for n in ("first.png", "second.png", "third.png"))
    copy = _add_upload(runtime, "copy.png", sha=first.sha256, duplicado_de=first.id)  # same bytes: a duplicate
    _finish(runtime, third, **PAYMENT)
    assert _flags(runtime) == {"third.png": None}
    _finish(runtime, second, **PAYMENT)  # uploaded earlier, finished later (another worker was faster)
    assert _flags(runtime) == {"third.png": "second.png", "second.png": None}
    _finish(runtime, first, **PAYMENT)  # handed back after a crash and retried: finishes last
    _finish(runtime, copy, **PAYMENT)
    assert _flags(runtime) == {"first.png": None, "second.png": "first.png", "third.png": "first.png",
                               "copy.png": "first.png"}  # the same image as first.png
    on_disk = json.loads((runtime.storage.dirs["results"] / "third.png.json").read_text("utf-8"))
    assert on_disk["posible_reutilizacion"]["upload_id"] == first.id


def test_two_images_of_one_payment_finishing_at_once_see_each_other(runtime, database_url, monkeypatch):
    """Both finish in the same instant: the check is serialized, so exactly one is flagged."""
    uploads = [_add_upload(runtime, n) for n in ("x.png", "y.png")]
    claimed = {u.id: u for u in claim_uploads(runtime.db, "w", 10, LEASE)}
    barrier = threading.Barrier(2)
    real_lock = reuse_module._lock_payment

    def lock_together(session, reference, amount):
        try:
            barrier.wait(timeout=2)  # both transactions are open here (PostgreSQL: concurrently)
        except threading.BrokenBarrierError:
            pass  # SQLite: the second one waits for the write lock and arrives late
        real_lock(session, reference, amount)

    monkeypatch.setattr(reuse_module, "_lock_payment", lock_together)
    document = {"processing_status": "success", "request_id": None, "extracted_fields": dict(PAYMENT)}
    # Each with a database engine of its own, like two worker processes.
    runtimes = [Runtime(settings=runtime.settings, db=Database(database_url), storage=runtime.storage) for _ in uploads]
    threads = [threading.Thread(target=finish_upload, args=(rt, "w", claimed[u.id], json.loads(json.dumps(document))))
               for rt, u in zip(runtimes, uploads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for rt in runtimes:
        rt.db.dispose()
    assert sorted(_flags(runtime).items()) == [("x.png", None), ("y.png", "x.png")]


# --- 3. failures: database outage, corrupt images -----------------------------------------------
def test_database_outage_mid_batch_gives_503_and_the_worker_resumes_with_nothing_lost(client, runtime, orquestador,
                                                                                      caplog):
    names = [e["stored_name"] for e in uploaded(client, [receipt(s, "lowres") for s in range(30, 36)])]
    healthy = runtime.db
    dead = Database(DEAD_DATABASE)
    outage_over = threading.Event()
    real_ocr = orquestador.procesar_lote_imagenes

    def ocr_then_lose_the_database(*args, **kwargs):
        documents = real_ocr(*args, **kwargs)
        if runtime.db is healthy and not outage_over.is_set():
            runtime.db = dead  # the database goes away while the images are being read
            threading.Timer(2.5, lambda: (setattr(runtime, "db", healthy), outage_over.set())).start()
        return documents

    caplog.set_level(logging.INFO, logger="worker")
    orquestador.procesar_lote_imagenes = ocr_then_lose_the_database
    worker = Worker(runtime, orquestador, "resilient")
    thread = worker.run_in_thread()
    try:
        assert _wait(lambda: runtime.db is dead, 60)
        refused = upload(client, [receipt(40)])
        assert_503_retry(refused, "database_unavailable")
        assert set(every_file(runtime.storage.dirs["inbox"])) <= set(names)  # nothing of the refused upload
        assert outage_over.wait(30)
        assert _wait(lambda: _processed(runtime) == len(names), 90), _processed(runtime)
    finally:
        worker.stop()
        thread.join(timeout=60)
        del orquestador.procesar_lote_imagenes
        dead.dispose()
    assert "Database error in worker" in caplog.text and "Database reachable again" in caplog.text
    assert_each_processed_once(runtime, names)
    assert all(u.attempts == 1 for u in rows(runtime, Upload))  # the interrupted attempt was given back
    assert {b.state for b in rows(runtime, Batch)} <= {"completed", "failed"}


def test_an_image_recorded_but_not_moved_by_a_dead_worker_is_moved_without_a_restart(client, runtime, orquestador,
                                                                                      monkeypatch):
    """Killed between its commit and its move: the live workers' next round puts the image away."""
    name = uploaded(client, [receipt(1)])[0]["stored_name"]
    [claimed] = claim_uploads(runtime.db, "dead", 1, LEASE)
    runtime.storage.move(name, "processing")
    document = {"processing_status": "success", "request_id": None, "extracted_fields": {}}
    with monkeypatch.context() as patch:
        patch.setattr(runtime.storage, "move", lambda *args: None)  # dies before moving the image
        assert finish_upload(runtime, "dead", claimed, document)
    live = Worker(runtime, orquestador, "live")
    live.tick()
    assert every_file(runtime.storage.dirs["processing"]) == [] and every_file(runtime.storage.dirs["processed"]) == [name]


def test_a_round_that_cannot_finish_hands_its_images_back_to_the_inbox(client, runtime):
    """After a failed round (database error, bug) the claims go back: pending rows, images in the
    inbox where pending files live, the attempt refunded, the worker's round closed."""
    names = [e["stored_name"] for e in uploaded(client, [receipt(1), receipt(2)])]
    claimed = claim_uploads(runtime.db, "w", 10, LEASE)
    insert_batch(runtime.db, Batch(request_id="BATCH_20250711_143052_abc", source="worker", profile="ultra_rapido",
                                   state="running", claimed_by="w", lease_expires_at=utcnow() + LEASE))
    for upload_row in claimed:
        runtime.storage.move(upload_row.stored_name, "processing")  # in the middle of being read

    assert hand_back(runtime, "w") == 2
    assert [(u.status, u.claimed_by, u.attempts) for u in rows(runtime, Upload)] == [("pending", None, 0)] * 2
    assert every_file(runtime.storage.dirs["inbox"]) == sorted(names)
    assert every_file(runtime.storage.dirs["processing"]) == []
    [batch] = rows(runtime, Batch)
    assert batch.state == "failed" and batch.claimed_by is None  # not left running for the heartbeat to renew


def _processed(rt):
    with rt.db.session() as session:
        return session.scalar(select(func.count()).select_from(Upload).where(Upload.status == "processed"))


def _wait(condition, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


class _PoisonedPredictor:
    """The OCR engine crashing on one particular image (here: the only 288 px wide one)."""

    def __init__(self, real):
        self.real = real

    def __call__(self, pages):
        if any(page.shape[1] == 288 for page in pages):
            raise RuntimeError("onnxruntime: invalid dimensions (injected)")
        return self.real(pages)

    def __getattr__(self, name):  # everything else (its sub-predictors...) is the real one's
        return getattr(self.real, name)


def test_corrupt_images_fail_alone_and_the_rest_of_their_batch_completes(client, runtime, orquestador, monkeypatch):
    good = [receipt(s) for s in (1, 2, 3, 4)]
    entries = uploaded(client, good[:2] + [receipt(5)] + good[2:] + [receipt(6, "lowres")])
    names = [e["stored_name"] for e in entries]
    rotten, crashing = names[2], names[5]
    inbox = runtime.storage.dirs["inbox"]
    (inbox / rotten).write_bytes(receipt(5)[:3000])  # damaged on disk after it was accepted
    aplicador = orquestador.aplicador
    monkeypatch.setitem(aplicador.predictors, "ultra_rapido", _PoisonedPredictor(aplicador.predictors["ultra_rapido"]))
    monkeypatch.setattr(aplicador, "_copies", {})  # every page through the poisoned copy

    assert Worker(runtime, orquestador, "w").tick() == 6
    by_name = {u.stored_name: u for u in rows(runtime, Upload)}
    assert {n: by_name[n].status for n in names} == {n: "error" if n in (rotten, crashing) else "processed" for n in names}
    assert by_name[rotten].error_code == "invalid_image" and by_name[crashing].error_code == "ocr_failed"
    for name in (rotten, crashing):
        assert (runtime.storage.dirs["errors"] / name).is_file()
        document = json.loads((runtime.storage.dirs["results"] / f"{name}.json").read_text("utf-8"))
        assert document["processing_status"] == "error" and document["error"]["code"] == by_name[name].error_code
    [batch] = rows(runtime, Batch)
    assert (batch.state, batch.processed_count, batch.error_count) == ("completed", 4, 2)
    assert every_file(runtime.storage.dirs["processing"]) == []


# --- 5. limits and the retention schedule -------------------------------------------------------
def _connection_to_a_web_process(port):
    """A keep-alive connection and the pid of the gunicorn process serving it (pool of one socket)."""
    pool = urllib3.HTTPConnectionPool("127.0.0.1", port, maxsize=1, block=True)
    return pool, json.loads(pool.request("GET", "/api/metrics").data)["process"]["pid"]


def _connections_to_two_web_processes(port):
    """One keep-alive connection to each of two different web processes, whatever the kernel prefers.

    The first connection lands on some process; while that process is stopped (SIGSTOP) it cannot
    accept, so the next connection can only be taken by the other one. Connections are kept open
    (keep-alive, one socket per pool), so later requests on them reach the same processes.
    """
    first, first_pid = _connection_to_a_web_process(port)
    os.kill(first_pid, signal.SIGSTOP)
    try:
        second, second_pid = _connection_to_a_web_process(port)
    finally:
        os.kill(first_pid, signal.SIGCONT)
    return (first, first_pid), (second, second_pid)


@pytest.mark.slow
@pytest.mark.e2e
def test_process_batch_rate_limit_holds_whichever_gunicorn_process_answers(tmp_path, database_url):
    # Keep-alive long enough that the stopped process does not drop its idle connection on resuming.
    with running_service(tmp_path / "storage", database_url, WORKER_ENABLED="false", WEB_CONCURRENCY="2",
                         PROCESS_BATCH_MIN_INTERVAL_SECONDS="30", WEB_KEEPALIVE_SECONDS="120") as service:
        (first, first_pid), (second, second_pid) = _connections_to_two_web_processes(service.port)
        assert first_pid != second_pid

        def process_batch(pool):
            return pool.request("POST", "/api/ocr/process_batch", body=b"{}",
                                headers={"Content-Type": "application/json"})

        allowed, refused, refused_again = process_batch(first), process_batch(second), process_batch(first)
        # Each pool kept its one connection, so each answer came from the process measured above.
        assert (first.num_connections, second.num_connections) == (1, 1)
        assert json.loads(second.request("GET", "/api/metrics").data)["process"]["pid"] == second_pid
        assert json.loads(first.request("GET", "/api/metrics").data)["process"]["pid"] == first_pid
    assert allowed.status == 200
    for answer in (refused, refused_again):
        assert answer.status == 429 and json.loads(answer.data)["error"]["code"] == "rate_limited"
        assert 1 <= int(answer.headers["Retry-After"]) <= 30


def test_scheduled_cleanup_removes_old_finished_work_and_never_waiting_work(make_app, orquestador):
    rt = make_app(CLEANUP_INTERVAL_SECONDS=1, RETENTION_HOURS=24, WORKER_POLL_INTERVAL_SECONDS=0.1).extensions["ocr_runtime"]
    old = utcnow() - timedelta(hours=48)
    files = {"old_processed.png": "processed", "old_error.png": "errors", "fresh_processed.png": "processed",
             "old_processing.png": "processing", "old_pending.png": "inbox"}
    with rt.db.session() as session:
        def add(name, status, **values):
            row = Upload(stored_name=name, original_name=name, sha256=hashlib.sha256(name.encode()).hexdigest(),
                         size_bytes=3, status=status, created_at=old, **values)
            session.add(row)
            session.flush()
            return row
        add("old_processed.png", "processed", processed_at=old)
        add("old_error.png", "error", processed_at=old)
        add("fresh_processed.png", "processed", processed_at=utcnow())
        # In flight on another live worker, and a duplicate waiting for it: neither is claimable here.
        held = add("old_processing.png", "processing", claimed_by="other", lease_expires_at=utcnow() + LEASE, attempts=1)
        add("old_pending.png", "pending", duplicado_de=held.id)
        session.commit()
    for name, directory in files.items():
        (rt.storage.dirs[directory] / name).write_bytes(b"img")
        if directory in ("processed", "errors"):
            (rt.storage.dirs["results"] / f"{name}.json").write_text("{}")

    worker = Worker(rt, orquestador, "janitor")
    thread = worker.run_in_thread()
    try:
        assert _wait(lambda: not (rt.storage.dirs["processed"] / "old_processed.png").exists(), 30)
    finally:
        worker.stop()
        thread.join(timeout=30)
    with rt.db.session() as session:
        left = dict(session.execute(select(Upload.stored_name, Upload.status)).all())
    assert left == {"fresh_processed.png": "processed", "old_processing.png": "processing", "old_pending.png": "pending"}
    for name in left:
        assert (rt.storage.dirs[files[name]] / name).is_file()
    assert not (rt.storage.dirs["errors"] / "old_error.png").exists()
    assert every_file(rt.storage.dirs["results"]) == ["fresh_processed.png.json"]
