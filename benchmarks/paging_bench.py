"""Bounded responses: web-process memory while several clients page through every stored result.

    .venv/bin/python benchmarks/paging_bench.py [--results 10000] [--clients 4] [--limit 1000]

Stores N result documents (about 8 KB each, like a receipt's with its words and coordinates) in a
fresh SQLite database (or DATABASE_URL), starts the real service under gunicorn (no OCR worker),
then C clients at once follow `next_cursor` through `/api/extract_results` until the end, and
then read the streamed export, then its CSV (`format=csv`), then the review queue's XLSX
(`format=xlsx`). Prints the RSS of each web process before and at its peak (sampled
every 0.1 s), the growth, the pages and bytes read and the time taken. Target: growth <= 50 MB.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.service_process import running_service  # noqa: E402
from database import Database, Result, Upload, utcnow  # noqa: E402
from migrations_runner import upgrade_to_head  # noqa: E402

ADMIN_KEY = "paging-bench-admin-key-0123456789"
MB = 1024 * 1024


def receipt_document(number: int) -> dict:
    words = [{"texto": f"palabra{n}", "confianza": 0.98, "coordenadas": [n, n + 10, n + 60, n + 30]} for n in range(60)]
    return {"request_id": "BATCH_20250711_143052_a8f", "filename": f"r{number:05d}.png",
            "metadata": {"nombre": "Ana", "idWhatsapp": f"58414{number:07d}@lid"},
            "original_text_ocr": "Pago Movil BDV Operacion 003039376430 Monto 1.234,56 " * 20,
            "palabras_detectadas": words, "extracted_fields": {"monto": "1234.56", "referencia": f"{number:012d}"}}


def store(database_url: str, count: int) -> None:
    db = Database(database_url)
    upgrade_to_head(db)
    now = utcnow()
    with db.session() as session:
        for start in range(0, count, 1000):
            uploads = [Upload(stored_name=f"r{n:05d}.png", original_name="r.png", sha256=f"{n:064d}", size_bytes=1,
                              status="processed", processed_at=now) for n in range(start, min(count, start + 1000))]
            session.add_all(uploads)
            session.flush()
            session.add_all([Result(upload_id=u.id, filename=u.stored_name, processing_status="success",
                                    document=receipt_document(n)) for n, u in zip(range(start, count), uploads)])
            session.commit()
    db.dispose()


def web_processes(master_pid: int) -> list[psutil.Process]:
    # Direct children of the gunicorn master are the web processes (the OCR worker is off).
    return psutil.Process(master_pid).children()


def page_through(base: str, limit: int, totals: dict, lock: threading.Lock) -> None:
    cursor, pages, rows, size = None, 0, 0, 0
    while True:
        params = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        response = requests.get(f"{base}/api/extract_results", params=params, headers={"X-API-Key": ADMIN_KEY}, timeout=120)
        response.raise_for_status()
        body = response.json()
        pages, rows, size = pages + 1, rows + len(body["results"]), size + len(response.content)
        cursor = body["next_cursor"]
        if cursor is None:
            break
    with lock:
        totals["pages"] += pages
        totals["rows"] += rows
        totals["bytes"] += size


def export(base: str, totals: dict, lock: threading.Lock, path: str = "/api/extract_results/export",
           prefix: str = "export") -> None:
    lines = size = 0
    with requests.get(f"{base}{path}", headers={"X-API-Key": ADMIN_KEY}, stream=True,
                      timeout=300) as response:
        for line in response.iter_lines():
            lines, size = lines + 1, size + len(line)
    with lock:
        totals[f"{prefix}_rows"] += lines
        totals[f"{prefix}_bytes"] += size


def sample_peaks(processes: list[psutil.Process], peaks: dict, stop: threading.Event) -> None:
    while not stop.is_set():
        for process in processes:
            try:
                peaks[process.pid] = max(peaks.get(process.pid, 0), process.memory_info().rss)
            except psutil.NoSuchProcess:
                pass
        time.sleep(0.1)


def run_clients(clients: int, target, args) -> float:
    started = time.perf_counter()
    threads = [threading.Thread(target=target, args=args) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="paging-bench-") as tmp:
        storage = Path(tmp) / "storage"
        database_url = args.database_url or f"sqlite:///{storage / 'data' / 'ocr.db'}"
        (storage / "data").mkdir(parents=True)
        started = time.perf_counter()
        store(database_url, args.results)
        print(f"stored {args.results} results in {time.perf_counter() - started:.1f} s")
        with running_service(storage, database_url, WORKER_ENABLED="false", API_KEYS=ADMIN_KEY,
                             WEB_MAX_REQUESTS="0") as service:
            processes = web_processes(service.pid)
            requests.get(f"{service.base}/api/extract_results?limit=1", headers={"X-API-Key": ADMIN_KEY}, timeout=30)
            time.sleep(1)
            before = {p.pid: p.memory_info().rss for p in processes}
            peaks: dict[int, int] = {}
            stop = threading.Event()
            sampler = threading.Thread(target=sample_peaks, args=(processes, peaks, stop), daemon=True)
            sampler.start()
            totals = {"pages": 0, "rows": 0, "bytes": 0, "export_rows": 0, "export_bytes": 0, "csv_rows": 0, "csv_bytes": 0,
                      "xlsx_rows": 0, "xlsx_bytes": 0}
            lock = threading.Lock()
            paging_seconds = run_clients(args.clients, page_through, (service.base, args.limit, totals, lock))
            export_seconds = run_clients(args.clients, export, (service.base, totals, lock))
            csv_seconds = run_clients(args.clients, export, (service.base, totals, lock,
                                                             "/api/extract_results?format=csv", "csv"))
            xlsx_seconds = run_clients(args.clients, export, (service.base, totals, lock,
                                                              "/api/review_queue?estado=todos&format=xlsx", "xlsx"))
            stop.set()
            sampler.join()
        print(f"{args.clients} clients paging with limit={args.limit}: {totals['pages']} pages, {totals['rows']} rows, "
              f"{totals['bytes'] / MB:.1f} MB in {paging_seconds:.1f} s")
        print(f"{args.clients} clients reading the streamed export: {totals['export_rows']} rows, "
              f"{totals['export_bytes'] / MB:.1f} MB in {export_seconds:.1f} s")
        print(f"{args.clients} clients reading the streamed CSV: {totals['csv_rows']} lines (with headers), "
              f"{totals['csv_bytes'] / MB:.1f} MB in {csv_seconds:.1f} s")
        print(f"{args.clients} clients reading the review queue's XLSX: {totals['xlsx_bytes'] / MB:.1f} MB "
              f"in {xlsx_seconds:.1f} s")
        worst = 0
        for pid, rss in before.items():
            growth = peaks.get(pid, rss) - rss
            worst = max(worst, growth)
            print(f"web process {pid}: RSS {rss / MB:.1f} MB before, {peaks.get(pid, rss) / MB:.1f} MB peak, "
                  f"growth {growth / MB:.1f} MB")
        print(f"largest web-process RSS growth: {worst / MB:.1f} MB (target <= 50 MB): {'OK' if worst <= 50 * MB else 'OVER'}")
        return 0 if worst <= 50 * MB else 1


if __name__ == "__main__":
    sys.exit(main())
