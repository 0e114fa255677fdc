"""The review export as an XLSX workbook the office opens: one row per receipt, Spanish column
titles, amounts as numbers, dates as dates, times in the desk's time zone, with the
reconciliation state, the credit it matched, the reasons it needs review and who decided it, when.

Rows come from the same iterator as the CSV ((id, document JSON, estado, nota, por, en), a few
at a time); openpyxl's write-only workbook writes each row to a temporary file as it comes, so
memory stays flat for any number of rows. Every text cell is stored as text, never as a formula,
whatever it starts with.
"""
from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Iterator
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import IO, Any
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell

from config import FIELDS
from service.review_words import (
    FIELD_TITLES,
    RECONCILIATION_NAMES,
    REVIEW_NAMES,
    TRANSACTION_NAMES,
    matched_credit,
    review_reasons,
)

MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CHUNK = 64 * 1024
AMOUNT = "#,##0.00"
DAY = "DD/MM/YYYY"
MOMENT = "DD/MM/YYYY HH:MM"
METADATA_TITLES = (("nombre", "Nombre"), ("idWhatsapp", "WhatsApp"), ("numerosorteo", "Sorteo"),
                   ("fechasorteo", "Fecha del sorteo"))
TITLES = ("Comprobante", "Archivo", "Recibido", *(title for _, title in METADATA_TITLES),
          *(FIELD_TITLES[name] for name in FIELDS),
          "Conciliación", "Crédito: fecha", "Crédito: referencia", "Crédito: monto", "Crédito: extracto y línea",
          "Motivos de revisión", "Revisión", "Nota", "Decidido por", "Decidido el", "Aprobado por", "Aprobado el")
AMOUNT_FIELDS = {"monto"}
DATE_FIELDS = {"fecha"}


def _amount(value: Any) -> Decimal | str | None:
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return str(value)


def _day(value: Any) -> date | str | None:
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return str(value)


def _moment(value: Any, zone: ZoneInfo) -> datetime | None:
    """A UTC instant (ISO text or a naive-UTC datetime) as the desk's local time (Excel has no zones)."""
    if value in (None, ""):
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(zone).replace(tzinfo=None)


def _row(document: dict[str, Any], review: tuple[Any, ...], zone: ZoneInfo) -> list[Any]:
    estado, nota, por, en = review
    estado = estado or "pendiente"
    meta = document.get("processing_metadata") or {}
    metadata = document.get("metadata") or {}
    fields = document.get("extracted_fields") or {}
    credit = matched_credit(document)
    state = (document.get("conciliacion") or {}).get("estado")
    values: list[Any] = [meta.get("upload_id"), document.get("filename"), _moment(meta.get("timestamp"), zone),
                         *(metadata.get(name) for name, _ in METADATA_TITLES)]
    for name in FIELDS:
        value = fields.get(name)
        values.append(_amount(value) if name in AMOUNT_FIELDS else _day(value) if name in DATE_FIELDS
                      else TRANSACTION_NAMES.get(value, value) if name == "tipo_transaccion" else value)
    place = " · ".join(part for part in (f"extracto #{credit['extracto']}" if credit.get("extracto") else "",
                                         f"línea {credit['linea']}" if credit.get("linea") else "") if part)
    decided = _moment(en, zone)
    approved = estado == "aprobado"
    values += [RECONCILIATION_NAMES.get(state, state) if state else "Sin conciliar", _day(credit.get("fecha")),
               credit.get("referencia"), _amount(credit.get("monto")), place or None,
               "; ".join(review_reasons(document, meta.get("duplicado_de"))) or None,
               REVIEW_NAMES.get(estado, estado), nota, por if estado != "pendiente" else None,
               decided if estado != "pendiente" else None, por if approved else None, decided if approved else None]
    return values


def _cell(sheet: Any, value: Any) -> Any:
    cell = WriteOnlyCell(sheet, value=value)
    if isinstance(value, str):
        cell.data_type = "s"  # never a formula, whatever the text starts with
    elif isinstance(value, datetime):
        cell.number_format = MOMENT
    elif isinstance(value, date):
        cell.number_format = DAY
    elif isinstance(value, Decimal):
        cell.number_format = AMOUNT
    return cell


def write_workbook(rows: Iterable[tuple[Any, ...]], out: IO[bytes], time_zone: str = "America/Caracas") -> int:
    """Write the workbook of these rows to `out`; returns the number of receipts written."""
    zone = ZoneInfo(time_zone)
    book = Workbook(write_only=True)
    sheet = book.create_sheet("Comprobantes")
    sheet.freeze_panes = "A2"
    sheet.append([_cell(sheet, title) for title in TITLES])
    count = 0
    for _id, document, *review in rows:
        sheet.append([_cell(sheet, value) for value in _row(json.loads(document), tuple(review), zone)])
        count += 1
    book.save(out)
    return count


def xlsx_chunks(rows: Iterable[tuple[Any, ...]], time_zone: str) -> Iterator[bytes]:
    """The workbook's bytes, written to a temporary file first (a zip is only whole at its end)."""
    with tempfile.TemporaryFile() as spool:
        write_workbook(rows, spool, time_zone)
        spool.seek(0)
        while chunk := spool.read(CHUNK):
            yield chunk
