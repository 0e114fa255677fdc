"""Bodies of bank statements and reconciliation (api/statements.py)."""
from __future__ import annotations

from pydantic import BaseModel, Field

from api.schemas import Closed, PageQuery, Success, Timestamp
from reconciliation import ESTADOS

Money = str  # two decimals, e.g. "1250.00"
Day = Field(None, pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", description="A date such as 2025-03-01")


class StatementForm(BaseModel):
    """multipart/form-data: one bank statement export (checked by the view)."""
    file: bytes = Field(description="The bank's export (CSV, XLSX...)")
    format: str | None = Field(None, description="'auto' (default) or one of the known formats")


class Statement(Closed):
    id: int
    formato: str
    banco: str | None
    cuenta: str | None
    archivo: str
    sha256: str
    tamano_bytes: int
    subido_en: Timestamp | None
    desde: str | None
    hasta: str | None
    movimientos: int
    movimientos_nuevos: int
    movimientos_conocidos: int
    creditos: int


class StatementStored(Success):
    statement: Statement
    conciliacion: dict[str, int] = Field(description=f"Receipts reconciled by this statement, by state ({', '.join(ESTADOS)})")


class StatementsOut(Success):
    count: int
    statements: list[Statement]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


class MovementFields(Closed):
    id: int
    extracto: int
    linea: int | None
    fecha: str
    hora: str | None
    referencia: str | None
    descripcion: str | None
    tipo: str
    monto: Money
    saldo: Money | None
    telefono_pagador: str | None
    cedula_pagador: str | None
    rif_pagador: str | None
    banco_pagador: str | None
    comision: bool
    huella: str | None


class Receipt(Closed):
    upload_id: int
    stored_name: str | None


class MovementWithReceipt(MovementFields):
    recibo: Receipt | None


class MovementsOut(Success):
    count: int
    movements: list[MovementWithReceipt]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


class UnmatchedOut(Success):
    count: int
    movements: list[MovementFields]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


class DateRangeQuery(BaseModel):
    desde: str | None = Day
    hasta: str | None = Day


class UnmatchedQuery(DateRangeQuery, PageQuery):
    pass


class DaySummary(Closed):
    fecha: str
    creditos_recibidos: int
    monto_recibido: Money
    creditos_conciliados: int
    monto_conciliado: Money
    creditos_sin_recibo: int
    monto_sin_recibo: Money
    recibos: int
    recibos_conciliado: int
    recibos_ambiguo: int
    recibos_no_encontrado: int
    recibos_pendiente: int


class SummaryOut(Success):
    desde: str
    hasta: str
    dias: list[DaySummary]
