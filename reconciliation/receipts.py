"""A processed receipt as the matcher sees it: the fields of `extracted_fields` it needs."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

MAX_FIELD_CHARS = 200  # extracted values are short; a corrected field is typed by a person


@dataclass(frozen=True)
class Receipt:
    id: str
    monto: Decimal | None
    fecha: date | None
    referencia: str | None = None
    telefono: str | None = None
    cedula: str | None = None
    banco_origen: str | None = None  # catalog names, as extracted_fields carries them
    banco_destino: str | None = None

    @classmethod
    def from_fields(cls, receipt_id: object, fields: dict) -> "Receipt":
        """From a result's `extracted_fields` ("1234.56", ISO date, ...); unreadable values are None."""
        monto = _amount(fields.get("monto"))
        try:
            fecha = date.fromisoformat(fields["fecha"]) if fields.get("fecha") else None
        except (TypeError, ValueError):
            fecha = None
        text = {k: (str(fields[k])[:MAX_FIELD_CHARS] if fields.get(k) is not None else None)
                for k in ("referencia", "telefono", "cedula", "banco_origen", "banco_destino")}
        return cls(id=str(receipt_id), monto=monto, fecha=fecha, **text)


def _amount(value: object) -> Decimal | None:
    """A positive amount in cents; None for "NaN", "-5", "1.001", "1e400" or anything unreadable."""
    if value is None:
        return None
    try:
        amount = Decimal(str(value))
        if amount.is_finite() and amount > 0 and amount == amount.quantize(Decimal("0.01")):
            return amount
    except InvalidOperation:
        pass
    return None
