"""No way in: API keys on every route but health, keys kept out of logs and the repository, CORS,
the session secret, no debug mode or tracebacks, and the security headers.

Runs on SQLite and, with TEST_DATABASE_URL, on PostgreSQL; the last test drives the real service
under gunicorn (its access and error logs included).
"""
import io
import json
import logging
import re
import subprocess
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

import config
from api import ops as api_ops
from api.auth import PUBLIC_PATHS
from benchmarks.service_process import running_service
from database import Batch, RateLimit
from tools.receipt_generator import generate_receipt

ROOT = Path(__file__).resolve().parents[1]
KEYS = ["k3y-Alpha-7f3a9c1e5b", "k3y-Bravo-0d4e8f2a6c"]
BAD_KEY = "k3y-Wrong-9e8d7c6b5a"
SAMPLE_ARGUMENTS = {"request_id": "BATCH_20250711_143052_a8f", "filename": "20250711-A--1@lid_Ana_10-00.png",
                    "upload_id": "1", "delivery_id": "1", "statement_id": "1", "correction_id": "1",
                    "rule_id": "1"}


def api_routes(app):
    """(method, concrete path) of every route under /api plus /metrics, read from the app itself."""
    found = []
    for rule in app.url_map.iter_rules():
        if not (rule.rule.startswith("/api") or rule.rule == "/metrics"):
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: SAMPLE_ARGUMENTS[m.group(1)], rule.rule)
        found.extend((method, path) for method in sorted(rule.methods - {"HEAD", "OPTIONS"}))
    return found


def upload_data():
    return {"nombre": "Ana", "files": [(io.BytesIO(generate_receipt(1, variant="lowres").image_bytes), "r.jpg")]}


# --- API keys ---------------------------------------------------------------------------------
def test_every_route_but_health_needs_a_valid_key(make_app):
    app = make_app(API_KEYS=KEYS)
    client = app.test_client()
    guarded = [(m, p) for m, p in api_routes(app) if p not in PUBLIC_PATHS]
    assert len(guarded) >= 14  # every endpoint of the API, new ones included automatically
    for method, path in guarded:
        for headers in ({}, {"X-API-Key": BAD_KEY}, {"X-API-Key": ""}, {"X-API-Key": KEYS[0][:-1]},
                        {"Authorization": f"Basic {KEYS[0]}"}, {"Authorization": f"Bearer {KEYS[0]}x"}):
            response = client.open(path, method=method, headers=headers)
            assert response.status_code == 401, (method, path, headers)
            assert response.get_json()["error"]["code"] == "unauthorized"
    # Other spellings of a guarded path never reach it without a key.
    for path in ("/api/status/", "//api/status", "/api/%73tatus", "/api/./status", "/metrics/"):
        assert client.get(path).status_code in (401, 404, 308), path
    assert client.get("/api/health").status_code == 200
    assert client.options("/api/upload").status_code == 200  # CORS preflights carry no key
    for key in KEYS:
        assert client.get("/api/status", headers={"X-API-Key": key}).status_code == 200
        assert client.get("/api/status", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        upload = client.post("/api/upload", data=upload_data(), headers={"X-API-Key": key},
                             content_type="multipart/form-data")
        assert upload.status_code == 200


def test_without_api_keys_the_api_is_open(client):
    assert client.get("/api/status").status_code == 200


def test_keys_never_reach_logs_or_the_database(make_app, caplog, capfd, monkeypatch):
    app = make_app(API_KEYS=KEYS, PROCESS_BATCH_MIN_INTERVAL_SECONDS=30)
    client = app.test_client()
    caplog.set_level(logging.DEBUG)
    good, bad = {"X-API-Key": KEYS[0]}, {"X-API-Key": BAD_KEY}
    assert client.get("/api/status", headers=good).status_code == 200
    assert client.get(f"/api/status?api_key={KEYS[1]}", headers=bad).status_code == 401
    assert client.post("/api/ocr/process_batch", json={}, headers=good).status_code == 200
    assert client.post("/api/ocr/process_batch", json={}, headers=good).status_code == 429
    assert client.post("/api/upload", data=upload_data(), headers=good,
                       content_type="multipart/form-data").status_code == 200
    monkeypatch.setattr(api_ops, "live_workers", _explode)
    assert client.get("/api/status", headers=good).status_code == 500  # logged with its traceback
    assert "Unhandled error" in caplog.text
    logged = caplog.text + "".join(capfd.readouterr())
    for key in KEYS + [BAD_KEY]:
        assert key not in logged
    rt = app.extensions["ocr_runtime"]
    with rt.db.session() as session:
        stored = json.dumps([session.scalars(select(RateLimit.key)).all(), session.scalars(select(Batch.client_key)).all()])
    assert "key:" in stored and not any(key in stored for key in KEYS)  # a hash identifies the client


def _explode(*args, **kwargs):
    raise RuntimeError("internal detail: connection string postgresql://admin:hunter2@db/ocr")


def test_no_secrets_in_the_repository(monkeypatch):
    """Keys and secrets come from the environment only: no defaults, nothing committed."""
    for name in ("API_KEYS", "SESSION_SECRET", "SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    settings = config.load_settings()
    assert settings["API_KEYS"] == [] and settings["SECRET_KEY"] is None
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.split()
    assignment = re.compile(r"""(API_KEYS|SESSION_SECRET|SECRET_KEY)["']?\s*[:=]\s*["'][^"'\s{}$<]{8,}["']"""
                            r"""|^\s*(export\s+)?(API_KEYS|SESSION_SECRET|SECRET_KEY)=[^\s$<{]{8,}"""
                            r"""|X-API-Key:\s*[^\s"'$<{]{8,}""", re.MULTILINE)
    offenders = []
    for name in listed:
        path = ROOT / name
        if name.startswith("tests/") or not path.is_file() or path.suffix not in {".py", ".md", ".json", ".ini",
                                                                                     ".txt", ".cfg", ".toml", ".example", ""}:
            continue
        text = path.read_text(errors="replace")
        offenders.extend(f"{name}: {m.group(0)}" for m in assignment.finditer(text))
    assert offenders == []
    # Only the example, with every value empty: real settings files are never committed.
    assert [n for n in listed if Path(n).name.startswith(".env")] == [".env.example"]
    assert all(line.endswith("=") for line in (ROOT / ".env.example").read_text().splitlines()
               if line and not line.startswith("#"))
    for local_settings in (".env", "deploy/.env.production"):
        assert subprocess.run(["git", "check-ignore", "-q", local_settings], cwd=ROOT).returncode == 0


# --- CORS -------------------------------------------------------------------------------------
def test_cors_answers_only_the_configured_origins(make_app):
    client = make_app(CORS_ORIGINS=["https://panel.example.com", "https://admin.example.com"], API_KEYS=KEYS).test_client()
    for origin in ("https://panel.example.com", "https://admin.example.com"):
        allowed = client.get("/api/status", headers={"Origin": origin, "X-API-Key": KEYS[0]})
        assert allowed.headers["Access-Control-Allow-Origin"] == origin
        assert "Origin" in allowed.headers["Vary"]
    assert "Retry-After" in allowed.headers["Access-Control-Expose-Headers"]
    preflight = client.options("/api/upload", headers={"Origin": "https://panel.example.com",
                                                       "Access-Control-Request-Method": "POST",
                                                       "Access-Control-Request-Headers": "X-API-Key"})
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://panel.example.com"
    assert "x-api-key" in preflight.headers["Access-Control-Allow-Headers"].lower()
    # A frontend on another origin corrects fields (PATCH) and retries uploads with their key.
    correction = client.options("/api/uploads/1/fields", headers={"Origin": "https://panel.example.com",
                                                                  "Access-Control-Request-Method": "PATCH",
                                                                  "Access-Control-Request-Headers": "Idempotency-Key"})
    assert "PATCH" in correction.headers["Access-Control-Allow-Methods"]
    assert "idempotency-key" in correction.headers["Access-Control-Allow-Headers"].lower()
    assert "X-Next-Cursor" in allowed.headers["Access-Control-Expose-Headers"]

    for origin in ("https://evil.example.net", "https://panel.example.com.evil.net", "null"):
        denied = client.get("/api/status", headers={"Origin": origin, "X-API-Key": KEYS[0]})
        assert "Access-Control-Allow-Origin" not in denied.headers
        denied_preflight = client.options("/api/upload", headers={"Origin": origin,
                                                                  "Access-Control-Request-Method": "POST"})
        assert "Access-Control-Allow-Origin" not in denied_preflight.headers
        assert "Access-Control-Allow-Methods" not in denied_preflight.headers


def test_cors_defaults_to_any_origin_without_credentials(client):
    response = client.get("/api/status", headers={"Origin": "https://example.com"})
    assert response.headers["Access-Control-Allow-Origin"] in {"*", "https://example.com"}
    assert "Access-Control-Allow-Credentials" not in response.headers


# --- session secret, debug mode, errors -----------------------------------------------------------
def test_session_secret_comes_from_the_environment_and_never_from_a_constant(make_app, monkeypatch, service_env,
                                                                             database_url):
    if database_url.startswith("postgresql"):
        # Hosts share the database: none may make a secret of its own on its disk (README, "Several hosts").
        monkeypatch.delenv("SECRET_KEY")
        with pytest.raises(config.MissingSharedSecret, match="SECRET_KEY"):
            make_app()
        assert not (service_env / "data" / "secret_key").exists()
    else:
        first = make_app().secret_key
        # Random when unset, never a fixed fallback; made once under data/ so every web process signs alike.
        assert len(first) >= 64 and (service_env / "data" / "secret_key").read_text().strip() == first
    monkeypatch.setenv("SECRET_KEY", "from-the-environment")
    assert make_app().secret_key == "from-the-environment"
    monkeypatch.delenv("SECRET_KEY")
    monkeypatch.setenv("SESSION_SECRET", "the-older-variable-name")  # still read
    assert make_app().secret_key == "the-older-variable-name"


def test_debug_mode_cannot_be_switched_on_and_errors_show_no_internals(make_app, monkeypatch, caplog):
    monkeypatch.setenv("FLASK_DEBUG", "1")
    app = make_app(DEBUG=True, PROPAGATE_EXCEPTIONS=None)
    assert app.debug is False
    monkeypatch.setattr(api_ops, "live_workers", _explode)
    response = app.test_client().get("/api/status")
    assert response.status_code == 500 and response.mimetype == "application/json"
    assert response.get_json() == {"success": False,
                                   "error": {"code": "internal_error", "message": "An internal error occurred",
                                             "request_id": response.headers["X-Request-ID"]}}
    body = response.get_data(as_text=True)
    for leak in ("Traceback", "RuntimeError", "hunter2", "routes.py", "Werkzeug Debugger"):
        assert leak not in body
    assert "Traceback" in caplog.text and "RuntimeError" in caplog.text  # the operator still sees it


# --- headers --------------------------------------------------------------------------------------
def test_security_headers_on_every_kind_of_answer(make_app, monkeypatch):
    app = make_app(API_KEYS=KEYS)
    client = app.test_client()
    good = {"X-API-Key": KEYS[0]}
    answers = {
        "200 status": client.get("/api/status", headers=good),
        "200 metrics": client.get("/metrics", headers=good),
        "401": client.get("/api/status"),
        "404 api": client.get("/api/nope", headers=good),
        "404 result": client.get("/api/ocr/result_data/nope.png", headers=good),
        "405": client.delete("/api/status", headers=good),
        "400": client.post("/api/ocr/process_batch", data="{", content_type="application/json", headers=good),
    }
    monkeypatch.setattr(api_ops, "live_workers", _explode)
    answers["500"] = client.get("/api/status", headers=good)
    for name, response in answers.items():
        assert response.headers["X-Content-Type-Options"] == "nosniff", name
        assert response.headers["Cache-Control"] == "no-store", name  # results are never cached
        assert response.headers["X-Frame-Options"] == "DENY", name
        assert "default-src 'none'" in response.headers["Content-Security-Policy"], name
        assert response.mimetype in {"application/json", "text/plain"}, name
    assert client.get("/").headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.slow
@pytest.mark.e2e
def test_under_gunicorn_keys_guard_the_api_and_stay_out_of_its_logs(tmp_path, database_url):
    with running_service(tmp_path / "storage", database_url, WORKER_ENABLED="false", LOG_LEVEL="DEBUG",
                         API_KEYS=",".join(KEYS), CORS_ORIGINS="https://panel.example.com") as service:
        base = service.base
        assert requests.get(f"{base}/api/status", timeout=10).status_code == 401
        assert requests.get(f"{base}/api/status", headers={"X-API-Key": BAD_KEY}, timeout=10).status_code == 401
        # A key in the query string is not a way in, and is not written to the access log either.
        assert requests.get(f"{base}/api/status?X-API-Key={KEYS[1]}", timeout=10).status_code == 401
        ok = requests.get(f"{base}/api/status", headers={"X-API-Key": KEYS[0], "Origin": "https://panel.example.com"},
                          timeout=10)
        assert ok.status_code == 200
        assert ok.headers["Access-Control-Allow-Origin"] == "https://panel.example.com"
        assert ok.headers["X-Content-Type-Options"] == "nosniff" and ok.headers["Cache-Control"] == "no-store"
        files = {"files": ("r.jpg", generate_receipt(1, variant="lowres").image_bytes, "image/jpeg")}
        assert requests.post(f"{base}/api/upload", files=files, data={"nombre": "Ana"},
                             headers={"X-API-Key": KEYS[1]}, timeout=30).status_code == 200
        assert requests.get(f"{base}/api/health", timeout=10).status_code == 200
        log = service.log_path.read_text(errors="replace")
    assert '"GET /api/status HTTP/1.1" 401' in log and '"POST /api/upload HTTP/1.1" 200' in log  # it was logged...
    for key in KEYS + [BAD_KEY]:
        assert key not in log  # ...without the keys
