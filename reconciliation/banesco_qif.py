"""Banesco QIF ("Consultas → Cuentas → Exportar → Quicken/Money").

QIF is a handful of one-letter lines per record ended by `^`. Banesco writes `!Tipo:Banco`,
`D` dd/mm/yyyy, `T` a signed amount with `.` thousands and `,` decimals (`T+13.000.000,00`),
`N` the reference, `P` the description, `L` a category. The `quiffen` package reads QIF but
strips every character but digits, "." and "-" from amounts, which turns `13.000.000,00` into
an error and `1.136,52` into 1.13652: a reader of our own is shorter than working around it.
"""
from __future__ import annotations

import re

from reconciliation.build import make_movement, make_statement
from reconciliation.containers import decode_text
from reconciliation.errors import StatementError
from reconciliation.movement import Statement
from reconciliation.spec import FormatSpec
from reconciliation.values import parse_amount, parse_date, parse_reference

_HEADER = re.compile(r"^!(?:Tipo|Type):(?:Banco|Bank)\s*$", re.IGNORECASE)
_KNOWN = set("DTUNPLMC")


def fits(spec: FormatSpec, data: bytes) -> bool:
    try:
        first = decode_text(data[:200]).lstrip().splitlines()[:1]
    except StatementError:
        return False
    return bool(first) and bool(_HEADER.match(first[0]))


def parse(spec: FormatSpec, data: bytes) -> Statement:
    lines = decode_text(data).splitlines()
    if not lines or not _HEADER.match(lines[0].strip()):
        raise StatementError("falta la cabecera QIF !Tipo:Banco", 1, spec.id)
    movements, record, start = [], {}, None
    for number, raw in enumerate(lines[1:], start=2):
        line = raw.rstrip()
        if not line:
            continue
        if line == "^":
            if record:
                movements.append(_movement(spec, record, start))
            record, start = {}, None
            continue
        code, value = line[0], line[1:]
        if code not in _KNOWN:
            raise StatementError(f"código QIF desconocido {code!r}", number, spec.id)
        start = start or number
        record[code] = (value, number)
    if record:
        raise StatementError("el último movimiento no termina con '^' (archivo cortado)", start, spec.id)
    return make_statement(spec, movements)


def _movement(spec: FormatSpec, record: dict, start: int):
    for code in "DT":
        if code not in record:
            raise StatementError(f"movimiento sin línea {code}", start, spec.id)
    field_line = start
    try:
        field_line = record["D"][1]
        day, _ = parse_date(record["D"][0].strip(), ["%d/%m/%Y"])
        field_line = record["T"][1]
        amount = parse_amount(record["T"][0], ",")
        field_line = record.get("N", ("", start))[1]
        reference = parse_reference(record.get("N", ("", start))[0])
    except ValueError as exc:
        raise StatementError(str(exc), field_line, spec.id) from exc
    description = record.get("P", ("", start))[0]
    return make_movement(spec, start, day, None, reference, description, amount, None)
