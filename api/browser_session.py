"""The review desk's browser session: a server-side session record (service/browser_sessions.py)
behind a signed cookie, and its CSRF token.

The cookie holds the session's random token (its SHA-256 is the stored record's key), the chosen
tenant of an admin key and a CSRF token; it is signed with SECRET_KEY, `HttpOnly`,
`SameSite=Strict` and `Secure` whenever the request came over HTTPS. A session is a staff
account's (a person, service/staff.py) or an API key's (a machine's key typed into the form: it
acts exactly as the key would). Signing in always makes a new token (no fixation); signing out,
disabling the account, resetting its password or revoking the key ends the record, so a saved
cookie stops working at its next request. Every request of a session that changes something must
repeat the CSRF token (`X-CSRF-Token` header from scripts, a `csrf_token` form field from forms).

Fail closed: when the session record or the key cannot be read, the request is answered 503
`database_unavailable` (api/errors.py), never let in.
"""
from __future__ import annotations

import hmac
import secrets
from datetime import timedelta

from flask import Flask, current_app, g, request, session
from flask.sessions import SecureCookieSessionInterface
from sqlalchemy.exc import SQLAlchemyError

from api.errors import ApiError
from database import Role
from service.access import Principal, authenticate_digest, key_hash
from service.browser_sessions import LiveSession, end_session, live_session, open_session
from service.runtime import Runtime
from service.staff import StaffView

COOKIE_NAME = "ocr_sesion"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class _SessionInterface(SecureCookieSessionInterface):
    def get_cookie_secure(self, app: Flask) -> bool:
        # Secure over HTTPS (as seen through TRUSTED_PROXY_COUNT proxies), so plain-HTTP local use still works.
        return request.is_secure or super().get_cookie_secure(app)


def configure_sessions(app: Flask, lifetime_hours: float) -> None:
    app.session_interface = _SessionInterface()
    app.config.update(SESSION_COOKIE_NAME=COOKIE_NAME, SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict",
                      PERMANENT_SESSION_LIFETIME=timedelta(hours=lifetime_hours))


def _lifetime() -> timedelta:
    return current_app.permanent_session_lifetime


def csrf_token() -> str:
    """This browser's token (made on first use, also before sign-in: the sign-in form needs one)."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def csrf_valid() -> bool:
    expected = session.get("csrf")
    sent = request.headers.get(CSRF_HEADER) or (request.form.get(CSRF_FIELD) if request.mimetype in
                                                   ("application/x-www-form-urlencoded", "multipart/form-data") else None)
    return bool(expected and sent) and hmac.compare_digest(str(sent), str(expected))


def _unavailable() -> ApiError:
    return ApiError(503, "database_unavailable", "The database is unavailable; retry shortly")


def _fresh(rt: Runtime, **owner: object) -> None:
    # Nothing of the previous cookie survives (no fixation): a new token, a new CSRF token.
    previous = session.get("sid")
    try:
        if isinstance(previous, str):
            end_session(rt.db, previous)
        token = open_session(rt.db, _lifetime(), **owner)  # type: ignore[arg-type]
    except SQLAlchemyError:
        raise _unavailable() from None
    session.clear()
    session.permanent = True
    session["sid"] = token
    session["csrf"] = secrets.token_urlsafe(32)


def sign_in(rt: Runtime, key: str, principal: Principal) -> None:
    """A new session for this API key."""
    _fresh(rt, key_digest=key_hash(key))


def sign_in_staff(rt: Runtime, account: StaffView) -> None:
    """A new session for this person."""
    _fresh(rt, staff_id=account.id)


def sign_out(rt: Runtime) -> None:
    """The session's record ends now: the cookie, saved anywhere, opens nothing afterwards."""
    token = session.get("sid")
    session.clear()
    if isinstance(token, str):
        try:
            end_session(rt.db, token)
        except SQLAlchemyError:
            raise _unavailable() from None


def session_principal(rt: Runtime) -> Principal | None:
    """The principal of the session, or None (no session, ended, expired, account disabled, key
    revoked). A staff session acts for its own tenant only (role client for the API: a tenant's
    admin account manages people in the desk, not the deployment). Database errors: 503."""
    token = session.get("sid")
    if not isinstance(token, str):
        if "digest" in session:  # a cookie of the release before server-side sessions: not honoured
            session.clear()
        return None
    try:
        live = live_session(rt.db, token, _lifetime())
        found = _principal(rt, live) if live is not None else None
    except SQLAlchemyError:
        raise _unavailable() from None
    if found is None:
        session.clear()
        return None
    g.browser_session = live
    return found


def _principal(rt: Runtime, live: LiveSession) -> Principal | None:
    if live.staff_id is not None and live.tenant_id is not None:
        return Principal(live.tenant_id, Role.CLIENT, None, f"staff:{live.staff_id}")
    if live.key_digest is not None:
        return authenticate_digest(rt.db, live.key_digest, rt.settings["API_KEYS"])
    return None


def signed_in_staff() -> LiveSession | None:
    """The staff session of this request, if a person (not a key) is signed in."""
    live = g.get("browser_session")
    return live if live is not None and live.staff_id is not None else None


def chosen_tenant() -> str | None:
    return session.get("tenant")


def choose_tenant(name: str | None) -> None:
    if name:
        session["tenant"] = name
    else:
        session.pop("tenant", None)


def needs_csrf() -> bool:
    return request.method not in SAFE_METHODS
