"""Service benchmark: N generated receipts through the HTTP API of the real service under gunicorn.

    python benchmarks/service_bench.py [--count 50] [--profile ultra_rapido] [--port 0]
                                       [--mode both|worker|web] [--per-request 1]

For each mode the script starts its own service (benchmarks/service_process.py) on 127.0.0.1 with
a temporary STORAGE_ROOT (SQLite database inside it), then:

  1. uploads every receipt (`POST /api/upload`, --per-request files per request),
  2. `POST /api/ocr/process_batch {"profile": ...}` (synchronous),
  3. waits until every upload is processed (or failed), polling /api/status every 0.05 s,

and reports the wall time from the first upload to the last result, images/s, and the peak RSS
of the service (gunicorn master + web workers + OCR worker, summed, sampled every 0.2 s), plus the
CPU seconds the service used and how many cores other processes on the host kept busy meanwhile
(the host may be shared: a contended run is reported as such).

Modes: "worker" = the deployment default, the background OCR worker process (models preloaded)
does the OCR, also while uploads still arrive; "web" = WORKER_ENABLED=false, process_batch runs the
OCR inside the web process that answers it (its models load on that first request).
Receipts are generated before the clock starts (distinct seeds: identical bytes are deduplicated).

With --configs, worker mode runs once per named configuration of environment variables, the
configurations interleaved over --rounds (a shared host's load then hits each alike), e.g.

    python benchmarks/service_bench.py --count 40 --rounds 3 \
        --configs '1x2=OCR_WORKERS=1,ORT_INTRA_OP_THREADS=2' '2x1=OCR_WORKERS=2,ORT_INTRA_OP_THREADS=1' \
                  '2x1-ov=OCR_WORKERS=2,ORT_INTRA_OP_THREADS=1,OCR_DETECTION_RUNTIME=openvino'

Each row then also gives the split of the images between the OCR workers (their heartbeats'
images_processed) and each OCR worker process's own peak RSS (VmHWM, over its whole life).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.service_process import all_results, high_water_rss, running_service  # noqa: E402

POLL_SECONDS = 0.05
MB = 1024 * 1024


def generate(count: int, first_seed: int) -> list[tuple[str, bytes, str]]:
    from tools.receipt_generator import generate_receipt

    receipts = []
    for seed in range(first_seed, first_seed + count):
        receipt = generate_receipt(seed)
        mime = "image/jpeg" if receipt.filename.endswith((".jpg", ".jpeg")) else "image/png"
        receipts.append((receipt.filename, receipt.image_bytes, mime))
    return receipts


def upload_all(base: str, receipts: list[tuple[str, bytes, str]], per_request: int) -> list[float]:
    latencies = []
    with requests.Session() as session:
        for start in range(0, len(receipts), per_request):
            chunk = receipts[start:start + per_request]
            files = [("files", item) for item in chunk]
            began = time.perf_counter()
            response = session.post(f"{base}/api/upload", files=files,
                                    data={"numerosorteo": "B", "fechasorteo": "20250711", "idWhatsapp": f"{start}@lid",
                                          "nombre": "Bench", "horamin": "10-00"}, timeout=60)
            latencies.append(time.perf_counter() - began)
            if response.status_code != 200:
                raise SystemExit(f"upload failed: {response.status_code} {response.text[:500]}")
    return latencies


def queue(base: str) -> dict[str, int]:
    return requests.get(f"{base}/api/status", timeout=10).json()["queue"]


def wait_all_finished(base: str, count: int, timeout: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = queue(base)
        if state["processed"] + state["error"] >= count and not state["pending"] and not state["processing"]:
            return state
        time.sleep(POLL_SECONDS)
    raise SystemExit(f"not all {count} images finished within {timeout:.0f}s: {queue(base)}")


def parse_config(text: str) -> tuple[str, dict[str, str]]:
    """'name=VAR=value,VAR=value' -> (name, {VAR: value})."""
    name, _, assignments = text.partition("=")
    settings = dict(item.split("=", 1) for item in assignments.split(",") if item)
    if not name or not settings:
        raise SystemExit(f"--configs wants name=VAR=value[,VAR=value...], not {text!r}")
    return name, settings


def _service_db(storage: Path) -> Any:
    from database import Database

    return Database(f"sqlite:///{storage / 'data' / 'ocr.db'}")


def wait_workers_ready(storage: Path, expected: int, timeout: float = 300) -> None:
    """Until `expected` OCR workers report ready (the service is healthy with the first)."""
    from service.jobs import live_workers

    db = _service_db(storage)
    try:
        deadline = time.monotonic() + timeout
        while len(live_workers(db)) < expected:
            if time.monotonic() > deadline:
                raise SystemExit(f"fewer than {expected} OCR workers became ready within {timeout:.0f}s")
            time.sleep(0.3)
    finally:
        db.dispose()


def worker_split(storage: Path) -> list[int]:
    """Images each OCR worker read, largest first, after their next heartbeat."""
    from service.jobs import live_workers

    time.sleep(2.5)  # a heartbeat every 2 s publishes images_processed
    db = _service_db(storage)
    try:
        return sorted((w.images_processed for w in live_workers(db)), reverse=True)
    finally:
        db.dispose()


def ocr_worker_peaks(svc: Any) -> list[float]:
    """VmHWM of each OCR worker process (`main.py worker`), MB, largest first."""
    peaks = []
    for process in svc.processes():
        try:
            if "worker" in process.cmdline()[-1:]:
                peaks.append(high_water_rss(process.pid) / MB)
        except psutil.Error:
            continue
    return sorted(peaks, reverse=True)


def run_mode(mode: str, receipts: list[tuple[str, bytes, str]], profile: str, port: int | None,
             per_request: int, workdir: Path, poll: float, name: str | None = None,
             extra: dict[str, str] | None = None) -> dict:
    settings = {"WORKER_ENABLED": "true" if mode == "worker" else "false",
                "PROCESS_BATCH_MIN_INTERVAL_SECONDS": "0", "OCR_DEFAULT_PROFILE": profile,
                "WORKER_POLL_INTERVAL_SECONDS": str(poll), "LOG_LEVEL": "WARNING", **(extra or {})}
    storage = workdir / (name or mode) / "storage"
    if storage.exists():
        shutil.rmtree(storage.parent)
    with running_service(storage, port=port, start_timeout=300, **settings) as svc:
        workers = int(settings.get("OCR_WORKERS", "1")) if mode == "worker" else 0
        if workers > 1:
            wait_workers_ready(storage, workers)
        rss_idle = svc.rss_bytes()
        with svc.rss_sampler(0.2) as sampler:
            cpu = svc.cpu_meter().start()
            began = time.perf_counter()
            latencies = upload_all(svc.base, receipts, per_request)
            uploaded = time.perf_counter()
            response = requests.post(f"{svc.base}/api/ocr/process_batch", json={"profile": profile}, timeout=330)
            answered = time.perf_counter()
            if response.status_code not in (200, 202):
                raise SystemExit(f"process_batch failed: {response.status_code} {response.text[:500]}")
            state = wait_all_finished(svc.base, len(receipts), timeout=600)
            finished = time.perf_counter()
            cpu.stop()
        split = worker_split(storage) if mode == "worker" else []
        peaks = ocr_worker_peaks(svc) if mode == "worker" else []
        results = all_results(svc.base)
        timing = requests.get(f"{svc.base}/api/metrics/batch", timeout=10).json()
        batch_times = [b["processing_time"] or 0.0 for b in timing["recent"] if b["files"]]
        per_image = [r["processing_metadata"].get("processing_time") or 0.0 for r in results
                     if r.get("processing_status") == "success"]
        with_amount = sum(1 for r in results if (r.get("extracted_fields") or {}).get("monto"))
        return {
            "mode": name or mode,
            "split": split,
            "ocr_worker_peaks_mb": peaks,
            "count": len(receipts),
            "upload_s": uploaded - began,
            "upload_p50_ms": statistics.median(latencies) * 1000,
            "process_batch_s": answered - uploaded,
            "wait_after_s": finished - answered,
            "wall_s": finished - began,
            "images_per_s": len(receipts) / (finished - began),
            "processed": state["processed"],
            "failed": state["error"],
            "with_amount": with_amount,
            "ocr_sum_s": sum(per_image),
            "ocr_median_s": statistics.median(per_image) if per_image else float("nan"),
            "batches": len(batch_times),
            "batch_s": sum(batch_times),
            "rss_idle_mb": rss_idle / MB,
            "rss_peak_mb": sampler.peak / MB,
            "ocr_process_peak_mb": sampler.process_peak / MB,
            "rss_end_mb": sampler.last / MB,
            "processes": len(svc.processes()),
            "service_cpu_s": cpu.service_seconds,
            "service_cores": cpu.service_cores,
            "others_cores": cpu.others_cores,
        }


def print_table(rows: list[dict], profile: str) -> None:
    print(f"\nservice_bench: profile {profile}, {rows[0]['count']} receipts, gunicorn 2 web x 4 threads; "
          'RSS = master + web workers + OCR worker; "OCR proc peak" = the largest process\'s own VmHWM')
    header = ("mode", "images", "upload s", "process s", "wall s", "img/s", "ok/err", "OCR s/img", "OCR sum s",
              "svc CPU s", "others' cores", "peak RSS MB", "idle RSS MB", "OCR proc peak MB",
              "split")
    lines = [header]
    for r in rows:
        lines.append((r["mode"], str(r["count"]), f"{r['upload_s']:.2f}", f"{r['process_batch_s'] + r['wait_after_s']:.2f}",
                      f"{r['wall_s']:.2f}", f"{r['images_per_s']:.2f}", f"{r['processed']}/{r['failed']}",
                      f"{r['ocr_median_s']:.3f}", f"{r['ocr_sum_s']:.1f}", f"{r['service_cpu_s']:.1f}",
                      f"{r['others_cores']:.2f}", f"{r['rss_peak_mb']:.0f}", f"{r['rss_idle_mb']:.0f}",
                      f"{r['ocr_process_peak_mb']:.0f}", "/".join(map(str, r["split"])) or "-"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for index, line in enumerate(lines):
        print("  ".join(cell.rjust(width) for cell, width in zip(line, widths)))
        if index == 0:
            print("  ".join("-" * width for width in widths))
    for r in rows:
        split = "/".join(str(n) for n in r["split"]) or "-"
        peaks = ", ".join(f"{mb:.0f}" for mb in r["ocr_worker_peaks_mb"]) or "-"
        print(f"[{r['mode']}] wall {r['wall_s']:.1f} s; split between OCR workers {split}; OCR worker peaks "
              f"{peaks} MB; upload p50 "
              f"{r['upload_p50_ms']:.0f} ms/request; process_batch answered after {r['process_batch_s']:.2f} s, "
              f"{r['wait_after_s']:.2f} s more until all finished; {r['batches']} OCR batch(es) took "
              f"{r['batch_s']:.1f} s in the service; amount extracted for {r['with_amount']}/{r['count']}")
        if r["others_cores"] > 0.3:
            print(f"[{r['mode']}] note: other processes kept {r['others_cores']:.2f} of {os.cpu_count()} cores busy "
                  f"during the run (shared host); the service itself used {r['service_cores']:.2f} cores")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--profile", default="ultra_rapido")
    parser.add_argument("--port", type=int, default=0, help="port for the service (0: a free one)")
    parser.add_argument("--mode", choices=("both", "worker", "web"), default="both")
    parser.add_argument("--per-request", type=int, default=1, help="files per upload request (1 to 50)")
    parser.add_argument("--seed", type=int, default=5000, help="first receipt seed")
    parser.add_argument("--configs", nargs="+", metavar="NAME=VAR=VALUE,...", default=[],
                        help="worker-mode configurations to compare (see above); replaces --mode")
    parser.add_argument("--rounds", type=int, default=1, help="times each configuration runs, interleaved (default 1)")
    parser.add_argument("--poll", type=float, default=1.0,
                        help="WORKER_POLL_INTERVAL_SECONDS of the service (1.0 is the deployment default)")
    args = parser.parse_args(argv)
    if not 1 <= args.per_request <= 50:
        parser.error("--per-request must be from 1 to 50")

    began = time.perf_counter()
    receipts = generate(args.count, args.seed)
    size = sum(len(data) for _, data, _ in receipts)
    print(f"generated {len(receipts)} receipts ({size / MB:.1f} MB) in {time.perf_counter() - began:.1f} s")
    modes = ("worker", "web") if args.mode == "both" else (args.mode,)
    runs = [(mode, None, None) for mode in modes]
    if args.configs:
        runs = [("worker", name, settings) for name, settings in map(parse_config, args.configs)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="service_bench_") as tmp:
        for mode, name, settings in [run for _ in range(args.rounds) for run in runs]:
            rows.append(run_mode(mode, receipts, args.profile, args.port or None, args.per_request, Path(tmp), args.poll,
                                 name, settings))
            mode = rows[-1]["mode"]
            print(f"[{mode}] wall {rows[-1]['wall_s']:.2f} s, {rows[-1]['images_per_s']:.2f} img/s, "
                  f"peak RSS {rows[-1]['rss_peak_mb']:.0f} MB, OCR process peak {rows[-1]['ocr_process_peak_mb']:.0f} MB, "
                  f"split {'/'.join(map(str, rows[-1]['split'])) or '-'}", flush=True)
    print_table(rows, args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
