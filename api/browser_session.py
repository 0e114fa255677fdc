"""The review desk's browser session: an API key exchanged for a signed cookie, and its CSRF token.

The cookie holds the key's SHA-256 (never the key), the chosen tenant of an admin and a CSRF
token; it is signed with SECRET_KEY, `HttpOnly`, `SameSite=Strict` and `Secure` whenever the
request came over HTTPS. A request that authenticates with the cookie acts exactly as the key
would (api/auth.py), and every request of it that changes something must repeat the CSRF token
(`X-CSRF-Token` header from scripts, a `csrf_token` form field from forms): a cookie is sent by
the browser on its own, a header or form field only by the page that read the token. Clients
that present the key itself need no token, as before.
"""
from __future__ import annotations

import hmac
import secrets
from datetime import timedelta

from flask import Flask, request, session
from flask.sessions import SecureCookieSessionInterface

from service.access import Principal, authenticate_digest, key_hash
from service.runtime import Runtime

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


def sign_in(key: str, principal: Principal) -> None:
    """A new session for this key: nothing of the previous one survives (no fixation)."""
    session.clear()
    session.permanent = True
    session["digest"] = key_hash(key)
    session["role"] = principal.role
    session["csrf"] = secrets.token_urlsafe(32)


def sign_out() -> None:
    session.clear()


def session_principal(rt: Runtime) -> Principal | None:
    """The principal of the session's key, or None (no session, or the key is no longer valid)."""
    digest = session.get("digest")
    if not isinstance(digest, str):
        return None
    found = authenticate_digest(rt.db, digest, rt.settings["API_KEYS"])
    if found is None:
        session.clear()
    return found


def chosen_tenant() -> str | None:
    return session.get("tenant")


def choose_tenant(name: str | None) -> None:
    if name:
        session["tenant"] = name
    else:
        session.pop("tenant", None)


def needs_csrf() -> bool:
    return request.method not in SAFE_METHODS

