"""Prometheus metrics measured in the processes themselves: HTTP latency per route, OCR time per image.

Under gunicorn every web process and the OCR worker write their samples to files in
PROMETHEUS_MULTIPROC_DIR (prometheus_client's multiprocess mode, set up by gunicorn.conf.py before
any process imports prometheus_client); a scrape of any web process reads all of them, so the
figures cover the whole deployment. Without that directory (tests, `main.py extract`) they are
this process's own. Names follow Prometheus conventions: `_total` counters, seconds, 0-1 ratios.
"""
from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# HTTP answers take milliseconds (uploads, results) to minutes (a synchronous batch).
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# One receipt takes 0.1-1 s with ultra_rapido on two cores; the larger profiles take a few seconds.
OCR_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)

HTTP_REQUESTS = Counter("http_requests_total", "HTTP requests answered", ["method", "route", "status"])
HTTP_LATENCY = Histogram("http_request_duration_seconds", "Time to answer an HTTP request", ["method", "route"],
                         buckets=HTTP_BUCKETS)
OCR_IMAGES = Counter("ocr_images_total", "Images finished by the OCR (status: success or error)", ["status"])
OCR_IMAGE_SECONDS = Histogram("ocr_image_processing_seconds", "OCR and extraction time of one image",
                              ["profile"], buckets=OCR_BUCKETS)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_LATENCY.labels(method, route).observe(seconds)


def observe_image(document: dict) -> None:
    """Count one finished image; time it unless it was served without OCR (duplicate, error)."""
    status = document.get("processing_status", "success")
    OCR_IMAGES.labels(status).inc()
    meta = document.get("processing_metadata") or {}
    if status == "success" and not meta.get("cache_hit") and meta.get("processing_time") is not None:
        OCR_IMAGE_SECONDS.labels(meta.get("profile_used") or "unknown").observe(float(meta["processing_time"]))


def measured_text() -> bytes:
    """The exposition of what the processes measured: all of the deployment's in multiprocess mode."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    registry = CollectorRegistry(auto_describe=True)
    for metric in (HTTP_REQUESTS, HTTP_LATENCY, OCR_IMAGES, OCR_IMAGE_SECONDS):
        registry.register(metric)
    return generate_latest(registry)


def mark_process_dead(pid: int) -> None:
    """Drop a dead process's live gauges (counters and histograms keep counting in its files)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)
