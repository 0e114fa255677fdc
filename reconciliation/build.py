"""Turning what a reader found on one line into a Movement, the same way for every format."""
from __future__ import annotations

from dataclasses import replace
from datetime import date, time
from decimal import Decimal

from extraction.banks import get_catalog
from reconciliation.errors import StatementError
from reconciliation.movement import CREDIT, DEBIT, Movement, Statement, with_fingerprints
from reconciliation.payer import find_payer
from reconciliation.spec import FormatSpec


def make_movement(spec: FormatSpec, line: int, day: date, at: time | None, reference: str | None,
                  description: str, signed_amount: Decimal, balance: Decimal | None) -> Movement:
    if signed_amount == 0:
        raise StatementError("movimiento con monto cero", line, spec.id)
    description = " ".join((description or "").split())
    return Movement(
        line=line, date=day, time=at, reference=reference, description=description,
        direction=CREDIT if signed_amount > 0 else DEBIT, amount=abs(signed_amount), balance=balance,
        is_commission=spec.is_commission(description),
    )


def make_statement(spec: FormatSpec, movements: list[Movement], account: str | None = None,
                   period: tuple[date | None, date | None] = (None, None)) -> Statement:
    """The statement: lines checked against the format's declared order, payers read from the
    descriptions (one catalog lookup per file), and fingerprints given."""
    if not movements:
        raise StatementError("el archivo no contiene movimientos", None, spec.id)
    check_order(spec, movements)
    catalog = get_catalog()
    movements = [_with_payer(m, find_payer(m.description, catalog)) for m in movements]
    return Statement(
        format_id=spec.id, bank_code=spec.bank_code, account=account,
        movements=tuple(with_fingerprints(spec.id, spec.bank_code, account, movements)),
        period_start=period[0], period_end=period[1],
        reference_suffix_length=spec.reference_suffix_length,
        internal_reference_prefixes=spec.internal_reference_prefixes,
    )


def _with_payer(movement: Movement, payer) -> Movement:
    return replace(movement, payer_phone=payer.phone, payer_cedula=payer.cedula, payer_rif=payer.rif,
                   payer_bank_code=payer.bank_code)


def check_order(spec: FormatSpec, movements: list[Movement]) -> None:
    """Dates must run the way the format says: a dd/mm file read as mm/dd (or the other way
    round) jumps back and forth in time and is caught here instead of giving wrong dates."""
    newest_first = spec.row_order == "newest_first"
    for previous, current in zip(movements, movements[1:]):
        backwards = current.date > previous.date if newest_first else current.date < previous.date
        if backwards:
            raise StatementError(
                f"la fecha {current.date.isoformat()} rompe el orden del extracto "
                f"({'más reciente primero' if newest_first else 'más antiguo primero'}) tras "
                f"{previous.date.isoformat()} (línea {previous.line}): ¿formato de fecha equivocado?",
                current.line, spec.id)


def check_balances(spec: FormatSpec, movements: list[Movement]) -> None:
    """Each balance is the one before it plus the movement: proves the debit/credit sign."""
    ordered = list(reversed(movements)) if spec.row_order == "newest_first" else movements
    for previous, current in zip(ordered, ordered[1:]):
        if previous.balance is None or current.balance is None:
            continue
        signed = current.amount if current.is_credit else -current.amount
        if previous.balance + signed != current.balance:
            raise StatementError(
                f"el saldo {current.balance} no es {previous.balance} {'+' if signed > 0 else '-'} "
                f"{current.amount}: signo o saldo ilegible", current.line, spec.id)

