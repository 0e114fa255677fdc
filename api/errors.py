"""Every error the API answers: ApiError, the JSON envelope, the codes and the Flask handlers.

An error body is always `{"success": false, "error": {"code", "message", "request_id"}}`, plus
`details` when there is something to point at; nothing else (no traceback) ever reaches a client.
"""
from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, request
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from request_context import current_request_id

logger = logging.getLogger(__name__)

DATABASE_RETRY_AFTER_SECONDS = 5
STORAGE_RETRY_AFTER_SECONDS = 30
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


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, retry_after: int | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.details = details


def ok(payload: dict[str, Any], status: int = 200) -> Response:
    response = jsonify({"success": True, **payload})
    response.status_code = status
    return response


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None,
                   details: dict[str, Any] | None = None) -> Response:
    body: dict[str, Any] = {"success": False, "error": {"code": code, "message": message,
                                                        "request_id": current_request_id()}}
    if details:
        body["error"]["details"] = details
    response = jsonify(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def database_unavailable_response() -> Response:
    return error_response(503, "database_unavailable", "The database is unavailable; retry shortly",
                          {"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)})


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(error: ApiError) -> Response:
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
    @app.errorhandler(PoolTimeout)
    def database_unavailable(error: Exception) -> Response:
        # PoolTimeout: every pooled connection is busy (DATABASE_POOL_TIMEOUT_SECONDS passed).
        cause = type(getattr(error, "orig", None) or error).__name__
        logger.warning("Database unavailable during %s %s: %s", request.method, request.path, cause)
        return database_unavailable_response()

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception) -> Response:
        if type(error).__module__.startswith("gunicorn.http"):
            # The server's body reader refused the client's bytes while the app read them (a bad
            # chunk size, a missing chunk terminator, the body ending early): the request is at fault.
            logger.info("Malformed request body in %s %s: %s", request.method, request.path, error)
            return error_response(400, "malformed_body", "The request body is malformed or incomplete")
        logger.exception("Unhandled error during %s %s", request.method, request.path)
        return error_response(500, "internal_error", "An internal error occurred")
