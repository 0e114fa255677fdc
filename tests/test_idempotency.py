"""Issue 10 item 3: `Idempotency-Key` on POST /api/upload. A retried upload gives one upload; the
same key with another body is refused; keys are per tenant and expire after 24 h. The race runs
against the real server (two gunicorn web processes), on SQLite and PostgreSQL."""
import io
import threading
from datetime import timedelta

import pytest
import requests
from sqlalchemy import func, select, update

from benchmarks.service_process import running_service
from database import IdempotencyKey, Upload, utcnow
from service.access import create_key
from service.housekeeping import purge_finished
from service.idempotency import fingerprint
from tests.test_tenants import ADMIN_KEY, _migrated, image_bytes, keyed


def send(client, key, data, idempotency=None, **metadata):
    headers = {**keyed(key), **({"Idempotency-Key": idempotency} if idempotency is not None else {})}
    return client.post("/api/upload", headers=headers, content_type="multipart/form-data",
                       data={"nombre": "Ana", **metadata, "files": [(io.BytesIO(data), "r.png")]})


def uploads(rt):
    with rt.db.session() as session:
        return session.scalar(select(func.count()).select_from(Upload))


def test_the_same_key_and_body_answers_the_first_response_and_stores_nothing_new(make_app):
    app = make_app(API_KEYS=[ADMIN_KEY])
    rt = app.extensions["ocr_runtime"]
    other, _ = create_key(rt.db, "other")
    client = app.test_client()
    first = send(client, ADMIN_KEY, image_bytes(1), "bot-retry-1")
    again = send(client, ADMIN_KEY, image_bytes(1), "bot-retry-1")
    assert first.status_code == again.status_code == 200
    assert first.get_json() == again.get_json() and uploads(rt) == 1
    # Another body with the key: refused, nothing stored.
    for data, metadata in ((image_bytes(2), {}), (image_bytes(1), {"nombre": "Otra"})):
        refused = send(client, ADMIN_KEY, data, "bot-retry-1", **metadata)
        assert refused.status_code == 422 and refused.get_json()["error"]["code"] == "idempotency_key_reused"
    assert uploads(rt) == 1
    # Keys are per tenant: the other tenant's same key is its own.
    theirs = send(client, other, image_bytes(1), "bot-retry-1")
    assert theirs.status_code == 200 and theirs.get_json()["files_processed"][0]["id"] != \
        first.get_json()["files_processed"][0]["id"]
    # Without a key, a resend is a new upload (a duplicate of the first).
    plain = send(client, ADMIN_KEY, image_bytes(1)).get_json()["files_processed"][0]
    assert plain["duplicado_de"] == first.get_json()["files_processed"][0]["id"]
    assert uploads(rt) == 3


def test_bad_keys_failed_requests_and_expiry(make_app):
    app = make_app()
    rt = app.extensions["ocr_runtime"]
    client = app.test_client()
    for bad in ("", "x" * 256, "clé-ñ", "tab\there"):
        answer = send(client, None, image_bytes(1), bad)
        assert answer.status_code == 400 and answer.get_json()["error"]["details"]["field"] == "Idempotency-Key", bad
    # A request that stores nothing does not use up its key.
    empty = client.post("/api/upload", headers={"Idempotency-Key": "k1"}, content_type="multipart/form-data",
                        data={"files": [(io.BytesIO(b"not an image"), "r.png")]})
    assert empty.status_code == 400
    assert send(client, None, image_bytes(1), "k1").status_code == 200
    # After 24 h the key is free again, and the housekeeping forgets it.
    with rt.db.session() as session:
        session.execute(update(IdempotencyKey).values(created_at=utcnow() - timedelta(hours=25)))
        session.commit()
    assert send(client, None, image_bytes(3), "k1").status_code == 200 and uploads(rt) == 2
    with rt.db.session() as session:
        session.execute(update(IdempotencyKey).values(created_at=utcnow() - timedelta(hours=25)))
        session.commit()
    assert purge_finished(rt, 24)["idempotency_keys_expired"] == 1


def test_a_key_left_by_a_request_that_died_is_freed(make_app):
    app = make_app()
    rt = app.extensions["ocr_runtime"]
    with rt.db.session() as session:  # what a web process killed between claiming the key and storing leaves
        session.add(IdempotencyKey(tenant_id=1, key="k2", fingerprint="0" * 64, created_at=utcnow() - timedelta(hours=1)))
        session.commit()
    assert send(app.test_client(), None, image_bytes(4), "k2").status_code == 200 and uploads(rt) == 1


SAME_MOMENT = 8


@pytest.mark.slow
@pytest.mark.e2e
def test_concurrent_retries_with_one_key_give_exactly_one_upload_through_the_real_server(tmp_path, database_url):
    db = _migrated(database_url)
    key, _ = create_key(db, "shop")
    db.dispose()
    with running_service(tmp_path / "storage", database_url, WORKER_ENABLED="false", API_KEYS=ADMIN_KEY,
                         UPLOAD_RATE_LIMIT_PER_MINUTE="0") as service:
        for round_number in range(3):
            barrier = threading.Barrier(SAME_MOMENT)
            answers = [None] * SAME_MOMENT
            data = image_bytes(500 + round_number)

            def post(slot, data=data, barrier=barrier, answers=answers, round_number=round_number):
                barrier.wait(timeout=30)
                answers[slot] = requests.post(f"{service.base}/api/upload", headers={
                    **keyed(key), "Idempotency-Key": f"retry-{round_number}"},
                    files={"files": ("r.png", data, "image/png")}, data={"nombre": "Ana"}, timeout=60)

            threads = [threading.Thread(target=post, args=(slot,)) for slot in range(SAME_MOMENT)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)
            assert [a.status_code for a in answers] == [200] * SAME_MOMENT, [a.text for a in answers]
            bodies = [a.json() for a in answers]
            assert all(body == bodies[0] for body in bodies)
        listed = requests.get(f"{service.base}/api/files/pending", headers=keyed(key), timeout=30).json()
        assert listed["count"] == 3  # one upload per key, whatever the number of retries
        assert len({f["sha256"] for f in listed["files"]}) == 3


def test_the_fingerprint_covers_the_uploads_own_callback_url():
    files = [("r.png", "a" * 64)]
    plain = fingerprint({"nombre": "Ana"}, files)
    assert fingerprint({"nombre": "Ana"}, files, None) == plain  # keys stored before keep matching
    told = fingerprint({"nombre": "Ana"}, files, "https://bot.example/a")
    assert told != plain and told != fingerprint({"nombre": "Ana"}, files, "https://bot.example/b")
