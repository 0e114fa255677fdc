"""The desk's pages: sign-in and sign-out, the admin's choice of tenant, the team page of a
tenant's admin account, and the desk itself.

Forms post with the session's CSRF token (refused with 403 without it); sign-in attempts are
rate-limited per address and per name (LOGIN_RATE_LIMIT_PER_MINUTE), so neither passwords nor
keys can be guessed through the form. People sign in with their username or e-mail and password;
a machine's API key still opens the desk (and is shown as the key).
"""
from __future__ import annotations

import hashlib
from typing import Any

from flask import Blueprint, Response, abort, g, redirect, render_template, request, url_for

from api import browser_session
from api.errors import ApiError, error_response
from api.inputs import runtime
from database import StaffRole
from service.access import AccessError, authenticate, keys_configured, tenant_id_named, tenant_names
from service.rate_limit import acquire_quota
from service.staff import create_staff, list_staff, reset_password, set_disabled, verify_login
from web.locale import desk_settings

blueprint = Blueprint("review", __name__, url_prefix="/review", template_folder="templates",
                      static_folder="static", static_url_path="/static")
MAX_KEY_LENGTH = 256
MAX_NAME_LENGTH = 254


@blueprint.before_request
def forms_carry_the_csrf_token() -> None:
    if browser_session.needs_csrf() and not browser_session.csrf_valid():
        abort(Response(render_template("error.html", mensaje="El formulario expiró o no viene de esta página. "
                                       "Vuelva a cargarla e inténtelo de nuevo."), status=403))


@blueprint.errorhandler(ApiError)
def desk_error(error: ApiError) -> Response | tuple[str, int]:
    """A page answers in Spanish, as a page: the session's record unreadable is 503, never entry."""
    if request.path.startswith("/review/static/"):
        return error_response(error.status, error.code, error.message)
    message = ("El servicio no puede leer sus datos en este momento. Inténtelo de nuevo en unos segundos."
               if error.code == "database_unavailable" else "No se pudo completar la solicitud.")
    return render_template("error.html", mensaje=message), error.status


def _signed_in() -> bool:
    return g.get("principal") is not None


def _team_admin() -> bool:
    staff = browser_session.signed_in_staff()
    return staff is not None and staff.staff_role == StaffRole.ADMIN


def _page_context() -> dict[str, Any]:
    rt = runtime()
    principal = g.principal
    staff = browser_session.signed_in_staff()
    context: dict[str, Any] = {"csrf": browser_session.csrf_token(), "es_admin": principal.is_admin,
                               "sesion": g.get("signed_in", False), "equipo": _team_admin(),
                               "persona": staff.display_name if staff else None,
                               "ajustes": desk_settings(rt.settings)}
    names = tenant_names(rt.db)
    chosen = g.get("session_tenant")
    context["inquilino"] = chosen if chosen in names.values() else names.get(principal.tenant_id, "")
    context["inquilinos"] = sorted(names.values()) if principal.is_admin else []
    return context


@blueprint.get("/")
@blueprint.get("")
def desk() -> Response | str:
    if not _signed_in():
        return redirect(url_for("review.login_form"))
    return render_template("desk.html", **_page_context())


@blueprint.get("/reglas")
def learned_rules() -> Response | str:
    """The tenant's rules learned from corrections (web/static/learned_rules.js calls /api/learned_rules)."""
    if not _signed_in():
        return redirect(url_for("review.login_form"))
    return render_template("learned_rules.html", **_page_context())


def _login_page(error: str | None, status: int = 200) -> tuple[str, int]:
    rt = runtime()
    return render_template("login.html", csrf=browser_session.csrf_token(), error=error,
                           abierto=error is None and not keys_configured(rt.settings, rt.db)), status


@blueprint.get("/login")
def login_form() -> tuple[str, int]:
    return _login_page(None)


@blueprint.post("/login")
def login() -> Response | tuple[str, int]:
    rt = runtime()
    name = (request.form.get("usuario") or "").strip()
    secret = request.form.get("clave") or ""
    limit = rt.settings["LOGIN_RATE_LIMIT_PER_MINUTE"]
    wait = acquire_quota(rt, f"login:{request.remote_addr or 'unknown'}", limit, 60)
    if wait is None and name:
        # By the name's hash: any length fits the rate-limit key, and no name is stored in clear.
        wait = acquire_quota(rt, "login-name:" + hashlib.sha256(name.lower().encode("utf-8")).hexdigest()[:40], limit, 60)
    if wait is not None:
        return _login_page(f"Demasiados intentos. Espere {wait} s y vuelva a intentarlo.", 429)
    if name:
        account = verify_login(rt.db, name[:MAX_NAME_LENGTH + 1], secret)
        if account is None:
            return _login_page("Usuario o contraseña incorrectos, o la cuenta está desactivada.", 401)
        browser_session.sign_in_staff(rt, account)
        return redirect(url_for("review.desk"))
    key = secret.strip()
    found = authenticate(rt.db, key, rt.settings["API_KEYS"]) if key and len(key) <= MAX_KEY_LENGTH else None
    if found is None:
        return _login_page("Clave no válida o revocada.", 401)
    browser_session.sign_in(rt, key, found)
    return redirect(url_for("review.desk"))


@blueprint.post("/logout")
def logout() -> Response:
    browser_session.sign_out(runtime())
    return redirect(url_for("review.login_form"))


@blueprint.post("/inquilino")
def choose_tenant() -> Response | tuple[str, int]:
    principal = g.get("principal")
    if principal is None or not g.get("signed_in"):
        return redirect(url_for("review.login_form"))
    if not principal.is_admin:
        return render_template("error.html", mensaje="Solo un administrador puede cambiar de inquilino."), 403
    name = (request.form.get("inquilino") or "").strip()
    if tenant_id_named(runtime().db, name) is None:
        return render_template("error.html", mensaje="Ese inquilino no existe."), 404
    browser_session.choose_tenant(name)
    return redirect(url_for("review.desk"))


# --- the team: a tenant's admin account creates, resets and disables its people's accounts ------
def _team_page(message: str | None = None, error: str | None = None, status: int = 200) -> tuple[str, int]:
    staff = browser_session.signed_in_staff()
    assert staff is not None and staff.tenant_id is not None
    people = [view for view, _ in list_staff(runtime().db, staff.tenant_id)]
    return render_template("team.html", csrf=browser_session.csrf_token(), personas=people, yo=staff.staff_id,
                           mensaje=message, error=error, roles=StaffRole.ALL), status


@blueprint.get("/equipo")
def team() -> Response | tuple[str, int]:
    if not _signed_in():
        return redirect(url_for("review.login_form"))
    if not _team_admin():
        return render_template("error.html", mensaje="Solo el administrador de la empresa gestiona las cuentas."), 403
    return _team_page()


@blueprint.post("/equipo")
def team_change() -> Response | tuple[str, int]:
    if not _signed_in():
        return redirect(url_for("review.login_form"))
    if not _team_admin():
        return render_template("error.html", mensaje="Solo el administrador de la empresa gestiona las cuentas."), 403
    staff = browser_session.signed_in_staff()
    assert staff is not None and staff.tenant_id is not None
    db = runtime().db
    form = request.form
    action = form.get("accion")
    try:
        if action == "crear":
            made = create_staff(db, staff.tenant_id, form.get("usuario", ""), form.get("clave", ""),
                                form.get("rol", StaffRole.REVISOR), form.get("correo"), form.get("nombre"))
            return _team_page(f"Cuenta «{made.username}» creada.")
        account_id = int(form.get("id", ""))
        if action == "restablecer":
            made = reset_password(db, account_id, form.get("clave", ""), tenant_id=staff.tenant_id)
            return _team_page(f"Contraseña de «{made.username}» cambiada; sus sesiones se cerraron.")
        if action in ("desactivar", "activar"):
            if account_id == staff.staff_id:
                return _team_page(error="No puede desactivar su propia cuenta.", status=400)
            made = set_disabled(db, account_id, action == "desactivar", tenant_id=staff.tenant_id)
            return _team_page(f"Cuenta «{made.username}» " + ("desactivada; sus sesiones se cerraron."
                                                              if made.disabled else "activada."))
    except ValueError as exc:  # AccessError is a ValueError, as is a malformed id
        message = str(exc) if isinstance(exc, AccessError) else "Esa cuenta no existe."
        return _team_page(error=message[:1].upper() + message[1:] + ".", status=400)
    return _team_page(error="Acción desconocida.", status=400)
