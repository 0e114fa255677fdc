"""Receipts against statement credits: pure functions, same inputs give the same report.

For each receipt, the credits of equal amount within the date window are weighed by
evidence.py. One candidate of the strongest kind makes it `conciliado`; several, or only
amount-and-date candidates, make it `ambiguo` with all of them listed; none makes it
`no_encontrado` when the statements cover the whole window and `pendiente` when they do not.
One credit pays for one receipt: when two receipts would take the same credit, the one with the
stronger evidence (or, for the same payment shown twice, the first in the given order) keeps it
and the other is flagged as reuse; when neither is stronger, both become `ambiguo`.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from extraction.banks import BankCatalog, get_catalog
from reconciliation.evidence import EXACT, WEAK, Candidate, assess
from reconciliation.movement import Movement, Statement
from reconciliation.receipts import Receipt
from reconciliation.values import reference_digits

CONCILIADO, AMBIGUO, NO_ENCONTRADO, PENDIENTE = "conciliado", "ambiguo", "no_encontrado", "pendiente"
ESTADOS = (CONCILIADO, AMBIGUO, NO_ENCONTRADO, PENDIENTE)


@dataclass(frozen=True)
class MatchSettings:
    date_window_days: int = 1  # a payment made at 23:50 is often booked the next day


@dataclass
class Report:
    results: dict[str, dict]  # receipt id -> conciliacion
    matched: dict[str, str]  # movement fingerprint -> receipt id
    unmatched_credits: list[Movement] = field(default_factory=list)


class _CreditIndex:
    """Credits by exact amount: reconciling 10,000 receipts touches a handful of lines each."""

    def __init__(self, statements: list[Statement]) -> None:
        self.by_amount: dict[Decimal, list[tuple[Movement, Statement]]] = defaultdict(list)
        self.credits: list[tuple[Movement, Statement]] = []
        seen: set[str] = set()
        for statement in statements:
            for movement in statement.movements:
                if not movement.is_credit or movement.is_commission or movement.fingerprint in seen:
                    continue
                seen.add(movement.fingerprint)  # the same line in two overlapping uploads
                self.by_amount[movement.amount].append((movement, statement))
                self.credits.append((movement, statement))


def reconcile(receipts: list[Receipt], statements: list[Statement], settings: MatchSettings = MatchSettings(),
              catalog: BankCatalog | None = None) -> Report:
    if len({r.id for r in receipts}) != len(receipts):
        raise ValueError("receipt ids must be unique")
    bank_code = _BankCodes(catalog or get_catalog())
    index = _CreditIndex(statements)
    window = timedelta(days=settings.date_window_days)
    decisions = {r.id: _candidates(r, index, window, bank_code) for r in receipts}
    results: dict[str, dict] = {}
    matched: dict[str, str] = {}
    claims: dict[str, list[Receipt]] = defaultdict(list)
    for receipt in receipts:
        candidates = decisions[receipt.id]
        best = _unique_best(candidates)
        if best:
            claims[best.movement.fingerprint].append(receipt)
        elif candidates:
            results[receipt.id] = _ambiguous(candidates, "varios movimientos posibles" if len(candidates) > 1
                                             else "solo monto y fecha coinciden: no es prueba")
        else:
            results[receipt.id] = _not_found(receipt, statements, window, bank_code)
    for fingerprint, claimants in claims.items():
        _settle(fingerprint, claimants, decisions, results, matched)
    unmatched = [m for m, _ in index.credits if m.fingerprint not in matched]
    return Report(results={r.id: results[r.id] for r in receipts}, matched=matched, unmatched_credits=unmatched)


def _candidates(receipt: Receipt, index: _CreditIndex, window: timedelta, bank_code: _BankCodes) -> list[Candidate]:
    if receipt.monto is None or receipt.fecha is None:
        return []
    destination, origin = bank_code(receipt.banco_destino), bank_code(receipt.banco_origen)
    found = []
    for movement, statement in index.by_amount.get(receipt.monto, ()):
        if abs(movement.date - receipt.fecha) > window:
            continue
        if destination and destination != statement.bank_code:
            continue  # a statement of another of the business's accounts
        candidate = assess(receipt, movement, statement, origin)
        if candidate:
            found.append(candidate)
    return sorted(found, key=lambda c: (c.tier, c.movement.date, c.movement.line))


def _unique_best(candidates: list[Candidate]) -> Candidate | None:
    exact = [c for c in candidates if c.tier == EXACT]
    if exact:
        return exact[0] if len(exact) == 1 else None
    strong = [c for c in candidates if c.tier < WEAK]
    return strong[0] if len(strong) == 1 else None


def _settle(fingerprint: str, claimants: list[Receipt], decisions: dict[str, list[Candidate]],
            results: dict[str, dict], matched: dict[str, str]) -> None:
    """Who keeps a credit that more than one receipt would take."""
    best = {r.id: _unique_best(decisions[r.id]) for r in claimants}
    top_tier = min(c.tier for c in best.values())
    contenders = [r for r in claimants if best[r.id].tier == top_tier]
    # The same reference and amount: one payment shown twice. Without a reference two receipts
    # of one payer and amount may be two payments, and which one arrived is not known.
    payments = {(reference_digits(r.referencia), r.monto) for r in contenders}
    same_payment = len(payments) == 1 and all(ref for ref, _ in payments)
    if len(contenders) > 1 and not same_payment:
        for receipt in claimants:
            results[receipt.id] = _ambiguous(decisions[receipt.id], "otro recibo reclama el mismo crédito")
        return
    winner = contenders[0]
    matched[fingerprint] = winner.id
    results[winner.id] = {"estado": CONCILIADO, **best[winner.id].to_dict(), "requiere_revision": False}
    for receipt in claimants:
        if receipt is not winner:
            results[receipt.id] = {
                "estado": NO_ENCONTRADO, "requiere_revision": True,
                "motivo": f"el crédito que lo pagaría ya concilia el recibo {winner.id}",
                "reutilizacion": {"recibo": winner.id, "movimiento": best[receipt.id].movement.to_dict()},
            }


def _ambiguous(candidates: list[Candidate], reason: str) -> dict:
    return {"estado": AMBIGUO, "requiere_revision": True, "motivo": reason,
            "candidatos": [c.to_dict() for c in candidates]}


def _not_found(receipt: Receipt, statements: list[Statement], window: timedelta, bank_code: _BankCodes) -> dict:
    if receipt.monto is None or receipt.fecha is None:
        return {"estado": PENDIENTE, "requiere_revision": True, "motivo": "el recibo no tiene monto o fecha legibles"}
    destination = bank_code(receipt.banco_destino)
    spans = [s.covers for s in statements if s.covers and (not destination or destination == s.bank_code)]
    if _covered(receipt.fecha, receipt.fecha + window, spans):
        return {"estado": NO_ENCONTRADO, "requiere_revision": True,
                "motivo": "ningún crédito del extracto coincide en monto, fecha y referencia"}
    return {"estado": PENDIENTE, "requiere_revision": False,
            "motivo": "ningún extracto cubre aún la fecha del recibo"}


def _covered(start: date, end: date, spans: list[tuple[date, date]]) -> bool:
    """Whether the union of the statements' day spans contains every day from start to end."""
    day = start
    for span_start, span_end in sorted(spans):
        if span_start > day:
            break
        if span_end >= day:
            day = span_end + timedelta(days=1)
        if day > end:
            return True
    return day > end


class _BankCodes:
    """Receipts carry a handful of bank names: each is resolved against the catalog once."""

    def __init__(self, catalog: BankCatalog) -> None:
        self.catalog = catalog
        self.codes: dict[str, str | None] = {}

    def __call__(self, bank_name: str | None) -> str | None:
        if not bank_name:
            return None
        if bank_name not in self.codes:
            bank = self.catalog.by_name(bank_name)
            self.codes[bank_name] = bank.code if bank else None
        return self.codes[bank_name]
