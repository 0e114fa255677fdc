"""The desk's pages: sign-in and sign-out, the admin's choice of tenant, and the desk itself.

Forms post with the session's CSRF token (refused with 403 without it); a failed sign-in is
rate-limited per address (LOGIN_RATE_LIMIT_PER_MINUTE) so keys cannot be guessed through it.
"""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, g, redirect, render_template, request, url_for

from api import browser_session
from api.inputs import runtime
from service.access import authenticate, keys_configured, tenant_id_named, tenant_names
from service.rate_limit import acquire_quota

blueprint = Blueprint("review", __name__, url_prefix="/review", template_folder="templates",
                      static_folder="static", static_url_path="/static")
MAX_KEY_LENGTH = 256


@blueprint.before_request
def forms_carry_the_csrf_token() -> None:
    if browser_session.needs_csrf() and not browser_session.csrf_valid():
        abort(Response(render_template("error.html", mensaje="El formulario expiró o no viene de esta página. "
                                       "Vuelva a cargarla e inténtelo de nuevo."), status=403))


def _signed_in() -> bool:
    return g.get("principal") is not None


def _page_context() -> dict[str, Any]:
    rt = runtime()
    principal = g.principal
    context: dict[str, Any] = {"csrf": browser_session.csrf_token(), "es_admin": principal.is_admin,
                               "sesion": g.get("signed_in", False)}
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


@blueprint.get("/login")
def login_form() -> str:
    return render_template("login.html", csrf=browser_session.csrf_token(), error=None,
                           abierto=not keys_configured(runtime().settings, runtime().db))


@blueprint.post("/login")
def login() -> Response | tuple[str, int]:
    rt = runtime()
    key = (request.form.get("clave") or "").strip()
    wait = acquire_quota(rt, f"login:{request.remote_addr or 'unknown'}", rt.settings["LOGIN_RATE_LIMIT_PER_MINUTE"], 60)
    if wait is not None:
        return render_template("login.html", csrf=browser_session.csrf_token(), abierto=False,
                               error=f"Demasiados intentos. Espere {wait} s."), 429
    found = authenticate(rt.db, key, rt.settings["API_KEYS"]) if key and len(key) <= MAX_KEY_LENGTH else None
    if found is None:
        return render_template("login.html", csrf=browser_session.csrf_token(), abierto=False,
                               error="Clave no válida o revocada."), 401
    browser_session.sign_in(key, found)
    return redirect(url_for("review.desk"))


@blueprint.post("/logout")
def logout() -> Response:
    browser_session.sign_out()
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
