"""Trust (issue 9, items 1, 2, 3, 6, 9): closed by default, keys and roles, tenants that never see
each other, same-moment identical uploads with exactly one original, paging, the smaller holes.

The attacker tests and the closed-by-default tests drive the real service under gunicorn; the
database tests run on SQLite and, with TEST_DATABASE_URL, on PostgreSQL.
"""
import hashlib
import io
import json
import re
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from PIL import Image
from sqlalchemy import select, update

from app import create_app
from benchmarks.service_process import running_service
from database import ApiKey, Database, Payment, Result, Upload, utcnow
from migrations_runner import upgrade_to_head
from service.access import create_key
from service.housekeeping import purge_finished
from service.results import finish_upload
from tests.conftest import ISOLATED_ENV, POSTGRES_SECRETS, TEST_OVERRIDES
from tools.receipt_generator import generate_receipt

ROOT = Path(__file__).resolve().parents[1]
ADMIN_KEY = "bootstrap-admin-key-for-tests-5c1d"


def image_bytes(seed: int) -> bytes:
    """A small PNG unique to `seed` (valid for the upload check)."""
    image = Image.new("RGB", (64, 48), (seed % 251, (seed * 7) % 251, (seed * 13) % 251))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def keyed(key):
    return {"X-API-Key": key} if key else {}


def upload(client, key, data, **metadata):
    return client.post("/api/upload", headers=keyed(key), content_type="multipart/form-data",
                       data={"nombre": "Ana", **metadata, "files": [(io.BytesIO(data), "r.png")]})


# --- keys --------------------------------------------------------------------------------------
def test_keys_cli_prints_a_key_once_stores_only_its_hash_and_revokes(service_env, database_url):
    env = {k: v for k, v in __import__("os").environ.items() if k not in ISOLATED_ENV}
    env.update(DATABASE_URL=database_url, STORAGE_ROOT=str(service_env))

    def keys(*args):
        run = subprocess.run([sys.executable, "main.py", "keys", *args], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=120)
        return run.returncode, run.stdout

    code, out = keys("create", "--tenant", "acme", "--role", "client", "--name", "shop bot")
    assert code == 0, out
    created = json.loads(out)
    key = created["key"]
    assert key.startswith("ocrk_") and len(key) > 40 and created["role"] == "client"
    code, listed = keys("list")
    assert code == 0 and key not in listed
    entry = json.loads(listed.splitlines()[0])
    assert (entry["tenant"], entry["role"], entry["name"], entry["revoked"]) == ("acme", "client", "shop bot", False)
    assert key.startswith(entry["prefix"])
    db = Database(database_url)
    with db.session() as session:
        stored = session.scalars(select(ApiKey)).all()
        assert all(key not in repr(vars(row)) for row in stored)  # only the hash is kept

    app = create_app({**TEST_OVERRIDES, "DATABASE_URL": database_url})
    client = app.test_client()
    assert client.get("/api/files/pending", headers=keyed(key)).status_code == 200
    assert client.get("/api/files/pending").status_code == 401  # a key exists now: closed to anonymous callers
    assert keys("revoke", str(created["id"]))[0] == 0
    assert client.get("/api/files/pending", headers=keyed(key)).status_code == 401
    assert keys("create", "--tenant", "Not A Name")[0] == 2
    assert keys("revoke", "999")[0] == 2
    app.extensions["ocr_runtime"].db.dispose()
    db.dispose()


def test_client_keys_get_403_on_admin_endpoints_and_no_system_details(make_app):
    app = make_app(API_KEYS=[ADMIN_KEY])
    client_key, _ = create_key(app.extensions["ocr_runtime"].db, "acme")
    client = app.test_client()
    for method, path in (("POST", "/api/clean"), ("GET", "/metrics"), ("GET", "/api/metrics"),
                         ("GET", "/api/metrics?format=prometheus")):
        denied = client.open(path, method=method, headers=keyed(client_key), json={"retention_hours": 0})
        assert denied.status_code == 403, path
        assert denied.get_json()["error"]["code"] == "forbidden"
        assert client.open(path, method=method, headers=keyed(ADMIN_KEY), json={"retention_hours": 0}).status_code == 200
    for path in ("/api/uploads/1/retry", "/api/batches/BATCH_20250101_000000_abc/retry"):
        denied = client.post(path, headers=keyed(client_key))
        assert denied.status_code == 403 and denied.get_json()["error"]["code"] == "forbidden", path
        assert client.post(path, headers=keyed(ADMIN_KEY)).status_code == 404, path  # nothing to requeue there
    status = client.get("/api/status", headers=keyed(client_key)).get_json()
    assert status["worker"]["workers"] == [] and "dialect" not in status["database"]
    rules = client.get("/api/config/extraction_rules", headers=keyed(client_key)).get_data(as_text=True)
    assert str(ROOT) not in rules
    assert json.loads(rules)["rules"]["source"] == "extraction_rules.json"


# --- tenants, as an attacker would try them -----------------------------------------------------
def _guess_paths(app, known):
    """Every route of the app (read from its url_map, so a new one cannot escape), with each of
    the other tenant's ids and names put in every argument."""
    guesses = []
    for rule in app.url_map.iter_rules():
        if not (rule.rule.startswith("/api") or rule.rule == "/metrics"):
            continue
        arguments = list(rule.arguments)
        values = known["names"] + known["request_ids"] + [str(i) for i in known["ids"]] if arguments else [None]
        for value in values:
            path = re.sub(r"<(?:[^:>]+:)?[^>]+>", str(value), rule.rule) if value is not None else rule.rule
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                guesses.append((method, path))
    queries = [f"?request_id={r}" for r in known["request_ids"]] + [""]
    return guesses, queries


def _attack(base, app, attacker_key, victim, secrets):
    """The attacker's key on every endpoint with every id and name of the victim: nothing leaks."""
    guesses, queries = _guess_paths(app, victim)
    tried = 0
    for method, path in guesses:
        for query in queries:
            if method == "POST" and path.endswith("/clean"):
                body = {"retention_hours": 0}
            else:
                body = {}
            response = requests.request(method, f"{base}{path}{query}", headers=keyed(attacker_key), json=body,
                                        timeout=120)
            tried += 1
            text = response.text
            leaked = [s for s in secrets if s in text]
            assert not leaked, (method, path, query, response.status_code, leaked)
            assert response.status_code < 500, (method, path, query, text[:300])
            for name in victim["names"] + victim["request_ids"]:
                if name in path:
                    # Another tenant's resource answers exactly as a missing one.
                    assert response.status_code in (403, 404), (method, path, response.status_code)
    return tried


def _missing_body(base, key, path):
    body = requests.get(f"{base}{path}", headers=keyed(key), timeout=30).json()
    body["error"].pop("request_id")
    return body


def _migrated(database_url):
    """The database a service under test will open, already at the schema's head."""
    db = Database(database_url)
    upgrade_to_head(db)
    return db


@pytest.mark.slow
@pytest.mark.e2e
def test_a_second_tenant_gets_nothing_of_the_first_through_any_endpoint(tmp_path, database_url):
    db = _migrated(database_url)
    victim_key, _ = create_key(db, "victim")
    attacker_key, _ = create_key(db, "attacker")
    db.dispose()
    with running_service(tmp_path / "storage", database_url, WORKER_ENABLED="false", API_KEYS=ADMIN_KEY,
                         PROCESS_BATCH_MIN_INTERVAL_SECONDS="0", UPLOAD_RATE_LIMIT_PER_MINUTE="0") as service:
        base = service.base
        receipt = generate_receipt(3, variant="clean")
        files = {"files": ("r.png", receipt.image_bytes, "image/png")}
        metadata = {"nombre": "Victima", "idWhatsapp": "584141234567@lid", "numerosorteo": "Z", "fechasorteo": "20250711"}
        first = requests.post(f"{base}/api/upload", files=files, data=metadata, headers=keyed(victim_key), timeout=60).json()
        batch = requests.post(f"{base}/api/ocr/process_batch", json={}, headers=keyed(victim_key), timeout=300).json()
        assert batch["files_processed"] == 1, batch
        pending = requests.post(f"{base}/api/upload", files={"files": ("p.png", image_bytes(1), "image/png")},
                                data=metadata, headers=keyed(victim_key), timeout=60).json()
        document = requests.get(f"{base}/api/ocr/result_data/{first['files_processed'][0]['stored_name']}",
                                headers=keyed(victim_key), timeout=30).json()["data"]
        fields = document["extracted_fields"]
        victim = {"names": [f["stored_name"] for f in first["files_processed"] + pending["files_processed"]],
                  "request_ids": [batch["request_id"]],
                  "ids": [f["id"] for f in first["files_processed"] + pending["files_processed"]]}
        secrets = victim["names"] + victim["request_ids"] + ["584141234567", "Victima"] + \
            [f["sha256"] for f in first["files_processed"]] + \
            [v for k, v in fields.items() if k in ("referencia", "cedula", "telefono", "cuenta_origen") and v]
        assert fields["referencia"], document["validacion"]  # something worth stealing was read

        app = create_app({**TEST_OVERRIDES, **POSTGRES_SECRETS, "DATABASE_URL": database_url,
                          "STORAGE_ROOT": str(tmp_path / "probe")})
        tried = _attack(base, app, attacker_key, victim, secrets)
        app.extensions["ocr_runtime"].db.dispose()
        assert tried > 50

        # The attacker's process_batch did not process the victim's pending upload.
        still = requests.get(f"{base}/api/files/pending", headers=keyed(victim_key), timeout=30).json()
        assert [f["stored_name"] for f in still["files"]] == [pending["files_processed"][0]["stored_name"]]
        # The same bytes uploaded by the attacker are no duplicate of the victim's (no link between tenants).
        mine = requests.post(f"{base}/api/upload", files=files, data={"nombre": "X"}, headers=keyed(attacker_key),
                             timeout=60).json()["files_processed"][0]
        assert mine["duplicado_de"] is None
        # 404 exactly as a missing one.
        for path in (f"/api/ocr/result_data/{victim['names'][0]}", f"/api/ocr/result/{batch['request_id']}"):
            missing = path.rsplit("/", 1)[0] + ("/BATCH_20990101_000000_fff" if "BATCH" in path else "/nothing-here.png")
            assert _missing_body(base, attacker_key, path) == _missing_body(base, attacker_key, missing)
        # Admin endpoints: 403 to client keys, the admin key works.
        assert requests.post(f"{base}/api/clean", json={"retention_hours": 0}, headers=keyed(attacker_key),
                             timeout=30).status_code == 403
        assert requests.get(f"{base}/metrics", headers=keyed(attacker_key), timeout=30).status_code == 403
        assert requests.get(f"{base}/metrics", headers=keyed(ADMIN_KEY), timeout=30).status_code == 200
        # The victim still has everything.
        listed = requests.get(f"{base}/api/extract_results", headers=keyed(victim_key), timeout=30).json()
        assert [d["filename"] for d in listed["results"]] == [victim["names"][0]]


# --- closed by default ---------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.e2e
def test_without_a_key_the_service_listens_on_loopback_only_and_refuses_other_addresses(tmp_path):
    # HOST empty is the default: 127.0.0.1, and the walk-through's anonymous calls work there.
    with running_service(tmp_path / "a", WORKER_ENABLED="false", HOST="") as service:
        assert f"Listening at: http://127.0.0.1:{service.port}" in service.log_path.read_text()
        assert requests.get(f"{service.base}/api/files/pending", timeout=10).status_code == 200
    with pytest.raises(AssertionError) as refused:
        with running_service(tmp_path / "b", WORKER_ENABLED="false", HOST="0.0.0.0"):
            pass
    assert "Refusing to listen on 0.0.0.0 with no API key configured" in str(refused.value)
    with running_service(tmp_path / "c", WORKER_ENABLED="false", HOST="0.0.0.0", ALLOW_ANONYMOUS="true") as service:
        assert f"Listening at: http://0.0.0.0:{service.port}" in service.log_path.read_text()
    with running_service(tmp_path / "d", WORKER_ENABLED="false", HOST="", API_KEYS=ADMIN_KEY) as service:
        assert f"Listening at: http://0.0.0.0:{service.port}" in service.log_path.read_text()
        assert requests.get(f"{service.base}/api/files/pending", timeout=10).status_code == 401
        assert requests.get(f"{service.base}/api/files/pending", headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                            timeout=10).status_code == 200


# --- reuse: same-moment identical uploads ----------------------------------------------------------
ROUNDS = 50
SAME_MOMENT = 4


def test_identical_uploads_at_the_same_moment_give_exactly_one_original(make_app):
    app = make_app(API_KEYS=[ADMIN_KEY])
    misses = []
    for round_number in range(ROUNDS):
        data = image_bytes(1000 + round_number)
        barrier = threading.Barrier(SAME_MOMENT)
        answers = [None] * SAME_MOMENT

        def send(slot, data=data, barrier=barrier, answers=answers):
            client = app.test_client()
            barrier.wait(timeout=30)
            answers[slot] = upload(client, ADMIN_KEY, data)

        threads = [threading.Thread(target=send, args=(slot,)) for slot in range(SAME_MOMENT)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        entries = [answer.get_json()["files_processed"][0] for answer in answers if answer.status_code == 200]
        assert len(entries) == SAME_MOMENT, [a.get_json() for a in answers]
        originals = [e for e in entries if e["duplicado_de"] is None]
        if len(originals) != 1 or any(e["duplicado_de"] != originals[0]["id"] for e in entries if e is not originals[0]):
            misses.append((round_number, [(e["id"], e["duplicado_de"]) for e in entries]))
    assert misses == []
    with app.extensions["ocr_runtime"].db.session() as session:
        assert session.query(Upload).filter(Upload.duplicado_de.is_(None)).count() == ROUNDS


def test_a_duplicate_in_another_tenant_is_not_linked(make_app):
    app = make_app(API_KEYS=[ADMIN_KEY])
    other, _ = create_key(app.extensions["ocr_runtime"].db, "other")
    client = app.test_client()
    data = image_bytes(7)
    first = upload(client, ADMIN_KEY, data).get_json()["files_processed"][0]
    second = upload(client, other, data).get_json()["files_processed"][0]
    third = upload(client, ADMIN_KEY, data).get_json()["files_processed"][0]
    assert (first["duplicado_de"], second["duplicado_de"], third["duplicado_de"]) == (None, None, first["id"])


# --- paging ---------------------------------------------------------------------------------------
def _store_results(db, count, tenant_id):
    with db.session() as session:
        for number in range(count):
            name = f"t{tenant_id}-{number:05d}.png"
            row = Upload(stored_name=name, original_name=name, sha256=f"{tenant_id:02d}{number:062d}", size_bytes=1,
                         tenant_id=tenant_id, status="processed", processed_at=utcnow())
            session.add(row)
            session.flush()
            session.add(Result(upload_id=row.id, tenant_id=tenant_id, filename=name, processing_status="success",
                               document={"filename": name}))
        session.commit()


def test_every_list_pages_with_a_cursor_and_the_export_streams_everything(make_app):
    app = make_app(API_KEYS=[ADMIN_KEY])
    rt = app.extensions["ocr_runtime"]
    other, record = create_key(rt.db, "other")
    _store_results(rt.db, 250, 1)
    _store_results(rt.db, 30, record.tenant_id)
    client = app.test_client()
    for path, key in (("/api/extract_results", "results"), ("/api/files/processed", "files")):
        seen, cursor, pages = [], None, 0
        while True:
            body = client.get(path, headers=keyed(ADMIN_KEY), query_string={"cursor": cursor} if cursor else {}).get_json()
            pages += 1
            seen += [entry.get("filename") or entry.get("stored_name") for entry in body[key]]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert pages == 3 and len(seen) == len(set(seen)) == 250 and all(n.startswith("t1-") for n in seen), path
        small = client.get(path, headers=keyed(other), query_string={"limit": 1000}).get_json()
        assert len(small[key]) == 30 and small["next_cursor"] is None
    exported = client.get("/api/extract_results/export", headers=keyed(ADMIN_KEY))
    assert exported.is_streamed and exported.mimetype == "application/x-ndjson"
    lines = [json.loads(line) for line in exported.get_data(as_text=True).splitlines()]
    assert [d["filename"] for d in lines] == [f"t1-{n:05d}.png" for n in range(250)]
    for bad in ("limit=1001", "limit=0", "cursor=nonsense", "cursor=djE6eA", "cursor=" + "A" * 100):
        answer = client.get(f"/api/extract_results?{bad}", headers=keyed(ADMIN_KEY))
        assert answer.status_code == 400 and answer.get_json()["error"]["code"] == "invalid_parameter", bad


@pytest.mark.slow
@pytest.mark.e2e
def test_paging_and_the_export_hold_through_the_real_server(tmp_path, database_url):
    db = _migrated(database_url)
    other, record = create_key(db, "other")
    _store_results(db, 1200, 1)
    _store_results(db, 30, record.tenant_id)
    db.dispose()
    with running_service(tmp_path / "storage", database_url, WORKER_ENABLED="false", API_KEYS=ADMIN_KEY) as service:
        seen, cursor, pages = [], None, 0
        while True:
            params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
            body = requests.get(f"{service.base}/api/extract_results", params=params, headers=keyed(ADMIN_KEY),
                                timeout=60).json()
            pages += 1
            seen += [document["filename"] for document in body["results"]]
            cursor = body["next_cursor"]
            if cursor is None:
                break
        assert pages == 3 and len(seen) == len(set(seen)) == 1200 and all(n.startswith("t1-") for n in seen)
        theirs = requests.get(f"{service.base}/api/extract_results", params={"limit": 1000}, headers=keyed(other),
                              timeout=60).json()
        assert len(theirs["results"]) == 30 and theirs["next_cursor"] is None
        with requests.get(f"{service.base}/api/extract_results/export", headers=keyed(ADMIN_KEY), stream=True,
                          timeout=60) as exported:
            assert exported.headers.get("Transfer-Encoding") == "chunked"  # streamed, not built in memory
            lines = [json.loads(line) for line in exported.iter_lines() if line]
        assert [d["filename"] for d in lines] == [f"t1-{n:05d}.png" for n in range(1200)]


# --- smaller holes ------------------------------------------------------------------------------
def test_uploads_are_rate_limited_per_key(make_app):
    app = make_app(API_KEYS=[ADMIN_KEY], UPLOAD_RATE_LIMIT_PER_MINUTE=2)
    other, _ = create_key(app.extensions["ocr_runtime"].db, "other")
    client = app.test_client()
    assert [upload(client, ADMIN_KEY, image_bytes(n)).status_code for n in range(2)] == [200, 200]
    limited = upload(client, ADMIN_KEY, image_bytes(3))
    assert limited.status_code == 429 and limited.get_json()["error"]["code"] == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert upload(client, other, image_bytes(4)).status_code == 200  # another key has its own allowance


def test_long_metadata_never_runs_out_of_unique_names(client):
    long = {"nombre": "N" * 120, "idWhatsapp": "1" * 64 + "@" + "l" * 40}
    entries = [upload(client, None, image_bytes(n), **long).get_json()["files_processed"][0] for n in range(4)]
    names, ids = [e["stored_name"] for e in entries], [e["id"] for e in entries]
    assert len(set(names)) == 4 and all(len(n) <= 255 for n in names)
    assert all(name.endswith(f"~{number}.png") for name, number in zip(names, ids))


def test_a_form_with_too_many_fields_gets_its_own_error(client):
    fields = {f"extra{n}": "x" for n in range(1500)}
    answer = client.post("/api/upload", content_type="multipart/form-data",
                         data={**fields, "files": [(io.BytesIO(image_bytes(1)), "r.png")]})
    assert answer.status_code == 413
    assert answer.get_json()["error"]["code"] == "too_many_fields"
    assert "fields" in answer.get_json()["error"]["message"]


# --- the payment ledger -----------------------------------------------------------------------------
PAYMENT = {"banco_origen": "Banesco", "referencia": "405622415499", "monto": "20.57", "fecha": "2025-07-11"}


def _finished(rt, name, tenant_id, **fields):
    """An upload of `tenant_id` recorded as finished with these fields, as the worker would (no OCR)."""
    with rt.db.session() as session:
        row = Upload(stored_name=name, original_name=name, sha256=hashlib.sha256(name.encode()).hexdigest(),
                     size_bytes=1, tenant_id=tenant_id, status="processing", claimed_by="w",
                     lease_expires_at=utcnow() + timedelta(minutes=5), attempts=1)
        session.add(row)
        session.commit()
    (rt.storage.dirs["inbox"] / name).write_bytes(b"x")
    document = {"processing_status": "success", "request_id": None, "validacion": {"requiere_revision": False},
                "extracted_fields": {**PAYMENT, **fields}}
    assert finish_upload(rt, "w", row, document)
    with rt.db.session() as session:
        return session.scalar(select(Result.document).where(Result.upload_id == row.id))


@pytest.mark.parametrize("across", [False, True])
def test_reuse_is_checked_within_a_tenant_and_across_tenants_only_as_a_setting(make_app, across):
    app = make_app(REUSE_CHECK_ACROSS_TENANTS=across)
    rt = app.extensions["ocr_runtime"]
    _, other = create_key(rt.db, "other")
    assert _finished(rt, "mine.png", 1)["posible_reutilizacion"] is None
    theirs = _finished(rt, "theirs.png", other.tenant_id)
    if not across:
        assert theirs["posible_reutilizacion"] is None
        return
    flag = theirs["posible_reutilizacion"]
    assert (flag["reason"], flag["other_tenant"]) == ("mismo_pago", True)
    assert "filename" not in flag and "metadata" not in flag and "upload_id" not in flag  # nothing of the other tenant
    assert theirs["validacion"]["requiere_revision"] is True


def test_the_ledger_outlives_the_file_retention_and_forgets_after_payment_memory_days(make_app):
    app = make_app()
    rt = app.extensions["ocr_runtime"]
    _finished(rt, "first.png", 1)
    report = purge_finished(rt, 0)
    assert report["uploads_removed"] == 1 and report["payments_forgotten"] == 0
    later = _finished(rt, "two-days-later.png", 1, banco_origen=None)  # and the bank painted over
    flag = later["posible_reutilizacion"]
    assert (flag["reason"], flag["confidence"], flag["filename"]) == ("mismo_pago_sin_banco", "media", "first.png")
    with rt.db.session() as session:
        session.execute(update(Payment).values(created_at=utcnow() - timedelta(days=rt.settings["PAYMENT_MEMORY_DAYS"] + 1)))
        session.commit()
    assert purge_finished(rt, 0)["payments_forgotten"] == 2
    assert _finished(rt, "a-year-later.png", 1)["posible_reutilizacion"] is None
