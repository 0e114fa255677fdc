"""Bank statements and reconciliation: uploading an export, listing statements and movements,
credits with no receipt, and the per-day summary. Everything is the caller's tenant's."""
from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from api.errors import ApiError, ok
from api.inputs import client_key, cursor_arg, cursor_for, limit_arg, runtime, tenant_id
from api.limits import STATEMENTS, statement_slot
from api.openapi import endpoint
from api.schemas import PageQuery
from api.schemas_statements import (
    DateRangeQuery,
    MovementsOut,
    StatementForm,
    StatementsOut,
    StatementStored,
    SummaryOut,
    UnmatchedOut,
    UnmatchedQuery,
)
from database import utcnow
from reconciliation import AUTO, StatementError
from service.blocking import run_blocking
from service.rate_limit import acquire_quota
from service.statement_queries import (
    daily_summary,
    movement_entry,
    movements_page,
    statement_entry,
    statement_of,
    statements_page,
    unmatched_credits_page,
)
from service.statements import StoredStatement, formats, parse, store_statement
from storage import display_name

blueprint = Blueprint("statements", __name__)
MAX_SUMMARY_DAYS = 366
DEFAULT_SUMMARY_DAYS = 31
MAX_ROW_ID = 2**31 - 1


def _statement_file() -> tuple[str, bytes]:
    try:
        files = request.files.getlist("file")
    except RequestEntityTooLarge:
        if request.content_length is not None and request.content_length > current_app.config["MAX_CONTENT_LENGTH"]:
            raise
        raise ApiError(413, "too_many_fields", "Send the export in the multipart field 'file' and 'format'") from None
    files = [f for f in files if f and f.filename]
    if len(files) != 1:
        raise ApiError(400, "no_file", "Send one bank statement export in the multipart field 'file'",
                       details={"field": "file"})
    limit = runtime().settings["STATEMENT_MAX_FILE_MB"] * 1024 * 1024
    data = files[0].stream.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, "statement_too_large", f"The statement is larger than {limit // (1024 * 1024)} MB",
                       details={"field": "file", "limit_bytes": limit})
    return display_name(files[0].filename), data


def _format_arg() -> str:
    format_id = (request.form.get("format") or AUTO).strip()
    known = sorted(formats(runtime()))
    if format_id != AUTO and format_id not in known:
        raise ApiError(400, "invalid_parameter", f"format must be 'auto' or one of: {', '.join(known)}",
                       details={"field": "format", "formatos": known})
    return format_id


def _parse_and_store(rt: Any, tenant: int, filename: str, data: bytes, format_id: str) -> StoredStatement:
    # The parse runs in a child process within its memory and time budget (cooperative under
    # gevent); storing and reconciling take seconds of CPU and database: off the event loop.
    parsed = parse(rt, data, format_id)
    return run_blocking(store_statement, rt, tenant, filename, data, parsed)


def _rate_limited(rt: Any) -> None:
    per_minute = rt.settings["STATEMENT_RATE_LIMIT_PER_MINUTE"]
    wait = acquire_quota(rt, f"statements:{client_key()}", per_minute, 60)
    if wait is not None:
        raise ApiError(429, "rate_limited", f"At most {per_minute} statements a minute; retry in {wait} s",
                       retry_after=wait)


@blueprint.post("/statements")
@endpoint("Upload a bank statement export: its movements are stored and the tenant's receipts reconciled",
          form=StatementForm, ok={201: StatementStored},
          errors={400: "no_file, invalid_parameter (format), or the statement's own code (format not detected, "
                       "a bad line: details.linea, details.formato, details.candidatos)",
                  413: "request_too_large, statement_too_large, too_many_fields",
                  429: "rate_limited (STATEMENT_RATE_LIMIT_PER_MINUTE) or too_many_concurrent: retry after Retry-After"})
def upload_statement() -> Response:
    rt = runtime()
    _rate_limited(rt)
    format_id = _format_arg()
    filename, data = _statement_file()
    tenant = tenant_id()
    client = statement_slot()
    try:
        stored = _parse_and_store(rt, tenant, filename, data, format_id)
    except StatementError as exc:
        error = exc.to_error()
        details = {k: error[k] for k in ("linea", "formato", "candidatos") if k in error}
        raise ApiError(400, exc.code, str(exc), details=details) from None
    finally:
        STATEMENTS.release(client)
    return ok({"statement": statement_entry(stored.statement), "conciliacion": stored.outcome}, status=201)


@blueprint.get("/statements")
@endpoint("The tenant's bank statements, newest first", query=PageQuery, ok=StatementsOut)
def list_statements() -> Response:
    page = statements_page(runtime(), tenant_id(), limit_arg(), cursor_arg())
    return ok({"count": len(page.rows), "statements": [statement_entry(s) for s in page.rows],
               "next_cursor": cursor_for(page.last_id)})


def _movement_with_receipt(row: Any) -> dict[str, Any]:
    receipt = {"upload_id": row.upload_id, "stored_name": row.stored_name} if row.upload_id is not None else None
    return {**movement_entry(row[1]), "recibo": receipt}


@blueprint.get("/statements/<int:statement_id>/movements")
@endpoint("One statement's movements, each with the receipt it was matched to", query=PageQuery, ok=MovementsOut,
          errors={404: "not_found: no statement of this id in the tenant"})
def statement_movements(statement_id: int) -> Response:
    rt = runtime()
    # Beyond a 32-bit id PostgreSQL refuses the query itself: no such statement either way.
    if statement_id > MAX_ROW_ID or statement_of(rt, tenant_id(), statement_id) is None:
        raise ApiError(404, "not_found", "No statement with this id")
    page = movements_page(rt, tenant_id(), statement_id, limit_arg(), cursor_arg())
    return ok({"count": len(page.rows), "movements": [_movement_with_receipt(r) for r in page.rows],
               "next_cursor": cursor_for(page.last_id)})


def _date_arg(name: str) -> date | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    try:
        if len(raw) != 10:
            raise ValueError
        return date.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, "invalid_parameter", f"{name} must be a date such as 2025-03-01",
                       details={"field": name}) from None


def _date_range(default_days: int | None) -> tuple[date | None, date | None]:
    first, last = _date_arg("desde"), _date_arg("hasta")
    if default_days is not None:
        try:
            last = last or (first + timedelta(days=default_days - 1) if first else utcnow().date())
            first = first or last - timedelta(days=default_days - 1)
        except OverflowError:  # desde=9999-12-31 (or hasta=0001-01-01) alone: the default span leaves the calendar
            raise ApiError(400, "invalid_parameter", "desde..hasta must lie between years 1 and 9999",
                           details={"field": "desde" if first else "hasta"}) from None
        if (last - first).days >= MAX_SUMMARY_DAYS:
            raise ApiError(400, "invalid_parameter", f"desde..hasta spans at most {MAX_SUMMARY_DAYS} days",
                           details={"field": "desde"})
    if first and last and first > last:
        raise ApiError(400, "invalid_parameter", "desde must not be after hasta", details={"field": "desde"})
    return first, last


@blueprint.get("/conciliacion/no_conciliados")
@endpoint("Credits of the statements with no receipt, by date range", query=UnmatchedQuery, ok=UnmatchedOut)
def unmatched_credits() -> Response:
    first, last = _date_range(None)
    page = unmatched_credits_page(runtime(), tenant_id(), limit_arg(), cursor_arg(), first, last)
    return ok({"count": len(page.rows), "movements": [movement_entry(r[1]) for r in page.rows],
               "next_cursor": cursor_for(page.last_id)})


@blueprint.get("/conciliacion/resumen")
@endpoint("Per day: credits received, matched and without receipt, and receipts by reconciliation state "
          f"(default the last {DEFAULT_SUMMARY_DAYS} days, at most {MAX_SUMMARY_DAYS})", query=DateRangeQuery,
          ok=SummaryOut)
def summary() -> Response:
    first, last = _date_range(DEFAULT_SUMMARY_DAYS)
    return ok({"desde": first.isoformat(), "hasta": last.isoformat(),
               "dias": daily_summary(runtime(), tenant_id(), first, last)})
