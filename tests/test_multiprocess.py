"""Exactly-once processing across real worker processes: `python main.py worker` subprocesses
sharing one STORAGE_ROOT and one database, plus the web deployment's own batch thread.

Covers several workers at once over 200+ receipts, `kill -9` in the middle of a batch followed by
a restart, and SIGTERM handing the current batch back. On SQLite (several processes on one host)
and, with TEST_DATABASE_URL, on PostgreSQL. OCR is real; each worker uses one onnxruntime thread
so that three of them share two cores without oversubscription.
"""
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from functools import lru_cache
from pathlib import Path

import pytest
from sqlalchemy import func, select

from database import Batch, Result, Upload, UploadStatus, WorkerState
from tests.conftest import ISOLATED_ENV, POSTGRES_SECRETS
from tools.receipt_generator import generate_receipt

# Three OCR worker processes and kill -9 timings: alone on the machine, never beside another test process.
pytestmark = [pytest.mark.slow, pytest.mark.serial]

ROOT = Path(__file__).resolve().parents[1]
# storage.atomic_write_bytes writes ".<name>.<8 hex>.tmp" first, then renames it over <name>.
SCRATCH_FILE = re.compile(r"\.(.+)\.json\.[0-9a-f]{8}\.tmp")
METADATA = {"numerosorteo": "M", "fechasorteo": "20250711", "idWhatsapp": "584120000000@lid", "nombre": "Carga",
            "horamin": "10-00"}


@lru_cache(maxsize=None)
def receipt(seed: int) -> bytes:
    # Small images OCR fastest; distinct seeds give distinct bytes, so nothing is deduplicated.
    return generate_receipt(seed, variant="lowres").image_bytes


class WorkerProcess:
    """One `python main.py worker` process with its own log file."""

    def __init__(self, storage_root: Path, database_url: str, name: str, **settings: str) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ISOLATED_ENV}
        env.update(STORAGE_ROOT=str(storage_root), DATABASE_URL=database_url, ORT_INTRA_OP_THREADS="1",
                   WORKER_POLL_INTERVAL_SECONDS="0.2", INBOX_ADOPT_MIN_AGE_SECONDS="0", CLEANUP_INTERVAL_SECONDS="0",
                   OCR_MAX_IMAGES_PER_BATCH="8", LOG_LEVEL="INFO")
        if database_url.startswith("postgresql"):
            env.update(POSTGRES_SECRETS)  # every host is given them; a worker refuses to start without
        env.update(settings)
        self.log_path = storage_root.parent / f"{name}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([sys.executable, "main.py", "worker"], cwd=ROOT, env=env,
                                            stdout=log, stderr=subprocess.STDOUT)
        self.pid = self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 60) -> float:
        """SIGTERM; returns the seconds it took to exit."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=timeout)
        return time.monotonic() - started

    def kill(self) -> None:
        self.process.kill()  # SIGKILL: no handler, no clean-up, like an OOM kill or a pulled plug
        self.process.wait(timeout=30)

    def __enter__(self) -> "WorkerProcess":
        return self

    def __exit__(self, *exc) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        if exc[0] is not None:
            print(f"--- {self.log_path.name}\n{self.log()[-3000:]}")


def upload_all(client, seeds, per_request=50):
    names = []
    for start in range(0, len(seeds), per_request):
        chunk = seeds[start:start + per_request]
        data = {**METADATA, "files": [(io.BytesIO(receipt(s)), f"{s}.jpg") for s in chunk]}
        response = client.post("/api/upload", data=data, content_type="multipart/form-data")
        assert response.status_code == 200, response.get_data(as_text=True)
        names.extend(f["stored_name"] for f in response.get_json()["files_processed"])
    return names


def engine_lookups(cache_stats):
    return cache_stats["hits"] + cache_stats["misses"]


def count(rt, *conditions):
    with rt.db.session() as session:
        return session.scalar(select(func.count()).select_from(Upload).where(*conditions))


def claimed_by_pid(pid: int):
    return Upload.claimed_by.like(f"worker:%:{pid}:%")


def wait_for(condition, timeout, workers=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        for worker in workers:
            assert worker.process.poll() is None, worker.log()[-3000:]
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s")


def all_finished(rt, total):
    return lambda: count(rt, Upload.status.in_(UploadStatus.FINISHED)) == total


def files(rt, key):
    return sorted(p.name for p in rt.storage.dirs[key].iterdir())


def assert_processed_exactly_once(rt, names, killed=False):
    """Each upload: processed, one result row, one result file that agrees with it; nothing left over.

    killed: a kill -9 during a result write leaves that write's hidden scratch file (the atomic write
    is what keeps the result itself whole); the retention sweep removes it later.
    """
    with rt.db.session() as session:
        uploads = {u.stored_name: u for u in session.scalars(select(Upload))}
        results = session.execute(select(Result.upload_id, Result.filename, Result.request_id)).all()
        running = session.scalar(select(func.count()).select_from(Batch).where(Batch.state.in_(("queued", "running"))))
    assert sorted(uploads) == sorted(names)
    assert {u.status for u in uploads.values()} == {"processed"}
    assert all(u.claimed_by is None for u in uploads.values())
    assert sorted(r.upload_id for r in results) == sorted(u.id for u in uploads.values())  # one each, none twice
    results_dir = files(rt, "results")
    scratch = [f for f in results_dir if f.startswith(".")]
    if scratch:
        assert killed, scratch
        assert all((m := SCRATCH_FILE.fullmatch(f)) and m.group(1) in names for f in scratch), scratch
    assert [f for f in results_dir if not f.startswith(".")] == sorted(f"{n}.json" for n in names)
    for result in results:
        stored = json.loads((rt.storage.dirs["results"] / f"{result.filename}.json").read_text(encoding="utf-8"))
        assert stored["filename"] == result.filename and stored["request_id"] == result.request_id
    assert files(rt, "processed") == sorted(names)
    assert files(rt, "processing") == [] and files(rt, "inbox") == [] and files(rt, "errors") == []
    assert running == 0
    return uploads


# --- several workers and the web deployment at once ---------------------------------------------
def test_three_worker_processes_and_the_web_batch_process_each_file_exactly_once(make_app, database_url, orquestador,
                                                                                  monkeypatch):
    distinct, repeated = list(range(5000, 5200)), list(range(5000, 5010))
    app = make_app()
    rt = app.extensions["ocr_runtime"]
    client = app.test_client()
    names = upload_all(client, distinct)
    duplicates = upload_all(client, repeated)  # the same bytes again: served from the first results
    total = len(names) + len(duplicates)
    web_lookups_before = engine_lookups(orquestador.aplicador.cache_stats())
    started = time.monotonic()

    # No worker is alive yet, so the web deployment starts processing this batch in its own thread...
    monkeypatch.setitem(rt.settings, "OCR_MAX_IMAGES_PER_BATCH", 8)
    accepted = client.post("/api/ocr/process_batch", json={"async": True})
    assert accepted.status_code == 202
    # ...and three worker processes come up and claim from the same queue meanwhile.
    with ExitStack() as stack:
        workers = [stack.enter_context(WorkerProcess(Path(rt.settings["STORAGE_ROOT"]), database_url, f"worker{i}"))
                   for i in range(3)]
        wait_for(all_finished(rt, total), 300, workers)
        elapsed = time.monotonic() - started
        for thread in threading.enumerate():
            if thread.name == "ocr-manual-batch":
                thread.join(timeout=60)
        for worker in workers:
            assert worker.terminate() < 30 and worker.process.returncode == 0

    uploads = assert_processed_exactly_once(rt, names + duplicates)
    assert all(u.attempts == 1 for u in uploads.values())  # every upload was claimed once, by one process
    with rt.db.session() as session:
        states = {w.pid: w for w in session.scalars(select(WorkerState))}
        web_batch = session.scalar(select(Batch).where(Batch.request_id == accepted.get_json()["request_id"]))
        reused = session.scalars(select(Result.document).join(Upload, Upload.id == Result.upload_id)
                                 .where(Upload.duplicado_de.is_not(None))).all()
    by_worker = {w.pid: states[w.pid].images_processed for w in workers}
    assert all(by_worker.values()) and web_batch.processed_count > 0  # everyone took part
    assert sum(by_worker.values()) + web_batch.processed_count == total  # and no image was finished twice
    # Every image that reaches an engine is looked up in its result cache once: each distinct image
    # went through an engine exactly once, and not one duplicate did.
    web_lookups = engine_lookups(orquestador.aplicador.cache_stats()) - web_lookups_before
    assert sum(engine_lookups(states[w.pid].cache_stats) for w in workers) + web_lookups == len(distinct)
    assert len(reused) == len(duplicates) and all(d["processing_metadata"]["reused_from"] for d in reused)
    print(f"\n{rt.db.dialect}: {total} uploads ({len(distinct)} distinct) by 3 worker processes {by_worker} "
          f"+ web batch {web_batch.processed_count} in {elapsed:.1f}s; results per upload: exactly 1; "
          f"OCR runs: {len(distinct)}; duplicates processed twice: 0")


# --- crash and restart ----------------------------------------------------------------------------
def test_kill_9_in_the_middle_of_a_batch_then_restart_processes_everything_once(make_app, database_url):
    app = make_app()
    rt = app.extensions["ocr_runtime"]
    names = upload_all(app.test_client(), list(range(7000, 7040)))
    storage_root = Path(rt.settings["STORAGE_ROOT"])
    lease = {"CLAIM_LEASE_SECONDS": "4"}
    with WorkerProcess(storage_root, database_url, "doomed", **lease) as doomed:
        held = 0
        while not held and not all_finished(rt, len(names))():
            wait_for(lambda: count(rt, Upload.status == "processed") >= 6 and count(rt, claimed_by_pid(doomed.pid)) > 0,
                     120, [doomed])
            # Frozen first, so the claims counted are the ones the kill interrupts: on a busy
            # machine a round can end between a check and an unfrozen kill.
            doomed.process.send_signal(signal.SIGSTOP)
            held = count(rt, claimed_by_pid(doomed.pid), Upload.status == "processing")
            if not held:
                doomed.process.send_signal(signal.SIGCONT)
                time.sleep(0.05)
        doomed.kill()
    finished_before = count(rt, Upload.status == "processed")
    assert held > 0, "the worker was killed between batches; nothing was in flight"

    with WorkerProcess(storage_root, database_url, "successor", **lease) as successor:
        wait_for(all_finished(rt, len(names)), 180, [successor])
        assert successor.terminate() < 30 and successor.process.returncode == 0
    uploads = assert_processed_exactly_once(rt, names, killed=True)
    attempts = sorted(u.attempts for u in uploads.values())
    assert attempts.count(2) == held and set(attempts) <= {1, 2}  # only the images in flight were retried
    with rt.db.session() as session:
        lost_round = session.scalars(select(Batch).where(Batch.error_message == "worker lost")).all()
    assert len(lost_round) == 1 and lost_round[0].state == "failed"
    print(f"\n{rt.db.dialect}: kill -9 with {held} images in flight after {finished_before} done; "
          f"after restart {len(names)} processed, each exactly once")


def test_sigterm_hands_the_current_batch_back_then_a_restart_finishes_it(make_app, database_url):
    app = make_app()
    rt = app.extensions["ocr_runtime"]
    names = upload_all(app.test_client(), list(range(8000, 8040)))
    storage_root = Path(rt.settings["STORAGE_ROOT"])
    # One round claims the whole queue: reading it all takes ~10 s, far longer than a stop may.
    with WorkerProcess(storage_root, database_url, "stopped", OCR_MAX_IMAGES_PER_BATCH="40") as stopped:
        wait_for(lambda: count(rt, Upload.status == "processed") >= 2, 120, [stopped])
        took = stopped.terminate()
        assert stopped.process.returncode == 0
    # Bounded by one OCR chunk (4 images), not by the 40-image batch.
    assert took < 10, f"SIGTERM took {took:.1f}s: the worker finished its batch instead of handing it back"

    with rt.db.session() as session:
        uploads = session.scalars(select(Upload)).all()
        [round_] = session.scalars(select(Batch)).all()
        state = session.scalar(select(WorkerState.state).where(WorkerState.pid == stopped.pid))
    done = [u for u in uploads if u.status == "processed"]
    waiting = [u for u in uploads if u.status != "processed"]
    assert waiting and {u.status for u in waiting} == {"pending"}  # handed back, not left claimed
    assert all(u.claimed_by is None and u.attempts == 0 and u.request_id is None for u in waiting)
    assert files(rt, "processing") == []
    assert files(rt, "inbox") == sorted(u.stored_name for u in waiting)
    assert files(rt, "results") == sorted(f"{u.stored_name}.json" for u in done)
    assert round_.state == "completed" and round_.processed_count == len(done) and round_.total_files == len(names)
    assert state == "stopped"

    with WorkerProcess(storage_root, database_url, "restarted") as restarted:
        wait_for(all_finished(rt, len(names)), 180, [restarted])
        assert restarted.terminate() < 10 and restarted.process.returncode == 0  # idle: stops at once
    uploads = assert_processed_exactly_once(rt, names)
    assert {u.attempts for u in uploads.values()} == {1}  # the handed-back attempt was refunded
    print(f"\n{rt.db.dialect}: SIGTERM after {len(done)} of {len(names)} exited in {took:.1f}s, "
          f"{len(waiting)} handed back and finished after restart")
