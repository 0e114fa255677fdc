"""Authentication of every request and the admin check of admin endpoints.

`require_principal` runs before every request: it sets `g.principal` from the key in `X-API-Key`
or `Authorization: Bearer`, or from the review desk's session cookie (api/browser_session.py: then a request that changes
something must also carry the session's CSRF token, or it gets 403 `csrf_failed`), or answers 401.
Health checks stay open for load balancers. An
installation whose database records anonymous access (database/install.py: a new one, until its
first key is created) treats a key-less caller on the loopback interface (anywhere with
ALLOW_ANONYMOUS) as the default tenant's super-admin, as the seed did.

Fail closed: when a key, a session or the anonymous mode cannot be checked (the database is down,
slow or its pool exhausted), the answer is 503 `database_unavailable`, never a way in.

`@admin_only` under a route decorator makes that endpoint answer 403 to client keys.
"""
from __future__ import annotations

import logging
from functools import wraps
from typing import Any, Callable

from flask import Flask, Response, g, request
from sqlalchemy.exc import SQLAlchemyError

from api import browser_session
from api.errors import ApiError, database_unavailable_response, error_response
from api.inputs import runtime
from service.access import Principal, anonymous_allowed, anonymous_principal, authenticate

# The page /api/docs loads these from /api/docs/ (api/docs.py serves them).
DOCS_ASSETS = ("swagger-ui.css", "index.css", "swagger-ui-bundle.js", "docs.js")
# Health checks stay open for load balancers; the API's description and its page are harmless.
PUBLIC_PATHS = {"/api/health", "/api/health/live", "/api/health/ready", "/api/openapi.json", "/api/docs",
                *(f"/api/docs/{name}" for name in DOCS_ASSETS)}
MAX_KEY_LENGTH = 256
logger = logging.getLogger(__name__)


def presented_key() -> str | None:
    key = request.headers.get("X-API-Key")
    if not key:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        key = value.strip() if scheme.lower() == "bearer" else None
    return key or None


def principal() -> Principal:
    return g.principal


def _protected(path: str) -> bool:
    path = path.rstrip("/") or "/"
    return path not in PUBLIC_PATHS and (path.startswith("/api") or path == "/metrics")


def register_authentication(app: Flask) -> None:
    @app.before_request
    def require_principal() -> Response | None:
        try:
            return _authenticated()
        except SQLAlchemyError:
            g.pop("principal", None)
            if request.method == "OPTIONS" or not _protected(request.path):
                return None  # health checks answer for themselves, with no principal
            logger.warning("Authentication of %s %s could not reach the database", request.method, request.path)
            return database_unavailable_response()


def _authenticated() -> Response | None:
    """None with g.principal set (or on a public path), else the answer that refuses the request."""
    rt = runtime()
    key = presented_key()
    if key is not None and len(key) <= MAX_KEY_LENGTH:
        found = authenticate(rt.db, key, rt.settings["API_KEYS"])
        if found is not None:
            g.principal = found
            return None
    elif key is None and (found := _from_session(rt)) is not None:
        if browser_session.needs_csrf() and _protected(request.path) and not browser_session.csrf_valid():
            return error_response(403, "csrf_failed", "This session's CSRF token is missing or wrong (X-CSRF-Token)")
        g.principal = found
        g.signed_in = True
        g.session_tenant = browser_session.chosen_tenant() if found.is_admin else None
        return None
    elif key is None and anonymous_allowed(rt.settings, rt.db, request.remote_addr):
        g.principal = anonymous_principal(request.remote_addr)
        return None
    if request.method == "OPTIONS" or not _protected(request.path):
        return None
    return error_response(401, "unauthorized", "A valid API key is required (X-API-Key or Authorization: Bearer)")


def _from_session(rt: Any) -> Principal | None:
    # Only a request that carries the cookie reads it: key clients and health checks never touch sessions.
    if browser_session.COOKIE_NAME not in request.cookies:
        return None
    return browser_session.session_principal(rt)


def is_admin() -> bool:
    found = g.get("principal")
    return found is not None and found.is_admin


def admin_only(view: Callable[..., Any]) -> Callable[..., Any]:
    """The endpoint answers 403 to client keys: `@blueprint.post(...)` then `@admin_only`."""
    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if not is_admin():
            raise ApiError(403, "forbidden", "This endpoint needs an admin key")
        return view(*args, **kwargs)
    return guarded
