"""The background OCR worker of one process: preload the models, then wait, claim and process.

Between rounds it waits for a committed upload to wake it (service/wakeup.py), or for
WORKER_POLL_INTERVAL_SECONDS, whichever comes first: the poll is the safety net of a lost wake-up.

Each round does what is due, in order: take work back from lost workers, give up poison uploads,
run queued manual batches, register files dropped into the inbox, reconcile files a crash left
behind, and process a round of pending uploads; now and then receipts whose reconciliation failed
are reconciled again, and the retention cleanup runs too.
The rules of claiming, recording and housekeeping live in the service modules this loop calls.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time

import psutil
from sqlalchemy.exc import DBAPIError

from database import WorkerState, database_now
from main_ocr_process import OrquestadorOCR, shared_orchestrator
from migrations_runner import prepare_schema
from service.batches import run_manual_batch, run_worker_round
from service.housekeeping import adopt_inbox_files, purge_finished, reconcile_files, retry_reconciliation
from service.jobs import (
    INFRASTRUCTURE_FAULTS,
    expire_leases_of_lost_workers,
    give_up_poison_uploads,
    hand_back,
    queued_manual_batches,
    recover_abandoned_batches,
    renew_leases,
)
from service.runtime import Runtime, process_identity
from service.wakeup import WakeupListener

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 2.0
MAX_BACKOFF_SECONDS = 30.0
# How often a worker looks for receipts whose reconciliation failed (a query over the results).
RECONCILIATION_SWEEP_SECONDS = 30.0
PARENT_PID_ENV = "OCR_WORKER_PARENT_PID"


def _fault_kind(exc: BaseException) -> str:
    return "Storage error" if isinstance(exc, OSError) else "Database error"


class Worker:
    """The background worker of one process: preloads the models, then polls and processes."""

    def __init__(self, rt: Runtime, orchestrator: OrquestadorOCR | None = None, worker_id: str | None = None) -> None:
        self.rt = rt
        self.orchestrator = orchestrator
        self.worker_id = worker_id or process_identity("worker")
        self.stop_event = threading.Event()
        # Uploads wake the loop between rounds; the poll interval only bounds a lost wake-up.
        self.wakeups = WakeupListener(rt, self.worker_id)
        self._heartbeat_thread: threading.Thread | None = None
        self._busy_since: float | None = None
        self._last_cleanup = time.monotonic()
        self._last_reconciliation_sweep: float | None = None
        self._state = "starting"
        self.images_processed = 0
        self.batches_processed = 0
        self._parent_pid = int(os.environ.get(PARENT_PID_ENV, "0") or 0)
        # Set when a failed round could not hand its claims back (the database was away): the
        # heartbeat would renew those leases for ever, so the next round hands them back first.
        # The value is the refund_attempt to use.
        self._claims_to_hand_back: bool | None = None

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Register, load and warm the models, and report ready: only then does work get claimed."""
        prepare_schema(self.rt.db, self.rt.settings.get("MIGRATE_ON_START", True))
        self.wakeups.open()
        self._state = "starting"
        self.publish_heartbeat()
        if self.orchestrator is None:
            self.orchestrator = shared_orchestrator()
        if self.rt.settings.get("PRELOAD_MODELS", True):
            self.orchestrator.preload(self.rt.default_profile)
        reconcile_files(self.rt, at_start=True)
        self._state = "ready"
        self.publish_heartbeat()
        self._heartbeat_thread = threading.Thread(target=self._heartbeat_loop, name="ocr-heartbeat", daemon=True)
        self._heartbeat_thread.start()
        logger.info("Worker %s ready (models: %s)", self.worker_id, ", ".join(self._models_loaded()) or "none")

    def stop(self) -> None:
        self.stop_event.set()
        self.wakeups.interrupt()

    def shutdown(self) -> None:
        self.stop_event.set()
        self.wakeups.close()
        if self._heartbeat_thread is not None:
            self._heartbeat_thread.join(timeout=HEARTBEAT_SECONDS * 2)
        try:
            hand_back(self.rt, self.worker_id)
            self._state = "stopped"
            self.publish_heartbeat()
            logger.info("Worker %s stopped", self.worker_id)
        except DBAPIError:
            logger.warning("Database unavailable at shutdown; leases of %s will expire by themselves", self.worker_id)

    def run(self) -> None:
        """Poll until stopped. Database outages back off and resume; nothing is lost meanwhile."""
        backoff = 0.0
        while not self.stop_event.is_set():
            if self._parent_pid and os.getppid() != self._parent_pid:
                logger.warning("Parent process %s is gone; worker exits", self._parent_pid)
                break
            try:
                if self._state != "ready":
                    self.start()
                if self._claims_to_hand_back is not None:
                    hand_back(self.rt, self.worker_id, self._claims_to_hand_back)
                    self._claims_to_hand_back = None
                worked = self.tick()
                if backoff:
                    logger.info("Database reachable again; worker resumes")
                backoff = 0.0
            except INFRASTRUCTURE_FAULTS as exc:
                # The disk or the database failed, not the images: their attempts are given back.
                backoff = min(MAX_BACKOFF_SECONDS, max(1.0, backoff * 2))
                logger.warning("%s in worker (%s); retrying in %.0fs", _fault_kind(exc), type(exc).__name__, backoff)
                self._release_after_failure(refund_attempt=True)
                self.stop_event.wait(backoff)
                continue
            except Exception:
                # A bug must not kill the loop: the work goes back, and the attempt counts, so an
                # upload that breaks every round is given up instead of breaking them for ever.
                backoff = min(MAX_BACKOFF_SECONDS, max(1.0, backoff * 2))
                logger.exception("Worker round failed; retrying in %.0fs", backoff)
                self._release_after_failure(refund_attempt=False)
                self.stop_event.wait(backoff)
                continue
            if not worked:
                self.wakeups.wait(self.rt.settings["WORKER_POLL_INTERVAL_SECONDS"])
        self.shutdown()

    def run_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self._run_started, name="ocr-worker", daemon=True)
        thread.start()
        return thread

    def _run_started(self) -> None:
        try:
            self.start()
        except DBAPIError:
            logger.warning("Database unavailable at worker start; retrying in the loop")
        self.run()

    def _release_after_failure(self, refund_attempt: bool) -> None:
        try:
            hand_back(self.rt, self.worker_id, refund_attempt)
        except Exception:
            # The database is still away (or a move failed): retried before the next round.
            self._claims_to_hand_back = refund_attempt

    # --- one round ----------------------------------------------------------------------------
    def tick(self) -> int:
        """Everything due now, in order: recovery, manual batches, inbox registration, a worker round."""
        expire_leases_of_lost_workers(self.rt.db)
        give_up_poison_uploads(self.rt)
        recover_abandoned_batches(self.rt.db)
        done = 0
        self._busy_since = time.monotonic()
        try:
            for batch_id in queued_manual_batches(self.rt.db):
                if self.stop_event.is_set():
                    break
                done += self._count(run_manual_batch(self.rt, self.orchestrator, self.worker_id, batch_id,
                                                     self.stop_event.is_set))
            adopt_inbox_files(self.rt)
            reconcile_files(self.rt)
            self._maybe_retry_reconciliation()
            if not self.stop_event.is_set():
                done += self._count(run_worker_round(self.rt, self.orchestrator, self.worker_id, self.stop_event.is_set))
        finally:
            self._busy_since = None
        self._maybe_cleanup()
        return done

    def _count(self, images: int) -> int:
        if images:
            self.images_processed += images
            self.batches_processed += 1
        return images

    def _maybe_retry_reconciliation(self) -> None:
        last = self._last_reconciliation_sweep
        if last is not None and time.monotonic() - last < RECONCILIATION_SWEEP_SECONDS:
            return
        self._last_reconciliation_sweep = time.monotonic()
        retry_reconciliation(self.rt)

    def _maybe_cleanup(self) -> None:
        interval = self.rt.settings.get("CLEANUP_INTERVAL_SECONDS", 0)
        if interval <= 0 or time.monotonic() - self._last_cleanup < interval:
            return
        self._last_cleanup = time.monotonic()
        report = purge_finished(self.rt, self.rt.settings["RETENTION_HOURS"])
        if report["uploads_removed"] or report["temp_files_removed"]:
            logger.info("Retention cleanup removed %d uploads and %d temp files",
                        report["uploads_removed"], report["temp_files_removed"])

    # --- heartbeat ----------------------------------------------------------------------------
    def _models_loaded(self) -> list[str]:
        return sorted(self.orchestrator.aplicador.predictors) if self.orchestrator else []

    def publish_heartbeat(self) -> None:
        values = dict(
            hostname=self.rt.settings.get("HOST_NAME") or socket.gethostname(), pid=os.getpid(), state=self._state, models_loaded=self._models_loaded(),
            cache_stats=self.orchestrator.aplicador.cache_stats() if self.orchestrator else {},
            rss_bytes=psutil.Process().memory_info().rss, images_processed=self.images_processed,
            batches_processed=self.batches_processed,
        )
        with self.rt.db.session() as session:
            # Lost-worker decisions compare heartbeats with the database's clock, never a host's.
            now = values["heartbeat_at"] = database_now(session)
            row = session.get(WorkerState, self.worker_id)
            if row is None:
                session.add(WorkerState(worker_id=self.worker_id, started_at=now, **values))
            else:
                for key, value in values.items():
                    setattr(row, key, value)
            session.commit()

    def _heartbeat_loop(self) -> None:
        timeout = self.rt.batch_timeout_seconds
        while not self.stop_event.wait(HEARTBEAT_SECONDS):
            try:
                self.publish_heartbeat()
                busy = self._busy_since
                # A batch stuck past the timeout stops being renewed, so another worker can take it over.
                if busy is None or time.monotonic() - busy < timeout:
                    renew_leases(self.rt.db, self.worker_id, self.rt.lease)
            except DBAPIError:
                logger.debug("Heartbeat skipped: database unavailable")
            except Exception:
                logger.exception("Heartbeat failed")
