"""Read-only questions the API asks: lists of uploads, one batch, results, queue and batch figures.

Every question is asked for one tenant: another tenant's rows are never read, so they answer
exactly as missing ones. Lists are pages in id order after a row id (keyset paging): a page costs
the same however deep it is, and rows added meanwhile are neither skipped nor repeated.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, exists, false, func, not_, select

from database import Batch, BatchState, Conciliacion, Result, Review, ReviewState, Upload
from service.monitoring import counts_by
from service.runtime import Runtime


@dataclass(frozen=True)
class Page:
    rows: list[Any]
    last_id: int | None  # the id to continue after; None when this is the last page


def _page(session: Any, query: Any, id_column: Any, after_id: int, limit: int) -> Page:
    # One row more than asked tells whether another page follows.
    rows = list(session.execute(query.where(id_column > after_id).order_by(id_column).limit(limit + 1)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows=rows, last_id=rows[-1][0] if more else None)


@dataclass(frozen=True)
class ReviewFilter:
    """`revision=pendiente|aprobado|rechazado`, `requiere_revision=true|false` and
    `conciliacion=<estado>` of the lists."""
    estado: str | None = None
    requiere_revision: bool | None = None
    conciliacion: str | None = None  # the receipt's reconciliation state

    def conditions(self, upload_id: Any, tenant_id: int) -> list[Any]:
        found = []
        if self.estado == ReviewState.PENDING:  # no review row is pending too
            found.append(not_(upload_id.in_(select(Review.upload_id).where(
                Review.tenant_id == tenant_id, Review.estado != ReviewState.PENDING))))
        elif self.estado is not None:
            found.append(upload_id.in_(select(Review.upload_id).where(
                Review.tenant_id == tenant_id, Review.estado == self.estado)))
        if self.requiere_revision is not None:
            flag = func.coalesce(Result.document[("validacion", "requiere_revision")].as_boolean(), false())
            found.append(upload_id.in_(select(Result.upload_id).where(
                Result.tenant_id == tenant_id, flag == self.requiere_revision)))
        if self.conciliacion is not None:
            found.append(exists().where(Conciliacion.upload_id == upload_id, Conciliacion.estado == self.conciliacion))
        return found


def uploads_with_status(rt: Runtime, tenant_id: int, statuses: tuple[str, ...], limit: int, after_id: int = 0,
                        review: ReviewFilter = ReviewFilter()) -> Page:
    with rt.db.session() as session:
        query = select(Upload.id, Upload).where(Upload.tenant_id == tenant_id, Upload.status.in_(statuses),
                                                *review.conditions(Upload.id, tenant_id))
        page = _page(session, query, Upload.id, after_id, limit)
    return Page(rows=[row[1] for row in page.rows], last_id=page.last_id)


def batch_by_request_id(rt: Runtime, tenant_id: int, request_id: str) -> Batch | None:
    with rt.db.session() as session:
        return session.scalar(select(Batch).where(Batch.request_id == request_id, Batch.tenant_id == tenant_id))


@dataclass(frozen=True)
class StoredResult:
    status: str  # the upload's status
    document: dict[str, Any] | None  # None until it is processed


def result_of(rt: Runtime, tenant_id: int, stored_name: str) -> StoredResult | None:
    """The upload's status and document; None when the tenant has no upload of that name."""
    with rt.db.session() as session:
        row = session.execute(
            select(Upload.status, Result.document).outerjoin(Result, Result.upload_id == Upload.id)
            .where(Upload.stored_name == stored_name, Upload.tenant_id == tenant_id)
        ).first()
    return None if row is None else StoredResult(status=row.status, document=row.document)


@dataclass(frozen=True)
class ResultFilter:
    tenant_id: int
    request_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    review: ReviewFilter = ReviewFilter()

    def apply(self, query: Any) -> Any:
        query = query.where(Result.tenant_id == self.tenant_id, *self.review.conditions(Result.upload_id, self.tenant_id))
        if self.request_id:
            query = query.where(Result.request_id == self.request_id)
        if self.since:
            query = query.where(Result.created_at >= self.since)
        if self.until:
            query = query.where(Result.created_at <= self.until)
        return query


RESULT_FETCH_ROWS = 50


def result_texts(rt: Runtime, which: ResultFilter, limit: int | None, after_id: int = 0) -> Iterator[tuple[int, str]]:
    """(id, document as JSON text) of the matching results after `after_id`, at most `limit`
    (None: all), fetched a few rows at a time. The documents are never parsed: a page of large
    documents costs the web process one small fetch, not the whole page as Python objects."""
    query = which.apply(select(Result.id, cast(Result.document, Text))).where(Result.id > after_id).order_by(Result.id)
    if limit is not None:
        query = query.limit(limit)
    with rt.db.session() as session:
        yield from session.execute(query.execution_options(yield_per=RESULT_FETCH_ROWS))


def result_rows_with_review(rt: Runtime, which: ResultFilter, limit: int | None,
                            after_id: int = 0) -> Iterator[tuple[Any, ...]]:
    """(id, document as JSON text, review estado, nota, por, en) of the matching results, as `result_texts`."""
    query = which.apply(select(Result.id, cast(Result.document, Text), Review.estado, Review.nota, Review.por, Review.en)
                        .outerjoin(Review, Review.upload_id == Result.upload_id)).where(Result.id > after_id) \
        .order_by(Result.id)
    if limit is not None:
        query = query.limit(limit)
    with rt.db.session() as session:
        yield from session.execute(query.execution_options(yield_per=RESULT_FETCH_ROWS))


def page_end(rt: Runtime, which: ResultFilter, limit: int, after_id: int = 0) -> int | None:
    """The id of the last row of a page of `limit` results when another page follows it, else None:
    the next cursor, known before a streamed page is written."""
    query = which.apply(select(Result.id)).where(Result.id > after_id).order_by(Result.id).offset(limit - 1).limit(2)
    with rt.db.session() as session:
        ids = list(session.scalars(query))
    return ids[0] if len(ids) == 2 else None


def queue_counts(rt: Runtime, tenant_id: int | None = None) -> tuple[dict[str, int], dict[str, int]]:
    """(uploads by status, batches by state), of one tenant or (None) of the deployment."""
    with rt.db.session() as session:
        if tenant_id is None:
            return counts_by(session, Upload.status), counts_by(session, Batch.state)
        return (counts_by(session, Upload.status, Upload.tenant_id == tenant_id),
                counts_by(session, Batch.state, Batch.tenant_id == tenant_id))


@dataclass(frozen=True)
class BatchFigures:
    states: dict[str, int]
    images: int
    failed: int
    busy_seconds: float
    average_batch_seconds: float | None
    average_image_seconds: float | None
    recent: list[Batch]


def batch_figures(rt: Runtime, tenant_id: int, recent: int = 10) -> BatchFigures:
    mine = Batch.tenant_id == tenant_id
    with rt.db.session() as session:
        states = counts_by(session, Batch.state, mine)
        images, failed, busy = session.execute(
            select(func.coalesce(func.sum(Batch.processed_count), 0), func.coalesce(func.sum(Batch.error_count), 0),
                   func.coalesce(func.sum(Batch.processing_time), 0.0))
            .where(mine, Batch.state.in_(BatchState.FINISHED))
        ).one()
        average_batch = session.scalar(select(func.avg(Batch.processing_time)).where(
            mine, Batch.state.in_(BatchState.FINISHED), Batch.processed_count + Batch.error_count > 0))
        average_image = session.scalar(select(func.avg(Result.processing_time)).where(
            Result.tenant_id == tenant_id, Result.processing_status == "success"))
        latest = list(session.scalars(select(Batch).where(mine).order_by(Batch.id.desc()).limit(recent)).all())
    return BatchFigures(states=states, images=int(images), failed=int(failed), busy_seconds=float(busy),
                        average_batch_seconds=None if average_batch is None else float(average_batch),
                        average_image_seconds=None if average_image is None else float(average_image), recent=latest)
