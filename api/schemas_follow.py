"""Bodies of following one upload (api/follow.py) and of the review desk's queue (api/review_queue.py).

Shapes as service/follow.py and service/review_queue.py build them; closed except the result and
reconciliation documents, which grow as the reader and the matcher learn more.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

import config
from api.schemas import BatchStateName, Closed, ErrorInfo, FileEntry, PageQuery, Success, Timestamp, UploadState
from service.corrections import MAX_NOTE_CHARS
from service.review_queue import MAX_TEXT, STATES

ReviewState = Literal["pendiente", "aprobado", "rechazado"]
Conciliacion = dict[str, Any]  # the reconciliation document (estado, movimiento, candidatos...), open


class BatchRef(Closed):
    request_id: str
    state: BatchStateName


class ReviewInfo(Closed):
    estado: ReviewState
    nota: str | None
    por: str | None = Field(description="Who decided: the person's name, or the key's name or id")
    en: Timestamp | None
    por_cuenta: int | None = Field(None, description="The staff account that decided (null for a key)")
    avisos: list[str] | None = Field(None, description="An approval's warnings, taken anyway: sin_monto, "
                                     "sin_referencia, sin_fecha, conciliacion_<estado>, sin_conciliacion")


class DecisionEntry(Closed):
    estado: ReviewState
    nota: str | None
    por: str
    por_cuenta: int | None
    avisos: list[str] | None
    en: Timestamp


class CorrectionEntry(Closed):
    id: int
    campo: str
    anterior: Any = Field(description="The value before (as stored: text, number or null)")
    nuevo: Any = Field(description="The corrected value, read as extraction reads it (or null)")
    por: str | None
    por_cuenta: int | None = Field(None, description="The staff account that corrected (null for a key)")
    deshace: int | None = Field(None, description="The id of the correction this one undid, or null")
    en: Timestamp | None


class UploadDetail(FileEntry):
    """A file entry of the lists, with what following one upload adds."""
    batch: BatchRef | None
    posible_reutilizacion: Any = Field(description="The result document's value (the earlier use), or null")
    requiere_revision: bool | None
    review: ReviewInfo
    corrections: list[CorrectionEntry]
    decisiones: list[DecisionEntry] = Field(description="Every review decision, oldest first")
    conciliacion: Conciliacion | None = Field(description="The reconciliation against bank statements, or null")
    result: dict[str, Any] | None = Field(description="The result document with corrected values applied (open)")
    image_url: str


class UploadDetailOut(Success):
    upload: UploadDetail


FieldValue = str | float | int | None


class FieldsBody(BaseModel):
    """{field: value-or-null} of config.FIELDS; the view reads each value as extraction does."""
    model_config = {"extra": "allow", "json_schema_extra": {
        "propertyNames": {"enum": list(config.FIELDS)},
        "additionalProperties": {"type": ["string", "number", "null"]}}}


class ReviewBody(BaseModel):
    estado: ReviewState
    nota: str | None = Field(None, max_length=MAX_NOTE_CHARS)


# --- the review desk's queue ------------------------------------------------------------------
QueueState = Literal[STATES]  # type: ignore[valid-type]


class QueueFilterQuery(BaseModel):
    estado: QueueState = "todos"
    q: str | None = Field(None, max_length=MAX_TEXT, description="Reference, phone, cédula, name, file name...")
    numerosorteo: str | None = Field(None, max_length=MAX_TEXT)
    fechasorteo: str | None = Field(None, max_length=MAX_TEXT)


class QueueQuery(QueueFilterQuery, PageQuery):
    desde_id: str | None = Field(None, pattern=r"^[0-9]{1,10}$", description="Only the uploads newer than this id")
    format: Literal["json", "csv", "xlsx"] = Field("json", description="csv: the filter's results as extract_results' "
                                                    "CSV; xlsx: as a workbook (Spanish titles, numbers, dates)")


class QueueItem(Closed):
    id: int
    original_name: str
    stored_name: str
    metadata: dict[str, str]
    status: UploadState
    error: ErrorInfo | None
    created_at: Timestamp | None
    duplicado_de: int | None
    posible_reutilizacion: Any
    requiere_revision: bool | None
    revision: ReviewState
    nota: str | None
    campos: dict[str, str | None]


class QueueOut(Success):
    count: int
    items: list[QueueItem]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


class QueueCountsOut(Success):
    counts: dict[QueueState, int]  # type: ignore[valid-type]
