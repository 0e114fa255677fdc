"""Latency benchmark: from one upload to its result being readable, on an idle service.

    python benchmarks/latency.py [--count 30] [--receipts ../shared/receipts/real]
                                 [--databases sqlite,postgresql] [--postgres-url URL] [--root DIR]

For each database the script starts the real service under gunicorn (benchmarks/service_process.py)
with the deployment's defaults (WORKER_POLL_INTERVAL_SECONDS=1.0, ultra_rapido, one OCR worker),
then, one at a time:

  1. uploads one real receipt (`POST /api/upload`, one file),
  2. reads `GET /api/ocr/result_data/<stored name>` every --read-every seconds until it answers 200,
  3. waits a pseudo-random 0.3-0.8 s with nothing in flight, so the service is idle again and the
     uploads land at every phase of the worker's polling.

The latency is the time from sending the upload to the 200 with the result. Each upload is a real
receipt (cycled through --receipts) with one pixel changed, so no two share bytes: identical bytes
would be served from the first one's result, or from the OCR cache, without any OCR. One upload
before the measured ones is a warm-up and is not counted. The script prints p50, p90, p99 and max
per database, with the OCR time the service recorded for each image and the rest of each latency
(upload request, waiting for the worker, claiming and recording, reading the result): on a shared
host the OCR slows down with the load, the rest shows what the service adds around it.

PostgreSQL runs in a new schema of --postgres-url (default: $LATENCY_DATABASE_URL, else
$TEST_DATABASE_URL), dropped at the end. --root runs the service from another checkout of the
project (e.g. an export of an older commit) to measure before and after with the same script.
Target: p50 <= 0.5 s and p99 <= 1 s on both databases.
"""
from __future__ import annotations

import argparse
import io
import math
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.service_process import running_service  # noqa: E402

TARGET_P50_SECONDS = 0.5
TARGET_P99_SECONDS = 1.0
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
# The deployment's defaults, over service_process's quicker test polling.
DEFAULTS = {"WORKER_POLL_INTERVAL_SECONDS": "1.0", "INBOX_ADOPT_MIN_AGE_SECONDS": "5",
            "OCR_DEFAULT_PROFILE": "ultra_rapido", "LOG_LEVEL": "WARNING"}
RESULT_TIMEOUT_SECONDS = 60


def distinct_receipts(directory: Path, count: int) -> list[bytes]:
    """`count` PNGs of the real receipts, cycled, each with its top-left pixel changed."""
    from PIL import Image

    paths = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise SystemExit(f"no receipt images in {directory}")
    images = [Image.open(path).convert("RGB") for path in paths]
    receipts = []
    for index in range(count):
        image = images[index % len(images)].copy()
        image.putpixel((0, 0), (index % 256, (index // 256) % 256, 7))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        receipts.append(buffer.getvalue())
    return receipts


@contextmanager
def fresh_schema(url: str) -> Iterator[str]:
    """A new PostgreSQL schema on `url`, as a URL whose connections use it; dropped afterwards."""
    from sqlalchemy import create_engine, text

    schema = f"latency_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in url else "?"
    try:
        yield f"{url}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def upload_and_read(session: requests.Session, base: str, image: bytes, index: int, read_every: float) -> tuple[float, dict]:
    """Seconds from sending one upload to reading its result, and the result document."""
    began = time.perf_counter()
    response = session.post(f"{base}/api/upload", files=[("files", (f"receipt{index}.png", image, "image/png"))],
                            data={"numerosorteo": "L", "fechasorteo": "20250711", "idWhatsapp": f"{index}@lid",
                                  "nombre": "Latency", "horamin": "10-00"}, timeout=30)
    if response.status_code != 200:
        raise SystemExit(f"upload failed: {response.status_code} {response.text[:500]}")
    name = response.json()["files_processed"][0]["stored_name"]
    deadline = began + RESULT_TIMEOUT_SECONDS
    while time.perf_counter() < deadline:
        result = session.get(f"{base}/api/ocr/result_data/{name}", timeout=10)
        if result.status_code == 200:
            return time.perf_counter() - began, result.json()["data"]
        if result.status_code != 404:
            raise SystemExit(f"reading {name} failed: {result.status_code} {result.text[:500]}")
        time.sleep(read_every)
    raise SystemExit(f"no result for {name} within {RESULT_TIMEOUT_SECONDS} s")


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest value with at least `fraction` of them at or below it."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(len(ordered) * fraction)) - 1]


def measure(database: str, database_url: str | None, receipts: list[bytes], root: Path, workdir: Path,
            read_every: float, seed: int) -> dict:
    gaps = random.Random(seed)
    with running_service(workdir / database / "storage", database_url, root=root, **DEFAULTS) as svc:
        with requests.Session() as session:
            upload_and_read(session, svc.base, receipts[0], 0, read_every)  # warm-up, not counted
            latencies, ocr_times, rest = [], [], []
            for index, image in enumerate(receipts[1:], start=1):
                time.sleep(gaps.uniform(0.3, 0.8))
                seconds, document = upload_and_read(session, svc.base, image, index, read_every)
                latencies.append(seconds)
                ocr_times.append(document["processing_metadata"].get("processing_time") or 0.0)
                rest.append(seconds - ocr_times[-1])
                if document.get("processing_status") != "success":
                    print(f"[{database}] upload {index}: {document.get('processing_status')}", flush=True)
    return {"database": database, "count": len(latencies), "p50": percentile(latencies, 0.5),
            "p90": percentile(latencies, 0.9), "p99": percentile(latencies, 0.99), "max": max(latencies),
            "mean": statistics.fmean(latencies), "ocr_p50": statistics.median(ocr_times),
            "rest_p50": percentile(rest, 0.5), "rest_p99": percentile(rest, 0.99)}


def print_table(rows: list[dict], root: Path) -> None:
    print(f"\nlatency: upload to readable result, one real receipt at a time over HTTP, idle service "
          f"under gunicorn with defaults (ultra_rapido, poll 1.0 s); service from {root}")
    header = ("database", "uploads", "p50 s", "p90 s", "p99 s", "max s", "mean s", "OCR p50 s", "rest p50 s",
              "rest p99 s")
    keys = ("p50", "p90", "p99", "max", "mean", "ocr_p50", "rest_p50", "rest_p99")
    lines = [header] + [(r["database"], str(r["count"]), *(f"{r[k]:.3f}" for k in keys)) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for index, line in enumerate(lines):
        print("  ".join(cell.rjust(width) for cell, width in zip(line, widths)))
        if index == 0:
            print("  ".join("-" * width for width in widths))
    print("OCR = the processing time the service recorded for the image; rest = latency - OCR: the upload "
          "request, the wait for the worker, claiming, recording and reading the result")
    for r in rows:
        meets = r["p50"] <= TARGET_P50_SECONDS and r["p99"] <= TARGET_P99_SECONDS
        print(f"[{r['database']}] {'meets' if meets else 'MISSES'} the target (p50 <= {TARGET_P50_SECONDS} s, "
              f"p99 <= {TARGET_P99_SECONDS} s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=30, help="measured uploads per database (at least 30)")
    parser.add_argument("--receipts", type=Path, default=ROOT.parent / "shared" / "receipts" / "real")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--postgres-url", default=os.environ.get("LATENCY_DATABASE_URL")
                        or os.environ.get("TEST_DATABASE_URL"))
    parser.add_argument("--root", type=Path, default=ROOT, help="project checkout to run the service from")
    parser.add_argument("--read-every", type=float, default=0.02, help="seconds between reads of the result")
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args(argv)
    if args.count < 30:
        parser.error("--count must be at least 30")
    databases = [name.strip() for name in args.databases.split(",") if name.strip()]
    if set(databases) - {"sqlite", "postgresql"}:
        parser.error("--databases takes sqlite and/or postgresql")
    if "postgresql" in databases and not args.postgres_url:
        parser.error("postgresql needs --postgres-url (or LATENCY_DATABASE_URL / TEST_DATABASE_URL)")

    receipts = distinct_receipts(args.receipts, args.count + 1)
    rows = []
    with tempfile.TemporaryDirectory(prefix="latency_") as tmp:
        for database in databases:
            if database == "sqlite":
                rows.append(measure(database, None, receipts, args.root, Path(tmp), args.read_every, args.seed))
            else:
                with fresh_schema(args.postgres_url) as url:
                    rows.append(measure(database, url, receipts, args.root, Path(tmp), args.read_every, args.seed))
            print(f"[{database}] p50 {rows[-1]['p50']:.3f} s, p99 {rows[-1]['p99']:.3f} s", flush=True)
    print_table(rows, args.root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
