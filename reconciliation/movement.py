"""A statement line as a record, the statement it came from, and its stable identity."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from datetime import date, time
from decimal import Decimal
from functools import cached_property

CREDIT = "credito"
DEBIT = "debito"


@dataclass(frozen=True)
class Movement:
    line: int  # 1-based line (or spreadsheet row) of the source file
    date: date
    time: time | None
    reference: str | None  # as printed, leading zeros kept
    description: str
    direction: str  # CREDIT or DEBIT
    amount: Decimal  # always positive; `direction` says which way
    balance: Decimal | None
    payer_phone: str | None = None
    payer_cedula: str | None = None
    payer_rif: str | None = None
    payer_bank_code: str | None = None
    is_commission: bool = False
    fingerprint: str = ""

    @property
    def is_credit(self) -> bool:
        return self.direction == CREDIT

    def to_dict(self) -> dict:
        """The movement as the service's JSON carries it (Spanish keys, amounts as strings)."""
        return {
            "huella": self.fingerprint,
            "linea": self.line,
            "fecha": self.date.isoformat(),
            "hora": self.time.strftime("%H:%M") if self.time else None,
            "referencia": self.reference,
            "descripcion": self.description,
            "tipo": self.direction,
            "monto": str(self.amount),
            "saldo": str(self.balance) if self.balance is not None else None,
            "telefono_pagador": self.payer_phone,
            "cedula_pagador": self.payer_cedula,
            "rif_pagador": self.payer_rif,
            "banco_pagador": self.payer_bank_code,
            "comision": self.is_commission,
        }


@dataclass(frozen=True)
class Statement:
    format_id: str
    bank_code: str
    account: str | None
    movements: tuple[Movement, ...]
    period_start: date | None = None  # the days the export covers, when it says so
    period_end: date | None = None
    reference_suffix_length: int = 8
    internal_reference_prefixes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        """What the service lists for a stored statement (its movements are served apart)."""
        covers = self.covers
        return {"formato": self.format_id, "banco": self.bank_code, "cuenta": self.account,
                "desde": covers[0].isoformat() if covers else None,
                "hasta": covers[1].isoformat() if covers else None,
                "movimientos": len(self.movements),
                "creditos": sum(1 for m in self.movements if m.is_credit and not m.is_commission)}

    @cached_property
    def covers(self) -> tuple[date, date] | None:
        days = [m.date for m in self.movements]
        start = self.period_start or (min(days) if days else None)
        end = self.period_end or (max(days) if days else None)
        return (start, end) if start and end else None


def with_fingerprints(format_id: str, bank_code: str, account: str | None,
                      movements: list[Movement]) -> list[Movement]:
    """Each movement with a hash of what it says, so an overlapping re-upload dedupes.

    Two lines that print exactly the same thing (same day, reference, amount, balance and text)
    are told apart by their order among such twins, counted oldest first. Formats with a balance
    column never have such twins; without one, an export that starts between two twins of the
    same day would give its first twin the identity of the other: documented, and rare.
    """
    chronological = sorted(range(len(movements)), key=lambda i: (movements[i].date, movements[i].time or time(0), i))
    seen: dict[str, int] = {}
    result = list(movements)
    for index in chronological:
        m = movements[index]
        key = "|".join([
            format_id, bank_code, account or "", m.date.isoformat(), m.time.isoformat() if m.time else "",
            m.reference or "", m.direction, str(m.amount), "" if m.balance is None else str(m.balance),
            re.sub(r"\s+", " ", m.description.strip().upper()),
        ])
        ordinal = seen.get(key, 0)
        seen[key] = ordinal + 1
        digest = hashlib.sha256(f"{key}|{ordinal}".encode("utf-8")).hexdigest()[:32]
        result[index] = replace(m, fingerprint=digest)
    return result
