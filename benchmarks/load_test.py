"""Load test: concurrent clients upload distinct receipts to the service under gunicorn while the
background OCR worker processes them; then, optionally, a soak run to watch memory.

    python benchmarks/load_test.py [--clients 20] [--per-client 10] [--soak 1000] [--port 0]

Load phase (always): --clients threads each upload --per-client receipts (one file per request,
distinct seeds: identical bytes would be deduplicated), as fast as the service answers. Checks that
every upload is accepted (200) and processed exactly once: one result per upload id in
/api/extract_results, in the database (`results`, `uploads.attempts == 1`) and in results/*.json.
Reports upload latency p50/p99, end-to-end throughput (images/s from the first upload to the last
result) and the service's RSS (gunicorn master + web workers + OCR worker, summed).

Soak phase (--soak N): keeps uploading fresh receipts (at most --soak-backlog waiting at a time)
until N images in total have been processed, and reports the RSS after the warm-up (the first
--warmup images) and after N, and whether it stayed flat (within +15%).

Receipts are generated before the clock starts, in 2 processes, with the "whatsapp" and "lowres"
variants that real receipts arrive as. Everything runs on 127.0.0.1 with a temporary STORAGE_ROOT.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import Pool
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.service_process import all_results, running_service  # noqa: E402

MB = 1024 * 1024
FLAT_TOLERANCE = 0.15
FIRST_SEED = 100_000


def _make(seed: int) -> tuple[int, str, bytes]:
    from tools.receipt_generator import generate_receipt

    variant = random.Random(seed).choice(("whatsapp", "whatsapp", "lowres"))
    receipt = generate_receipt(seed, variant=variant)
    return seed, receipt.filename, receipt.image_bytes


def generate(count: int, first_seed: int) -> list[tuple[int, str, bytes]]:
    if count <= 0:
        return []
    with Pool(min(2, os.cpu_count() or 1)) as pool:
        return pool.map(_make, range(first_seed, first_seed + count), chunksize=16)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


class Uploader:
    """Uploads receipts; records latency, status and the upload entry the service returned."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.statuses: Counter = Counter()
        self.entries: list[dict] = []
        self.failures: list[str] = []
        self.first_started: float | None = None
        self.local = threading.local()

    def session(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
        return self.local.session

    def upload(self, client: int, item: tuple[int, str, bytes]) -> None:
        seed, filename, data = item
        mime = "image/jpeg" if filename.endswith(".jpg") else "image/png"
        metadata = {"numerosorteo": "L", "fechasorteo": "20250711", "idWhatsapp": f"58412{client:07d}@lid",
                    "nombre": f"Cliente {client}", "horamin": f"{seed % 24:02d}-{seed % 60:02d}"}
        began = time.perf_counter()
        with self.lock:
            if self.first_started is None:
                self.first_started = began
        try:
            response = self.session().post(f"{self.base}/api/upload", files=[("files", (filename, data, mime))],
                                           data=metadata, timeout=60)
            status = response.status_code
        except requests.RequestException as exc:
            status, response = f"error:{type(exc).__name__}", None
        elapsed = time.perf_counter() - began
        with self.lock:
            self.latencies.append(elapsed)
            self.statuses[status] += 1
            if status == 200:
                self.entries.extend(response.json()["files_processed"])
            else:
                self.failures.append(f"seed {seed}: {status} {response.text[:200] if response is not None else ''}")


def queue(base: str) -> dict[str, int]:
    return requests.get(f"{base}/api/status", timeout=10).json()["queue"]


def wait_finished(base: str, total: int, timeout: float, poll: float = 0.1, on_progress=None) -> float:
    """Until `total` uploads are processed or failed and nothing waits; returns the moment seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = queue(base)
        if on_progress is not None:
            on_progress(state["processed"] + state["error"])
        if state["processed"] + state["error"] >= total and not state["pending"] and not state["processing"]:
            return time.perf_counter()
        time.sleep(poll)
    raise SystemExit(f"not finished within {timeout:.0f}s: {queue(base)}")


def verify_exactly_once(base: str, storage: Path, entries: list[dict]) -> dict:
    """Every upload has exactly one result: API, database and results/*.json agree."""
    ids = [entry["id"] for entry in entries]
    problems = []
    if len(set(ids)) != len(ids):
        problems.append(f"duplicate upload ids returned: {[i for i, n in Counter(ids).items() if n > 1][:10]}")
    documents = all_results(base)
    per_upload = Counter(doc["processing_metadata"].get("upload_id") for doc in documents)
    wrong = {i: per_upload.get(i, 0) for i in ids if per_upload.get(i, 0) != 1}
    if wrong:
        problems.append(f"uploads without exactly one API result: {dict(list(wrong.items())[:10])}")
    failed = [doc["filename"] for doc in documents if doc.get("processing_status") != "success"]
    if failed:
        problems.append(f"{len(failed)} results are not successes: {failed[:5]}")
    with sqlite3.connect(storage / "data" / "ocr.db") as db:
        rows = dict(db.execute("SELECT u.id, count(r.id) FROM uploads u LEFT JOIN results r ON r.upload_id = u.id "
                               "GROUP BY u.id").fetchall())
        attempts = dict(db.execute("SELECT id, attempts FROM uploads").fetchall())
        statuses = Counter(status for (status,) in db.execute("SELECT status FROM uploads"))
    not_once = {i: rows.get(i) for i in ids if rows.get(i) != 1}
    if not_once:
        problems.append(f"uploads without exactly one database result: {dict(list(not_once.items())[:10])}")
    retried = {i: attempts.get(i) for i in ids if attempts.get(i) != 1}
    if retried:
        problems.append(f"uploads claimed more than once (attempts != 1): {dict(list(retried.items())[:10])}")
    results_dir = storage / "data" / "results"
    files = {p.name.removesuffix(".json"): p for p in results_dir.glob("*.json")}
    for entry in entries:
        path = files.get(entry["stored_name"])
        if path is None:
            problems.append(f"no results/{entry['stored_name']}.json")
            continue
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored["processing_metadata"].get("upload_id") != entry["id"]:
            problems.append(f"results/{path.name} belongs to upload {stored['processing_metadata'].get('upload_id')}")
    return {"api_results": len(documents), "db_statuses": dict(statuses), "result_files": len(files),
            "problems": problems}


def service_breakdown(svc) -> dict[str, float]:
    parts = {"master": 0, "web": 0, "ocr_worker": 0}
    for process in svc.processes():
        try:
            rss = process.memory_info().rss
            if process.pid == svc.pid:
                parts["master"] += rss
            elif process.cmdline()[-1:] == ["worker"]:
                parts["ocr_worker"] += rss
            else:
                parts["web"] += rss
        except Exception:  # noqa: BLE001 - a web process recycled meanwhile
            continue
    return {key: value / MB for key, value in parts.items()}


def web_process_ids(svc) -> set[int]:
    found = set()
    for process in svc.processes()[1:]:
        try:
            if process.cmdline()[-1:] != ["worker"]:
                found.add(process.pid)
        except Exception:  # noqa: BLE001 - recycled between listing and reading
            continue
    return found


def checkpoint(svc, done: int) -> dict:
    """RSS by process kind, and the OCR result cache (an LRU that grows until it is full, by design)."""
    cache = requests.get(f"{svc.base}/api/metrics", timeout=10).json()["ocr"]["cache"]
    return {"images": done, "rss_mb": svc.rss_bytes() / MB, **service_breakdown(svc),
            "cache_entries": cache.get("entries", 0), "cache_mb": cache.get("size_mb", 0.0)}


def warmup_recorder(svc, warmup: int, checkpoints: dict):
    def record(done: int) -> None:
        if done >= warmup and "warmup" not in checkpoints:
            checkpoints["warmup"] = checkpoint(svc, done)
    return record


def load_phase(svc, receipts: list[tuple[int, str, bytes]], clients: int, per_client: int,
               checkpoints: dict, warmup: int) -> dict:
    uploader = Uploader(svc.base)
    assignments = [receipts[c * per_client:(c + 1) * per_client] for c in range(clients)]
    rss_before = svc.rss_bytes()
    with svc.rss_sampler(0.2) as sampler:
        cpu = svc.cpu_meter().start()

        def client(index: int) -> None:
            for item in assignments[index]:
                uploader.upload(index, item)

        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(client, range(clients)))
        uploads_done = time.perf_counter()
        total = clients * per_client
        finished = wait_finished(svc.base, total, timeout=max(300, total * 2),
                                 on_progress=warmup_recorder(svc, warmup, checkpoints))
        cpu.stop()
    verification = verify_exactly_once(svc.base, svc.storage_root, uploader.entries)
    elapsed = finished - uploader.first_started
    return {
        "uploads": total,
        "statuses": dict(uploader.statuses),
        "upload_failures": uploader.failures[:10],
        "latency_p50_ms": percentile(uploader.latencies, 50) * 1000,
        "latency_p99_ms": percentile(uploader.latencies, 99) * 1000,
        "latency_max_ms": max(uploader.latencies) * 1000,
        "upload_phase_s": uploads_done - uploader.first_started,
        "end_to_end_s": elapsed,
        "throughput": total / elapsed,
        "rss_before_mb": rss_before / MB,
        "rss_after_mb": svc.rss_bytes() / MB,
        "rss_peak_mb": sampler.peak / MB,
        "others_cores": cpu.others_cores,
        "service_cores": cpu.service_cores,
        **verification,
    }


def soak_phase(svc, receipts: list[tuple[int, str, bytes]], target: int, warmup: int, backlog: int,
               already: int, checkpoints: dict) -> dict:
    """Upload fresh receipts, never more than `backlog` waiting, until `target` images are processed."""
    uploader = Uploader(svc.base)
    record_warmup = warmup_recorder(svc, warmup, checkpoints)
    web_pids: set[int] = set()
    feed = iter(receipts)
    sampled: list[tuple[int, float]] = []
    began = time.perf_counter()
    with svc.rss_sampler(0.2) as sampler:
        while True:
            state = queue(svc.base)
            done = state["processed"] + state["error"]
            web_pids.update(web_process_ids(svc))
            record_warmup(done)
            if not sampled or done - sampled[-1][0] >= 100:
                sampled.append((done, svc.rss_bytes() / MB))
            if done >= target:
                checkpoints["end"] = checkpoint(svc, done)
                break
            waiting = state["pending"] + state["processing"]
            room = min(backlog - waiting, target - done - waiting)
            batch = [item for _, item in zip(range(max(0, room)), feed)]
            if batch:
                with ThreadPoolExecutor(4) as pool:
                    list(pool.map(lambda pair: uploader.upload(pair[0] % 20, pair[1]), enumerate(batch)))
            elif room > 0 and not waiting:
                raise SystemExit(f"ran out of generated receipts at {done} processed images")
            time.sleep(0.5)
    duration = time.perf_counter() - began
    warm, end = checkpoints["warmup"], checkpoints["end"]
    growth = (end["rss_mb"] - warm["rss_mb"]) / warm["rss_mb"]
    return {"target": target, "processed_in_soak": end["images"] - already, "duration_s": duration,
            "statuses": dict(uploader.statuses), "upload_failures": uploader.failures[:10], "warmup": warm, "end": end,
            "growth": growth, "flat": growth <= FLAT_TOLERANCE, "peak_mb": sampler.peak / MB,
            "web_processes_seen": len(web_pids), "rss_every_100": sampled,
            "latency_p50_ms": percentile(uploader.latencies, 50) * 1000,
            "latency_p99_ms": percentile(uploader.latencies, 99) * 1000}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--per-client", type=int, default=10)
    parser.add_argument("--soak", type=int, default=0, help="keep going until this many images are processed")
    parser.add_argument("--warmup", type=int, default=100, help="images processed before the soak's first RSS reading")
    parser.add_argument("--soak-backlog", type=int, default=60, help="most uploads waiting at once during the soak")
    parser.add_argument("--port", type=int, default=0, help="port for the service (0: a free one)")
    parser.add_argument("--seed", type=int, default=FIRST_SEED, help="first receipt seed")
    args = parser.parse_args(argv)

    load_count = args.clients * args.per_client
    soak_count = max(0, args.soak - load_count)
    began = time.perf_counter()
    receipts = generate(load_count + soak_count, args.seed)
    print(f"generated {len(receipts)} receipts ({sum(len(r[2]) for r in receipts) / MB:.1f} MB, "
          f"{Counter(r[1].rsplit('_', 1)[-1].split('.')[0] for r in receipts)}) in {time.perf_counter() - began:.1f} s",
          flush=True)

    ok = True
    with tempfile.TemporaryDirectory(prefix="load_test_") as tmp:
        with running_service(Path(tmp) / "storage", port=args.port or None, WORKER_ENABLED="true",
                             LOG_LEVEL="WARNING") as svc:
            checkpoints: dict[str, dict] = {}
            load = load_phase(svc, receipts[:load_count], args.clients, args.per_client, checkpoints, args.warmup)
            print(f"\nload: {args.clients} clients x {args.per_client} uploads = {load['uploads']} distinct receipts "
                  f"(worker on, gunicorn 2 web x 4 threads)")
            print(f"  upload answers        {load['statuses']}")
            print(f"  upload latency        p50 {load['latency_p50_ms']:.0f} ms, p99 {load['latency_p99_ms']:.0f} ms, "
                  f"max {load['latency_max_ms']:.0f} ms (all uploads sent in {load['upload_phase_s']:.1f} s)")
            print(f"  end-to-end            {load['end_to_end_s']:.1f} s from first upload to last result: "
                  f"{load['throughput']:.2f} images/s")
            print(f"  exactly once          API results {load['api_results']}, result files {load['result_files']}, "
                  f"uploads {load['db_statuses']}, problems: {load['problems'] or 'none'}")
            print(f"  service RSS           before {load['rss_before_mb']:.0f} MB, after {load['rss_after_mb']:.0f} MB, "
                  f"peak {load['rss_peak_mb']:.0f} MB")
            print(f"  CPU                   service {load['service_cores']:.2f} cores, other processes "
                  f"{load['others_cores']:.2f} cores (this client included)")
            ok = load["statuses"] == {200: load["uploads"]} and not load["problems"]
            if args.soak:
                soak = soak_phase(svc, receipts[load_count:], args.soak, args.warmup, args.soak_backlog,
                                  already=load["uploads"], checkpoints=checkpoints)
                warm, end = soak["warmup"], soak["end"]
                print(f"\nsoak: until {args.soak} images processed ({soak['processed_in_soak']} more after the load "
                      f"phase, {soak['duration_s']:.0f} s); uploads {soak['statuses']}")
                print(f"  RSS after warm-up     {warm['rss_mb']:.0f} MB at {warm['images']} images "
                      f"(OCR worker {warm['ocr_worker']:.0f}, web {warm['web']:.0f}, master {warm['master']:.0f}; "
                      f"result cache {warm['cache_entries']} entries, {warm['cache_mb']:.1f} MB)")
                print(f"  RSS after {args.soak:<12d}{end['rss_mb']:.0f} MB at {end['images']} images "
                      f"(OCR worker {end['ocr_worker']:.0f}, web {end['web']:.0f}, master {end['master']:.0f}; "
                      f"result cache {end['cache_entries']} entries, {end['cache_mb']:.1f} MB)")
                print(f"  growth                {soak['growth'] * 100:+.1f}% -> "
                      f"{'flat (within +15%)' if soak['flat'] else 'NOT flat (> +15%)'}; peak {soak['peak_mb']:.0f} MB; "
                      f"{soak['web_processes_seen']} web processes seen (recycling)")
                print("  RSS every ~100 images " + ", ".join(f"{n}:{mb:.0f}" for n, mb in soak["rss_every_100"]))
                ok = ok and soak["flat"] and not soak["upload_failures"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
