"""The Prometheus exposition: the deployment's state from the database plus what processes measured.

State (uploads, batches, workers, cache) is read from the database on every scrape, so every web
process gives the same figures; latencies and OCR times come from metrics.py (all processes'
samples in multiprocess mode). The `process_*` figures describe the web process that answered.
State is exposed as metric families built per scrape, never as Gauge objects: in multiprocess
mode those would write sample files of their own and appear twice.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

import metrics
from database import BatchState, UploadStatus

UPLOAD_STATUSES = (UploadStatus.PENDING, UploadStatus.PROCESSING, UploadStatus.PROCESSED, UploadStatus.ERROR)
BATCH_STATES = (BatchState.QUEUED, BatchState.RUNNING, BatchState.COMPLETED, BatchState.FAILED)


class StateCollector(Collector):
    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        totals, ocr, system = self.snapshot["totals"], self.snapshot["ocr"], self.snapshot["system"]
        yield _labelled("ocr_uploads", "Uploads by status", "status",
                        {status: totals["uploads"].get(status, 0) for status in UPLOAD_STATUSES})
        yield _labelled("ocr_batches", "Batches by state", "state",
                        {state: totals["batches"].get(state, 0) for state in BATCH_STATES})
        yield _labelled("ocr_worker_resident_memory_bytes", "Resident memory of each live worker", "worker",
                        {worker["worker_id"]: worker["rss_bytes"] or 0 for worker in ocr["workers"]})
        per_field = self.snapshot["corrections"]["por_campo"]
        yield _labelled("ocr_field_corrections", "Corrections made by hand, by field", "campo",
                        {name: figures["correcciones"] for name, figures in per_field.items()})
        yield _labelled("ocr_field_corrected_results", "Results with a field corrected by hand, by field", "campo",
                        {name: figures["resultados_corregidos"] for name, figures in per_field.items()})
        for key in ("hits", "misses"):
            # Counters: they reset when a worker restarts, which Prometheus' rate() understands.
            family = CounterMetricFamily(f"ocr_cache_{key}", f"OCR result cache {key} in live workers")
            family.add_metric([], float(ocr["cache"].get(key, 0) or 0))
            yield family
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
            yield GaugeMetricFamily(name, description, value=float(value))


def _labelled(name: str, description: str, label: str, values: dict[str, float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, description, labels=[label])
    for key, value in values.items():
        family.add_metric([key], float(value))
    return family


def prometheus_text(snapshot: dict[str, Any]) -> bytes:
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    registry.register(StateCollector(snapshot))
    return generate_latest(registry) + metrics.measured_text()
