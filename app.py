"""The Flask application factory: settings, schema, CORS, limits, API keys, request ids, errors, logging.

Creating the app is cheap on purpose: no models load and no worker starts here. The worker runs
once per deployment, started by gunicorn.conf.py (or `python main.py worker`), never once per
web process.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, request
from flask_cors import CORS
from sqlalchemy.exc import DBAPIError
from werkzeug.middleware.proxy_fix import ProxyFix

import config
import metrics
import request_context
import routes
import web
from api.auth import register_authentication
from api.browser_session import configure_sessions
from api.errors import register_error_handlers
from api.inputs import CheckedRequest, RowIdConverter, refuse_control_characters_in_query
from logging_setup import configure_logging
from migrations_runner import SchemaOutdated, prepare_schema
from service.runtime import Runtime
from service.secret_key import persisted_secret

logger = logging.getLogger(__name__)
# Receipts, results, the database and the session secret are the tenants' and the service's own:
# files this process creates are 0600 and directories 0700, whoever else shares the host.
PRIVATE_UMASK = 0o077


def restrict_new_files() -> None:
    """Set at start-up of every process (web, worker, CLI): process-wide, so every open() and mkdir()
    of every module (storage, SQLite, Prometheus files) creates private files."""
    os.umask(PRIVATE_UMASK)


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    restrict_new_files()
    settings = config.load_settings(test_config)
    configure_logging(settings["LOG_LEVEL"], settings["LOG_FORMAT"], settings["HOST_NAME"])
    config.require_shared_secrets(settings)

    app = Flask(__name__, static_folder=None)
    app.request_class = CheckedRequest  # form fields with control characters are a 400
    app.config.update(settings)
    # Keep documents in the order they are built (success first, the seed's key order) and readable UTF-8.
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.debug = False
    # Signs the review desk's session cookies: the same in every web process, never a constant in code.
    app.secret_key = settings["SECRET_KEY"] or persisted_secret(Path(settings["DATA_DIR"]))
    configure_sessions(app, settings["SESSION_LIFETIME_HOURS"])
    if settings["TRUSTED_PROXY_COUNT"] > 0:
        hops = settings["TRUSTED_PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]

    CORS(app, resources={r"/api/*": {"origins": settings["CORS_ORIGINS"]}},
         allow_headers=["Content-Type", "Authorization", "X-API-Key", "X-Tenant", "Idempotency-Key",
                        request_context.REQUEST_ID_HEADER],
         expose_headers=["Retry-After", "X-Next-Cursor", request_context.REQUEST_ID_HEADER],
         # PATCH for corrections and PUT for the webhook configuration, from a frontend on another origin.
         methods=["GET", "POST", "PATCH", "PUT", "OPTIONS"])

    runtime = Runtime.from_settings(settings)
    try:
        prepare_schema(runtime.db, settings["MIGRATE_ON_START"])
    except SchemaOutdated as exc:
        logger.error("%s", exc)
        runtime.db.dispose()
        raise
    except DBAPIError:
        # The service still starts; requests answer 503 until the database is back.
        logger.warning("Database unavailable at start-up: requests answer 503 until it is back (schema not checked)")
    app.extensions["ocr_runtime"] = runtime

    _register_request_ids(app)
    app.url_map.converters["int"] = RowIdConverter  # before any route is added: they bind it then
    app.register_blueprint(routes.api)
    app.register_blueprint(web.blueprint)
    app.add_url_rule("/metrics", "prometheus_metrics", routes.prometheus_metrics)
    register_authentication(app)
    app.before_request(refuse_control_characters_in_query)
    _register_headers(app)
    register_error_handlers(app)
    return app


def _register_request_ids(app: Flask) -> None:
    @app.before_request
    def bind_request_id() -> None:
        g.request_id = request_context.accepted_or_new(request.headers.get(request_context.REQUEST_ID_HEADER))
        g.request_id_token = request_context.bind(g.request_id)
        g.started = time.perf_counter()

    @app.after_request
    def answer_request_id(response: Response) -> Response:
        response.headers[request_context.REQUEST_ID_HEADER] = g.get("request_id") or ""
        started = g.get("started")
        if started is not None:
            # The route pattern, not the path: one series per endpoint, never per file name.
            route = request.url_rule.rule if request.url_rule is not None else "unmatched"
            metrics.observe_request(request.method, route, response.status_code, time.perf_counter() - started)
        return response

    @app.teardown_request
    def unbind_request_id(_error: BaseException | None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            request_context.unbind(token)


def _register_headers(app: Flask) -> None:
    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers["X-Content-Type-Options"] = "nosniff"
        # The API serves JSON and metrics: nothing may run, load or frame anything from it (the /api/docs
        # page sets its own, same-origin policy). The review desk's pages run only their own scripts and
        # styles, and reach only this origin.
        if web.is_page(request.path):
            response.headers["Content-Security-Policy"] = web.CONTENT_SECURITY_POLICY
        else:
            response.headers.setdefault("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"
        if request.path.startswith("/api") or request.path == "/metrics" or web.is_private(request.path):
            response.headers["Cache-Control"] = "no-store"
        return response
