"""Request ids, log formats, health checks and measured metrics, through Flask's test client."""
import json
import logging
import re
import time

import pytest
import requests

import metrics
from api import ops as api_ops
from benchmarks.service_process import running_service
from database import WorkerState, utcnow
from logging_setup import configure_logging


def test_a_request_id_is_generated_when_none_is_sent(client):
    response = client.get("/api/status")
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])
    assert client.get("/api/status").headers["X-Request-ID"] != response.headers["X-Request-ID"]


@pytest.mark.parametrize("sent, kept", [
    ("abc-123", True), ("trace:4bf92f3577b34da6@edge.1", True), ("x" * 128, True),
    ("x" * 129, False), ("has space", False), ("new\\nline", False), ("<script>", False), ("", False), ("ñandú", False),
])
def test_a_client_request_id_is_kept_only_when_safe(client, sent, kept):
    response = client.get("/api/health/live", headers={"X-Request-ID": sent})
    assert (response.headers["X-Request-ID"] == sent) is kept
    assert re.fullmatch(r"[A-Za-z0-9._:@-]{1,128}", response.headers["X-Request-ID"])


def test_every_error_body_carries_the_request_id(client):
    for response in (client.get("/api/nothing", headers={"X-Request-ID": "req-1"}),
                     client.post("/api/ocr/process_batch", data="{", content_type="application/json",
                                 headers={"X-Request-ID": "req-1"})):
        assert response.status_code in (400, 404)
        assert response.get_json()["error"]["request_id"] == "req-1" == response.headers["X-Request-ID"]


def test_json_log_lines_carry_the_request_id(app, monkeypatch, capsys):
    def explode(*_args, **_kwargs):
        raise RuntimeError("boom")

    configure_logging("INFO", "json")
    try:
        monkeypatch.setattr(api_ops, "live_workers", explode)
        response = app.test_client().get("/api/status", headers={"X-Request-ID": "trace-77"})
        assert response.status_code == 500
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    finally:
        configure_logging("INFO", "text")
    unhandled = [line for line in lines if line["message"].startswith("Unhandled error")]
    assert unhandled and unhandled[0]["request_id"] == "trace-77" and unhandled[0]["level"] == "ERROR"
    assert "RuntimeError: boom" in unhandled[0]["exception"]


def test_text_log_lines_carry_the_request_id(app, monkeypatch, capsys):
    logger = logging.getLogger("tests.observability")
    monkeypatch.setattr(api_ops, "live_workers", lambda *_a, **_k: logger.warning("looking for workers") or [])
    assert app.test_client().get("/api/status", headers={"X-Request-ID": "trace-88"}).status_code == 200
    assert any("[trace-88]: looking for workers" in line for line in capsys.readouterr().err.splitlines())


def test_live_answers_and_ready_needs_this_hosts_worker_with_models(make_app):
    client = make_app(HOST_NAME="host-a").test_client()
    assert client.get("/api/health/live").get_json()["status"] == "alive"
    not_ready = client.get("/api/health/ready")
    assert not_ready.status_code == 503 and not_ready.headers["Retry-After"] == "5"
    assert not_ready.get_json()["status"] == "not_ready"
    runtime = client.application.extensions["ocr_runtime"]
    with runtime.db.session() as session:
        # A worker on another host cannot read the images kept on this one: it does not make it ready.
        session.add(WorkerState(worker_id="w1", hostname="host-b", pid=1, state="ready", models_loaded=["ultra_rapido"],
                                heartbeat_at=utcnow()))
        session.commit()
    elsewhere = client.get("/api/health/ready")
    assert elsewhere.status_code == 503
    assert elsewhere.get_json()["checks"]["worker"] == {"ready": False, "required": True, "host": "host-a",
                                                         "mode": "worker", "on_host": 0, "elsewhere": 1}
    with runtime.db.session() as session:
        session.add(WorkerState(worker_id="w2", hostname="host-a", pid=2, state="ready", models_loaded=[],
                                heartbeat_at=utcnow()))
        session.commit()
    assert client.get("/api/health/ready").status_code == 503  # alive, but no model loaded yet
    with runtime.db.session() as session:
        session.get(WorkerState, "w2").models_loaded = ["ultra_rapido"]
        session.commit()
    ready = client.get("/api/health/ready")
    assert ready.status_code == 200 and "ultra_rapido" in ready.get_json()["checks"]["models"]["loaded"]
    assert ready.get_json()["checks"]["worker"]["on_host"] == 1


def test_a_web_only_host_is_ready_with_the_database_and_says_so(make_app):
    answer = make_app(WORKER_ENABLED=False, HOST_NAME="web-1").test_client().get("/api/health/ready")
    assert answer.status_code == 200
    assert answer.get_json()["checks"]["worker"] == {"ready": False, "required": False, "host": "web-1",
                                                     "mode": "web_only", "on_host": 0, "elsewhere": 0}


def test_health_checks_stay_open_when_api_keys_are_set(make_app):
    client = make_app(API_KEYS=["secret-key-1"]).test_client()
    for path in ("/api/health", "/api/health/live"):
        assert client.get(path).status_code == 200
    assert client.get("/api/health/ready").status_code == 503  # no worker: not ready, but not 401


def test_prometheus_follows_the_conventions_and_measures_requests(client):
    client.get("/api/status")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/api/status"}' in text
    assert re.search(r'http_requests_total\{method="GET",route="/api/status",status="200"\} [1-9]', text)
    for ratio in ("system_cpu_usage_ratio", "system_memory_usage_ratio", "system_disk_usage_ratio"):
        value = float(re.search(rf"^{ratio} (\S+)$", text, re.M).group(1))
        assert 0.0 <= value <= 1.0
    assert "# TYPE ocr_cache_hits_total counter" in text
    # Routes are patterns: a file name never becomes a label.
    client.get("/api/ocr/result_data/secret-name.png")
    assert "secret-name" not in client.get("/metrics").get_data(as_text=True)


def test_ocr_time_per_image_is_a_histogram():
    before = metrics.OCR_IMAGE_SECONDS.labels("balanced")._sum.get()
    metrics.observe_image({"processing_status": "success",
                           "processing_metadata": {"profile_used": "balanced", "processing_time": 0.4}})
    metrics.observe_image({"processing_status": "success",
                           "processing_metadata": {"profile_used": "balanced", "processing_time": 0.0, "cache_hit": True}})
    assert metrics.OCR_IMAGE_SECONDS.labels("balanced")._sum.get() == pytest.approx(before + 0.4)
    assert 'ocr_image_processing_seconds_bucket{le="0.5",profile="balanced"}' in metrics.measured_text().decode()


@pytest.mark.slow
@pytest.mark.e2e
def test_under_gunicorn_every_log_line_is_json_with_its_request_id(tmp_path):
    with running_service(tmp_path / "storage", WORKER_ENABLED="true", PRELOAD_MODELS="false", LOG_FORMAT="json") as svc:
        answer = requests.get(f"{svc.base}/api/nothing", headers={"X-Request-ID": "e2e-trace-5"}, timeout=10)
        assert answer.json()["error"]["request_id"] == "e2e-trace-5"
        deadline = time.monotonic() + 10
        while "e2e-trace-5" not in svc.log_tail(100_000) and time.monotonic() < deadline:
            time.sleep(0.2)
        lines = svc.log_tail(100_000).strip().splitlines()
    entries = [json.loads(line) for line in lines]  # every line, from gunicorn, the web processes and the worker
    access = [e for e in entries if e["logger"] == "gunicorn.access" and "/api/nothing" in e["message"]]
    assert access and access[0]["request_id"] == "e2e-trace-5"
    assert any(e["logger"] == "worker" and "ready" in e["message"] for e in entries)
    messages = [(e["pid"], e["message"]) for e in entries]
    assert len(messages) == len(set(messages))  # no line written twice by two handlers
