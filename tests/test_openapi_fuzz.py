"""schemathesis, driven by /api/openapi.json, against the real service (gunicorn, its web
processes and the OCR worker), on SQLite and PostgreSQL.

Every generated request (valid and invalid parameters, bodies, paths; the coverage, fuzzing and
stateful phases) is checked: no 5xx, and the status, content type and body of every answer are
ones the document declares. It runs as an admin key (every endpoint reachable) and as a client
key of another tenant (admin endpoints answer 403). Two real receipts are uploaded and read
first, so the result endpoints answer real documents. A deliberately wrong copy of the document
shows the same run does catch a mismatch.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from benchmarks.service_process import running_service
from database import Database, Role
from service.access import create_key
from tools.receipt_generator import generate_receipt

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.serial]

ADMIN_KEY = "k3y-Fuzz-0a1b2c3d4e5f"
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
# Cases per operation and phase: ~2,500 cases per key (35 operations), a few minutes each on this machine.
MAX_EXAMPLES = 40
SEED = 20250711
RUN_TIMEOUT = 420


def schemathesis(location: str, key: str, report_dir: Path, *extra: str, base: str | None = None) -> dict:
    """One `st run`; its JSON report. One worker: hypothesis's source introspection is not thread-safe."""
    command = [sys.executable, "-m", "schemathesis.cli", "run", location, "-H", f"X-API-Key: {key}", "-c", CHECKS,
               "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED), "-w", "1", "--request-timeout", "60",
               "--report", "json", "--report-dir", str(report_dir), *extra]
    if base:
        command += ["--url", base]
    # Its caches (.schemathesis/, .hypothesis/, crash files carrying the filtered key header) land in cwd.
    out = subprocess.run(command, cwd=report_dir.parent, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    reports = sorted(report_dir.glob("json-*.json"))
    assert reports, out.stdout[-4000:] + out.stderr[-2000:]
    report = json.loads(reports[-1].read_text())
    report["output"] = out.stdout
    return report


def seed_receipts(base: str, key: str) -> None:
    headers = {"X-API-Key": key}
    files = [("files", (f"r{seed}.png", generate_receipt(seed, variant="clean").image_bytes, "image/png")) for seed in (41, 42)]
    answer = requests.post(f"{base}/api/upload", files=files, data={"nombre": "Ana", "fechasorteo": "20250711"},
                           headers=headers, timeout=60)
    assert answer.status_code == 200, answer.text
    deadline = time.monotonic() + 120
    while requests.get(f"{base}/api/files/processed", headers=headers, timeout=10).json()["count"] < 2:
        assert time.monotonic() < deadline, "the receipts were not processed"
        time.sleep(0.5)


def assert_clean(report: dict, label: str) -> int:
    cases = report["test_cases"]
    summary = f"{label}: {cases['generated']} cases, {cases['with_failures']} with failures, {len(report['errors'])} errors"
    print(summary)
    assert report["failures"] == [] and cases["with_failures"] == 0, summary + "\n" + report["output"][-6000:]
    assert report["errors"] == [] and cases["errored"] == 0, summary + "\n" + report["output"][-6000:]
    assert report["operations"]["tested"] == report["operations"]["total"] >= 20, report["operations"]
    assert report["exit_code"] == 0
    return cases["generated"]


def test_the_running_service_answers_as_its_document_says(tmp_path, database_url):
    with running_service(tmp_path / "storage", database_url, API_KEYS=ADMIN_KEY, print_log_tail=False) as svc:
        seed_receipts(svc.base, ADMIN_KEY)
        db = Database(database_url)
        try:
            client_key, _ = create_key(db, "other", role=Role.CLIENT, name="fuzz")
        finally:
            db.dispose()
        spec_url = f"{svc.base}/api/openapi.json"
        started = time.monotonic()
        admin = assert_clean(schemathesis(spec_url, ADMIN_KEY, tmp_path / "admin"), "admin key")
        client = assert_clean(schemathesis(spec_url, client_key, tmp_path / "client"), "client key")
        assert admin + client >= 2000
        assert time.monotonic() - started < 600

        # The same run catches a body that disagrees with the document.
        document = requests.get(spec_url, timeout=10).json()
        document["components"]["schemas"]["LiveOut"]["properties"]["status"] = {"const": "dead", "type": "string"}
        wrong = tmp_path / "wrong.json"
        wrong.write_text(json.dumps(document))
        caught = schemathesis(str(wrong), ADMIN_KEY, tmp_path / "wrong", "--include-path", "/api/health/live",
                              "--phases", "fuzzing", base=svc.base)
        assert caught["exit_code"] != 0 and caught["test_cases"]["with_failures"] > 0, caught["output"][-3000:]
        assert "response_schema_conformance" in json.dumps(caught["failures"]) or "schema" in caught["output"].lower()
        assert svc.health().status_code == 200
