"""Claims and leases: which worker holds which upload and batch, and taking work back from the dead.

Exactly-once across processes and hosts rests on the database, never on process memory:

* A claim turns `pending` rows (or `processing` rows whose lease expired: their holder died) into
  `processing` rows owned by this worker (`claimed_by`) until `lease_expires_at`. PostgreSQL picks
  candidates with `SELECT ... FOR UPDATE SKIP LOCKED`, so concurrent claimers never wait on or
  take each other's rows; the `UPDATE` repeats the claimable test, which on SQLite (one writer at a
  time, no row locks) is the compare-and-set that keeps two claimers from taking the same row.
* While a worker lives, a heartbeat thread renews its leases; when it dies they expire and the
  next claim takes the rows over. A row that keeps killing its workers is given up after
  MAX_CLAIM_ATTEMPTS.
* Every lease, heartbeat and lost-worker decision reads the database's clock (`database_now`),
  never the host's: a host whose clock runs ahead must not see live claims as expired.
* A stop (SIGTERM) hands the unfinished part of a batch back, its images returned to the inbox
  (local storage; a database image has no place to return to) and its attempts refunded.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import aliased

from database import Batch, BatchState, Database, Result, Upload, UploadStatus, WorkerState, database_now
from image_store import ImageRef
from service.runtime import Runtime, new_request_id
from service.webhooks import enqueue_upload_event
from storage import remove_file

logger = logging.getLogger(__name__)

MAX_CLAIM_ATTEMPTS = 3
# A worker whose heartbeat is older than this is not counted as alive...
LIVE_WORKER_SECONDS = 15.0
# ...and after this long its claims are taken over (heartbeats come every few seconds).
LOST_WORKER_SECONDS = 30.0
# Failures of the machine, not of an image: a failing or full disk (OSError), a database that is
# down, unreachable or out of space (OperationalError, InterfaceError, an exhausted pool). Work
# they interrupt goes back with its attempt refunded. Other database errors (a value the schema
# refuses...) can come from what one image produced, so they count against it.
INFRASTRUCTURE_FAULTS = (OSError, OperationalError, InterfaceError, PoolTimeoutError)


# --- claims -----------------------------------------------------------------------------------
def _retryable(now: datetime) -> Any:
    # Waiting rows: never claimed, handed back, or held by a worker whose lease ran out.
    return or_(Upload.status == UploadStatus.PENDING,
               and_(Upload.status == UploadStatus.PROCESSING, Upload.lease_expires_at < now))


def _claimable(now: datetime, max_upload_id: int | None, tenant_id: int | None = None, readable: Any = None) -> Any:
    original = aliased(Upload)
    # A duplicate waits for its original, so its result can be reused instead of a second OCR.
    original_unfinished = exists().where(
        original.id == Upload.duplicado_de,
        original.status.in_((UploadStatus.PENDING, UploadStatus.PROCESSING)),
    )
    condition = and_(_retryable(now), Upload.attempts < MAX_CLAIM_ATTEMPTS, ~original_unfinished)
    if max_upload_id is not None:
        condition = and_(condition, Upload.id <= max_upload_id)
    if tenant_id is not None:
        condition = and_(condition, Upload.tenant_id == tenant_id)
    if readable is not None:  # only uploads whose image this host can read (ImageStore.readable)
        condition = and_(condition, readable)
    return condition


def next_tenant_with_work(db: Database, readable: Any = None) -> int | None:
    """The tenant of the oldest claimable upload: a batch holds the uploads of one tenant only."""
    with db.session() as session:
        claimable = _claimable(database_now(session), None, readable=readable)
        return session.scalar(select(Upload.tenant_id).where(claimable).order_by(Upload.id).limit(1))


def fair_claim_size(db: Database, worker_id: str, limit: int, tenant_id: int | None = None,
                    readable: Any = None) -> int:
    """How many uploads `worker_id` claims now: its share of what waits, among the ready workers
    holding no claim (itself included), at most `limit`.

    A claim of `limit` (OCR_MAX_IMAGES_PER_BATCH, 50) let the first worker to wake take a whole
    burst while the others idled (40/0 in 6 of 6 runs with two workers). With the share, the first
    of two idle workers takes half, the second the rest; a worker that finds the others busy takes
    a share of what is left, so the tail of a burst shrinks as it is read.
    """
    with db.session() as session:
        now = database_now(session)
        waiting = session.scalar(select(func.count()).select_from(Upload).where(_claimable(now, None, tenant_id, readable))) or 0
        holding = select(Upload.claimed_by).where(Upload.status == UploadStatus.PROCESSING, Upload.lease_expires_at >= now,
                                                  Upload.claimed_by.is_not(None))
        idle_others = session.scalar(
            select(func.count()).select_from(WorkerState).where(
                WorkerState.state == "ready", WorkerState.worker_id != worker_id,
                WorkerState.heartbeat_at >= now - timedelta(seconds=LIVE_WORKER_SECONDS),
                WorkerState.worker_id.not_in(holding))) or 0
    return max(1, min(limit, -(-waiting // (idle_others + 1))))


def claim_uploads(db: Database, worker_id: str, limit: int, lease: timedelta,
                  request_id: str | None = None, max_upload_id: int | None = None,
                  tenant_id: int | None = None, readable: Any = None) -> list[Upload]:
    """Atomically take up to `limit` uploads for this worker; each row goes to exactly one claimer.
    `readable`: only uploads whose image this host can read (ImageStore.readable)."""
    with db.session() as session:
        now = database_now(session)
        claimable = _claimable(now, max_upload_id, tenant_id, readable)
        candidates = session.scalars(
            select(Upload.id).where(claimable).order_by(Upload.id).limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        if not candidates:
            session.rollback()
            return []
        claimed_ids = session.scalars(
            update(Upload)
            .where(Upload.id.in_(candidates), claimable)
            .values(status=UploadStatus.PROCESSING, claimed_by=worker_id, claimed_at=now,
                    lease_expires_at=now + lease, attempts=Upload.attempts + 1, request_id=request_id)
            .returning(Upload.id)
            .execution_options(synchronize_session=False)
        ).all()
        session.commit()
        if not claimed_ids:
            return []
        return list(session.scalars(select(Upload).where(Upload.id.in_(claimed_ids)).order_by(Upload.id)).all())


def renew_leases(db: Database, worker_id: str, lease: timedelta) -> None:
    with db.session() as session:
        expires = database_now(session) + lease
        session.execute(update(Upload).where(Upload.claimed_by == worker_id, Upload.status == UploadStatus.PROCESSING)
                        .values(lease_expires_at=expires))
        session.execute(update(Batch).where(Batch.claimed_by == worker_id, Batch.state == BatchState.RUNNING)
                        .values(lease_expires_at=expires))
        session.commit()


def release_claims(db: Database, worker_id: str, refund_attempt: bool = True) -> int:
    """Hand this worker's unfinished uploads back to the queue.

    After a shutdown or a database outage the images were not at fault, so the attempt is given
    back; after an unexpected error it counts, so a file that always breaks a round is given up.
    """
    attempts = Upload.attempts - 1 if refund_attempt else Upload.attempts
    with db.session() as session:
        now = database_now(session)
        released = session.execute(
            update(Upload).where(Upload.claimed_by == worker_id, Upload.status == UploadStatus.PROCESSING)
            .values(status=UploadStatus.PENDING, claimed_by=None, lease_expires_at=None, attempts=attempts,
                    request_id=None)
        ).rowcount
        held = and_(Batch.claimed_by == worker_id, Batch.state == BatchState.RUNNING)
        session.execute(update(Batch).where(held, Batch.source == "manual")
                        .values(state=BatchState.QUEUED, claimed_by=None, lease_expires_at=None))
        # A worker round cannot be resumed (its files go back to the queue for any round), and
        # left running its lease would be renewed by the heartbeat for ever.
        session.execute(update(Batch).where(held, Batch.source != "manual")
                        .values(state=BatchState.FAILED, finished_at=now, claimed_by=None, lease_expires_at=None,
                                error_message="interrupted; unfinished files went back to the queue"))
        session.commit()
        return released


def hand_back(rt: Runtime, worker_id: str, refund_attempt: bool = True) -> int:
    """Release this worker's claims with their images back in the inbox, where pending files live.

    Files move first, while the claim still keeps every other worker away from them; if the
    release then fails, the rows stay claimed until their lease expires and claims find the files
    wherever they are.
    """
    with rt.db.session() as session:
        refs = [ImageRef(*row) for row in session.execute(
            select(*ImageRef.columns()).where(
                Upload.claimed_by == worker_id, Upload.status == UploadStatus.PROCESSING)).all()]
    for ref in refs:
        rt.images.settle(ref, UploadStatus.PENDING)
    return release_claims(rt.db, worker_id, refund_attempt)


def give_up_poison_uploads(rt: Runtime) -> int:
    """Rows that failed MAX_CLAIM_ATTEMPTS rounds (or killed as many workers) are errors, not work."""
    with rt.db.session() as session:
        now = database_now(session)
        given_up = session.scalars(
            update(Upload)
            .where(_retryable(now), Upload.attempts >= MAX_CLAIM_ATTEMPTS)
            .values(status=UploadStatus.ERROR, processed_at=now, claimed_by=None, lease_expires_at=None,
                    error_code="too_many_attempts",
                    error_message=f"Processing was interrupted {MAX_CLAIM_ATTEMPTS} times")
            .returning(Upload.id)
        ).all()
        refs = []
        for upload in session.scalars(select(Upload).where(Upload.id.in_(given_up))).all() if given_up else []:
            enqueue_upload_event(session, upload, "upload.failed")  # in the transaction that fails it
            refs.append(ImageRef.of(upload))
        session.commit()
    for ref in refs:
        rt.images.settle(ref, UploadStatus.ERROR)
    return len(refs)


def requeue_errored(rt: Runtime, tenant_id: int, upload_id: int | None = None,
                    request_id: str | None = None) -> list[int]:
    """Give errored uploads (also those given up as too_many_attempts) a fresh start: pending,
    attempts at zero, their error result gone. By id, or every errored upload of a batch.

    Images move to the inbox first, while their rows still say error and no worker can claim them;
    an image that is no longer in storage is not requeued (it would only fail again).
    """
    target = Upload.id == upload_id if upload_id is not None else Upload.request_id == request_id
    with rt.db.session() as session:
        refs = {row.id: ImageRef(*row) for row in session.execute(
            select(*ImageRef.columns())
            .where(target, Upload.tenant_id == tenant_id, Upload.status == UploadStatus.ERROR)).all()}
    present = [upload for upload, ref in refs.items() if rt.images.settle(ref, UploadStatus.PENDING)]
    if not present:
        return []
    with rt.db.session() as session:
        requeued = list(session.scalars(
            update(Upload).where(Upload.id.in_(present), Upload.status == UploadStatus.ERROR)
            .values(status=UploadStatus.PENDING, attempts=0, error_code=None, error_message=None, processed_at=None,
                    claimed_by=None, lease_expires_at=None, request_id=None)
            .returning(Upload.id)
        ).all())
        session.execute(delete(Result).where(Result.upload_id.in_(requeued)))
        session.commit()
    for upload in requeued:
        remove_file(rt.storage.path("results", f"{refs[upload].stored_name}.json"))
    logger.info("Requeued %d errored uploads", len(requeued))
    return sorted(requeued)


def recover_abandoned_batches(db: Database) -> None:
    """Manual batches whose runner died go back to the queue; worker rounds are closed as failed."""
    with db.session() as session:
        now = database_now(session)
        stale = and_(Batch.state == BatchState.RUNNING, Batch.lease_expires_at < now)
        session.execute(update(Batch).where(stale, Batch.source == "manual")
                        .values(state=BatchState.QUEUED, claimed_by=None, lease_expires_at=None))
        session.execute(update(Batch).where(stale, Batch.source != "manual")
                        .values(state=BatchState.FAILED, finished_at=now, error_message="worker lost"))
        session.commit()


def expire_leases_of_lost_workers(db: Database) -> int:
    """Workers whose heartbeat stopped are gone (killed, out of memory, host down): end their
    leases now, so their uploads and batches are taken over without waiting for the full lease.
    A worker that was only cut off loses nothing but duplicate work: finishing needs the claim."""
    with db.session() as session:
        now = database_now(session)
        lost = session.scalars(
            update(WorkerState)
            .where(WorkerState.state.in_(("starting", "ready")),
                   WorkerState.heartbeat_at < now - timedelta(seconds=LOST_WORKER_SECONDS))
            .values(state="lost")
            .returning(WorkerState.worker_id)
        ).all()
        if lost:
            session.execute(update(Upload).where(Upload.claimed_by.in_(lost), Upload.status == UploadStatus.PROCESSING)
                            .values(lease_expires_at=now))
            session.execute(update(Batch).where(Batch.claimed_by.in_(lost), Batch.state == BatchState.RUNNING)
                            .values(lease_expires_at=now))
        session.commit()
    for worker_id in lost:
        logger.warning("Worker %s stopped sending heartbeats; its work is taken over", worker_id)
    return len(lost)


def claim_batch(db: Database, worker_id: str, batch_id: int, lease: timedelta) -> bool:
    with db.session() as session:
        now = database_now(session)
        taken = session.execute(
            update(Batch).where(Batch.id == batch_id, Batch.state == BatchState.QUEUED)
            .values(state=BatchState.RUNNING, claimed_by=worker_id, lease_expires_at=now + lease,
                    started_at=func.coalesce(Batch.started_at, now))
        ).rowcount
        session.commit()
        return taken == 1


def live_workers(db: Database, ready_only: bool = True) -> list[WorkerState]:
    """Workers with a fresh heartbeat; with ready_only=False also those still loading models."""
    states = ("ready",) if ready_only else ("ready", "starting")
    with db.session() as session:
        cutoff = database_now(session) - timedelta(seconds=LIVE_WORKER_SECONDS)
        return list(session.scalars(select(WorkerState).where(WorkerState.state.in_(states),
                                                              WorkerState.heartbeat_at >= cutoff)).all())


def insert_batch(db: Database, batch: Batch) -> Batch:
    """Store a new batch under a fresh request id, drawing another if the short id is taken."""
    for _ in range(10):
        with db.session() as session:
            session.add(batch)
            try:
                session.commit()
                return batch
            except IntegrityError:
                session.rollback()  # the rollback makes the object new again, ready for another try
        batch.request_id = new_request_id()
    raise RuntimeError("Could not allocate a unique batch request id")


def queued_manual_batches(db: Database) -> list[int]:
    with db.session() as session:
        return list(session.scalars(select(Batch.id).where(Batch.state == BatchState.QUEUED).order_by(Batch.id)).all())
