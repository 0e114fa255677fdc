"""Webhooks through the real service: gunicorn, `main.py worker` (which runs the deliverer), real
OCR, and a receiver on 127.0.0.1 that checks every signature. The receiver works, then hangs
(a dead receiver: OCR must not slow down), the worker is killed mid-way, the receiver goes down,
comes back answering 500 (repeats), then 200: every event arrives, none is lost, repeats carry the
same id and bytes, and another tenant sees none of it. On SQLite and PostgreSQL."""
import signal
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import psutil
import pytest
import requests

from benchmarks.service_process import running_service
from database import Database
from migrations_runner import upgrade_to_head
from service.access import create_key
from tests.webhook_receiver import Receiver
from tools.receipt_generator import generate_receipt

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
ADMIN_KEY = "bootstrap-admin-key-for-webhook-e2e-31"
HEADERS = {"X-API-Key": ADMIN_KEY}
SETTINGS = dict(API_KEYS=ADMIN_KEY, WEBHOOK_ALLOW_PRIVATE="true", WEBHOOK_TIMEOUT_SECONDS="2",
                WEBHOOK_BACKOFF_BASE_SECONDS="0.5", WEBHOOK_BACKOFF_MAX_SECONDS="2", WEBHOOK_POLL_INTERVAL_SECONDS="0.2")


def _moment(text):
    return datetime.fromisoformat(text.removesuffix("Z"))


def upload_and_wait(base, seed, timeout=180):
    """Upload one receipt and wait until it is processed; (upload id, seconds from upload to processed
    as the service recorded them)."""
    receipt = generate_receipt(seed, variant="clean")
    answer = requests.post(f"{base}/api/upload", headers=HEADERS, timeout=30, data={"nombre": f"Cliente {seed}"},
                           files={"files": (f"r{seed}.png", receipt.image_bytes, "image/png")})
    assert answer.status_code == 200, answer.text
    upload_id = answer.json()["files_processed"][0]["id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = requests.get(f"{base}/api/files/processed", headers=HEADERS, params={"limit": 1000}, timeout=10).json()
        entry = next((f for f in files["files"] if f["id"] == upload_id), None)
        if entry is not None:
            assert entry["status"] == "processed", entry
            return upload_id, (_moment(entry["processed_at"]) - _moment(entry["created_at"])).total_seconds()
        time.sleep(0.1)
    raise AssertionError(f"upload {upload_id} not processed in {timeout}s")


def all_deliveries(base, key=ADMIN_KEY, **params):
    found, cursor = [], None
    while True:
        page = requests.get(f"{base}/api/webhooks/deliveries", headers={"X-API-Key": key}, timeout=10,
                            params={"limit": 2, **params, **({"cursor": cursor} if cursor else {})}).json()
        found += page["deliveries"]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def start_worker(service, log_name):
    """`python main.py worker` (OCR and, in its own thread, the deliverer) beside gunicorn, on the
    service's settings; ready once its heartbeat says so."""
    with open(service.storage_root.parent / f"{log_name}.log", "wb") as log:
        process = subprocess.Popen([sys.executable, "main.py", "worker"], cwd=ROOT, env=service.env, stdout=log,
                                   stderr=subprocess.STDOUT)
    wait_for(lambda: any(w["pid"] == process.pid and w["state"] == "ready" for w in
                         requests.get(f"{service.base}/api/status", headers=HEADERS, timeout=10).json()["worker"]["workers"]),
             120, "the worker")
    return process


def test_every_event_arrives_once_accepted_through_hangs_outages_errors_and_a_killed_worker(tmp_path, database_url):
    db = Database(database_url)
    upgrade_to_head(db)
    other_key, _ = create_key(db, "other", role="admin")
    db.dispose()
    receiver = Receiver().start()
    worker = None
    try:
        with running_service(tmp_path / "storage", database_url, print_log_tail=True, WORKER_ENABLED="false",
                             **SETTINGS) as service:
            base = service.base
            worker = start_worker(service, "worker-1")
            configured = requests.put(f"{base}/api/webhooks/config", headers=HEADERS, json={"url": receiver.url},
                                      timeout=10).json()
            receiver.secret = configured["secret"]

            # 1. The receiver answers: each event arrives, signed; OCR time as a baseline.
            healthy = [upload_and_wait(base, seed) for seed in (40, 41, 42)]
            wait_for(lambda: len(receiver.accepted_ids()) == 3, 30, "the first three events")

            # 2. The receiver hangs (accepts, never answers): OCR does not wait for it.
            receiver.mode = "hang"
            hanging = [upload_and_wait(base, seed) for seed in (43, 44, 45)]
            wait_for(lambda: any("Timeout" in (h["error"] or "") for d in all_deliveries(base) for h in d["history"]),
                     30, "a timed-out attempt")
            healthy_median = statistics.median(s for _, s in healthy)
            hanging_median = statistics.median(s for _, s in hanging)
            print(f"upload to processed, median: receiver up {healthy_median:.2f}s, receiver hanging "
                  f"{hanging_median:.2f}s")
            assert hanging_median <= 2 * healthy_median + 1.0, (healthy, hanging)

            # 3. The worker (and its deliverer) is killed with deliveries in flight; the receiver goes down.
            worker.kill()  # SIGKILL: no clean-up, claims left behind
            worker.wait(timeout=30)
            receiver.stop()
            receiver.mode = "ok"
            worker = start_worker(service, "worker-2")
            later = [upload_and_wait(base, seed) for seed in (46, 47)]
            wait_for(lambda: any("ConnectionError" in (h["error"] or "") for d in all_deliveries(base)
                                 for h in d["history"]), 60, "a refused attempt")

            # 4. Back, but answering 500 after reading: the same events come again.
            receiver.mode = "error"
            receiver.start()
            wait_for(lambda: any(len(tries) >= 2 for tries in receiver.requests_by_id().values()), 60, "a repeat")

            # 5. Answering 200: everything arrives.
            receiver.mode = "ok"
            uploads = [u for u, _ in healthy + hanging] + [u for u, _ in later]
            wait_for(lambda: all(d["state"] == "delivered" for d in all_deliveries(base))
                     and len(all_deliveries(base)) == len(uploads), 120, "every delivery delivered")

            listed = all_deliveries(base)
            assert sorted(d["upload_id"] for d in listed) == sorted(uploads)  # one event per upload
            assert {d["event_type"] for d in listed} == {"upload.processed"}
            assert receiver.accepted_ids() == {d["event_id"] for d in listed}  # none lost
            for event_id, tries in receiver.requests_by_id().items():
                assert all(t["valid"] and t["header_id"] == event_id for t in tries)
                assert len({t["body"] for t in tries}) == 1  # a repeat is the same event, byte for byte
            assert any(d["attempts"] > 1 for d in listed)
            # Every try is in the history (a try whose claim was lost is history without counting as an attempt).
            assert sum(len(d["history"]) for d in listed) >= sum(d["attempts"] for d in listed)
            assert all(d["history"][-1]["status_code"] == 200 for d in listed)
            print("deliveries:", len(listed), "attempts:", sum(len(d["history"]) for d in listed),
                  "requests received:", len(receiver.received))

            # Another tenant sees none of it.
            assert all_deliveries(base, other_key) == []
            stolen = requests.post(f"{base}/api/webhooks/deliveries/{listed[0]['id']}/resend",
                                   headers={"X-API-Key": other_key}, timeout=10)
            assert stolen.status_code == 404
            mine = requests.get(f"{base}/api/webhooks/config", headers={"X-API-Key": other_key}, timeout=10).json()
            assert mine["config"] is None
            # A resend of a delivered event: same id again.
            resent = requests.post(f"{base}/api/webhooks/deliveries/{listed[0]['id']}/resend", headers=HEADERS,
                                   timeout=10)
            assert resent.status_code == 200
            wait_for(lambda: len(receiver.requests_by_id()[listed[0]["event_id"]]) >= 2
                     and all_deliveries(base)[0]["state"] == "delivered", 30, "the resend")
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=60) == 0
    finally:
        receiver.stop()
        if worker is not None and worker.poll() is None:
            worker.kill()


def test_main_py_webhooks_deliver_runs_the_deliverer_alone(tmp_path, database_url):
    receiver = Receiver().start()
    try:
        with running_service(tmp_path / "storage", database_url, WORKER_ENABLED="false", **SETTINGS) as service:
            base = service.base
            receiver.secret = requests.put(f"{base}/api/webhooks/config", headers=HEADERS, json={"url": receiver.url},
                                           timeout=10).json()["secret"]
            receipt = generate_receipt(50, variant="clean")
            requests.post(f"{base}/api/upload", headers=HEADERS, timeout=30,
                          files={"files": ("r.png", receipt.image_bytes, "image/png")}).raise_for_status()
            batch = requests.post(f"{base}/api/ocr/process_batch", headers=HEADERS, json={}, timeout=300).json()
            assert batch["files_processed"] == 1, batch
            time.sleep(1.5)
            assert [d["state"] for d in all_deliveries(base)] == ["pending"] and receiver.received == []  # no deliverer
            alone = subprocess.Popen([sys.executable, "main.py", "webhooks", "deliver"], cwd=ROOT, env=service.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_for(lambda: [d["state"] for d in all_deliveries(base)] == ["delivered"], 60, "the delivery")
                assert len(receiver.accepted_ids()) == 1
            finally:
                alone.send_signal(signal.SIGTERM)
                assert alone.wait(timeout=30) == 0
    finally:
        receiver.stop()


def test_gunicorn_restarts_a_killed_ocr_worker_and_its_deliverer_resumes(tmp_path, database_url):
    receiver = Receiver().start()
    try:
        with running_service(tmp_path / "storage", database_url, **SETTINGS) as service:
            base = service.base
            receiver.secret = requests.put(f"{base}/api/webhooks/config", headers=HEADERS, json={"url": receiver.url},
                                           timeout=10).json()["secret"]
            receiver.stop()  # down: the first event waits in the outbox
            first, _ = upload_and_wait(base, 60)

            def ocr_workers():
                found = []
                for process in service.processes()[1:]:
                    try:
                        if "worker" in " ".join(process.cmdline()):
                            found.append(process)
                    except psutil.Error:  # the killed one, a zombie until reaped
                        pass
                return found

            killed = ocr_workers()[0]
            killed.send_signal(signal.SIGKILL)
            wait_for(lambda: [p.pid for p in ocr_workers()] not in ([], [killed.pid]), 60, "a new OCR worker")
            receiver.start()
            second, _ = upload_and_wait(base, 61)
            wait_for(lambda: len(receiver.accepted_ids()) == 2, 60, "both events")
            assert sorted(d["upload_id"] for d in all_deliveries(base)) == [first, second]
    finally:
        receiver.stop()
