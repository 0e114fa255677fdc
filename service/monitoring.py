"""Figures about the deployment for status, health and metrics, read from the database and this process."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psutil
from sqlalchemy import func, select

import config
from database import Batch, Correction, Result, Upload, UploadStatus, WorkerState, iso
from main_ocr_process import loaded_orchestrator
from service.jobs import live_workers
from service.runtime import Runtime


def counts_by(session: Any, column: Any, *conditions: Any) -> dict[str, int]:
    query = select(column, func.count()).where(*conditions).group_by(column)
    return {key: count for key, count in session.execute(query).all()}


def worker_summary(worker: WorkerState) -> dict[str, Any]:
    return {
        "worker_id": worker.worker_id, "hostname": worker.hostname, "pid": worker.pid, "state": worker.state,
        "models_loaded": worker.models_loaded, "rss_bytes": worker.rss_bytes,
        "images_processed": worker.images_processed, "heartbeat_at": iso(worker.heartbeat_at),
    }


def models_loaded(workers: list[WorkerState]) -> list[str]:
    models = {model for worker in workers for model in worker.models_loaded or []}
    local = loaded_orchestrator()
    if local is not None:
        models.update(local.aplicador.predictors)
    return sorted(models)


def correction_figures(session: Any, results: int) -> dict[str, Any]:
    """Corrections by field: the live accuracy of the extraction. Per field, the corrections made and
    the results corrected at least once, and the share of stored results left as read."""
    made = counts_by(session, Correction.campo)
    corrected = dict(session.execute(select(Correction.campo, func.count(func.distinct(Correction.upload_id)))
                                     .group_by(Correction.campo)).all())
    return {
        "por_campo": {name: {"correcciones": made.get(name, 0), "resultados_corregidos": corrected.get(name, 0),
                             "precision": None if not results else round(1 - corrected.get(name, 0) / results, 4)}
                      for name in config.FIELDS},
        "total": sum(made.values()),
        "resultados": results,
    }


def metrics_snapshot(rt: Runtime) -> dict[str, Any]:
    with rt.db.session() as session:
        uploads = counts_by(session, Upload.status)
        batches = counts_by(session, Batch.state)
        results = session.scalar(select(func.count()).select_from(Result)) or 0
        corrections = correction_figures(session, results)
    workers = live_workers(rt.db)
    cache = {"hits": 0, "misses": 0, "entries": 0, "size_mb": 0.0}
    for worker in workers:
        for key in cache:
            cache[key] += (worker.cache_stats or {}).get(key, 0) or 0
    local = loaded_orchestrator()
    if local is not None:
        for key, value in local.aplicador.cache_stats().items():
            if key in cache:
                cache[key] += value or 0
    memory = psutil.virtual_memory()
    process = psutil.Process()
    return {
        "system": {
            "cpu_usage": psutil.cpu_percent(interval=None),
            "memory_usage": memory.percent,
            "memory_total_bytes": memory.total,
            "memory_available_bytes": memory.available,
            "disk_usage": psutil.disk_usage(rt.settings["DATA_DIR"]).percent,
        },
        "process": {"pid": process.pid, "rss_bytes": process.memory_info().rss, "threads": process.num_threads()},
        "ocr": {
            "models_loaded": len(models_loaded(workers)),
            "models": models_loaded(workers),
            "cache": cache,
            "total_processed": uploads.get(UploadStatus.PROCESSED, 0),
            "total_failed": uploads.get(UploadStatus.ERROR, 0),
            "workers": [worker_summary(w) for w in workers],
        },
        "totals": {"uploads": uploads, "batches": batches, "results": results},
        "corrections": corrections,
    }


@dataclass
class HealthCheck:
    database_ok: bool
    workers: list[WorkerState]
    models: list[str]
    # This host's name (HOST_NAME) and the live workers among `workers` that run on it.
    host: str = ""
    host_workers: list[WorkerState] = field(default_factory=list)

    @property
    def worker_ready(self) -> bool:
        return bool(self.workers)

    @property
    def host_worker_ready(self) -> bool:
        """This host's own worker is alive with its models loaded: what lets this host read its uploads
        (a worker on another host cannot read an image kept on this host's disk)."""
        return any(worker.models_loaded for worker in self.host_workers)


def health_check(rt: Runtime) -> HealthCheck:
    database_ok = rt.db.ping()
    workers = live_workers(rt.db) if database_ok else []
    host = rt.settings.get("HOST_NAME") or ""
    return HealthCheck(database_ok=database_ok, workers=workers, models=models_loaded(workers), host=host,
                       host_workers=[worker for worker in workers if worker.hostname == host])
