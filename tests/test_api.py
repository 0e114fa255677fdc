"""The HTTP API through Flask's test client: every endpoint, its success and its failures.

Runs on SQLite and, with TEST_DATABASE_URL, on PostgreSQL. OCR is real (shared warm engine).
"""
import io
import json
import re
import time
from datetime import datetime, timedelta, timezone
from functools import lru_cache

import pytest
from PIL import Image
from sqlalchemy import inspect as sqla_inspect
from sqlalchemy import select, update

from database import Result, Upload, WorkerState, utcnow
from tests.conftest import POSTGRES_SECRETS
from tools.receipt_generator import generate_receipt

SEED_METADATA = {"numerosorteo": "A", "fechasorteo": "20250711", "idWhatsapp": "123456@lid", "nombre": "Juan",
                 "horamin": "14-30"}
REQUEST_ID = re.compile(r"^BATCH_\d{8}_\d{6}_[0-9a-f]{3}$")


@lru_cache(maxsize=None)
def receipt(seed: int) -> bytes:
    return generate_receipt(seed, variant="clean").image_bytes


def tiny_png(color=(200, 10, 10), size=(8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def upload(client, files, metadata=None, headers=None):
    data = dict(metadata if metadata is not None else SEED_METADATA)
    data["files"] = [(io.BytesIO(content), name) for name, content in files]
    return client.post("/api/upload", data=data, content_type="multipart/form-data", headers=headers or {})


def assert_error(response, status, code=None):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["success"] is False
    assert set(body["error"]) >= {"code", "message"}
    if code:
        assert body["error"]["code"] == code
    assert "Traceback" not in response.get_data(as_text=True)
    return body


def inbox_files(runtime):
    return sorted(p.name for p in runtime.storage.dirs["inbox"].iterdir())


# --- upload -----------------------------------------------------------------------------------
def test_upload_stores_file_with_seed_name_and_record(client, runtime):
    response = upload(client, [("image.png", receipt(1))])
    assert response.status_code == 200
    body = response.get_json()
    assert body["success"] is True and body["files_uploaded"] == 1
    entry = body["files_processed"][0]
    assert entry["original_name"] == "image.png"
    assert entry["stored_name"] == f"20250711-A--123456@lid_Juan_14-30~{entry['id']}.png"
    assert entry["metadata"] == SEED_METADATA
    assert entry["duplicado_de"] is None
    assert inbox_files(runtime) == [entry["stored_name"]]  # no temp file left behind
    with runtime.db.session() as session:
        row = session.get(Upload, entry["id"])
    assert row.status == "pending" and row.sha256 == entry["sha256"] and row.upload_metadata == SEED_METADATA


def test_upload_names_are_unique_and_extension_comes_from_the_bytes(client):
    jpeg = generate_receipt(0, variant="lowres").image_bytes
    first = upload(client, [("a.png", receipt(1)), ("b.png", receipt(2))]).get_json()
    second = upload(client, [("photo.png", jpeg)]).get_json()
    entries = first["files_processed"] + second["files_processed"]
    assert [f["stored_name"] for f in entries] == [f"20250711-A--123456@lid_Juan_14-30~{f['id']}.{ext}"
                                                   for f, ext in zip(entries, ("png", "png", "jpg"))]


def test_same_bytes_again_points_to_the_first_upload(client):
    first = upload(client, [("one.png", receipt(3))]).get_json()["files_processed"][0]
    again = upload(client, [("two.png", receipt(3))]).get_json()["files_processed"][0]
    assert again["duplicado_de"] == first["id"] and again["sha256"] == first["sha256"]


def test_upload_accepts_accented_names_and_no_metadata(client):
    body = upload(client, [("r.png", receipt(1))], {**SEED_METADATA, "nombre": "José Peña"}).get_json()
    entry = body["files_processed"][0]
    assert entry["metadata"]["nombre"] == "José Peña"
    assert entry["stored_name"] == f"20250711-A--123456@lid_Jose_Pena_14-30~{entry['id']}.png"
    bare = upload(client, [("r.png", receipt(2))], {}).get_json()["files_processed"][0]
    assert bare["stored_name"] == f"---__~{bare['id']}.png"


def test_upload_without_files_is_rejected(client, runtime):
    assert_error(client.post("/api/upload", data=SEED_METADATA, content_type="multipart/form-data"), 400, "no_files")
    assert_error(client.post("/api/upload"), 400, "no_files")
    assert inbox_files(runtime) == []


def test_empty_file_is_rejected(client, runtime):
    body = assert_error(upload(client, [("empty.png", b"")]), 400, "empty_file")
    assert body["error"]["details"]["file"] == "empty.png"
    assert inbox_files(runtime) == []


def test_more_than_fifty_files_is_429_with_retry_after(client, runtime):
    response = upload(client, [(f"f{i}.png", tiny_png()) for i in range(51)])
    assert_error(response, 429, "too_many_files")
    assert int(response.headers["Retry-After"]) >= 1
    assert inbox_files(runtime) == []


def test_fifty_files_are_accepted(client):
    body = upload(client, [(f"f{i}.png", tiny_png((i, 0, 0))) for i in range(50)]).get_json()
    assert body["files_uploaded"] == 50


def test_file_over_16_mb_is_413(client, runtime):
    big = b"\x89PNG\r\n\x1a\n" + b"\0" * (16 * 1024 * 1024 + 10)
    assert_error(upload(client, [("big.png", big)]), 413, "file_too_large")
    assert inbox_files(runtime) == []


def test_request_over_the_request_limit_is_413(make_app):
    client = make_app(MAX_CONTENT_LENGTH=64 * 1024).test_client()
    assert_error(upload(client, [("r.png", b"\x89PNG" + b"1" * 100_000)]), 413, "request_too_large")


@pytest.mark.parametrize("name,content,code", [
    ("doc.png", b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF\n", "unsupported_format"),
    ("page.png", b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>", "unsupported_format"),
    ("notes.png", "Monto: Bs 100,00\nReferencia 123".encode(), "unsupported_format"),
    ("cut.png", None, "invalid_image"),
])
def test_non_images_named_png_are_rejected(client, runtime, name, content, code):
    if content is None:
        content = receipt(1)[:400]  # a real PNG header, truncated data
    assert_error(upload(client, [("ok.png", receipt(2)), (name, content)]), 400, code)
    assert inbox_files(runtime) == []  # the valid file of the same request is not kept either
    with runtime.db.session() as session:
        assert session.scalars(select(Upload)).all() == []


def test_path_traversal_filename_never_reaches_the_filesystem(client, runtime, tmp_path):
    body = upload(client, [("../../etc/passwd.png", receipt(1)), ("..\\..\\win.ini.png", receipt(2))]).get_json()
    for entry in body["files_processed"]:
        assert "/" not in entry["stored_name"] and "\\" not in entry["stored_name"] and ".." not in entry["stored_name"]
    assert [e["original_name"] for e in body["files_processed"]] == ["passwd.png", "win.ini.png"]
    assert not (tmp_path / "etc").exists() and not (runtime.storage.dirs["inbox"].parent / "etc").exists()


@pytest.mark.parametrize("field,value", [
    ("nombre", "<script>alert(1)</script>"),
    ("nombre", "x\" onmouseover=\"alert(1)"),
    ("idWhatsapp", "1' OR '1'='1"),
    ("idWhatsapp", "123; DROP TABLE uploads"),
    ("numerosorteo", "A<b>"),
    ("fechasorteo", "20250230"),
    ("fechasorteo", "2025-07-11"),
    ("fechasorteo", "abcdefgh"),
    ("horamin", "25-00"),
    ("horamin", "14:30"),
    ("nombre", "J" * 121),
    ("nombre", "Juan\x00Pérez\x07()"),
])
def test_bad_metadata_is_rejected(client, runtime, field, value):
    body = assert_error(upload(client, [("r.png", receipt(1))], {**SEED_METADATA, field: value}), 400, "invalid_metadata")
    assert body["error"]["details"]["field"] == field
    assert inbox_files(runtime) == []


def test_sql_in_metadata_is_inert(client, runtime):
    assert_error(upload(client, [("r.png", receipt(1))], {**SEED_METADATA, "nombre": "Robert'); DROP TABLE uploads;--"}),
                 400, "invalid_metadata")
    entry = upload(client, [("r.png", receipt(1))], {**SEED_METADATA, "nombre": "DROP TABLE uploads--"}
                   ).get_json()["files_processed"][0]
    assert entry["metadata"]["nombre"] == "DROP TABLE uploads--"
    with runtime.db.session() as session:
        assert len(session.scalars(select(Upload)).all()) == 1


def test_quotes_and_semicolons_are_stripped_from_names(client, runtime):
    entry = upload(client, [("r.png", receipt(1))], {**SEED_METADATA, "nombre": "O'Brien; Dávila"}).get_json()
    assert entry["files_processed"][0]["metadata"]["nombre"] == "OBrien Dávila"
    assert "uploads" in sqla_inspect(runtime.db.engine).get_table_names()


# --- listing ----------------------------------------------------------------------------------
def test_pending_and_processed_lists(client, orquestador):
    upload(client, [("a.png", receipt(1))])
    pending = client.get("/api/files/pending").get_json()
    assert pending["success"] and pending["count"] == 1 and pending["files"][0]["status"] == "pending"
    assert client.get("/api/files/processed").get_json()["count"] == 0
    assert client.post("/api/ocr/process_batch", json={}).status_code == 200
    processed = client.get("/api/files/processed").get_json()
    assert processed["count"] == 1 and processed["files"][0]["status"] == "processed"
    assert client.get("/api/files/pending").get_json()["count"] == 0
    assert_error(client.get("/api/files/pending?limit=abc"), 400, "invalid_parameter")
    assert_error(client.get("/api/files/processed?limit=0"), 400, "invalid_parameter")


# --- process_batch and results ----------------------------------------------------------------
def test_process_batch_runs_ocr_and_answers_like_the_seed(client, runtime, orquestador):
    names = [f["stored_name"] for f in upload(client, [("a.png", receipt(1)), ("b.png", receipt(2))]).get_json()["files_processed"]]
    response = client.post("/api/ocr/process_batch",
                           json={"profile": "ultra_rapido", "language": "spa", "include_coordinates": True})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "success" and REQUEST_ID.match(body["request_id"])
    assert body["files_processed"] == 2 and re.match(r"^\d+\.\d{2}s$", body["processing_time"])
    assert [r["filename"] for r in body["results"]] == names
    for summary in body["results"]:
        assert summary["processing_status"] == "success"
        assert summary["coordinates_available"] > 5 and 0 < summary["confidence_average"] <= 1
        assert summary["text_length"] > 20
    for name in names:
        assert (runtime.storage.dirs["processed"] / name).is_file()
        stored = json.loads((runtime.storage.dirs["results"] / f"{name}.json").read_text(encoding="utf-8"))
        assert stored["request_id"] == body["request_id"] and stored["filename"] == name
    assert inbox_files(runtime) == []


def test_result_endpoints_serve_the_whole_document(client, orquestador):
    name = upload(client, [("a.png", receipt(4))]).get_json()["files_processed"][0]["stored_name"]
    request_id = client.post("/api/ocr/process_batch", json={}).get_json()["request_id"]

    batch = client.get(f"/api/ocr/result/{request_id}").get_json()
    assert batch["state"] == "completed" and batch["progress"]["percent"] == 100.0
    assert batch["progress"]["total"] == batch["progress"]["processed"] == 1
    assert batch["files"][0]["filename"] == name

    document = client.get(f"/api/ocr/result_data/{name}").get_json()["data"]
    assert set(document) >= {"request_id", "filename", "processing_metadata", "original_text_ocr", "structured_text_ocr",
                             "extracted_fields", "palabras_detectadas", "metadata", "campos_detalle", "validacion"}
    assert set(document["processing_metadata"]) >= {"timestamp", "profile_used", "processing_time", "method_used",
                                                     "coordinates_available", "confidence_average"}
    assert document["metadata"] == SEED_METADATA
    assert len(document["extracted_fields"]) == 16
    word = document["palabras_detectadas"][0]
    assert set(word) == {"texto", "confianza", "confianza_minima_caracter", "coordenadas"} and len(word["coordenadas"]) == 4
    assert 0 <= word["confianza_minima_caracter"] <= word["confianza"] <= 1

    results = client.get("/api/extract_results").get_json()
    assert results["count"] == 1 and results["results"][0]["filename"] == name
    assert client.get(f"/api/extract_results?request_id={request_id}").get_json()["count"] == 1
    assert client.get("/api/extract_results?request_id=BATCH_20000101_000000_abc").get_json()["count"] == 0
    past = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()
    future = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert client.get("/api/extract_results", query_string={"since": past, "until": future}).get_json()["count"] == 1
    assert client.get("/api/extract_results", query_string={"since": future}).get_json()["count"] == 0


def test_extracted_fields_are_queryable_columns(client, runtime, orquestador):
    generated = generate_receipt(2, variant="clean")  # BNC: amount and reference printed
    upload(client, [("bnc.png", generated.image_bytes)])
    client.post("/api/ocr/process_batch", json={})
    with runtime.db.session() as session:
        row = session.scalars(select(Result)).one()
    document = row.document
    assert row.processing_status == "success"
    assert row.referencia == document["extracted_fields"]["referencia"]
    if document["extracted_fields"]["monto"]:
        assert str(row.monto) == document["extracted_fields"]["monto"]


def test_without_coordinates(client, orquestador):
    name = upload(client, [("a.png", receipt(1))]).get_json()["files_processed"][0]["stored_name"]
    client.post("/api/ocr/process_batch", json={"include_coordinates": False})
    words = client.get(f"/api/ocr/result_data/{name}").get_json()["data"]["palabras_detectadas"]
    assert words and all("coordenadas" not in w for w in words)


def test_a_corrupt_image_fails_alone(client, runtime, orquestador):
    # 8x8 pixels passes upload checks but the engine refuses it (too small to read).
    files = upload(client, [("good.png", receipt(1)), ("tiny.png", tiny_png())]).get_json()["files_processed"]
    body = client.post("/api/ocr/process_batch", json={}).get_json()
    assert body["status"] == "partial" and body["files_processed"] == 2 and body["files_failed"] == 1
    by_name = {r["filename"]: r for r in body["results"]}
    assert by_name[files[0]["stored_name"]]["processing_status"] == "success"
    failed = by_name[files[1]["stored_name"]]
    assert failed["processing_status"] == "error" and failed["error"]["code"] == "image_too_small"
    assert (runtime.storage.dirs["errors"] / files[1]["stored_name"]).is_file()
    document = client.get(f"/api/ocr/result_data/{files[1]['stored_name']}").get_json()["data"]
    assert document["processing_status"] == "error" and document["error"]["code"] == "image_too_small"


def test_process_batch_with_nothing_pending(client):
    body = client.post("/api/ocr/process_batch").get_json()
    assert body["status"] == "success" and body["files_processed"] == 0 and body["results"] == []


@pytest.mark.parametrize("payload,code", [
    ({"profile": "no_such_profile"}, "unknown_profile"),
    ({"profile": 7}, "unknown_profile"),
    ({"language": "klingon"}, "unsupported_language"),
    ({"include_coordinates": "yes"}, "invalid_parameter"),
    ({"async": 1}, "invalid_parameter"),
])
def test_process_batch_rejects_bad_parameters(client, payload, code):
    assert_error(client.post("/api/ocr/process_batch", json=payload), 400, code)


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", "\"text\"", "{\"profile\": }"])
def test_process_batch_rejects_malformed_json(client, raw):
    assert_error(client.post("/api/ocr/process_batch", data=raw, content_type="application/json"), 400, "malformed_json")


def test_process_batch_rate_limit_is_shared_by_processes(make_app):
    first_process = make_app(PROCESS_BATCH_MIN_INTERVAL_SECONDS=30).test_client()
    second_process = make_app(PROCESS_BATCH_MIN_INTERVAL_SECONDS=30).test_client()  # same database
    assert first_process.post("/api/ocr/process_batch", json={}).status_code == 200
    for client in (first_process, second_process):
        response = client.post("/api/ocr/process_batch", json={})
        assert_error(response, 429, "rate_limited")
        assert 1 <= int(response.headers["Retry-After"]) <= 30
    # Another client (address) has its own allowance.
    other = second_process.post("/api/ocr/process_batch", json={}, environ_base={"REMOTE_ADDR": "127.0.0.2"})  # key-less: loopback only
    assert other.status_code == 200


def test_async_process_batch_answers_202_then_completes(client, orquestador):
    upload(client, [("a.png", receipt(5))])
    response = client.post("/api/ocr/process_batch", json={"async": True})
    assert response.status_code == 202
    request_id = response.get_json()["request_id"]
    assert REQUEST_ID.match(request_id)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = client.get(f"/api/ocr/result/{request_id}").get_json()
        if state["state"] == "completed":
            break
        time.sleep(0.2)
    assert state["state"] == "completed" and state["progress"]["processed"] == 1


def test_unknown_ids_and_names_are_404(client):
    assert_error(client.get("/api/ocr/result/BATCH_20250711_143052_a8f"), 404, "not_found")
    assert_error(client.get("/api/ocr/result/../../etc/passwd"), 404)
    assert_error(client.get("/api/ocr/result/%3Cscript%3E"), 404, "not_found")
    assert_error(client.get("/api/ocr/result_data/nope.png"), 404, "not_found")
    assert_error(client.get("/api/ocr/result_data/..%2F..%2Fetc%2Fpasswd"), 404)
    assert_error(client.get("/api/ocr/result_data/.hidden"), 404, "not_found")


def test_result_data_of_a_pending_file_is_not_ready(client):
    name = upload(client, [("a.png", receipt(1))]).get_json()["files_processed"][0]["stored_name"]
    body = assert_error(client.get(f"/api/ocr/result_data/{name}"), 404, "result_not_ready")
    assert body["error"]["details"]["status"] == "pending"


@pytest.mark.parametrize("query", ["since=yesterday", "until=2025-13-01", "request_id=../../x",
                                   "limit=-1", "since=2025-07-12&until=2025-07-11"])
def test_extract_results_rejects_bad_filters(client, query):
    assert_error(client.get(f"/api/extract_results?{query}"), 400, "invalid_parameter")


# --- clean ------------------------------------------------------------------------------------
def test_clean_removes_old_finished_work_and_never_pending(client, runtime, orquestador):
    done = upload(client, [("a.png", receipt(1))]).get_json()["files_processed"][0]["stored_name"]
    client.post("/api/ocr/process_batch", json={})
    waiting = upload(client, [("b.png", receipt(2))]).get_json()["files_processed"][0]["stored_name"]

    kept = client.post("/api/clean").get_json()  # default retention: 24 h, everything is younger
    assert kept["success"] and kept["uploads_removed"] == 0

    report = client.post("/api/clean", json={"retention_hours": 0}).get_json()
    assert report["uploads_removed"] == 1 and report["removed"] == [done] and report["bytes_freed"] > 0
    assert not (runtime.storage.dirs["processed"] / done).exists()
    assert not (runtime.storage.dirs["results"] / f"{done}.json").exists()
    assert (runtime.storage.dirs["inbox"] / waiting).is_file()
    assert client.get("/api/files/pending").get_json()["count"] == 1
    assert client.get("/api/extract_results").get_json()["count"] == 0


@pytest.mark.parametrize("payload", [{"retention_hours": "abc"}, {"retention_hours": -1}, {"retention_hours": True},
                                     {"retention_hours": 10 ** 9}])
def test_clean_rejects_bad_retention(client, payload):
    assert_error(client.post("/api/clean", json=payload), 400, "invalid_parameter")


def test_clean_rejects_malformed_json(client):
    assert_error(client.post("/api/clean", data="{", content_type="application/json"), 400, "malformed_json")


# --- status, health, config, metrics ----------------------------------------------------------
def test_status_counts_the_queue(client):
    upload(client, [("a.png", receipt(1))])
    body = client.get("/api/status").get_json()
    assert body["success"] and body["queue"]["pending"] == 1 and body["database"]["ok"]
    assert body["worker"]["alive"] is False and body["status"] == "degraded"


def test_health_reports_database_worker_and_models(client, runtime, orquestador):
    body = client.get("/api/health").get_json()
    assert body["checks"]["database"]["ok"] and body["status"] == "degraded"
    assert body["checks"]["worker"]["ready"] is False
    with runtime.db.session() as session:
        session.add(WorkerState(worker_id="w1", hostname="h", pid=1, state="ready", models_loaded=["ultra_rapido"],
                                heartbeat_at=utcnow()))
        session.commit()
    body = client.get("/api/health").get_json()
    assert body["status"] == "healthy" and body["checks"]["worker"]["ready"] is True
    assert "ultra_rapido" in body["checks"]["models"]["loaded"]
    with runtime.db.session() as session:
        session.execute(update(WorkerState).values(heartbeat_at=utcnow() - timedelta(minutes=5)))
        session.commit()
    assert client.get("/api/health").get_json()["checks"]["worker"]["ready"] is False


def test_health_without_a_required_worker_is_healthy(make_app):
    assert make_app(WORKER_ENABLED=False).test_client().get("/api/health").get_json()["status"] == "healthy"


def test_batch_metrics(client, orquestador):
    upload(client, [("a.png", receipt(1))])
    client.post("/api/ocr/process_batch", json={})
    body = client.get("/api/metrics/batch").get_json()
    assert body["batches"]["completed"] == 1 and body["images"]["processed"] == 1
    assert body["timing"]["average_image_seconds"] > 0 and body["recent"][0]["files"] == 1


def test_config_endpoints(client):
    body = client.get("/api/config").get_json()
    assert body["endpoints"]["upload"] == "/api/upload"
    assert body["limits"]["max_file_size"] == "16MB" and body["limits"]["max_batch_size"] == 50
    assert "png" in body["limits"]["allowed_extensions"]
    rules = client.get("/api/config/extraction_rules").get_json()
    assert rules["success"] and "monto" in rules["rules"]["fields"]


def test_metrics_json_and_prometheus(client):
    body = client.get("/api/metrics").get_json()
    assert set(body) >= {"system", "process", "ocr", "totals"}
    assert 0 <= body["system"]["memory_usage"] <= 100 and body["process"]["rss_bytes"] > 0
    for path in ("/metrics", "/api/metrics?format=prometheus"):
        response = client.get(path)
        assert response.status_code == 200 and response.mimetype == "text/plain"
        text = response.get_data(as_text=True)
        assert 'ocr_uploads{status="pending"}' in text and "process_resident_memory_bytes" in text
    assert_error(client.get("/api/metrics?format=xml"), 400, "invalid_parameter")


# --- protocol ---------------------------------------------------------------------------------
def test_wrong_method_and_unknown_path_are_json(client):
    response = client.get("/api/upload")
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["Allow"]
    assert_error(client.delete("/api/status"), 405)
    assert_error(client.get("/api/nope"), 404, "not_found")
    assert_error(client.get("/"), 404, "not_found")


# Headers, CORS, API keys, the session secret and error bodies: tests/test_security.py.


def test_database_down_gives_503_and_keeps_nothing(monkeypatch, tmp_path):
    from app import create_app

    monkeypatch.setenv("STORAGE_ROOT", str(tmp_path / "storage"))
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:1/test")
    app = create_app({"TESTING": True, **POSTGRES_SECRETS})  # PostgreSQL: every host is given them
    client = app.test_client()
    response = upload(client, [("a.png", receipt(1))])
    assert_error(response, 503, "database_unavailable")
    assert response.headers["Retry-After"] == "5"
    assert list((tmp_path / "storage" / "data" / "inbox").iterdir()) == []
    health = client.get("/api/health")
    assert health.status_code == 503 and health.get_json()["status"] == "unhealthy"
    assert_error(client.get("/api/files/pending"), 503, "database_unavailable")
