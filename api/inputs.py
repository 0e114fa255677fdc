"""Reading a request: the runtime it runs against, its JSON body, query arguments and client identity."""
from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime, timezone
from typing import Any

from flask import Request, current_app, g, request
from werkzeug.routing import IntegerConverter, Map

from api.errors import ApiError
from reconciliation import ESTADOS
from service.access import tenant_id_named
from service.queries import ReviewFilter
from service.runtime import Runtime
from storage import METADATA_FIELDS

DEFAULT_LIST_LIMIT = 100
MAX_LIST_LIMIT = 1000
CURSOR_VERSION = "v1"
MAX_ROW_ID = 2**63 - 1  # the largest id a 64-bit INTEGER/BIGINT column holds


class RowIdConverter(IntegerConverter):
    """`<int:...>` in every route: a number past any row id is no row's (404 from routing), never
    an OverflowError in the database driver (SQLite's binds 64 bits at most)."""

    def __init__(self, map: Map, fixed_digits: int = 0, min: int | None = None, max: int | None = MAX_ROW_ID,
                 signed: bool = False) -> None:
        super().__init__(map, fixed_digits, min, max, signed)


def runtime() -> Runtime:
    return current_app.extensions["ocr_runtime"]


# NUL and the other C0 control characters but tab, line feed and carriage return, and DEL: no text a
# client sends needs them; PostgreSQL refuses NUL in text (a 500 before) and SQLite stores it as is.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def refuse_control_characters(value: Any, field: str, code: str = "invalid_parameter") -> None:
    """400 `code` when a text (or any text inside a JSON value) holds a control character."""
    if isinstance(value, str):
        if CONTROL_CHARACTERS.search(value):
            raise ApiError(400, code, f"{field[:64]} holds a control character (such as NUL)",
                           details={"field": field[:64]})
    elif isinstance(value, dict):
        for name, item in value.items():
            refuse_control_characters(name, field)
            refuse_control_characters(item, f"{field}.{name}" if field else str(name))
    elif isinstance(value, list):
        for item in value:
            refuse_control_characters(item, field)


def refuse_control_characters_in_query() -> None:
    """Run before every view: the query string's names and values (filters, cursors, tenants...)."""
    for name, values in request.args.lists():
        refuse_control_characters(name, name)
        for value in values:
            refuse_control_characters(value, name)


class CheckedRequest(Request):
    """Form fields (metadata, callback_url, format...) are checked for control characters once parsed."""

    def _load_form_data(self) -> None:
        super()._load_form_data()
        for name, values in self.form.lists():
            # The receipt's metadata keeps the code its other checks answer (storage.validate_metadata).
            code = "invalid_metadata" if name in METADATA_FIELDS else "invalid_parameter"
            refuse_control_characters(name, name)
            for value in values:
                refuse_control_characters(value, name, code)
        for name, upload in self.files.items(multi=True):
            refuse_control_characters(upload.filename or "", name)


def json_body() -> dict[str, Any]:
    """The request's JSON object; an empty body is an empty object, anything malformed is a 400, and
    so is a text anywhere in it holding a control character."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nesting like [[[[...]]]]
        raise ApiError(400, "malformed_json", "The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "malformed_json", "The request body must be a JSON object")
    refuse_control_characters(body, "")
    return body


def bool_field(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise ApiError(400, "invalid_parameter", f"{name} must be true or false", details={"field": name})
    return value


def cursor_for(last_id: int | None) -> str | None:
    """The opaque `next_cursor` of a page that ended at row `last_id` (None: it was the last page)."""
    if last_id is None:
        return None
    return base64.urlsafe_b64encode(f"{CURSOR_VERSION}:{last_id}".encode()).decode().rstrip("=")


def cursor_arg() -> int:
    """The row id after which the page starts (0: the first page); a cursor we did not make is a 400."""
    raw = request.args.get("cursor")
    if raw is None or raw == "":
        return 0
    try:
        if len(raw) > 64:
            raise ValueError
        version, _, last = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii").partition(":")
        if version != CURSOR_VERSION or not (last.isascii() and last.isdigit() and len(last) <= 18):
            raise ValueError
        return int(last)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiError(400, "invalid_parameter", "cursor is not a next_cursor this service returned",
                       details={"field": "cursor"}) from None


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


def conciliacion_arg() -> str | None:
    """The `conciliacion` filter of a list: a reconciliation state, or None for all."""
    value = request.args.get("conciliacion")
    if value is not None and value not in ESTADOS:
        raise ApiError(400, "invalid_parameter", f"conciliacion must be one of {', '.join(ESTADOS)}",
                       details={"field": "conciliacion"})
    return value


def client_key() -> str:
    """The caller's rate-limit identity: its key (hashed), or its address when it has none."""
    found = g.get("principal")
    return found.client_key if found is not None else f"ip:{request.remote_addr or 'unknown'}"


TENANT_HEADER = "X-Tenant"


def tenant_id() -> int:
    """The tenant whose data this request may see and change: the key's own (api/auth.py), or for a
    super-admin the one it names in `X-Tenant` or `?tenant=` (or chose in its review desk session)."""
    chosen = g.get("tenant_id")
    if chosen is None:
        chosen = g.tenant_id = _chosen_tenant_id()
    return chosen


def _chosen_tenant_id() -> int:
    principal = g.principal
    named = request.headers.get(TENANT_HEADER) or request.args.get("tenant") or g.get("session_tenant")
    if not named:
        return principal.tenant_id
    if not principal.is_admin:
        # Whether or not the tenant exists: a client key learns nothing about other tenants.
        raise ApiError(403, "forbidden", f"Only admin keys may choose a tenant ({TENANT_HEADER})")
    found = tenant_id_named(runtime().db, named.strip())
    if not principal.is_superadmin:
        # A tenant's admin may name its own tenant, nothing else (nor learn which other tenants exist).
        if found != principal.tenant_id:
            raise ApiError(403, "forbidden", f"Only super-admin keys may choose another tenant ({TENANT_HEADER})")
        return found
    if found is None:
        raise ApiError(404, "tenant_not_found", f"No tenant named {named.strip()[:64]!r}", details={"field": "tenant"})
    return found


REVIEW_STATES = ("pendiente", "aprobado", "rechazado")


def review_filter_arg() -> ReviewFilter:
    """`revision`, `requiere_revision` and `conciliacion` of a list request."""
    estado = request.args.get("revision")
    if estado is not None and estado not in REVIEW_STATES:
        raise ApiError(400, "invalid_parameter", f"revision must be one of {', '.join(REVIEW_STATES)}",
                       details={"field": "revision"})
    raw = request.args.get("requiere_revision")
    if raw is not None and raw not in ("true", "false"):
        raise ApiError(400, "invalid_parameter", "requiere_revision must be true or false",
                       details={"field": "requiere_revision"})
    return ReviewFilter(estado, None if raw is None else raw == "true", conciliacion_arg())
