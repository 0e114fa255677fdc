"""Wake on upload: a committed upload wakes a waiting worker at once, and a lost wake-up loses nothing.

Real uploads through the app, a real worker loop in a thread and the real OCR, on SQLite (FIFOs in
the data directory) and PostgreSQL (LISTEN/NOTIFY). The worker's poll interval is made long, so a
result well inside it can only come from a wake-up.
"""
import io
import os
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import select, text

from database import Upload
from service.wakeup import CHANNEL_SQL, RECONNECT_SECONDS, WakeupListener, announce_new_work, ring_local_workers, wakeup_directory
from tools.receipt_generator import generate_receipt
from worker import Worker

# Generous for a loaded 2-core machine; the poll intervals below are far longer.
RESULT_SECONDS = 15.0


def upload(client, seed):
    image = generate_receipt(seed, variant="clean").image_bytes
    response = client.post("/api/upload", data={"files": [(io.BytesIO(image), "r.png")], "nombre": "Ana"},
                           content_type="multipart/form-data")
    assert response.status_code == 200, response.get_json()
    return response.get_json()["files_processed"][0]["stored_name"]


def status_of(rt, name):
    with rt.db.session() as session:
        return session.scalar(select(Upload.status).where(Upload.stored_name == name))


def wait_processed(rt, name, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if status_of(rt, name) == "processed":
            return True
        time.sleep(0.02)
    return False


def started_worker(rt, orquestador):
    worker = Worker(rt, orquestador, "waiting-worker")
    thread = worker.run_in_thread()
    deadline = time.monotonic() + 60
    while not worker.wakeups.listening and time.monotonic() < deadline:
        time.sleep(0.05)
    assert worker.wakeups.listening
    return worker, thread


def stop(worker, thread):
    worker.stop()
    thread.join(timeout=30)
    assert not thread.is_alive()


def add_pending_upload(session, name):
    session.add(Upload(stored_name=name, original_name="x.png", sha256="0" * 64, size_bytes=10))


def commit_upload_row(rt, name):
    """What store_uploads does around its rows: announce inside the transaction, then commit."""
    with rt.db.session() as session:
        add_pending_upload(session, name)
        announce_new_work(rt, session)
        session.commit()


@contextmanager
def opened(rt, worker_id):
    listener = WakeupListener(rt, worker_id)
    listener.open()
    try:
        yield listener
    finally:
        listener.close()


def woken_at_once(listener):
    began = time.monotonic()
    return listener.wait(30) is True and time.monotonic() - began < 1.0


# --- the mechanism ----------------------------------------------------------------------------
def test_a_commit_wakes_a_listener_and_a_rollback_does_not(runtime):
    with opened(runtime, "w1") as listener:
        assert listener.listening
        with runtime.db.session() as session:
            add_pending_upload(session, "rolled-back.png")
            announce_new_work(runtime, session)
            session.flush()
            session.rollback()
        assert listener.wait(0.5) is False
        with runtime.db.session() as session:
            add_pending_upload(session, "committed.png")
            announce_new_work(runtime, session)
            session.flush()
            assert listener.wait(0.3) is False  # not before the commit: the row would not be visible yet
            session.commit()
        assert woken_at_once(listener)
        assert listener.wait(0.2) is False  # one commit, one wake-up: nothing left over


def test_wake_ups_committed_while_nobody_waits_are_kept_for_the_next_wait(runtime):
    with opened(runtime, "busy") as listener:
        commit_upload_row(runtime, "a.png")  # committed while the worker is busy with a round
        commit_upload_row(runtime, "b.png")
        time.sleep(0.3)
        assert woken_at_once(listener)
        assert listener.wait(0.2) is False  # both taken by that one wait


def test_interrupt_ends_a_wait_at_once(runtime):
    with opened(runtime, "w2") as listener:
        listener.interrupt()
        assert woken_at_once(listener)
    listener.interrupt()  # after close: nothing to do, no error


def test_wake_ups_can_be_turned_off(make_app):
    rt = make_app(WORKER_WAKE_ON_UPLOAD=False).extensions["ocr_runtime"]
    with opened(rt, "off") as listener:
        assert not listener.listening
        commit_upload_row(rt, "quiet.png")
        assert listener.wait(0.3) is False


@pytest.fixture
def sqlite_runtime(runtime):
    if runtime.db.dialect != "sqlite":
        pytest.skip("the local wake-up is SQLite's")
    return runtime


def test_a_dead_workers_fifo_is_removed_and_a_live_one_rung(sqlite_runtime):
    directory = wakeup_directory(sqlite_runtime)
    with opened(sqlite_runtime, "worker:host:1:abc") as listener:
        assert listener.fifo_path.parent == directory and listener.fifo_path.exists()
        os.mkfifo(directory / "dead.fifo")
        (directory / "trap.fifo").write_text("a plain file")  # named like a FIFO, never written into
        (directory / "link.fifo").symlink_to(listener.fifo_path)
        assert ring_local_workers(directory) == 1
        assert not (directory / "dead.fifo").exists()
        assert (directory / "trap.fifo").read_text() == "a plain file" and (directory / "link.fifo").is_symlink()
        assert woken_at_once(listener)
    assert not listener.fifo_path.exists()  # a stopped worker leaves nothing behind
    assert ring_local_workers(Path(directory) / "missing") == 0


def test_a_data_directory_deeper_than_a_socket_address_works(make_app, tmp_path, database_url):
    if not database_url.startswith("sqlite"):
        pytest.skip("the local wake-up is SQLite's")
    deep = tmp_path.joinpath(*["a-rather-long-directory-name"] * 6) / "data"
    rt = make_app(DATA_DIR=str(deep), DATABASE_URL=f"sqlite:///{tmp_path / 'deep.db'}").extensions["ocr_runtime"]
    with opened(rt, "deep") as listener:
        assert len(str(listener.fifo_path)) > 108
        assert ring_local_workers(wakeup_directory(rt)) == 1
        assert woken_at_once(listener)


@pytest.mark.slow
def test_a_listener_whose_connection_is_killed_falls_back_to_polling_and_listens_again(runtime):
    if runtime.db.dialect != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's")
    with opened(runtime, "killed") as listener:
        with runtime.db.session() as session:
            channel = session.scalar(text(f"SELECT {CHANNEL_SQL}"))
            killed = session.scalar(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                         "WHERE query = :listen"), {"listen": f'LISTEN "{channel}"'})
        assert killed == 1
        assert listener.wait(5) is True  # the broken connection ends the wait: look for work now
        assert not listener.listening
        time.sleep(RECONNECT_SECONDS)
        assert listener.wait(0) is False and listener.listening  # listening again
        commit_upload_row(runtime, "after-reconnect.png")
        assert woken_at_once(listener)


# --- the worker -------------------------------------------------------------------------------
def test_an_upload_wakes_the_waiting_worker_without_waiting_for_the_poll(make_app, orquestador):
    app = make_app(WORKER_POLL_INTERVAL_SECONDS=120)
    rt, client = app.extensions["ocr_runtime"], app.test_client()
    worker, thread = started_worker(rt, orquestador)
    try:
        for seed in (1, 2):
            time.sleep(1.0)  # the worker has looked for work and is waiting out its 120 s poll
            began = time.monotonic()
            name = upload(client, seed)
            assert wait_processed(rt, name, RESULT_SECONDS), status_of(rt, name)
            assert time.monotonic() - began < RESULT_SECONDS
    finally:
        stop(worker, thread)


@pytest.mark.slow
def test_a_lost_wake_up_costs_the_poll_interval_and_loses_nothing(make_app, orquestador):
    poll = 6.0
    waking = make_app(WORKER_POLL_INTERVAL_SECONDS=poll)
    # The same service with its wake-ups dropped: uploads through it reach the worker by polling only.
    silent = make_app(WORKER_POLL_INTERVAL_SECONDS=poll, WORKER_WAKE_ON_UPLOAD=False).test_client()
    rt = waking.extensions["ocr_runtime"]
    worker, thread = started_worker(rt, orquestador)
    try:
        time.sleep(1.0)
        first = upload(waking.test_client(), 3)
        assert wait_processed(rt, first, RESULT_SECONDS)
        # The worker finished a round, found nothing more, and now waits out a whole poll interval.
        woke_last = time.monotonic()
        time.sleep(1.5)
        lost = upload(silent, 4)
        time.sleep(2.0)
        assert status_of(rt, lost) == "pending"  # nobody was woken
        assert wait_processed(rt, lost, poll + RESULT_SECONDS)
        assert time.monotonic() - woke_last >= poll - 1.0  # picked up by the poll, not before it
    finally:
        stop(worker, thread)


def test_a_queued_manual_batch_wakes_the_waiting_worker(make_app, orquestador):
    app = make_app(WORKER_POLL_INTERVAL_SECONDS=120)
    client, rt = app.test_client(), app.extensions["ocr_runtime"]
    silent = make_app(WORKER_POLL_INTERVAL_SECONDS=120, WORKER_WAKE_ON_UPLOAD=False).test_client()
    worker, thread = started_worker(rt, orquestador)
    try:
        time.sleep(1.0)
        name = upload(silent, 5)  # pending, and the worker was not told
        time.sleep(1.0)
        assert status_of(rt, name) == "pending"
        response = client.post("/api/ocr/process_batch", json={"async": True})
        assert response.status_code == 202
        assert wait_processed(rt, name, RESULT_SECONDS)
        state = client.get(f"/api/ocr/result/{response.get_json()['request_id']}").get_json()
        assert state["source"] == "manual" and [f["filename"] for f in state["files"]] == [name]
    finally:
        stop(worker, thread)
