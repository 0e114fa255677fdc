"""Mercantil MT940, read with the `mt-940` package.

`:61:` carries value date, booking date, D/C, the amount and `//` + an 11-digit reference; `:86:`
carries `?00` the text and `?21SALDO: 23.663.075,36` the balance after the line (sample
Octubre2019Mercantil.Mt940.txt). The library does not say which line a transaction came from
and skips a `:61:` it cannot read, so each `:61:` is checked here first and the counts compared.
"""
from __future__ import annotations

import re
from datetime import date

import mt940

from reconciliation.build import make_movement, make_statement
from reconciliation.containers import decode_text
from reconciliation.errors import StatementError
from reconciliation.movement import Statement
from reconciliation.spec import FormatSpec
from reconciliation.values import parse_amount, parse_reference

_STATEMENT_LINE = re.compile(r"^:61:(\d{6})(\d{4})?(R?[DC])[A-Z]?(\d{1,12},\d{0,2})N[A-Z0-9]{3}.*?(?://(\S+))?\s*$", re.ASCII)
_TAG = re.compile(r"^:\d{2}[A-Z]?:", re.ASCII)
_BALANCE_TAG = re.compile(r"^:6[0245][FM]?:")
_BALANCE_LINE = re.compile(r"^:6[0245][FM]?:[DC]\d{6}[A-Z]{3}\d[0-9,]{0,15}$", re.ASCII)
_BALANCE = re.compile(r"SALDO:\s*([\d.]+,\d{2})", re.ASCII)


def fits(spec: FormatSpec, data: bytes) -> bool:
    try:
        text = decode_text(data[:8192])
    except StatementError:
        return False
    return text.lstrip().startswith(":20:") and "\n:61:" in text


def parse(spec: FormatSpec, data: bytes) -> Statement:
    text = decode_text(data).replace("\r\n", "\n")
    lines = text.split("\n")
    tag_lines = [n for n, line in enumerate(lines, start=1) if line.startswith(":61:")]
    for number, line in enumerate(lines, start=1):
        # Checked here so a bad line is named, and the library (which logs an ERROR for each
        # line it cannot read) sees none.
        if line.startswith(":") and line.strip() != ":" and not _TAG.match(line):
            raise StatementError(f"etiqueta MT940 inválida {line[:6]!r}", number, spec.id)
        if line.startswith(":61:") and not _STATEMENT_LINE.match(line):
            raise StatementError("línea :61: ilegible (fecha, D/C o monto)", number, spec.id)
        if _BALANCE_TAG.match(line) and not _BALANCE_LINE.match(line.rstrip()):
            raise StatementError(f"saldo {line[:5]} ilegible (D/C, fecha AAMMDD, moneda, monto)", number, spec.id)
    try:
        transactions = mt940.models.Transactions()
        transactions.parse(text)
    except Exception as exc:  # the library raises bare exceptions of several kinds on bad input
        raise StatementError(f"MT940 ilegible: {exc}", None, spec.id) from exc
    if len(transactions) != len(tag_lines):
        raise StatementError(f"{len(tag_lines)} líneas :61: pero {len(transactions)} movimientos leídos",
                             None, spec.id)
    movements = []
    for number, transaction in zip(tag_lines, transactions):
        data = transaction.data
        details = " ".join(filter(None, [data.get("posting_text"), data.get("purpose")]))
        description = _BALANCE.sub("", details).replace("TERMINAL:", "TERMINAL ").strip()
        try:
            reference = parse_reference(data.get("bank_reference"))
            balance_match = _BALANCE.search(details)
            balance = parse_amount(balance_match.group(1), ",") if balance_match else None
        except ValueError as exc:
            raise StatementError(str(exc), number, spec.id) from exc
        booked = data.get("entry_date") or data["date"]
        day = date(booked.year, booked.month, booked.day)  # the library's Date subclass, as a plain date
        movements.append(make_movement(spec, number, day, None, reference, description,
                                       data["amount"].amount, balance))
    opening, closing = transactions.data.get("final_opening_balance"), transactions.data.get("final_closing_balance")
    period = tuple(date(b.date.year, b.date.month, b.date.day) if b else None for b in (opening, closing))
    return make_statement(spec, movements, account=transactions.data.get("account_identification"), period=period)
