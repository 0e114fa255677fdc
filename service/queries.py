"""Read-only questions the API asks: lists of uploads, one batch, results, queue and batch figures."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from database import Batch, BatchState, Result, Upload
from service.monitoring import counts_by
from service.runtime import Runtime


def uploads_with_status(rt: Runtime, statuses: tuple[str, ...], limit: int) -> list[Upload]:
    with rt.db.session() as session:
        return list(session.scalars(select(Upload).where(Upload.status.in_(statuses)).order_by(Upload.id).limit(limit)).all())


def batch_by_request_id(rt: Runtime, request_id: str) -> Batch | None:
    with rt.db.session() as session:
        return session.scalar(select(Batch).where(Batch.request_id == request_id))


@dataclass(frozen=True)
class StoredResult:
    status: str  # the upload's status
    document: dict[str, Any] | None  # None until it is processed


def result_of(rt: Runtime, stored_name: str) -> StoredResult | None:
    """The upload's status and document; None when no upload has that name."""
    with rt.db.session() as session:
        row = session.execute(
            select(Upload.status, Result.document).outerjoin(Result, Result.upload_id == Upload.id)
            .where(Upload.stored_name == stored_name)
        ).first()
    return None if row is None else StoredResult(status=row.status, document=row.document)


def result_documents(rt: Runtime, request_id: str | None, since: datetime | None, until: datetime | None,
                     limit: int) -> list[dict[str, Any]]:
    query = select(Result.document).order_by(Result.id).limit(limit)
    if request_id:
        query = query.where(Result.request_id == request_id)
    if since:
        query = query.where(Result.created_at >= since)
    if until:
        query = query.where(Result.created_at <= until)
    with rt.db.session() as session:
        return list(session.scalars(query).all())


def queue_counts(rt: Runtime) -> tuple[dict[str, int], dict[str, int]]:
    """(uploads by status, batches by state)."""
    with rt.db.session() as session:
        return counts_by(session, Upload.status), counts_by(session, Batch.state)


@dataclass(frozen=True)
class BatchFigures:
    states: dict[str, int]
    images: int
    failed: int
    busy_seconds: float
    average_batch_seconds: float | None
    average_image_seconds: float | None
    recent: list[Batch]


def batch_figures(rt: Runtime, recent: int = 10) -> BatchFigures:
    with rt.db.session() as session:
        states = counts_by(session, Batch.state)
        images, failed, busy = session.execute(
            select(func.coalesce(func.sum(Batch.processed_count), 0), func.coalesce(func.sum(Batch.error_count), 0),
                   func.coalesce(func.sum(Batch.processing_time), 0.0))
            .where(Batch.state.in_(BatchState.FINISHED))
        ).one()
        average_batch = session.scalar(select(func.avg(Batch.processing_time)).where(
            Batch.state.in_(BatchState.FINISHED), Batch.processed_count + Batch.error_count > 0))
        average_image = session.scalar(select(func.avg(Result.processing_time)).where(Result.processing_status == "success"))
        latest = list(session.scalars(select(Batch).order_by(Batch.id.desc()).limit(recent)).all())
    return BatchFigures(states=states, images=int(images), failed=int(failed), busy_seconds=float(busy),
                        average_batch_seconds=None if average_batch is None else float(average_batch),
                        average_image_seconds=None if average_image is None else float(average_image), recent=latest)
