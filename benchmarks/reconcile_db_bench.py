"""Reconciliation through the database path: a statement stored and matched against stored receipts.

    .venv/bin/python benchmarks/reconcile_db_bench.py [--receipts 10000] [--format bancaribe_csv]
        [--database-url postgresql+psycopg2://...] [--singles 200]

1. `--receipts` generated receipts stored as processed results (one bulk insert, no OCR).
2. Their statement (tools/statement_generator.py) parsed and stored with service/statements.py:
   movements inserted, every receipt the statement's days touch reconciled, one transaction.
   Prints the time, and the confusion table (expected x obtained) read back from the documents.
3. `--singles` receipts reconciled one at a time with reconcile_upload, as the worker does after
   OCR: the median and p99 per receipt (indexed range queries, not a scan of the movements).
"""
from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, select  # noqa: E402

from config import load_settings  # noqa: E402
from database import DEFAULT_TENANT_ID, Result, Upload, utcnow  # noqa: E402
from migrations_runner import upgrade_to_head  # noqa: E402
from reconciliation import ESTADOS  # noqa: E402
from service.conciliation import reconcile_upload  # noqa: E402
from service.results import result_row  # noqa: E402
from service.runtime import Runtime  # noqa: E402
from service.statements import parse, store_statement  # noqa: E402
from tools.statement_generator import generate_statement  # noqa: E402


def store_receipts(rt: Runtime, receipts: list[dict]) -> dict[str, int]:
    now = utcnow()
    ids = {}
    with rt.db.session() as session:
        for start in range(0, len(receipts), 1000):
            part = receipts[start:start + 1000]
            uploads = [{"tenant_id": DEFAULT_TENANT_ID, "stored_name": f"bench-{r['id']}.png", "original_name": "r.png",
                        "sha256": hashlib.sha256(r["id"].encode()).hexdigest(), "size_bytes": 1, "metadata": {},
                        "source": "upload", "status": "processed", "created_at": now, "processed_at": now,
                        "attempts": 1} for r in part]
            session.execute(insert(Upload), uploads)
            found = dict(session.execute(select(Upload.stored_name, Upload.id).where(
                Upload.stored_name.in_([u["stored_name"] for u in uploads]))).all())
            rows = []
            for receipt in part:
                upload = Upload(id=found[f"bench-{receipt['id']}.png"], tenant_id=DEFAULT_TENANT_ID,
                                stored_name=f"bench-{receipt['id']}.png")
                document = {"processing_status": "success", "filename": upload.stored_name, "conciliacion": None,
                            "validacion": {"requiere_revision": False}, "extracted_fields": dict(receipt)}
                row = result_row(upload, document)
                rows.append({c.name: getattr(row, c.key) for c in Result.__table__.columns
                             if c.name != "id" and getattr(row, c.key) is not None} | {"created_at": now})
                ids[receipt["id"]] = upload.id
            session.execute(insert(Result), rows)
        session.commit()
    return ids


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--receipts", type=int, default=10_000)
    parser.add_argument("--format", default="bancaribe_csv")
    parser.add_argument("--database-url", default=None, help="default: a SQLite file in a temporary directory")
    parser.add_argument("--singles", type=int, default=200)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{tmp}/bench.db"
        rt = Runtime.from_settings(load_settings({"DATABASE_URL": url, "STORAGE_ROOT": tmp}))
        upgrade_to_head(rt.db)
        generated = generate_statement(args.format, seed=0, receipts=args.receipts)
        started = time.perf_counter()
        ids = store_receipts(rt, generated.receipts)
        print(f"{rt.db.dialect}: stored {len(ids)} receipts in {time.perf_counter() - started:.1f} s")

        started = time.perf_counter()
        parsed = parse(rt, generated.data, args.format)
        parse_seconds = time.perf_counter() - started
        file_seconds = []
        write_results = rt.storage.write_results

        def timed_write_results(documents):
            started = time.perf_counter()
            write_results(documents)
            file_seconds.append(time.perf_counter() - started)

        rt.storage.write_results = timed_write_results
        started = time.perf_counter()
        stored = store_statement(rt, DEFAULT_TENANT_ID, generated.filename, generated.data, parsed)
        store_seconds = time.perf_counter() - started
        credits = sum(1 for m in parsed.movements if m.is_credit and not m.is_commission)
        print(f"{args.format}: {len(parsed.movements)} movements ({credits} credits), parse {parse_seconds:.2f} s; "
              f"stored and reconciled against {len(ids)} receipts in {store_seconds:.2f} s: the transaction "
              f"{store_seconds - sum(file_seconds):.2f} s, then {sum(file_seconds):.2f} s "
              "writing the changed result files")
        print("  states of the receipts it touched:", stored.outcome)

        with rt.db.session() as session:
            documents = dict(session.execute(select(Result.upload_id, Result.document)).all())
        table: Counter = Counter()
        wrong = 0
        for receipt_id, expected in generated.expected.items():
            got = documents[ids[receipt_id]]["conciliacion"] or {"estado": "pendiente"}
            table[(expected["estado"], got["estado"])] += 1
            wrong += got["estado"] == "conciliado" and got["movimiento"]["linea"] != expected["linea"]
        print("expected \\ obtained".ljust(22) + "".join(s.rjust(15) for s in ESTADOS))
        for want in ESTADOS:
            print(want.ljust(22) + "".join(str(table[(want, got)]).rjust(15) for got in ESTADOS))
        print(f"conciliado with the wrong movement: {wrong}")

        sample = random.Random(0).sample(sorted(ids.values()), min(args.singles, len(ids)))
        timings = []
        for upload_id in sample:
            started = time.perf_counter()
            reconcile_upload(rt, DEFAULT_TENANT_ID, upload_id)
            timings.append(time.perf_counter() - started)
        timings.sort()
        print(f"reconcile_upload (the worker's hook), {len(sample)} receipts against {len(parsed.movements)} movements: "
              f"median {statistics.median(timings) * 1000:.1f} ms, p99 {timings[int(len(timings) * 0.99) - 1] * 1000:.1f} ms")
        rt.db.dispose()
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
