"""BBVA Provincial NetCash: comma-separated typed records (sample SEPTIEMBRE2019PROVINCIAL.csv).

- `00,<entity>,<YYMMDD file date>` opens the file; `88,<9s>,<record count>` closes it.
- `11,0108,<office>,<account>,<from YYMMDD>,<to YYMMDD>,<sign>,<opening balance>,928,...` opens
  an account block; `33,0108,<office>,<account>,<debit count>,<debit total>,<credit count>,
  <credit total>,<sign>,<closing balance>,928` closes it.
- `22,0108,<office>,<operation YYMMDD>,<value YYMMDD>,00,<concept>,<1 debit | 2 credit>,
  <14-digit amount, 2 implied decimals>,<10-digit document number>,<description>` a movement.

The totals of each 33 record are checked against the 22 records read, so a dropped or mangled
line is an error rather than a silently short statement.
"""
from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal

from reconciliation.build import make_movement, make_statement
from reconciliation.containers import decode_text
from reconciliation.errors import StatementError
from reconciliation.movement import Statement
from reconciliation.spec import FormatSpec
from reconciliation.values import parse_date, parse_implied_decimals, parse_reference

RECORD_TYPES = ("00", "11", "22", "33", "88")


def _records(data: bytes) -> list[tuple[int, list[str]]]:
    rows = csv.reader(io.StringIO(decode_text(data), newline=""))
    return [(number, [cell.strip() for cell in row]) for number, row in enumerate(rows, start=1) if row]


def fits(spec: FormatSpec, data: bytes) -> bool:
    try:
        records = _records(data[:4096])
    except (StatementError, csv.Error):
        return False
    return bool(records) and records[0][1][:1] == ["00"] and any(r[1][:1] == ["22"] for r in records)


def parse(spec: FormatSpec, data: bytes) -> Statement:
    try:
        records = _records(data)
    except csv.Error as exc:
        raise StatementError(f"CSV ilegible: {exc}", None, spec.id) from exc
    movements, account, block = [], None, None
    period: list[date] = []
    closed = False
    for number, cells in records:
        kind = cells[0]
        if kind not in RECORD_TYPES:
            raise StatementError(f"tipo de registro {kind[:4]!r} desconocido", number, spec.id)
        try:
            if kind == "11":
                account = cells[3]
                period += [parse_date(cells[4], ["%y%m%d"])[0], parse_date(cells[5], ["%y%m%d"])[0]]
                block = {"debits": [0, Decimal(0)], "credits": [0, Decimal(0)]}
            elif kind == "22":
                if block is None:
                    raise ValueError("movimiento fuera de un bloque de cuenta (falta el registro 11)")
                movement = _movement(spec, number, cells)
                totals = block["credits" if movement.is_credit else "debits"]
                totals[0] += 1
                totals[1] += movement.amount
                movements.append(movement)
            elif kind == "33":
                _check_totals(block, cells)
                block = None
            elif kind == "88":
                closed = True
        except (ValueError, IndexError) as exc:
            reason = str(exc) if isinstance(exc, ValueError) else "faltan campos en el registro"
            raise StatementError(reason, number, spec.id) from exc
    if block is not None or not closed:
        raise StatementError("el archivo termina sin registro de totales 33/88 (archivo cortado)",
                             records[-1][0] if records else None, spec.id)
    return make_statement(spec, movements, account=account,
                          period=(min(period), max(period)) if period else (None, None))


def _movement(spec: FormatSpec, number: int, cells: list[str]):
    day, _ = parse_date(cells[3], ["%y%m%d"])
    if cells[7] not in ("1", "2"):
        raise ValueError(f"indicador débito/crédito {cells[7]!r} no es 1 ni 2")
    if len(cells[8]) != 14:
        raise ValueError(f"el monto {cells[8]!r} no tiene 14 dígitos")
    amount = parse_implied_decimals(cells[8])
    reference = parse_reference(cells[9])
    description = cells[10] if len(cells) > 10 else ""
    return make_movement(spec, number, day, None, reference, description,
                         amount if cells[7] == "2" else -amount, None)


def _check_totals(block: dict | None, cells: list[str]) -> None:
    if block is None:
        raise ValueError("registro de totales sin bloque de cuenta")
    expected = {"debits": (int(cells[4]), parse_implied_decimals(cells[5])),
                "credits": (int(cells[6]), parse_implied_decimals(cells[7]))}
    for side, (count, total) in expected.items():
        if tuple(block[side]) != (count, total):
            raise ValueError(f"los totales del registro 33 ({side}: {count}, {total}) no son los de los "
                             f"movimientos leídos ({block[side][0]}, {block[side][1]})")
