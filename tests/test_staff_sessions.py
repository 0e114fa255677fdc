"""Issue 23 (staff accounts, history, undo, approval warnings) and issue 21 item 5 (sessions that
end) without a browser: server-side session records that sign-out, a disabled account, a password
reset and a revoked key end at once; sign-in by username or e-mail, rotated, rate-limited; session
look-ups fail closed; corrections and decisions record the person; a correction undone reconciles
again. SQLite and, with TEST_DATABASE_URL, PostgreSQL."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from database import BrowserSession, ReviewDecision
from service.access import create_key, revoke_key
from service.staff import create_staff, reset_password, set_disabled, verify_login
from tests.test_review_desk import _tenant_of, csrf_of, finished, signed_in
from tests.test_tenants import ADMIN_KEY

PASSWORD = "una-clave-larga-1"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def team(make_app):
    app = make_app(API_KEYS=[ADMIN_KEY], LOGIN_RATE_LIMIT_PER_MINUTE=0)
    rt = app.extensions["ocr_runtime"]
    create_key(rt.db, "tienda", name="bot de la tienda")
    create_key(rt.db, "otra", name="bot de otra")
    tienda, otra = _tenant_of(rt, "tienda"), _tenant_of(rt, "otra")
    ana = create_staff(rt.db, tienda, "ana", PASSWORD, "admin", "ana@tienda.ve", "Ana Pérez")
    luis = create_staff(rt.db, tienda, "luis", PASSWORD, "revisor", None, "Luis Díaz")
    pedro = create_staff(rt.db, otra, "pedro", PASSWORD, "revisor")
    return app, rt, {"ana": ana, "luis": luis, "pedro": pedro, "tienda": tienda, "otra": otra}


def person(app, name, password=PASSWORD, client=None):
    """A browser-like client signed in as a person, and its page's CSRF token."""
    client = client or app.test_client()
    token = csrf_of(client.get("/review/login").get_data(as_text=True))
    answer = client.post("/review/login", data={"usuario": name, "clave": password, "csrf_token": token})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    page = client.get("/review")
    assert page.status_code == 200
    return client, csrf_of(page.get_data(as_text=True))


def cookie_of(client):
    return client.get_cookie("ocr_sesion").value


def with_cookie(app, value):
    fresh = app.test_client()
    fresh.set_cookie("ocr_sesion", value)
    return fresh


def test_sign_out_ends_the_session_a_saved_cookie_and_token_are_worth_nothing(team):
    """Issue 21 finding 4: fails on the cookie-only sessions (the saved cookie kept working)."""
    app, rt, who = team
    upload_id = finished(rt, "a.png", tenant_id=who["tienda"])
    for sign in (lambda: person(app, "ana"), lambda: signed_in(app, create_key(rt.db, "tienda", name="k")[0])):
        client, token = sign()
        saved = cookie_of(client)
        assert with_cookie(app, saved).get(f"/api/uploads/{upload_id}").status_code == 200
        assert client.post("/review/logout", data={"csrf_token": token}).status_code == 302
        replay = with_cookie(app, saved)
        assert replay.get(f"/api/uploads/{upload_id}").status_code == 401
        refused = replay.post(f"/api/uploads/{upload_id}/review", json={"estado": "aprobado"},
                              headers={"X-CSRF-Token": token})
        assert refused.status_code == 401
    assert app.test_client().get(f"/api/uploads/{upload_id}", headers={"X-API-Key": ADMIN_KEY,
                                                                         "X-Tenant": "tienda"}).get_json()[
        "upload"]["review"]["estado"] == "pendiente"


def test_people_sign_in_by_username_or_email_and_each_sign_in_is_a_new_session(team):
    app, rt, who = team
    client, _ = person(app, "ANA@tienda.ve")
    first = cookie_of(client)
    assert "Ana Pérez" in client.get("/review").get_data(as_text=True)
    person(app, "ana", client=client)  # signing in again rotates the session
    assert cookie_of(client) != first
    assert with_cookie(app, first).get("/api/files/processed").status_code == 401
    assert client.get("/api/files/processed").status_code == 200
    for name, password in (("ana", "wrong-password!"), ("nadie", PASSWORD), ("", "ocrk_not-a-key")):
        fresh = app.test_client()
        token = csrf_of(fresh.get("/review/login").get_data(as_text=True))
        answer = fresh.post("/review/login", data={"usuario": name, "clave": password, "csrf_token": token})
        assert answer.status_code == 401 and fresh.get("/api/files/processed").status_code == 401
    with rt.db.session() as session:
        stored = session.scalars(select(BrowserSession.token_hash)).all()
    assert first not in stored and cookie_of(client) not in stored  # only hashes of tokens are kept
    assert verify_login(rt.db, "ana", PASSWORD).role == "admin"


def test_a_disabled_account_or_a_reset_password_signs_out_everywhere_at_the_next_request(team):
    app, rt, who = team
    laptop, _ = person(app, "luis")
    phone, _ = person(app, "luis")
    assert laptop.get("/api/files/processed").status_code == 200 and phone.get("/api/files/processed").status_code == 200
    set_disabled(rt.db, who["luis"].id, True)
    assert laptop.get("/api/files/processed").status_code == 401
    assert phone.get("/review").headers["Location"].endswith("/review/login")
    fresh = app.test_client()
    token = csrf_of(fresh.get("/review/login").get_data(as_text=True))
    assert fresh.post("/review/login", data={"usuario": "luis", "clave": PASSWORD, "csrf_token": token}).status_code == 401
    set_disabled(rt.db, who["luis"].id, False)
    laptop, _ = person(app, "luis")
    reset_password(rt.db, who["luis"].id, "otra-clave-larga-2")
    assert laptop.get("/api/files/processed").status_code == 401
    person(app, "luis", password="otra-clave-larga-2")


def test_a_revoked_key_ends_its_desk_sessions(team):
    app, rt, _ = team
    key, record = create_key(rt.db, "tienda", name="temporal")
    client, _ = signed_in(app, key)
    assert client.get("/api/files/processed").status_code == 200
    revoke_key(rt.db, record.id)
    assert client.get("/api/files/processed").status_code == 401


def test_session_look_ups_fail_closed_when_the_database_fails(team, monkeypatch):
    import api.browser_session as sessions

    app, rt, who = team
    upload_id = finished(rt, "a.png", tenant_id=who["tienda"])
    staff_client, token = person(app, "ana")
    key_client, key_token = signed_in(app, create_key(rt.db, "tienda", name="k")[0])

    def broken(*_args, **_kwargs):
        raise OperationalError("SELECT", {}, Exception("connection refused"))

    monkeypatch.setattr(sessions, "live_session", broken)
    for client, csrf in ((staff_client, token), (key_client, key_token)):
        for method, path in (("GET", f"/api/uploads/{upload_id}"), ("POST", f"/api/uploads/{upload_id}/review"),
                             ("GET", "/review")):
            answer = client.open(path, method=method, json={"estado": "aprobado"}, headers={"X-CSRF-Token": csrf})
            assert answer.status_code == 503, (path, answer.status_code)
            if path.startswith("/api"):
                assert answer.get_json()["error"]["code"] == "database_unavailable"
            else:  # the desk's page says it in Spanish, and lets nothing in
                assert "no puede leer sus datos" in answer.get_data(as_text=True)
    monkeypatch.undo()
    monkeypatch.setattr(sessions, "authenticate_digest", broken)  # the key behind a key's session
    assert key_client.get(f"/api/uploads/{upload_id}").status_code == 503
    monkeypatch.undo()
    assert app.test_client().get(f"/api/uploads/{upload_id}", headers={"X-API-Key": ADMIN_KEY, "X-Tenant": "tienda"}
                                 ).get_json()["upload"]["review"]["estado"] == "pendiente"


def test_sign_ins_by_name_are_rate_limited(make_app):
    app = make_app(API_KEYS=[ADMIN_KEY], LOGIN_RATE_LIMIT_PER_MINUTE=3)
    rt = app.extensions["ocr_runtime"]
    create_staff(rt.db, 1, "ana", PASSWORD)
    client = app.test_client()
    token = csrf_of(client.get("/review/login").get_data(as_text=True))
    codes = [client.post("/review/login", data={"usuario": "ana", "clave": f"guess-{i}-xxxxxx", "csrf_token": token})
             .status_code for i in range(4)]
    assert codes == [401, 401, 401, 429]
    assert "Demasiados intentos" in client.post("/review/login", data={"usuario": "ana", "clave": PASSWORD,
                                                                       "csrf_token": token}).get_data(as_text=True)


def test_a_long_name_is_refused_not_a_server_error(make_app):
    app = make_app(API_KEYS=[ADMIN_KEY], LOGIN_RATE_LIMIT_PER_MINUTE=50)
    client = app.test_client()
    token = csrf_of(client.get("/review/login").get_data(as_text=True))
    for name in ("x" * 300, "ñ" * 254, "nadie"):
        answer = client.post("/review/login", data={"usuario": name, "clave": PASSWORD, "csrf_token": token})
        assert answer.status_code == 401, name


def test_two_clerks_history_shows_each_ones_corrections_and_decisions(team):
    app, rt, who = team
    upload_id = finished(rt, "a.png", tenant_id=who["tienda"])
    ana, ana_token = person(app, "ana")
    luis, luis_token = person(app, "luis")
    assert luis.patch(f"/api/uploads/{upload_id}/fields", json={"referencia": "12345678"},
                      headers={"X-CSRF-Token": luis_token}).status_code == 200
    assert ana.patch(f"/api/uploads/{upload_id}/fields", json={"monto": "21.070,56"},
                     headers={"X-CSRF-Token": ana_token}).status_code == 200
    assert luis.post(f"/api/uploads/{upload_id}/review", json={"estado": "rechazado", "nota": "no cuadra"},
                     headers={"X-CSRF-Token": luis_token}).status_code == 200
    view = ana.post(f"/api/uploads/{upload_id}/review", json={"estado": "aprobado"},
                    headers={"X-CSRF-Token": ana_token}).get_json()["upload"]
    assert [(c["campo"], c["por"], c["por_cuenta"]) for c in view["corrections"]] == [
        ("referencia", "Luis Díaz", who["luis"].id), ("monto", "Ana Pérez", who["ana"].id)]
    assert [(d["estado"], d["por"], d["por_cuenta"], d["nota"]) for d in view["decisiones"]] == [
        ("rechazado", "Luis Díaz", who["luis"].id, "no cuadra"), ("aprobado", "Ana Pérez", who["ana"].id, None)]
    assert view["review"]["por"] == "Ana Pérez"
    # A key still acts as itself, and a person of another tenant sees nothing of it.
    pedro, _ = person(app, "pedro")
    assert pedro.get(f"/api/uploads/{upload_id}").status_code == 404
    assert pedro.get("/api/review_queue?estado=todos").get_json()["items"] == []


def test_an_approval_despite_empty_fields_or_no_reconciliation_records_what_it_was_warned_of(team):
    app, rt, who = team
    upload_id = finished(rt, "a.png", tenant_id=who["tienda"])
    ana, token = person(app, "ana")
    ana.patch(f"/api/uploads/{upload_id}/fields", json={"monto": None}, headers={"X-CSRF-Token": token})
    view = ana.post(f"/api/uploads/{upload_id}/review", json={"estado": "aprobado"},
                    headers={"X-CSRF-Token": token}).get_json()["upload"]
    assert view["review"]["avisos"][0] == "sin_monto"
    assert view["review"]["avisos"][-1].startswith(("conciliacion_", "sin_conciliacion"))
    assert view["decisiones"][-1]["avisos"] == view["review"]["avisos"]
    rejected = ana.post(f"/api/uploads/{upload_id}/review", json={"estado": "rechazado"},
                        headers={"X-CSRF-Token": token}).get_json()["upload"]
    assert rejected["review"]["avisos"] is None  # only an approval is taken in spite of something


def test_a_correction_is_undone_from_its_history_and_reconciled_again(team):
    app, rt, who = team
    upload_id = finished(rt, "a.png", tenant_id=who["tienda"])
    luis, token = person(app, "luis")
    before = luis.get(f"/api/uploads/{upload_id}").get_json()["upload"]
    original = before["result"]["extracted_fields"]["monto"]
    cleared = luis.patch(f"/api/uploads/{upload_id}/fields", json={"monto": None},
                         headers={"X-CSRF-Token": token}).get_json()["upload"]
    assert cleared["result"]["extracted_fields"]["monto"] is None
    slip = cleared["corrections"][-1]
    assert luis.post(f"/api/uploads/{upload_id}/corrections/{slip['id']}/undo").status_code == 403  # CSRF
    undone = luis.post(f"/api/uploads/{upload_id}/corrections/{slip['id']}/undo",
                       headers={"X-CSRF-Token": token}).get_json()["upload"]
    assert undone["result"]["extracted_fields"]["monto"] == original
    last = undone["corrections"][-1]
    assert (last["campo"], last["anterior"], last["nuevo"], last["deshace"], last["por"]) == (
        "monto", None, original, slip["id"], "Luis Díaz")
    assert undone["conciliacion"] is not None and undone["conciliacion"]["estado"] == before["conciliacion"]["estado"]
    assert undone["result"]["validacion"] == before["result"]["validacion"]
    # Not another tenant's, not a made-up id.
    pedro, pedro_token = person(app, "pedro")
    assert pedro.post(f"/api/uploads/{upload_id}/corrections/{slip['id']}/undo",
                      headers={"X-CSRF-Token": pedro_token}).status_code == 404
    assert luis.post(f"/api/uploads/{upload_id}/corrections/999999/undo",
                     headers={"X-CSRF-Token": token}).status_code == 404
    with rt.db.session() as session:
        assert session.scalars(select(ReviewDecision)).all() == []


def test_a_tenant_admin_manages_the_team_in_the_desk_and_a_revisor_cannot(team):
    app, rt, who = team
    luis, luis_token = person(app, "luis")
    assert luis.get("/review/equipo").status_code == 403
    ana, token = person(app, "ana")
    page = ana.get("/review/equipo").get_data(as_text=True)
    assert "luis" in page and "pedro" not in page  # its own tenant's people only
    made = ana.post("/review/equipo", data={"csrf_token": token, "accion": "crear", "usuario": "rosa",
                                            "clave": "rosa-clave-larga", "rol": "revisor", "nombre": "Rosa"})
    assert made.status_code == 200 and "Cuenta «rosa» creada" in made.get_data(as_text=True)
    person(app, "rosa", password="rosa-clave-larga")
    assert ana.post("/review/equipo", data={"accion": "desactivar", "id": who["luis"].id}).status_code == 403  # CSRF
    off = ana.post("/review/equipo", data={"csrf_token": token, "accion": "desactivar", "id": who["luis"].id})
    assert off.status_code == 200 and "desactivada" in off.get_data(as_text=True)
    assert luis.get("/api/files/processed").status_code == 401  # signed out at its next request
    foreign = ana.post("/review/equipo", data={"csrf_token": token, "accion": "desactivar", "id": who["pedro"].id})
    assert foreign.status_code == 400
    assert person(app, "pedro")[0].get("/api/files/processed").status_code == 200
    short = ana.post("/review/equipo", data={"csrf_token": token, "accion": "restablecer", "id": who["luis"].id,
                                             "clave": "corta"})
    assert short.status_code == 400 and "contraseña" in short.get_data(as_text=True)


def test_the_staff_commands_create_reset_disable_and_list(service_env, tmp_path):
    def run(*args, stdin=""):
        done = subprocess.run([sys.executable, str(ROOT / "main.py"), "staff", *args], input=stdin, text=True,
                              capture_output=True, cwd=tmp_path, timeout=120)
        return done.returncode, [json.loads(line) for line in done.stdout.splitlines() if line.strip()], done.stderr

    code, out, err = run("create", "--tenant", "tienda", "--username", "ana", "--email", "ana@tienda.ve", "--name",
                         "Ana Pérez", "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 0, err
    assert out[0]["usuario"] == "ana" and out[0]["rol"] == "admin" and out[0]["inquilino"] == "tienda"
    assert run("create", "--tenant", "tienda", "--username", "ana", stdin=PASSWORD + "\n")[0] == 2  # taken
    assert run("create", "--tenant", "tienda", "--username", "bea", stdin="corta\n")[0] == 2
    assert run("reset", "ana@tienda.ve", "--password-stdin", stdin="nueva-clave-larga\n")[0] == 0
    assert run("disable", "ana")[1][0]["desactivada"] is True
    listed = run("list", "--tenant", "tienda")[1]
    assert [(e["usuario"], e["desactivada"]) for e in listed] == [("ana", True)]
    assert run("enable", "ana")[1][0]["desactivada"] is False
    assert run("disable", "nadie")[0] == 2


def test_the_actor_of_a_staff_principal_is_the_person(team):
    from service.access import Principal
    from service.corrections import actor_name

    _app, rt, who = team
    assert actor_name(rt, Principal(who["tienda"], "client", None, f"staff:{who['ana'].id}")) == "Ana Pérez"
