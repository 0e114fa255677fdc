"""Banco de Venezuela fixed-width export: 131 ASCII characters a line.

Layout (from the anonymized sample OCTUBRE2019Venezuela.fix.txt): account (20), date DDMMYYYY
(8), reference (13), description (30, truncated by the bank), debit, credit and balance (18
digits each, 2 implied decimals), type (2: SI opening balance, ND/NC debit/credit notes, DP
deposit), a 4-digit transaction code.
"""
from __future__ import annotations

import re

from reconciliation.build import make_movement, make_statement
from reconciliation.containers import decode_text
from reconciliation.errors import StatementError
from reconciliation.movement import Statement
from reconciliation.spec import FormatSpec
from reconciliation.values import parse_date, parse_implied_decimals

LINE_LENGTH = 131
_LINE = re.compile(r"(\d{20})(\d{8})(\d{13})(.{30})(\d{18})(\d{18})(\d{18})(SI|ND|NC|DP)(\d{4})", re.ASCII)
CREDIT_TYPES, DEBIT_TYPES, OPENING = ("NC", "DP"), ("ND",), "SI"


def _lines(data: bytes) -> list[tuple[int, str]]:
    text = decode_text(data)
    return [(n, line.rstrip("\r")) for n, line in enumerate(text.split("\n"), start=1) if line.strip()]


def fits(spec: FormatSpec, data: bytes) -> bool:
    lines = _lines(data[:(LINE_LENGTH + 2) * 5])
    return bool(lines) and all(len(line) == LINE_LENGTH and _LINE.fullmatch(line) for _, line in lines[:5])


def parse(spec: FormatSpec, data: bytes) -> Statement:
    movements, account = [], None
    for number, line in _lines(data):
        match = _LINE.fullmatch(line) if len(line) == LINE_LENGTH else None
        if len(line) != LINE_LENGTH:
            raise StatementError(f"la línea tiene {len(line)} caracteres y no los {LINE_LENGTH} del formato "
                                 "de ancho fijo del BDV", number, spec.id)
        if not match:
            raise StatementError("cuenta, fecha, referencia o montos con caracteres que no son dígitos, "
                                 "o tipo distinto de SI/ND/NC/DP", number, spec.id)
        acct, day, reference, description, debit, credit, balance, kind, _code = match.groups()
        if account and acct != account:
            raise StatementError(f"la cuenta {acct[-4:]} no es la del resto del archivo", number, spec.id)
        account = acct
        if kind == OPENING:
            continue
        try:
            date, _ = parse_date(day, ["%d%m%Y"])
            debit_value, credit_value = parse_implied_decimals(debit), parse_implied_decimals(credit)
            balance_value = parse_implied_decimals(balance)
        except ValueError as exc:
            raise StatementError(str(exc), number, spec.id) from exc
        if bool(debit_value) == bool(credit_value) or (kind in CREDIT_TYPES) != bool(credit_value):
            raise StatementError(f"tipo {kind} con débito {debit_value} y crédito {credit_value}", number, spec.id)
        signed = credit_value or -debit_value
        movements.append(make_movement(spec, number, date, None, reference, description, signed, balance_value))
    return make_statement(spec, movements, account=account)
