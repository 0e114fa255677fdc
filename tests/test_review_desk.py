"""Issue 12 without a browser: sign-in by key exchanged for a session, the cookie's flags, CSRF on
every change made with the cookie (and none needed with a key), admins choosing a tenant, the
desk's queue and its counts, the persisted secret. SQLite and, with TEST_DATABASE_URL, PostgreSQL.
The browser itself drives the desk in tests/test_review_browser.py."""
import hashlib
import re
from datetime import timedelta

import pytest

from database import Upload, utcnow
from extraction.extractor import extract_fields_from_text
from service.access import create_key, revoke_key
from service.export import COLUMNS
from service.results import finish_upload
from service.secret_key import persisted_secret
from tests.test_corrections import RECEIPT
from tests.test_tenants import ADMIN_KEY, image_bytes, keyed


def finished(rt, name, tenant_id=1, ref="405622415499", monto="20,57", metadata=None, duplicado_de=None):
    """An upload recorded as processed from the extraction of a receipt's text, as the worker would."""
    metadata = metadata or {"nombre": "Ana"}
    with rt.db.session() as session:
        row = Upload(stored_name=name, original_name=name, sha256=hashlib.sha256(name.encode()).hexdigest(),
                     size_bytes=1, tenant_id=tenant_id, status="processing", claimed_by="w",
                     lease_expires_at=utcnow() + timedelta(minutes=5), attempts=1, upload_metadata=metadata,
                     duplicado_de=duplicado_de)
        session.add(row)
        session.commit()
    (rt.storage.dirs["inbox"] / name).write_bytes(image_bytes(len(name)))
    document = {"processing_status": "success", "request_id": None, "filename": name, "metadata": metadata,
                **extract_fields_from_text(RECEIPT.format(ref=ref, monto=monto))}
    assert finish_upload(rt, "w", row, document)
    return row.id


@pytest.fixture
def desk(make_app):
    app = make_app(API_KEYS=[ADMIN_KEY], LOGIN_RATE_LIMIT_PER_MINUTE=0)
    rt = app.extensions["ocr_runtime"]
    staff, _ = create_key(rt.db, "default", name="maria")
    other, _ = create_key(rt.db, "other", name="pedro")
    return app, rt, staff, other


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf-token" content="([^"]+)"|name="csrf_token" value="([^"]+)"', html)
    return found.group(1) or found.group(2)


def signed_in(app, key):
    """A browser-like client signed in with `key`, and the CSRF token its page shows."""
    client = app.test_client()
    token = csrf_of(client.get("/review/login").get_data(as_text=True))
    answer = client.post("/review/login", data={"clave": key, "csrf_token": token})
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/review"), answer.get_data(as_text=True)
    page = client.get("/review")
    assert page.status_code == 200
    return client, csrf_of(page.get_data(as_text=True))


def test_sign_in_hands_out_a_hardened_cookie_that_holds_no_key(desk):
    app, _rt, staff, _ = desk
    client = app.test_client()
    assert client.get("/review").headers["Location"].endswith("/review/login")
    token = csrf_of(client.get("/review/login").get_data(as_text=True))
    refused = client.post("/review/login", data={"clave": "ocrk_not-a-key", "csrf_token": token})
    assert refused.status_code == 401 and "Clave no válida" in refused.get_data(as_text=True)
    answer = client.post("/review/login", data={"clave": staff, "csrf_token": token})
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith("ocr_sesion=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie  # plain HTTP here
    assert staff not in cookie and staff[5:] not in cookie
    page = client.get("/review")
    assert page.headers["Cache-Control"] == "no-store"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "http" not in re.sub(r'https?://localhost', "", page.get_data(as_text=True))  # nothing from elsewhere
    # Over HTTPS the cookie is Secure too.
    secure_client = app.test_client()
    token = csrf_of(secure_client.get("/review/login", base_url="https://localhost").get_data(as_text=True))
    secure = secure_client.post("/review/login", data={"clave": staff, "csrf_token": token}, base_url="https://localhost")
    assert "; Secure" in secure.headers["Set-Cookie"]


def test_the_session_calls_the_same_api_and_changes_need_its_csrf_token(desk):
    app, rt, staff, _ = desk
    upload_id = finished(rt, "a.png")
    client, token = signed_in(app, staff)
    view = client.get(f"/api/uploads/{upload_id}")
    assert view.status_code == 200 and view.get_json()["upload"]["id"] == upload_id
    for method, path, body in (("PATCH", f"/api/uploads/{upload_id}/fields", {"monto": "10,00"}),
                               ("POST", f"/api/uploads/{upload_id}/review", {"estado": "aprobado"})):
        refused = client.open(path, method=method, json=body)
        assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "csrf_failed"
        wrong = client.open(path, method=method, json=body, headers={"X-CSRF-Token": token[:-2] + "xx"})
        assert wrong.status_code == 403
        assert client.open(path, method=method, json=body, headers={"X-CSRF-Token": token}).status_code == 200
    upload = client.get(f"/api/uploads/{upload_id}").get_json()["upload"]
    assert upload["review"]["estado"] == "aprobado" and upload["result"]["extracted_fields"]["monto"] == "10.00"
    assert upload["review"]["por"] == upload["corrections"][0]["por"]
    # A key client needs no token, and a key always wins over a cookie.
    assert app.test_client().post(f"/api/uploads/{upload_id}/review", headers=keyed(staff),
                                  json={"estado": "pendiente"}).status_code == 200
    # Forms of the desk without the token are refused too.
    assert client.post("/review/logout").status_code == 403
    assert client.post("/review/logout", data={"csrf_token": token}).status_code == 302
    assert client.get(f"/api/uploads/{upload_id}").status_code == 401  # signed out


def test_a_revoked_key_ends_its_sessions_and_a_login_form_needs_its_token(desk):
    app, rt, _, _ = desk
    key, record = create_key(rt.db, "default", name="temp")
    client, _token = signed_in(app, key)
    assert client.get("/api/files/processed").status_code == 200
    revoke_key(rt.db, record.id)
    assert client.get("/api/files/processed").status_code == 401
    assert client.get("/review").headers["Location"].endswith("/review/login")
    fresh = app.test_client()
    fresh.get("/review/login")
    assert fresh.post("/review/login", data={"clave": key}).status_code == 403


def test_failed_sign_ins_are_rate_limited(make_app):
    app = make_app(API_KEYS=[ADMIN_KEY], LOGIN_RATE_LIMIT_PER_MINUTE=3)
    client = app.test_client()
    token = csrf_of(client.get("/review/login").get_data(as_text=True))
    codes = [client.post("/review/login", data={"clave": f"guess-{i}", "csrf_token": token}).status_code for i in range(5)]
    assert codes == [401, 401, 401, 429, 429]


def test_admins_choose_a_tenant_and_client_keys_cannot(desk):
    app, rt, staff, other = desk
    mine = finished(rt, "mine.png")
    theirs = finished(rt, "theirs.png", tenant_id=_tenant_of(rt, "other"), ref="99887766")
    api = app.test_client()
    assert api.get(f"/api/uploads/{theirs}", headers=keyed(ADMIN_KEY)).status_code == 404
    chosen = api.get(f"/api/uploads/{theirs}", headers={**keyed(ADMIN_KEY), "X-Tenant": "other"})
    assert chosen.status_code == 200 and chosen.get_json()["upload"]["id"] == theirs
    assert api.get(f"/api/uploads/{theirs}/image?tenant=other", headers=keyed(ADMIN_KEY)).status_code == 200
    assert api.get(f"/api/uploads/{mine}", headers={**keyed(ADMIN_KEY), "X-Tenant": "other"}).status_code == 404
    missing = api.get("/api/files/processed", headers={**keyed(ADMIN_KEY), "X-Tenant": "nobody"})
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "tenant_not_found"
    for name in ("default", "other", "nobody"):  # the same answer whether or not the tenant exists
        denied = api.get("/api/files/processed", headers={**keyed(other), "X-Tenant": name})
        assert denied.status_code == 403 and denied.get_json()["error"]["code"] == "forbidden"
        assert api.get(f"/api/files/processed?tenant={name}", headers=keyed(staff)).status_code == 403

    # In the desk, the admin's choice is kept in the session; a client key's page offers none.
    client, token = signed_in(app, ADMIN_KEY)
    assert 'id="inquilino"' in client.get("/review").get_data(as_text=True)
    assert client.post("/review/inquilino", data={"inquilino": "other"}).status_code == 403  # no token
    assert client.post("/review/inquilino", data={"inquilino": "nobody", "csrf_token": token}).status_code == 404
    assert client.post("/review/inquilino", data={"inquilino": "other", "csrf_token": token}).status_code == 302
    assert [i["id"] for i in client.get("/api/review_queue").get_json()["items"]] == [theirs]
    staff_client, staff_token = signed_in(app, staff)
    assert 'id="inquilino"' not in staff_client.get("/review").get_data(as_text=True)
    assert staff_client.post("/review/inquilino", data={"inquilino": "other", "csrf_token": staff_token}).status_code == 403
    assert [i["id"] for i in staff_client.get("/api/review_queue").get_json()["items"]] == [mine]


def _tenant_of(rt, name):
    from service.access import tenant_id_named
    return tenant_id_named(rt.db, name)


def test_the_queue_filters_pages_newest_first_and_counts_per_state(desk):
    app, rt, staff, other = desk
    api = app.test_client()
    first = finished(rt, "a.png", ref="11112222", metadata={"nombre": "Ana", "numerosorteo": "A", "fechasorteo": "20250711"})
    reused = finished(rt, "b.png", ref="11112222", metadata={"nombre": "Beto", "numerosorteo": "B", "fechasorteo": "20250712"})
    plain = finished(rt, "c.png", ref="33334444", monto="5,00",
                     metadata={"nombre": "Carla", "idWhatsapp": "584241112233@lid", "numerosorteo": "A"})
    copy = finished(rt, "d.png", ref="55556666", duplicado_de=plain, metadata={"nombre": "Dani", "numerosorteo": "A"})
    finished(rt, "z.png", tenant_id=_tenant_of(rt, "other"), ref="11112222")

    def ids(query, key=staff):
        answer = api.get(f"/api/review_queue?{query}", headers=keyed(key))
        assert answer.status_code == 200, answer.get_json()
        return [item["id"] for item in answer.get_json()["items"]]

    assert ids("") == [copy, plain, reused, first]  # newest first, only this tenant's
    assert ids("estado=reutilizacion") == [reused]
    assert ids("estado=duplicado") == [copy]
    assert ids("numerosorteo=A") == [copy, plain, first]
    assert ids("fechasorteo=20250712") == [reused]
    assert ids("q=carla") == [plain] and ids("q=3333-4444") == [plain] and ids("q=584241112233") == [plain]
    assert ids("q=1111") == [reused, first]
    item = api.get("/api/review_queue?q=beto", headers=keyed(staff)).get_json()["items"][0]
    assert item["posible_reutilizacion"]["upload_id"] == first and item["requiere_revision"] is True
    assert item["campos"]["referencia"] == "11112222" and item["revision"] == "pendiente"

    flagged = ids("estado=revisar")
    assert reused in flagged and copy in flagged
    api.post(f"/api/uploads/{reused}/review", headers=keyed(staff), json={"estado": "aprobado", "nota": "ok"})
    api.post(f"/api/uploads/{copy}/review", headers=keyed(staff), json={"estado": "rechazado", "nota": "copia"})
    assert ids("estado=aprobado") == [reused] and ids("estado=rechazado") == [copy]
    assert reused not in ids("estado=revisar") and copy not in ids("estado=revisar")
    counts = api.get("/api/review_queue/counts", headers=keyed(staff)).get_json()["counts"]
    assert counts["todos"] == 4 and counts["aprobado"] == 1 and counts["rechazado"] == 1
    assert counts["duplicado"] == 1 and counts["reutilizacion"] == 1 and counts["error"] == 0
    assert counts["revisar"] == len(ids("estado=revisar"))
    assert api.get("/api/review_queue/counts?numerosorteo=B", headers=keyed(staff)).get_json()["counts"]["todos"] == 1

    # Cursor paging, and polling for what is newer than the newest one shown.
    page = api.get("/api/review_queue?limit=3", headers=keyed(staff)).get_json()
    assert [i["id"] for i in page["items"]] == [copy, plain, reused] and page["next_cursor"]
    rest = api.get(f"/api/review_queue?limit=3&cursor={page['next_cursor']}", headers=keyed(staff)).get_json()
    assert [i["id"] for i in rest["items"]] == [first] and rest["next_cursor"] is None
    assert ids(f"desde_id={plain}") == [copy]
    assert ids("", key=other) != [] and first not in ids("", key=other)

    for bad in ("estado=nuevo", "cursor=zzz", "limit=0", "desde_id=-1", "q=" + "x" * 101):
        answer = api.get(f"/api/review_queue?{bad}", headers=keyed(staff))
        assert answer.status_code == 400 and answer.get_json()["error"]["code"] == "invalid_parameter", bad
    assert api.get("/api/review_queue").status_code == 401


def test_the_secret_is_made_once_and_shared_by_every_process(tmp_path, make_app, service_env, database_url):
    assert persisted_secret(tmp_path / "d") == persisted_secret(tmp_path / "d") != persisted_secret(tmp_path / "e")
    assert oct((tmp_path / "d" / "secret_key").stat().st_mode & 0o777) == "0o600"
    first, second = make_app(), make_app()
    assert first.secret_key == second.secret_key and len(first.secret_key) >= 64
    if database_url.startswith("postgresql"):  # given to every host (tests/conftest.py), none made on a disk
        assert not (service_env / "data" / "secret_key").exists()
    else:
        assert (service_env / "data" / "secret_key").read_text().strip() == first.secret_key
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "secret_key").write_text("short")
    with pytest.raises(RuntimeError):
        persisted_secret(tmp_path / "bad")


def test_the_csv_export_follows_the_filter_keeps_accents_and_defuses_formulas(desk):
    import csv
    import io

    app, rt, staff, _ = desk
    api = app.test_client()
    finished(rt, "a.png", ref="11112222", metadata={"nombre": "José Peña", "numerosorteo": "A"})
    finished(rt, "b.png", ref="33334444", metadata={"nombre": "=HYPERLINK(\"http://x\")", "numerosorteo": "B"})
    answer = api.get("/api/review_queue?format=csv&estado=todos", headers=keyed(staff))
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    assert "attachment" in answer.headers["Content-Disposition"]
    raw = answer.get_data()
    assert raw.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert [r["nombre"] for r in rows] == ["'=HYPERLINK(\"http://x\")", "José Peña"]
    assert rows[1]["referencia"] == "11112222" and rows[1]["monto"] == "20.57" and rows[1]["revision"] == "pendiente"
    assert list(rows[0]) == list(COLUMNS)  # the same columns as /api/extract_results?format=csv
    only_a = api.get("/api/review_queue?format=csv&numerosorteo=A", headers=keyed(staff)).get_data().decode("utf-8-sig")
    assert len(list(csv.DictReader(io.StringIO(only_a)))) == 1
    assert api.get("/api/review_queue?format=xml", headers=keyed(staff)).status_code == 400


def test_with_no_key_configured_the_desk_is_open_on_this_machine_only(make_app):
    app = make_app()  # no API_KEYS, no stored key: the seed's local single-user mode
    rt = app.extensions["ocr_runtime"]
    upload_id = finished(rt, "a.png")
    client = app.test_client()
    assert "Entrar sin clave" in client.get("/review/login").get_data(as_text=True)
    page = client.get("/review")
    assert page.status_code == 200 and 'id="salir"' not in page.get_data(as_text=True)
    assert [i["id"] for i in client.get("/api/review_queue").get_json()["items"]] == [upload_id]
    create_key(rt.db, "default")  # the first key closes the door, sessions included
    assert client.get("/review").headers["Location"].endswith("/review/login")
    assert client.get("/api/review_queue").status_code == 401


def test_nothing_comes_from_elsewhere():
    """No CDN: every script, style and template of the desk names no other origin."""
    from pathlib import Path
    web = Path(__file__).resolve().parents[1] / "web"
    files = [*web.glob("static/*"), *web.glob("templates/*")]
    assert len(files) >= 6
    for path in files:
        text = path.read_text()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), path
        assert "innerHTML" not in text, path  # receipt text and metadata are set as text only


def test_a_session_ends_after_its_lifetime(make_app):
    import time
    app = make_app(API_KEYS=[ADMIN_KEY], SESSION_LIFETIME_HOURS=1 / 3600)  # one second
    client, _token = signed_in(app, ADMIN_KEY)
    assert client.get("/api/files/processed").status_code == 200
    time.sleep(2.1)
    assert client.get("/api/files/processed").status_code == 401
