"""The Prometheus exposition: the deployment's state from the database plus what processes measured.

State (uploads, batches, workers, cache) is read from the database on every scrape, so every web
process gives the same figures; latencies and OCR times come from metrics.py (all processes'
samples in multiprocess mode). The `process_*` figures describe the web process that answered.
"""
from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Gauge, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

import metrics
from database import BatchState, UploadStatus


class _CacheCounters(Collector):
    """Cache hits and misses summed over live workers: counters (they reset when a worker restarts)."""

    def __init__(self, cache: dict[str, Any]) -> None:
        self.cache = cache

    def collect(self):
        for key in ("hits", "misses"):
            family = CounterMetricFamily(f"ocr_cache_{key}", f"OCR result cache {key} in live workers")
            family.add_metric([], float(self.cache.get(key, 0) or 0))
            yield family


def _state_text(snapshot: dict[str, Any]) -> bytes:
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    totals, ocr, system = snapshot["totals"], snapshot["ocr"], snapshot["system"]

    uploads = Gauge("ocr_uploads", "Uploads by status", ["status"], registry=registry)
    for status in (UploadStatus.PENDING, UploadStatus.PROCESSING, UploadStatus.PROCESSED, UploadStatus.ERROR):
        uploads.labels(status).set(totals["uploads"].get(status, 0))
    batches = Gauge("ocr_batches", "Batches by state", ["state"], registry=registry)
    for state in (BatchState.QUEUED, BatchState.RUNNING, BatchState.COMPLETED, BatchState.FAILED):
        batches.labels(state).set(totals["batches"].get(state, 0))
    worker_rss = Gauge("ocr_worker_resident_memory_bytes", "Resident memory of each live worker", ["worker"],
                       registry=registry)
    for worker in ocr["workers"]:
        worker_rss.labels(worker["worker_id"]).set(worker["rss_bytes"] or 0)
    registry.register(_CacheCounters(ocr["cache"]))
    single = {
        "ocr_results": ("Stored per-image results", totals["results"]),
        "ocr_workers_ready": ("Workers with a fresh heartbeat", len(ocr["workers"])),
        "ocr_models_loaded": ("OCR profiles loaded by live workers", ocr["models_loaded"]),
        "ocr_cache_entries": ("OCR result cache entries in live workers", ocr["cache"]["entries"]),
        "system_cpu_usage_ratio": ("Host CPU use, 0-1", system["cpu_usage"] / 100.0),
        "system_memory_usage_ratio": ("Host memory use, 0-1", system["memory_usage"] / 100.0),
        "system_disk_usage_ratio": ("Use of the disk holding the data directory, 0-1", system["disk_usage"] / 100.0),
    }
    for name, (description, value) in single.items():
        Gauge(name, description, registry=registry).set(value)
    return generate_latest(registry)


def prometheus_text(snapshot: dict[str, Any]) -> bytes:
    return _state_text(snapshot) + metrics.measured_text()
