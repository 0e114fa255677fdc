"""The real service under gunicorn, driven over HTTP, with its own storage and database.

Starts `gunicorn "main:create_app()"` (gunicorn.conf.py: 2 web processes + one OCR worker process) on a free
port, uploads generated receipts and checks what lands on disk and in the database.
"""
import json
import re
import time
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from benchmarks.service_process import running_service
from tools.receipt_generator import generate_receipt

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 120


@contextmanager
def service(storage_root: Path, database_url: str, **settings):
    # The one start/wait/stop helper shared with the fuzz test and the benchmarks.
    with running_service(storage_root, database_url, root=ROOT, start_timeout=START_TIMEOUT,
                         print_log_tail=True, **settings) as svc:
        yield svc.base, svc.process


def upload(base, receipts, **metadata):
    files = [("files", (f"r{i}.png", r.image_bytes, "image/png")) for i, r in enumerate(receipts)]
    response = requests.post(f"{base}/api/upload", files=files, data=metadata, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["files_processed"]


def wait_processed(base, names, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = {f["stored_name"]: f for f in requests.get(f"{base}/api/files/processed", timeout=10).json()["files"]}
        if all(name in done for name in names):
            return done
        time.sleep(0.3)
    raise AssertionError(f"not processed in {timeout}s: {names}")


def digits(value):
    return re.sub(r"\D", "", value or "")


def query(database_url, sql):
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(text(sql)).all()
    finally:
        engine.dispose()


def test_uploads_are_processed_by_the_single_background_worker(tmp_path, database_url):
    storage_root = tmp_path / "storage"
    receipts = [generate_receipt(seed, variant="clean") for seed in (10, 11, 12)]
    with service(storage_root, database_url) as (base, master):
        # One OCR worker process for the deployment, beside the web processes.
        children = psutil.Process(master.pid).children()
        assert sum("worker" in " ".join(child.cmdline()) for child in children) == 1
        assert len(children) == 3

        files = upload(base, receipts, numerosorteo="A", fechasorteo="20250711", idWhatsapp="123456@lid",
                       nombre="Juan", horamin="14-30")
        names = [f["stored_name"] for f in files]
        assert names[0] == f"20250711-A--123456@lid_Juan_14-30~{files[0]['id']}.png"
        wait_processed(base, names)

        results_dir = storage_root / "data" / "results"
        for name, generated in zip(names, receipts):
            stored = json.loads((results_dir / f"{name}.json").read_text(encoding="utf-8"))
            assert stored["filename"] == name and stored["processing_status"] == "success"
            assert stored["metadata"]["nombre"] == "Juan"
            assert digits(generated.fields["referencia"]) in digits(stored["original_text_ocr"])
            served = requests.get(f"{base}/api/ocr/result_data/{name}", timeout=10).json()["data"]
            assert served == stored
            assert (storage_root / "data" / "processed" / name).is_file()

        # The same bytes again: served from the first result; a file dropped into the inbox: registered.
        duplicate = upload(base, receipts[:1], nombre="Otra")[0]
        (storage_root / "data" / "inbox" / "20250712-B--777@lid_Ana_09-00.png").write_bytes(
            generate_receipt(13, variant="clean").image_bytes)
        done = wait_processed(base, [duplicate["stored_name"], "20250712-B--777@lid_Ana_09-00.png"])
        assert done[duplicate["stored_name"]]["duplicado_de"] == files[0]["id"]
        reused = requests.get(f"{base}/api/ocr/result_data/{duplicate['stored_name']}", timeout=10).json()["data"]
        assert reused["processing_metadata"]["reused_from"] == names[0]

        # A manual batch while the worker runs: whichever picks the files up, all of them finish.
        more = [f["stored_name"] for f in upload(base, [generate_receipt(s, variant="clean") for s in (14, 15)])]
        response = requests.post(f"{base}/api/ocr/process_batch", json={"profile": "ultra_rapido"}, timeout=300)
        assert response.status_code == 200 and response.json()["status"] == "success"
        wait_processed(base, more)

        health = requests.get(f"{base}/api/health", timeout=10).json()
        assert health["status"] == "healthy" and "ultra_rapido" in health["checks"]["models"]["loaded"]
        prometheus = requests.get(f"{base}/metrics", timeout=10).text
        assert "ocr_workers_ready 1.0" in prometheus and 'ocr_uploads{status="processed"} 7.0' in prometheus
        # Measured in the OCR worker and in both web processes, served by whichever web process answers.
        assert 'ocr_images_total{status="success"} 7.0' in prometheus
        assert 'ocr_image_processing_seconds_count{profile="ultra_rapido"} 6.0' in prometheus  # the duplicate had no OCR
        assert ('http_requests_total{method="GET",route="/api/ocr/result_data/<filename>",status="200"} 4.0'
                in prometheus)
        assert 'http_request_duration_seconds_bucket{le="+Inf",method="POST",route="/api/upload"}' in prometheus
        families = [family.name for family in text_string_to_metric_families(prometheus)]
        assert len(families) == len(set(families))  # each metric once: a valid exposition
        ready = requests.get(f"{base}/api/health/ready", headers={"X-Request-ID": "probe-42"}, timeout=10)
        assert ready.status_code == 200 and ready.headers["X-Request-ID"] == "probe-42"

        rows = query(database_url, "SELECT status, count(*) FROM uploads GROUP BY status")
        assert dict(rows) == {"processed": 7}
        assert query(database_url, "SELECT count(*) FROM results")[0][0] == 7
        assert query(database_url, "SELECT count(*) FROM uploads WHERE claimed_by IS NOT NULL")[0][0] == 0
        worker_pid = next(c.pid for c in children if "worker" in " ".join(c.cmdline()))
    assert not psutil.pid_exists(worker_pid) or psutil.Process(worker_pid).status() == psutil.STATUS_ZOMBIE


def test_process_batch_over_http_without_a_background_worker(tmp_path, database_url):
    storage_root = tmp_path / "storage"
    with service(storage_root, database_url, WORKER_ENABLED="false") as (base, _):
        names = [f["stored_name"] for f in upload(base, [generate_receipt(s, variant="clean") for s in (20, 21)])]
        assert requests.get(f"{base}/api/files/pending", timeout=10).json()["count"] == 2

        response = requests.post(f"{base}/api/ocr/process_batch",
                                 json={"profile": "ultra_rapido", "language": "spa", "include_coordinates": True},
                                 timeout=300)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "success" and body["files_processed"] == 2
        assert [r["filename"] for r in body["results"]] == names
        for name in names:
            assert (storage_root / "data" / "results" / f"{name}.json").is_file()
        batch = requests.get(f"{base}/api/ocr/result/{body['request_id']}", timeout=10).json()
        assert batch["state"] == "completed" and batch["progress"]["processed"] == 2

        later = upload(base, [generate_receipt(22, variant="clean")])[0]["stored_name"]
        accepted = requests.post(f"{base}/api/ocr/process_batch", json={"async": True}, timeout=30)
        assert accepted.status_code == 202
        request_id = accepted.json()["request_id"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = requests.get(f"{base}/api/ocr/result/{request_id}", timeout=10).json()
            if state["state"] == "completed":
                break
            time.sleep(0.3)
        assert state["state"] == "completed" and [f["filename"] for f in state["files"]] == [later]

        consolidated = requests.get(f"{base}/api/extract_results", timeout=10).json()
        assert consolidated["count"] == 3
        rows = query(database_url, "SELECT request_id, count(*) FROM results GROUP BY request_id")
        assert dict(rows) == {body["request_id"]: 2, request_id: 1}


def test_process_batch_rate_limit_holds_across_gunicorn_workers(tmp_path, database_url):
    with service(tmp_path / "storage", database_url, WORKER_ENABLED="false",
                 PROCESS_BATCH_MIN_INTERVAL_SECONDS="30") as (base, _):
        # Fresh connections spread the requests over both web processes.
        answers = [requests.post(f"{base}/api/ocr/process_batch", json={}, timeout=60) for _ in range(6)]
        assert [a.status_code for a in answers] == [200] + [429] * 5
        assert all(1 <= int(a.headers["Retry-After"]) <= 30 for a in answers[1:])
        assert answers[1].json()["error"]["code"] == "rate_limited"
