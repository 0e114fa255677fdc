"""What ties one receipt to one credit: the reference, or the payer when there is no reference.

Tiers, strongest first. Only the first three can make a receipt `conciliado`; amount and date
alone (WEAK) only ever make it `ambiguo`, since about one credit in nine shares its amount with
another credit of the same day.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from reconciliation.movement import Movement, Statement
from reconciliation.payer import same_cedula, same_phone
from reconciliation.receipts import Receipt

EXACT, SUFFIX, PAYER, WEAK = 0, 1, 2, 3
METHODS = {EXACT: "referencia", SUFFIX: "referencia_sufijo", PAYER: "monto_fecha_pagador", WEAK: "solo_monto_fecha"}


@dataclass(frozen=True)
class Candidate:
    movement: Movement
    statement: Statement
    tier: int
    matched: tuple[str, ...]

    @property
    def method(self) -> str:
        if self.tier == PAYER and is_internal(self.movement, self.statement):
            return "bdv_interno_monto_fecha_pagador"
        return METHODS[self.tier]

    def to_dict(self) -> dict:
        return {"movimiento": self.movement.to_dict(), "formato": self.statement.format_id,
                "metodo": self.method, "coincidencias": list(self.matched)}


def is_internal(movement: Movement, statement: Statement) -> bool:
    """A bank's own statement number (BDV-to-BDV: 06772...), unrelated to the receipt's reference."""
    raw = (movement.reference or "").strip()
    return any(raw.startswith(p) or raw.startswith("0" + p) for p in statement.internal_reference_prefixes)


def reference_match(receipt_ref: str | None, movement_ref: str | None, suffix_length: int) -> str | None:
    """"referencia" when the digits are the same; "referencia_sin_ceros" when they are the same
    number but one side is zero-padded; "referencia_sufijo_N" when the shorter is the end of the
    longer over N >= the format's suffix length digits; None otherwise. The last two are weaker
    than the first: a zero or digits cut off may hide a different payment."""
    a, b = _digits(receipt_ref), _digits(movement_ref)
    if not a.lstrip("0") or not b.lstrip("0"):
        return None
    if a == b:
        return "referencia"
    if a.lstrip("0") == b.lstrip("0"):  # one side zero-padded: the same number, not the same print
        return "referencia_sin_ceros"
    # Digits as printed: a statement's leading zeros may be padding or real digits the receipt
    # cut off, so "045703984" against "45703984" is a suffix, never an exact match.
    overlap = min(len(a), len(b))
    if overlap >= suffix_length and a[-overlap:] == b[-overlap:]:
        return f"referencia_sufijo_{overlap}"
    return None


def _digits(reference: str | None) -> str:
    return re.sub(r"\D", "", reference or "")


def payer_match(receipt: Receipt, movement: Movement) -> list[str]:
    found = []
    if same_phone(receipt.telefono, movement.payer_phone):
        found.append("telefono_pagador")
    if same_cedula(receipt.cedula, movement.payer_cedula) or same_cedula(receipt.cedula, movement.payer_rif):
        found.append("cedula_pagador")
    return found


def assess(receipt: Receipt, movement: Movement, statement: Statement, origin_code: str | None) -> Candidate | None:
    """The candidate this credit is for the receipt (amount and date already agree), or None."""
    base = ("monto", "fecha")
    reference = reference_match(receipt.referencia, movement.reference, statement.reference_suffix_length)
    if reference == "referencia":
        return Candidate(movement, statement, EXACT, (*base, reference))
    bank_conflict = bool(origin_code and movement.payer_bank_code and origin_code != movement.payer_bank_code)
    if reference:
        return Candidate(movement, statement, WEAK if bank_conflict else SUFFIX, (*base, reference))
    reference_says_nothing = (not receipt.referencia or not movement.reference
                              or is_internal(movement, statement))
    if not reference_says_nothing:
        return None  # two different references: a different payment
    payer = payer_match(receipt, movement)
    tier = PAYER if payer and not bank_conflict else WEAK
    return Candidate(movement, statement, tier, (*base, *payer))
