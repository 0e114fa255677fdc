"""The Flask application factory: settings, CORS, limits, API keys, JSON errors and logging.

Creating the app is cheap on purpose: no models load and no worker starts here. The worker runs
once per deployment, started by gunicorn.conf.py (or `python main.py worker`), never once per
web process.
"""
from __future__ import annotations

import hmac
import logging
import secrets
import sys
from typing import Any

from flask import Flask, Response, jsonify, request
from flask_cors import CORS
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

import config
import routes
from worker import Runtime

logger = logging.getLogger(__name__)

DATABASE_RETRY_AFTER_SECONDS = 5
ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}
# Paths behind the API key when API_KEYS is set; /api/health stays open for load balancers.
PUBLIC_PATHS = {"/api/health"}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None,
                   details: dict[str, Any] | None = None) -> Response:
    body: dict[str, Any] = {"success": False, "error": {"code": code, "message": message}}
    if details:
        body["error"]["details"] = details
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def configure_logging(level: str) -> None:
    root = logging.getLogger()
    root.setLevel(level.upper())
    if any(getattr(handler, "_ocr_service", False) for handler in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"))
    handler._ocr_service = True  # type: ignore[attr-defined]
    root.addHandler(handler)


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    settings = config.load_settings(test_config)
    configure_logging(settings["LOG_LEVEL"])

    app = Flask(__name__, static_folder=None)
    app.config.update(settings)
    app.config["MAX_CONTENT_LENGTH"] = settings["MAX_CONTENT_LENGTH"]
    # Keep documents in the order they are built (success first, the seed's key order) and readable UTF-8.
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.debug = False
    # Sessions are not used by the API, but a constant secret would be a standing risk if they were.
    app.secret_key = settings["SESSION_SECRET"] or secrets.token_hex(32)
    if settings["TRUSTED_PROXY_COUNT"] > 0:
        hops = settings["TRUSTED_PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]

    CORS(app, resources={r"/api/*": {"origins": settings["CORS_ORIGINS"]}},
         allow_headers=["Content-Type", "Authorization", "X-API-Key"],
         expose_headers=["Retry-After"], methods=["GET", "POST", "OPTIONS"])

    runtime = Runtime.from_settings(settings)
    try:
        runtime.db.ensure_schema()
    except DBAPIError:
        # The service still starts; requests answer 503 until the database is back.
        logger.warning("Database unavailable at start-up; the schema will be created on first use")
    app.extensions["ocr_runtime"] = runtime

    app.register_blueprint(routes.api)
    app.add_url_rule("/metrics", "prometheus_metrics", routes.prometheus_metrics)
    _register_api_keys(app, settings["API_KEYS"])
    _register_headers(app)
    _register_error_handlers(app)
    return app


def _register_api_keys(app: Flask, keys: list[str]) -> None:
    encoded_keys = [key.encode("utf-8") for key in keys]

    @app.before_request
    def require_api_key() -> Response | None:
        if not encoded_keys or request.method == "OPTIONS":
            return None
        path = request.path.rstrip("/") or "/"
        if path in PUBLIC_PATHS or not (path.startswith("/api") or path == "/metrics"):
            return None
        supplied = request.headers.get("X-API-Key", "").encode("utf-8")
        # Compare with every key, without stopping early, so timing reveals nothing.
        matched = False
        for key in encoded_keys:
            matched |= hmac.compare_digest(supplied, key)
        if not matched:
            return error_response(401, "unauthorized", "A valid X-API-Key header is required")
        return None


def _register_headers(app: Flask) -> None:
    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers["X-Content-Type-Options"] = "nosniff"
        # Only JSON and metrics are served: nothing may run, load or frame anything from here.
        response.headers["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'none'"
        response.headers["X-Frame-Options"] = "DENY"
        if request.path.startswith("/api") or request.path == "/metrics":
            response.headers["Cache-Control"] = "no-store"
        return response


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(routes.ApiError)
    def api_error(error: routes.ApiError) -> Response:
        headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else None
        return error_response(error.status, error.code, error.message, headers, error.details)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        code = ERROR_CODES.get(status, "http_error")
        message = error.description or error.name
        if status == 413:
            limit = app.config["MAX_CONTENT_LENGTH"] // (1024 * 1024)
            message = f"The request is larger than {limit} MB"
        # Keep protocol headers such as Allow on 405; the body is ours.
        headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
        return error_response(status, code, message, headers)

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    def database_unavailable(error: DBAPIError) -> Response:
        logger.warning("Database unavailable during %s %s: %s", request.method, request.path, type(error.orig).__name__)
        return error_response(503, "database_unavailable", "The database is unavailable; retry shortly",
                              {"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)})

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception) -> Response:
        if type(error).__module__.startswith("gunicorn.http"):
            # The server's body reader refused the client's bytes while the app read them (a bad
            # chunk size, a missing chunk terminator, the body ending early): the request is at fault.
            logger.info("Malformed request body in %s %s: %s", request.method, request.path, error)
            return error_response(400, "malformed_body", "The request body is malformed or incomplete")
        logger.exception("Unhandled error during %s %s", request.method, request.path)
        return error_response(500, "internal_error", "An internal error occurred")
