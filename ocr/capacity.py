"""How many OCR worker processes a host runs, and how many onnxruntime threads each gets.

Light on purpose (psutil only): gunicorn.conf.py imports it in the master, which loads no model.

One process reads one page at a time, and between inferences (decoding, crops, CTC, rows) its
onnxruntime threads idle; two single-threaded processes on two cores keep both busy, where one
process with two threads leaves a core idle through those steps (measured with
benchmarks/service_bench.py --configs, README "Throughput"). Each process costs its own models and
activations, so memory bounds the count as well as cores do.
"""
from __future__ import annotations

import os

import psutil

# Peak RSS of one OCR worker process with the default profile and the small-text recognizer
# loaded (VmHWM, benchmarks/service_bench.py: 430-520 MB), with headroom.
WORKER_MEMORY_BYTES = 700 * 1024 * 1024
# Memory left to the web processes, the database and the rest of the host.
MEMORY_SHARE_FOR_OCR = 0.5


def cores() -> int:
    """Cores this process may run on (the affinity mask, as a container limits it), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def default_workers(cpu: int | None = None, available_bytes: int | None = None) -> int:
    """One OCR worker per core, as many as half the available memory holds, at least 1."""
    cpu = cores() if cpu is None else cpu
    available = psutil.virtual_memory().available if available_bytes is None else available_bytes
    by_memory = int(available * MEMORY_SHARE_FOR_OCR // WORKER_MEMORY_BYTES)
    return max(1, min(cpu, by_memory))


def resolve_workers(configured: int, cpu: int | None = None, available_bytes: int | None = None) -> int:
    """OCR_WORKERS as set, or (0) the default from cores and memory."""
    return configured if configured > 0 else default_workers(cpu, available_bytes)


def threads_per_worker(configured: int, workers: int, cpu: int | None = None) -> int:
    """ORT_INTRA_OP_THREADS as set, or (0) the cores shared out among the host's OCR workers, so
    N workers never run more onnxruntime threads than there are cores."""
    if configured > 0:
        return configured
    cpu = cores() if cpu is None else cpu
    return max(1, cpu // max(1, workers))
