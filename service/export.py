"""Result documents as CSV rows: one row per upload with its metadata, the 16 fields, the
validation, the flags and the review state. UTF-8 with a BOM so that Excel reads the accents;
cells that a spreadsheet would run as a formula are defused (the metadata comes from clients)."""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from config import FIELDS
from database import ReviewState, iso
from service.review_words import matched_credit, review_reasons
from storage import METADATA_FIELDS

BOM = "\ufeff"
# Rows read per query of a streamed export; the connection goes back to the pool between pages.
EXPORT_PAGE_ROWS = 200
# read_page(last id of the previous page or None, at most n rows) -> rows, each starting with its id
PageReader = Callable[[int | None, int], Iterable[tuple[Any, ...]]]
# A cell starting with one of these is a formula to Excel, LibreOffice and Google Sheets.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# "+" and "-" start a formula only with an operator, a call or a reference after them (DDE "|",
# another sheet "!", a range ":"): a name like "-maria.png", "-5" or a phone "+58 414..." stays as is.
SIGN_FORMULA_MARKS = ("+", "*", "/", "^", "(", "!", "|", "=", "@", ":", "&", "\t", "\r", "\n")
COLUMNS = (
    "upload_id", "filename", "request_id", "processing_status", "timestamp",
    *METADATA_FIELDS, *FIELDS,
    "valido", "campos_faltantes", "advertencias", "requiere_revision", "campos_corregidos",
    "duplicado_de", "posible_reutilizacion", "reutilizacion_de",
    "revision", "revision_nota", "revision_por", "revision_en",
    # Issue 23: what the office reconciles and signs off with.
    "conciliacion", "conciliacion_fecha", "conciliacion_referencia", "conciliacion_monto", "conciliacion_extracto",
    "conciliacion_linea", "motivos_revision", "aprobado_por", "aprobado_en",
)


def paged_rows(read_page: PageReader, limit: int | None = None, page_rows: int = EXPORT_PAGE_ROWS,
               start: int | None = None) -> Iterator[tuple[Any, ...]]:
    """Every row an export sends (at most `limit`), read a page at a time: each page is fetched whole
    and its session closed before the first of its rows is yielded, so a client that reads slowly (or
    never) holds no database connection, only the page in memory. The one place exports read rows."""
    last, remaining = start, limit
    while remaining is None or remaining > 0:
        wanted = page_rows if remaining is None else min(page_rows, remaining)
        page = list(read_page(last, wanted))  # list(): the reader's session is closed here
        yield from page
        if len(page) < wanted:
            return
        last = page[-1][0]
        if remaining is not None:
            remaining -= len(page)


def safe_cell(value: Any) -> str:
    """The cell's text; booleans as true/false, lists joined by "; ", formulas behind an apostrophe."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        value = "; ".join(str(item) for item in value)
    text = str(value)
    if not text.startswith(FORMULA_STARTS):
        return text
    if text[0] in "+-" and not any(mark in text[1:] for mark in SIGN_FORMULA_MARKS):
        return text
    return "'" + text


def csv_row(document: dict[str, Any], review: tuple[Any, ...]) -> list[str]:
    estado, nota, por, en = review
    meta = document.get("processing_metadata") or {}
    metadata = document.get("metadata") or {}
    fields = document.get("extracted_fields") or {}
    validation = document.get("validacion") or {}
    reuse = document.get("posible_reutilizacion") or {}
    corrected = [name for name, info in (document.get("campos_detalle") or {}).items()
                 if isinstance(info, dict) and "corregido" in info]
    values = [
        meta.get("upload_id"), document.get("filename"), document.get("request_id"), document.get("processing_status"),
        meta.get("timestamp"),
        *(metadata.get(name) for name in METADATA_FIELDS), *(fields.get(name) for name in FIELDS),
        validation.get("valido"), validation.get("campos_faltantes"), validation.get("advertencias"),
        validation.get("requiere_revision"), corrected,
        meta.get("duplicado_de"), reuse.get("reason"), reuse.get("upload_id"),
        estado or ReviewState.PENDING, nota, por, iso(en) if en else None,
        *_reconciliation_cells(document, estado, por, en),
    ]
    return [safe_cell(value) for value in values]


def _reconciliation_cells(document: dict[str, Any], estado: Any, por: Any, en: Any) -> list[Any]:
    credit = matched_credit(document)
    meta = document.get("processing_metadata") or {}
    approved = estado == ReviewState.APPROVED
    return [(document.get("conciliacion") or {}).get("estado"), credit.get("fecha"), credit.get("referencia"),
            credit.get("monto"), credit.get("extracto"), credit.get("linea"),
            review_reasons(document, meta.get("duplicado_de")),
            por if approved else None, iso(en) if approved and en else None]


def csv_lines(rows: Iterable[tuple[Any, ...]]) -> Iterator[str]:
    """The BOM and header, then one line per (id, document JSON text, estado, nota, por, en) row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def line(cells: list[str]) -> str:
        writer.writerow(cells)
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    yield BOM + line(list(COLUMNS))
    for _id, document, *review in rows:
        yield line(csv_row(json.loads(document), tuple(review)))
