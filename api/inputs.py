"""Reading a request: the runtime it runs against, its JSON body, query arguments and client identity."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from hashlib import sha256
from typing import Any

from flask import current_app, request

from api.errors import ApiError
from service.runtime import Runtime

DEFAULT_LIST_LIMIT = 1000
MAX_LIST_LIMIT = 10000


def runtime() -> Runtime:
    return current_app.extensions["ocr_runtime"]


def json_body() -> dict[str, Any]:
    """The request's JSON object; an empty body is an empty object, anything malformed is a 400."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nesting like [[[[...]]]]
        raise ApiError(400, "malformed_json", "The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "malformed_json", "The request body must be a JSON object")
    return body


def bool_field(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise ApiError(400, "invalid_parameter", f"{name} must be true or false", details={"field": name})
    return value


def limit_arg() -> int:
    raw = request.args.get("limit")
    if raw is None:
        return DEFAULT_LIST_LIMIT
    # isdigit() alone accepts "²" (int() refuses it) and 5,000-digit strings (above int()'s limit).
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6) or not 1 <= int(raw) <= MAX_LIST_LIMIT:
        raise ApiError(400, "invalid_parameter", f"limit must be an integer from 1 to {MAX_LIST_LIMIT}",
                       details={"field": "limit"})
    return int(raw)


def time_arg(name: str) -> datetime | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw.strip())
        if moment.tzinfo is not None:
            moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    except (ValueError, OverflowError):  # OverflowError: 0001-01-01T00:00+14:00 is before year 1 in UTC
        raise ApiError(400, "invalid_parameter", f"{name} must be an ISO 8601 date or time",
                       details={"field": name}) from None
    return moment


def client_key() -> str:
    api_key = request.headers.get("X-API-Key")
    if api_key and current_app.config["API_KEYS"]:
        return "key:" + sha256(api_key.encode("utf-8")).hexdigest()[:24]
    return f"ip:{request.remote_addr or 'unknown'}"


