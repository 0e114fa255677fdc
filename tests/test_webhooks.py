"""Webhooks (issue 10 item 2) in one process: configuration, the outbox written with the outcome,
signed delivery to a real HTTP receiver on 127.0.0.1, backoff and giving up, resending, SSRF
refusals, per-upload callback_url, tenants. On SQLite and, with TEST_DATABASE_URL, PostgreSQL.
tests/test_webhooks_e2e.py drives the same through gunicorn and `main.py worker`."""
import hashlib
import io
import json
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
from PIL import Image
from sqlalchemy import func, select, update

from database import (
    Upload,
    WebhookAttempt,
    WebhookConfig,
    WebhookDelivery,
    WebhookEvent,
    WebhookUploadRoute,
    utcnow,
)
from service.access import create_key
from service.housekeeping import purge_finished
from service.jobs import MAX_CLAIM_ATTEMPTS, give_up_poison_uploads
from service.results import finish_upload
from service.webhook_delivery import Deliverer, backoff_seconds, deliver_due, event_body, post_to
from service.webhook_secrets import signature_header
from service.webhook_targets import Target, TargetRefused, parse_url, refusal
from service.webhooks import save_config
from tests.conftest import ISOLATED_ENV
from tests.webhook_receiver import Receiver

ROOT = Path(__file__).resolve().parents[1]
ADMIN_KEY = "bootstrap-admin-key-for-webhook-tests-77"
FAST_RETRIES = {"WEBHOOK_ALLOW_PRIVATE": True, "WEBHOOK_BACKOFF_BASE_SECONDS": 0.05, "WEBHOOK_BACKOFF_MAX_SECONDS": 0.2,
                "WEBHOOK_TIMEOUT_SECONDS": 2, "API_KEYS": [ADMIN_KEY]}


def keyed(key):
    return {"X-API-Key": key}


@pytest.fixture
def receiver():
    started = Receiver().start()
    yield started
    started.stop()


def configure(client, key, **body):
    answer = client.put("/api/webhooks/config", headers=keyed(key), json=body)
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def finished(rt, name, tenant_id=1, failed=False):
    """An upload recorded as finished by finish_upload, as the worker records it (no OCR here)."""
    with rt.db.session() as session:
        row = Upload(stored_name=name, original_name=name, sha256=hashlib.sha256(name.encode()).hexdigest(),
                     size_bytes=1, tenant_id=tenant_id, status="processing", claimed_by="w",
                     lease_expires_at=utcnow() + timedelta(minutes=5), attempts=1, upload_metadata={"nombre": "Ana"})
        session.add(row)
        session.commit()
    (rt.storage.dirs["inbox"] / name).write_bytes(b"x")
    document = {"processing_status": "error" if failed else "success", "request_id": "BATCH_X",
                "validacion": {"valido": not failed, "requiere_revision": failed},
                "extracted_fields": {"monto": "20.57", "referencia": "405622415499"},
                **({"error": {"code": "ocr_failed", "message": "unreadable"}} if failed else {})}
    assert finish_upload(rt, "w", row, document)
    return row.id


def deliver_until(rt, done, rounds=200):
    for _ in range(rounds):
        deliver_due(rt, "test-deliverer")
        if done():
            return
        time.sleep(0.03)
    raise AssertionError("deliveries did not settle")


def deliveries(client, key, **params):
    body = client.get("/api/webhooks/deliveries", headers=keyed(key), query_string=params).get_json()
    assert body["success"], body
    return body["deliveries"]


def test_a_processed_upload_is_delivered_signed_and_listed(make_app, receiver):
    app = make_app(**FAST_RETRIES)
    rt = app.extensions["ocr_runtime"]
    client = app.test_client()
    created = configure(client, ADMIN_KEY, url=receiver.url)
    receiver.secret = created["secret"]
    assert created["secret"].startswith("whsec_") and created["config"]["secret_prefix"] == created["secret"][:12]
    assert created["secret"] not in json.dumps(client.get("/api/webhooks/config", headers=keyed(ADMIN_KEY)).get_json())
    with rt.db.session() as session:  # stored encrypted, never as written
        stored = session.scalar(select(WebhookConfig.secret_encrypted))
        assert created["secret"] not in stored

    upload_id = finished(rt, "ok.png")
    failed_id = finished(rt, "bad.png", failed=True)
    pending = deliveries(client, ADMIN_KEY, state="pending")
    assert [(d["upload_id"], d["event_type"]) for d in pending] == [(upload_id, "upload.processed"),
                                                                    (failed_id, "upload.failed")]
    deliver_until(rt, lambda: len(receiver.accepted_ids()) == 2)
    events = {r["event"]["data"]["upload_id"]: r for r in receiver.received}
    ok = events[upload_id]
    assert ok["valid"] and ok["header_id"] == ok["id"]
    assert ok["event"]["type"] == "upload.processed" and ok["event"]["created"].endswith("Z")
    data = ok["event"]["data"]
    assert (data["stored_name"], data["metadata"], data["status"]) == ("ok.png", {"nombre": "Ana"}, "processed")
    assert data["result"]["fields"]["referencia"] == "405622415499" and data["result"]["requiere_revision"] is False
    assert "posible_reutilizacion" in data["result"] and "duplicado_de" in data["result"]
    bad = events[failed_id]["event"]
    assert bad["type"] == "upload.failed" and bad["data"]["error"]["code"] == "ocr_failed"
    listed = deliveries(client, ADMIN_KEY, state="delivered")
    assert len(listed) == 2 and all(d["history"][0]["status_code"] == 200 for d in listed)
    assert all(d["attempts"] == 1 and d["delivered_at"] for d in listed)
    # Paging: one at a time, the cursor goes on.
    first = client.get("/api/webhooks/deliveries?limit=1", headers=keyed(ADMIN_KEY)).get_json()
    second = client.get(f"/api/webhooks/deliveries?limit=1&cursor={first['next_cursor']}", headers=keyed(ADMIN_KEY)).get_json()
    assert first["deliveries"][0]["id"] < second["deliveries"][0]["id"] and second["next_cursor"] is None


def test_failures_back_off_then_fail_every_attempt_recorded_and_a_resend_keeps_the_id(make_app, receiver):
    app = make_app(**FAST_RETRIES, WEBHOOK_RETRY_HOURS=1.5 / 3600)  # 1.5 s of retries
    rt = app.extensions["ocr_runtime"]
    client = app.test_client()
    receiver.secret = configure(client, ADMIN_KEY, url=receiver.url)["secret"]
    receiver.mode = "error"
    finished(rt, "flaky.png")
    deliver_until(rt, lambda: deliveries(client, ADMIN_KEY, state="failed"))
    failed = deliveries(client, ADMIN_KEY)[0]
    assert failed["state"] == "failed" and failed["attempts"] >= 3 and failed["last_status_code"] == 500
    assert [h["status_code"] for h in failed["history"]] == [500] * failed["attempts"]
    assert all(h["duration_ms"] >= 0 for h in failed["history"])
    tries = receiver.requests_by_id()
    assert list(tries) == [failed["event_id"]] and len(tries[failed["event_id"]]) == failed["attempts"]
    bodies = {entry["body"] for entry in tries[failed["event_id"]]}
    assert len(bodies) == 1  # every repeat is the same bytes, the same id

    receiver.mode = "ok"
    resent = client.post(f"/api/webhooks/deliveries/{failed['id']}/resend", headers=keyed(ADMIN_KEY))
    assert resent.status_code == 200 and resent.get_json()["delivery"]["state"] == "pending"
    again = client.post(f"/api/webhooks/deliveries/{failed['id']}/resend", headers=keyed(ADMIN_KEY))
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "not_resendable"
    deliver_until(rt, lambda: receiver.accepted_ids())
    assert receiver.accepted_ids() == {failed["event_id"]}
    assert deliveries(client, ADMIN_KEY)[0]["state"] == "delivered"


def test_backoff_doubles_with_jitter_up_to_the_cap():
    settings = {"WEBHOOK_BACKOFF_BASE_SECONDS": 10.0, "WEBHOOK_BACKOFF_MAX_SECONDS": 3600.0}
    for attempts, full in ((1, 10), (2, 20), (5, 160), (12, 3600), (40, 3600)):
        delays = [backoff_seconds(settings, attempts) for _ in range(200)]
        assert all(full / 2 <= d <= full for d in delays) and max(delays) - min(delays) > full / 10


@pytest.mark.parametrize("address, reason", [
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("10.1.2.3", "private"), ("192.168.0.5", "private"),
    ("172.16.0.1", "private"), ("169.254.169.254", "link-local"), ("fe80::1", "link-local"), ("224.0.0.1", "multicast"),
    ("0.0.0.0", "unspecified"), ("240.0.0.1", "reserved"), ("::ffff:127.0.0.1", "loopback"), ("100.64.0.1", None),
    ("8.8.8.8", None), ("2001:4860:4860::8888", None),
])
def test_address_refusals(address, reason):
    found = refusal(address)
    if address == "100.64.0.1":
        assert found is not None  # carrier-grade NAT space is not public either
    else:
        assert found == reason


def test_private_targets_are_refused_when_registered_and_when_delivered(make_app, receiver):
    app = make_app(API_KEYS=[ADMIN_KEY])
    rt = app.extensions["ocr_runtime"]
    client = app.test_client()
    for url in (receiver.url, "http://localhost:9/x", "http://10.0.0.7/x", "http://169.254.169.254/latest/meta-data",
                "http://[::1]:8080/", "http://[::ffff:127.0.0.1]/", "http://0.0.0.0/"):
        refused = client.put("/api/webhooks/config", headers=keyed(ADMIN_KEY), json={"url": url})
        assert refused.status_code == 400 and refused.get_json()["error"]["code"] == "callback_not_allowed", url
    for url in ("ftp://example.org/", "http://user:pw@127.0.0.1/", "not a url", "http:///x", 5, "http://h/\u00e9"):
        refused = client.put("/api/webhooks/config", headers=keyed(ADMIN_KEY), json={"url": url})
        assert refused.status_code == 400 and refused.get_json()["error"]["code"] == "invalid_callback_url", url
    # Registered while allowed (or the name pointed elsewhere then): refused at delivery, and not retried.
    saved = save_config(rt.db, {**rt.settings, "WEBHOOK_ALLOW_PRIVATE": True}, 1, url=receiver.url)
    receiver.secret = saved.secret
    finished(rt, "ssrf.png")
    deliver_until(rt, lambda: deliveries(client, ADMIN_KEY, state="failed"))
    failed = deliveries(client, ADMIN_KEY)[0]
    assert "loopback" in failed["last_error"] and failed["attempts"] == 1
    assert receiver.received == []


def test_callback_url_per_upload_only_to_registered_hosts(make_app, receiver):
    app = make_app(**FAST_RETRIES)
    rt = app.extensions["ocr_runtime"]
    client = app.test_client()

    def upload(callback_url, seed):
        image = Image.new("RGB", (64, 48), (seed, 10, 20))
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        return client.post("/api/upload", headers=keyed(ADMIN_KEY), content_type="multipart/form-data",
                           data={"callback_url": callback_url, "files": [(io.BytesIO(buffer.getvalue()), "r.png")]})

    no_config = upload(receiver.url, 1)
    assert no_config.status_code == 400 and no_config.get_json()["error"]["code"] == "callback_not_allowed"
    receiver.secret = configure(client, ADMIN_KEY, url=None, allowed_hosts=["127.0.0.1", "*.hooks.example"])["secret"]
    for bad, code in (("http://127.0.0.2/x", "callback_not_allowed"), ("javascript:alert(1)", "invalid_callback_url"),
                      ("http://evil.example/x", "callback_not_allowed")):
        refused = upload(bad, 2)
        assert refused.status_code == 400 and refused.get_json()["error"] == {
            **refused.get_json()["error"], "code": code, "details": {"field": "callback_url"}}, bad
    with rt.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Upload)) == 0  # refused before anything was stored
    accepted = upload(receiver.url + "?order=7", 3)
    assert accepted.status_code == 200, accepted.get_json()
    upload_id = accepted.get_json()["files_processed"][0]["id"]
    with rt.db.session() as session:
        route = session.get(WebhookUploadRoute, upload_id)
        assert route.callback_url == receiver.url + "?order=7"
        claimed = session.get(Upload, upload_id)
        claimed.status, claimed.claimed_by = "processing", "w"
        session.commit()
    assert finish_upload(rt, "w", claimed, {"processing_status": "success", "validacion": {}, "extracted_fields": {}})
    deliver_until(rt, lambda: receiver.accepted_ids())
    assert receiver.received[0]["event"]["data"]["upload_id"] == upload_id


def test_no_event_without_the_outcome_and_give_ups_are_told(make_app, receiver):
    app = make_app(**FAST_RETRIES)
    rt = app.extensions["ocr_runtime"]
    client = app.test_client()
    receiver.secret = configure(client, ADMIN_KEY, url=receiver.url)["secret"]
    with rt.db.session() as session:
        lost = Upload(stored_name="lost.png", original_name="l", sha256="1" * 64, size_bytes=1, status="processing",
                      claimed_by="someone-else", attempts=1)
        poison = Upload(stored_name="poison.png", original_name="p", sha256="2" * 64, size_bytes=1, status="pending",
                        attempts=MAX_CLAIM_ATTEMPTS)
        session.add_all([lost, poison])
        session.commit()
    # A worker that lost its claim records nothing: no outcome, no event.
    assert not finish_upload(rt, "w", lost, {"processing_status": "success"})
    assert give_up_poison_uploads(rt) == 1
    with rt.db.session() as session:
        events = session.scalars(select(WebhookEvent)).all()
    assert [(e.upload_id, e.type) for e in events] == [(poison.id, "upload.failed")]
    assert events[0].payload["data"]["error"]["code"] == "too_many_attempts"


def test_tenants_see_only_their_deliveries_and_configs(make_app, receiver):
    app = make_app(**FAST_RETRIES)
    rt = app.extensions["ocr_runtime"]
    client = app.test_client()
    _, default_key = create_key(rt.db, "default")
    other_admin, record = create_key(rt.db, "other", role="admin")
    other_client, _ = create_key(rt.db, "other", role="client")
    receiver.secret = configure(client, ADMIN_KEY, url=receiver.url)["secret"]
    finished(rt, "mine.png")
    mine = deliveries(client, ADMIN_KEY)
    assert len(mine) == 1
    assert deliveries(client, other_admin) == [] and deliveries(client, other_client) == []
    assert client.get("/api/webhooks/config", headers=keyed(other_admin)).get_json()["config"] is None
    stolen = client.post(f"/api/webhooks/deliveries/{mine[0]['id']}/resend", headers=keyed(other_admin))
    missing = client.post("/api/webhooks/deliveries/999999/resend", headers=keyed(other_admin))
    assert stolen.status_code == missing.status_code == 404
    assert stolen.get_json()["error"]["message"].replace(str(mine[0]["id"]), "N") == \
        missing.get_json()["error"]["message"].replace("999999", "N")
    # Client keys may read deliveries but not the configuration; a key config belongs to its tenant only.
    assert client.get("/api/webhooks/config", headers=keyed(other_client)).status_code == 403
    assert client.put("/api/webhooks/config", headers=keyed(other_admin), json={"api_key_id": default_key.id}).status_code == 404
    for bad in ({"url": 5}, {"allowed_hosts": "x"}, {"allowed_hosts": ["bad host"]}, {"rotate_secret": "yes"},
                {"api_key_id": "1"}, {"nope": 1}):
        answer = client.put("/api/webhooks/config", headers=keyed(other_admin), json=bad)
        assert answer.status_code == 400 and answer.get_json()["success"] is False, bad
    for query in ("state=nope", "limit=0", "cursor=zzz", "upload_id=-1"):
        assert client.get(f"/api/webhooks/deliveries?{query}", headers=keyed(other_admin)).status_code == 400, query
    # The other tenant's own configuration, for one of its keys, and a rotation.
    first = configure(client, other_admin, api_key_id=record.id, allowed_hosts=["127.0.0.1"])
    rotated = configure(client, other_admin, api_key_id=record.id, rotate_secret=True)
    assert first["secret"] != rotated["secret"] and rotated["keys"][0]["api_key_id"] == record.id
    assert "secret" not in configure(client, other_admin, api_key_id=record.id, allowed_hosts=[])
    with rt.db.session() as session:
        assert session.scalar(select(func.count()).select_from(WebhookDelivery)) == 1
        assert session.scalar(select(func.count()).select_from(WebhookAttempt)) == 0


def test_parse_url_keeps_path_and_query():
    target = parse_url("https://Hooks.Example.org:8443/a/b?x=1")
    assert (target.scheme, target.host, target.port, target.path) == ("https", "hooks.example.org", 8443, "/a/b?x=1")
    with pytest.raises(TargetRefused):
        parse_url("http://h:99999/")


def test_webhooks_cli_sets_shows_and_rotates(service_env, database_url):
    env = {k: v for k, v in __import__("os").environ.items() if k not in ISOLATED_ENV}
    env.update(DATABASE_URL=database_url, STORAGE_ROOT=str(service_env), WEBHOOK_ALLOW_PRIVATE="true")

    def cli(*args):
        run = subprocess.run([sys.executable, "main.py", "webhooks", *args], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=120)
        return run.returncode, run.stdout, run.stderr

    code, out, err = cli("set", "--tenant", "default", "--url", "http://127.0.0.1:9/hook", "--allowed-host", "127.0.0.1")
    assert code == 0, err
    created = json.loads(out)
    assert created["secret"].startswith("whsec_") and created["config"]["allowed_hosts"] == ["127.0.0.1"]
    code, out, _ = cli("show", "--tenant", "default")
    assert code == 0 and created["secret"] not in out and json.loads(out)["url"] == "http://127.0.0.1:9/hook"
    code, out, _ = cli("set", "--tenant", "default", "--rotate-secret")
    assert code == 0 and json.loads(out)["secret"] != created["secret"]
    assert cli("set", "--tenant", "nobody", "--url", "http://127.0.0.1/")[0] == 2
    env["WEBHOOK_ALLOW_PRIVATE"] = "false"
    code, _, err = cli("set", "--tenant", "default", "--url", "http://127.0.0.1:9/other")
    assert code == 2 and "loopback" in err


def test_settled_events_are_purged_after_retention_and_retry_window(make_app, receiver):
    app = make_app(**FAST_RETRIES)
    rt = app.extensions["ocr_runtime"]
    client = app.test_client()
    receiver.secret = configure(client, ADMIN_KEY, url=receiver.url)["secret"]
    finished(rt, "old.png")
    deliver_until(rt, lambda: receiver.accepted_ids())
    receiver.mode = "error"
    finished(rt, "unsettled.png")
    with rt.db.session() as session:
        session.execute(update(WebhookEvent).values(created_at=utcnow() - timedelta(hours=25)))
        session.commit()
    assert purge_finished(rt, 0)["webhook_events_removed"] == 1  # the delivered one; the pending one stays
    with rt.db.session() as session:
        assert session.scalars(select(WebhookEvent.upload_id)).all() != []
        assert session.scalar(select(func.count()).select_from(WebhookAttempt)) == 0  # went with their event
        assert [d.state for d in session.scalars(select(WebhookDelivery))] == ["pending"]


def test_the_readme_snippet_verifies_a_signature_and_refuses_tampering():
    from service.webhook_secrets import new_secret, signature_header

    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Webhooks"):]
    snippet = section[section.index("```python") + len("```python"):]
    snippet = snippet[:snippet.index("```")]
    assert len(snippet.strip().splitlines()) <= 10
    namespace: dict = {}
    exec(snippet, namespace)  # noqa: S102 - README's own code, run as a receiver would
    verify = namespace["verify"]
    secret, body = new_secret(), b'{"id":"e1","type":"upload.processed"}'
    header = signature_header(secret, int(time.time()), body)
    assert verify(secret, header, body)
    assert not verify(secret, header, body + b" ")
    assert not verify(new_secret(), header, body)
    assert not verify(secret, signature_header(secret, int(time.time()) - 3600, body), body)
    assert not verify(secret, "garbage", body)


def test_the_deliverer_thread_sends_as_soon_as_an_outcome_commits(make_app, receiver):
    app = make_app(**FAST_RETRIES, WEBHOOK_POLL_INTERVAL_SECONDS=30)  # only the commit's wake-up can be this fast
    rt = app.extensions["ocr_runtime"]
    client = app.test_client()
    receiver.secret = configure(client, ADMIN_KEY, url=receiver.url)["secret"]
    deliverer = Deliverer(rt, "webhooks:test")
    deliverer.start()
    try:
        time.sleep(0.3)  # its first look found nothing; now it waits for 30 s or a wake-up
        started = time.monotonic()
        finished(rt, "fast.png")
        wait = time.monotonic()
        while not receiver.accepted_ids() and time.monotonic() - started < 10:
            time.sleep(0.01)
        assert receiver.accepted_ids() and time.monotonic() - wait < 2
    finally:
        deliverer.stop()
        deliverer.join(10)
    assert not deliverer._thread.is_alive()


def _certificates(directory, host):
    """A test CA and a certificate it signed for `host`: (CA file, certificate file, key file)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webhook test CA")])

    def build(subject, public_key, extension):
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name).public_key(public_key)
                .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(hours=1))
                .not_valid_after(now + timedelta(hours=1)).add_extension(extension, critical=False)
                .sign(ca_key, hashes.SHA256()))

    ca = build(ca_name, ca_key.public_key(), x509.BasicConstraints(ca=True, path_length=None))
    leaf = build(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]), key.public_key(),
                 x509.SubjectAlternativeName([x509.DNSName(host)]))
    files = [directory / name for name in ("ca.pem", "cert.pem", "key.pem")]
    files[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    files[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return [str(f) for f in files]


def test_https_goes_to_the_checked_address_and_still_verifies_the_host_name(tmp_path):
    ca, certificate, key = _certificates(tmp_path, "hooks.test")
    receiver = Receiver(secret="whsec_test").start(tls=(certificate, key))
    try:
        body = event_body({"id": "e-tls", "type": "upload.processed"})
        headers = {"Content-Type": "application/json", "X-Webhook-Id": "e-tls",
                   "X-Signature": signature_header("whsec_test", int(time.time()), body)}
        # hooks.test resolves nowhere: the connection goes to the address given, TLS checks the name.
        target = Target("https", "hooks.test", receiver.port, "/ocr")
        assert post_to(target, "127.0.0.1", body, headers, 5, verify=ca) == 200
        assert receiver.received[0]["valid"] and receiver.received[0]["host"] == f"hooks.test:{receiver.port}"
        with pytest.raises(requests.exceptions.SSLError):  # a certificate for another name is refused
            post_to(Target("https", "other.test", receiver.port, "/ocr"), "127.0.0.1", body, headers, 5, verify=ca)
        with pytest.raises(requests.exceptions.SSLError):  # and so is one no trusted CA signed
            post_to(target, "127.0.0.1", body, headers, 5)
    finally:
        receiver.stop()


def test_a_correction_and_a_review_are_told_with_the_corrected_fields(make_app, receiver):
    """The correction's event is written in the correction's transaction and carries what every
    read path now returns; a refused correction tells nothing."""
    from tests.test_corrections import finished as processed_receipt
    app = make_app(**FAST_RETRIES)
    rt = app.extensions["ocr_runtime"]
    client = app.test_client()
    receiver.secret = configure(client, ADMIN_KEY, url=receiver.url)["secret"]
    upload_id = processed_receipt(rt, "fix.png")
    refused = client.patch(f"/api/uploads/{upload_id}/fields", headers=keyed(ADMIN_KEY), json={"monto": "mucho"})
    assert refused.status_code == 400
    assert client.patch(f"/api/uploads/{upload_id}/fields", headers=keyed(ADMIN_KEY),
                        json={"monto": "1.500,00"}).status_code == 200
    assert client.post(f"/api/uploads/{upload_id}/review", headers=keyed(ADMIN_KEY),
                       json={"estado": "aprobado", "nota": "visto"}).status_code == 200
    deliver_until(rt, lambda: len(receiver.accepted_ids()) == 3)
    told = {r["event"]["type"]: r["event"]["data"] for r in receiver.received if r["valid"]}
    assert sorted(told) == ["upload.corrected", "upload.processed", "upload.reviewed"]
    assert {kind: data["result"]["fields"]["monto"] for kind, data in told.items()} == {
        "upload.processed": "20.57", "upload.corrected": "1500.00", "upload.reviewed": "1500.00"}
