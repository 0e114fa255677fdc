"""A processed receipt as the matcher sees it: the fields of `extracted_fields` it needs."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation


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
        try:
            monto = Decimal(str(fields.get("monto"))) if fields.get("monto") is not None else None
        except InvalidOperation:
            monto = None
        try:
            fecha = date.fromisoformat(fields["fecha"]) if fields.get("fecha") else None
        except (TypeError, ValueError):
            fecha = None
        return cls(
            id=str(receipt_id), monto=monto, fecha=fecha, referencia=fields.get("referencia"),
            telefono=fields.get("telefono"), cedula=fields.get("cedula"),
            banco_origen=fields.get("banco_origen"), banco_destino=fields.get("banco_destino"),
        )
