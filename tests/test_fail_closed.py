"""Issue 21 item 1: no key is no entry, even when the database fails or its pool is exhausted.

Anonymous access is a mode recorded in the database at install (migration 0006) and turned off by
the first key, never inferred from a failing or empty query; every authentication path answers 503
`database_unavailable` (with Retry-After) or 401 when it cannot check; exports hold no connection
while the client reads, and an exhausted pool answers 503 in seconds, not 500 after 30 s.
"""
import threading
import time

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

import api.inputs
import service.access
from database import ApiKey, InstallSetting, utcnow
from service.access import create_key, revoke_key
from tests.test_corrections import finished
from tests.test_tenants import ADMIN_KEY, keyed

# What the adversarial pass did with no key while the pool was full (issue 21, finding 1).
KEYLESS_ATTEMPTS = [
    ("GET", "/api/uploads/1/image?tenant=beta", {}, None),
    ("PUT", "/api/webhooks/config", {"X-Tenant": "beta"}, {"url": "https://example.com/hook"}),
    ("GET", "/api/extract_results", {}, None),
    ("GET", "/api/extract_results/export?tenant=beta", {}, None),
    ("GET", "/api/config", {}, None),
    ("GET", "/api/metrics", {}, None),
]


def _database_error(*_args, **_kwargs):
    raise OperationalError("SELECT 1", {}, Exception("injected: database unreachable"))


def _pool_timeout(*_args, **_kwargs):
    raise PoolTimeout("QueuePool limit of size 5 overflow 5 reached (injected)")


def _assert_refused(answer, what):
    assert answer.status_code in (401, 503), (what, answer.status_code, answer.get_data(as_text=True)[:200])
    assert answer.get_json()["success"] is False, what
    if answer.status_code == 503:
        assert answer.get_json()["error"]["code"] == "database_unavailable", what
        assert int(answer.headers["Retry-After"]) > 0, what


def _keyless(client, what):
    for method, path, headers, body in KEYLESS_ATTEMPTS:
        _assert_refused(client.open(path, method=method, headers=headers, json=body), f"{what}: {method} {path}")


def _two_tenants(rt):
    finished(rt, "beta-receipt.png", tenant_id=_tenant(rt, "beta"))
    client_key, _ = create_key(rt.db, "beta")
    admin_key, _ = create_key(rt.db, "alpha", role="admin")
    return client_key, admin_key


def _tenant(rt, name):
    create_key(rt.db, name)  # creates the tenant
    return service.access.tenant_id_named(rt.db, name)


def test_anonymous_access_is_recorded_at_install_and_ends_with_the_first_key(make_app):
    app = make_app()
    rt = app.extensions["ocr_runtime"]
    client = app.test_client()
    # A new installation: the walk-through needs no key on the loopback interface.
    with rt.db.session() as session:
        assert session.get(InstallSetting, "anonymous_access").value == "loopback"
    assert client.get("/api/config").get_json()["auth"]["api_key_required"] is False
    assert client.get("/api/extract_results").status_code == 200
    # Not from another address, unless ALLOW_ANONYMOUS says so.
    assert client.get("/api/extract_results", environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code == 401

    key, record = create_key(rt.db, "alpha")
    with rt.db.session() as session:
        assert session.get(InstallSetting, "anonymous_access").value == "off"
    rt.db.anonymous_closed = False  # as another web process that never saw the key created
    assert client.get("/api/extract_results").status_code == 401
    # Revoking every key no longer reopens the service: the mode is recorded, not inferred.
    revoke_key(rt.db, record.id)
    rt.db.anonymous_closed = False
    assert client.get("/api/extract_results").status_code == 401
    assert client.get("/api/config").status_code == 401


@pytest.mark.parametrize("failure", [_database_error, _pool_timeout], ids=["unreachable", "pool_exhausted"])
def test_database_errors_in_every_authentication_path_let_no_keyless_request_in(make_app, monkeypatch, failure):
    app = make_app()
    rt = app.extensions["ocr_runtime"]
    client = app.test_client()
    client_key, admin_key = _two_tenants(rt)
    # As a process that has not seen a key yet: the install's mode must be read, and fails.
    monkeypatch.setattr(rt.db, "anonymous_closed", False)

    # The keys-configured check (the anonymous mode) fails.
    with monkeypatch.context() as patch:
        patch.setattr(service.access, "anonymous_access", failure)
        _keyless(client, "mode check fails")
        answer = client.get("/api/config")
        assert answer.status_code == 503 and answer.headers["Retry-After"]
        # A key that the check does not need still works.
        assert client.get("/api/extract_results", headers=keyed(client_key)).status_code == 200

    # The key lookup fails: keyed requests 503 (not 500), key-less ones never get in.
    with monkeypatch.context() as patch:
        patch.setattr(rt.db, "session", failure)
        _keyless(client, "every query fails")
        for key in (client_key, admin_key, "ocrk_not-a-key"):
            started = time.monotonic()
            answer = client.get("/api/extract_results", headers=keyed(key))
            assert answer.status_code == 503 and answer.get_json()["error"]["code"] == "database_unavailable"
            assert answer.headers["Retry-After"] and time.monotonic() - started < 2

    # The tenant lookup of an admin's X-Tenant choice fails.
    with monkeypatch.context() as patch:
        patch.setattr(api.inputs, "tenant_id_named", failure)
        for method, path, headers, body in KEYLESS_ATTEMPTS:
            _assert_refused(client.open(path, method=method, headers={**headers, "X-Tenant": "beta"}, json=body), path)
        answer = client.get("/api/extract_results", headers={**keyed(admin_key), "X-Tenant": "beta"})
        assert answer.status_code == 503 and answer.headers["Retry-After"]

    # With nothing failing, the same key-less requests are 401: the keys exist.
    _keyless(client, "healthy database")
    assert client.get("/api/extract_results").status_code == 401


def test_health_checks_still_answer_when_authentication_cannot_reach_the_database(make_app, monkeypatch):
    app = make_app()
    rt = app.extensions["ocr_runtime"]
    monkeypatch.setattr(rt.db, "session", _database_error)
    assert app.test_client().get("/api/health/live").status_code == 200


def test_an_unmigrated_or_empty_install_table_means_keys_are_required(make_app):
    app = make_app()
    rt = app.extensions["ocr_runtime"]
    with rt.db.session() as session:
        session.execute(InstallSetting.__table__.delete())
        session.commit()
    assert app.test_client().get("/api/extract_results").status_code == 401


def test_a_full_pool_answers_keyless_requests_401_or_503_and_keyed_ones_503_within_seconds(make_app):
    """The adversarial pass's scenario: one client key fills the pool, then no key at all must not
    read beta's receipt or repoint its webhooks, and keyed requests get 503 + Retry-After quickly."""
    app = make_app(DATABASE_POOL_TIMEOUT_SECONDS=1)
    rt = app.extensions["ocr_runtime"]
    client = app.test_client()
    client_key, admin_key = _two_tenants(rt)
    rt.db.anonymous_closed = False
    pool = rt.db.engine.pool
    held = []
    try:
        while True:  # every connection the pool will hand out, held by "slow export clients"
            try:
                held.append(rt.db.engine.connect())
            except PoolTimeout:
                break
        assert len(held) >= 5 and pool.checkedout() == len(held)
        for method, path, headers, body in KEYLESS_ATTEMPTS:
            started = time.monotonic()
            _assert_refused(client.open(path, method=method, headers=headers, json=body), path)
            assert time.monotonic() - started < 3, path
        for key in (client_key, admin_key):
            started = time.monotonic()
            answer = client.get("/api/extract_results/export", headers=keyed(key))
            assert answer.status_code == 503 and answer.headers["Retry-After"], answer.get_data()
            assert time.monotonic() - started < 3
    finally:
        for connection in held:
            connection.close()
    assert client.get("/api/extract_results", headers=keyed(client_key)).status_code == 200


def test_unread_export_streams_hold_no_database_connection(make_app):
    """A stream the client has started and then stalls on returns its connection after each page:
    dozens of them leave the pool free for everyone else."""
    app = make_app(API_KEYS=[ADMIN_KEY])
    rt = app.extensions["ocr_runtime"]
    for n in range(3):
        finished(rt, f"x{n}.png", ref=f"40562241{n:04d}")
    paths = ("/api/extract_results/export", "/api/extract_results?format=csv", "/api/extract_results?format=ndjson",
             "/api/extract_results", "/api/review_queue?format=csv")
    started, release, statuses = threading.Barrier(len(paths) * 6 + 1), threading.Event(), []

    def stalled_reader(path):  # each in its own thread: a request context per stream, as under gunicorn
        answer = app.test_client().get(path, headers=keyed(ADMIN_KEY), buffered=False)
        statuses.append(answer.status_code)
        next(iter(answer.response), None)  # the client reads a little, then stalls
        started.wait(30)
        release.wait(30)
        answer.close()

    threads = [threading.Thread(target=stalled_reader, args=(path,)) for path in paths * 6]
    for thread in threads:
        thread.start()
    try:
        started.wait(60)
        assert rt.db.engine.pool.checkedout() == 0
        assert app.test_client().get("/api/extract_results", headers=keyed(ADMIN_KEY)).status_code == 200
    finally:
        release.set()
        for thread in threads:
            thread.join(30)
    assert statuses and set(statuses) <= {200, 429}


def test_revoked_and_unknown_keys_are_401_even_when_anonymous_access_is_recorded(make_app):
    app = make_app()
    rt = app.extensions["ocr_runtime"]
    key, record = create_key(rt.db, "alpha")
    with rt.db.session() as session:  # an operator reopens anonymous access by hand
        session.execute(update(InstallSetting).values(value="loopback"))
        session.execute(update(ApiKey).where(ApiKey.id == record.id).values(revoked_at=utcnow()))
        session.commit()
        assert session.scalar(select(ApiKey.revoked_at).where(ApiKey.id == record.id)) is not None
    rt.db.anonymous_closed = False
    client = app.test_client()
    assert client.get("/api/extract_results", headers=keyed(key)).status_code == 401
    assert client.get("/api/extract_results", headers=keyed("ocrk_unknown")).status_code == 401
    assert client.get("/api/extract_results").status_code == 200
