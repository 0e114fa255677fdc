"""Reconciliation the whole way, against the real server (gunicorn + its OCR worker), on SQLite
and PostgreSQL (issue 13, "done means").

1. Receipt images (tools/receipt_generator.py) uploaded over HTTP and read by the worker's real
   OCR; a statement per destination bank credits their payments (but not the last few: missing),
   one image is sent twice (same bytes) and one payment again as another picture (reused). Half
   of the statements arrive before the images, half after.
2. For every format, a tenant of its own: the generator's 200 receipts (matching, next-day,
   internal BDV references, commissions, equal amounts, missing, ambiguous, reused, pending)
   recorded through the worker's own finish path (service/results.finish_upload, as the worker
   calls it after OCR; OCR of 2,600 images would take this machine an hour), and the export posted
   over HTTP, before the receipts for half of the formats, after for the others.

Every receipt's state is read back over HTTP; the confusion tables (expected x obtained) are
printed; no receipt may be `conciliado` with a credit other than its own.
"""
from __future__ import annotations

import time
from collections import Counter
from datetime import date, timedelta

import pytest
import requests

from benchmarks.service_process import running_service
from config import load_settings
from database import Database
from extraction.banks import get_catalog
from migrations_runner import upgrade_to_head
from reconciliation.spec import load_specs
from service.access import create_key
from service.runtime import Runtime
from tests.recon_helpers import confusion, finish_receipt, format_confusion, off_diagonal
from tools.receipt_generator import generate_receipt
from tools.statement_generator import BANK_NAMES, PAYER_BANKS, generate_statement, statement_for_receipts

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ADMIN_KEY = "bootstrap-admin-key-for-conciliation-e2e"
IMAGE_SEEDS = range(100, 340)
IMAGES = 36
MISSING = 4  # the last image payments get no credit
FIELDS = ("monto", "fecha", "referencia", "banco_destino")


def keyed(key):
    return {"X-API-Key": key}


def post_statement(base, key, generated):
    answer = requests.post(f"{base}/api/statements", headers=keyed(key), timeout=300,
                           files={"file": (generated.filename, generated.data)}, data={"format": "auto"})
    assert answer.status_code == 201, answer.text
    return answer.json()


def documents_of(base, key):
    found, cursor = {}, None
    while True:
        params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        body = requests.get(f"{base}/api/extract_results", params=params, headers=keyed(key), timeout=120).json()
        found.update((d["filename"], d) for d in body["results"])
        cursor = body["next_cursor"]
        if cursor is None:
            return found


def wait_processed(base, key, count, timeout=900):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = requests.get(f"{base}/api/files/pending", headers=keyed(key), timeout=30).json()["count"]
        processed = requests.get(f"{base}/api/files/processed", headers=keyed(key), params={"limit": 1000},
                                 timeout=30).json()["files"]
        if pending == 0 and len(processed) >= count:
            return processed
        time.sleep(1)
    raise AssertionError(f"{count} images not processed in {timeout} s")


def image_receipts():
    """Generated receipts whose payment a statement of ours can show: a destination bank with a
    format, and an origin bank the statement generator can name in the credit's description (it
    names a random bank otherwise, which the matcher rightly takes for another payer)."""
    formats_of_bank = {}
    for spec in sorted(load_specs().values(), key=lambda s: s.id):
        formats_of_bank.setdefault(spec.bank_code, spec.id)
    catalog = get_catalog()
    chosen = []
    for seed in IMAGE_SEEDS:
        generated = generate_receipt(seed, variant="clean")
        fields = generated.fields
        bank, origin = catalog.by_name(fields.get("banco_destino")), catalog.by_name(fields.get("banco_origen"))
        origin_named = origin is None or (origin.code in PAYER_BANKS and BANK_NAMES.get(origin.code) == fields["banco_origen"])
        if bank and bank.code in formats_of_bank and origin_named and all(fields.get(k) for k in ("monto", "fecha", "referencia")):
            chosen.append((generated, formats_of_bank[bank.code]))
    return chosen[:IMAGES]


def _image_part(base, key, chosen):
    paid, unpaid = chosen[:-MISSING], chosen[-MISSING:]
    statements = {}
    for format_id in sorted({f for _, f in paid}):
        payments = [{"id": f"IMG{g.seed}", **g.fields} for g, f in paid if f == format_id]
        statements[format_id] = statement_for_receipts(format_id, payments, seed=len(payments))
    early = sorted(statements)[::2]
    stored = {f: post_statement(base, key, statements[f])["statement"]["id"] for f in early}

    images = [(f"IMG{g.seed}", g.image_bytes) for g, _ in chosen]
    images.append(("IMG_SAME_BYTES", chosen[0][0].image_bytes))  # the same picture sent twice
    images.append(("IMG_AGAIN", generate_receipt(chosen[1][0].seed, variant="lowres").image_bytes))  # the payment again
    names = {}
    for start in range(0, len(images), 20):
        part = images[start:start + 20]
        files = [("files", (f"{rid}.png", data, "image/png")) for rid, data in part]
        answer = requests.post(f"{base}/api/upload", files=files, data={"nombre": "Cliente"}, headers=keyed(key),
                               timeout=120)
        assert answer.status_code == 200, answer.text
        names.update(zip((rid for rid, _ in part), (f["stored_name"] for f in answer.json()["files_processed"])))
    wait_processed(base, key, len(images))
    stored.update({f: post_statement(base, key, statements[f])["statement"]["id"] for f in sorted(statements)
                   if f not in stored})

    documents = documents_of(base, key)
    obtained = {rid: documents[name]["conciliacion"] for rid, name in names.items()}
    truth = {f"IMG{g.seed}": g.fields for g, _ in chosen}
    expected, statement_of = {}, {}
    for generated, format_id in paid:
        rid = f"IMG{generated.seed}"
        expected[rid] = dict(statements[format_id].expected[rid])
        statement_of[rid] = stored[format_id]
    spans = {f: (min(x.date for x in s.lines), max(x.date for x in s.lines)) for f, s in statements.items()}
    window = timedelta(days=1)
    for generated, format_id in unpaid:  # no_encontrado where their bank's statement covers the days
        day = date.fromisoformat(generated.fields["fecha"])
        span = spans.get(format_id)
        covered = span is not None and span[0] <= day and day + window <= span[1]
        expected[f"IMG{generated.seed}"] = {"estado": "no_encontrado" if covered else "pendiente", "linea": None}
    for rid in ("IMG_SAME_BYTES", "IMG_AGAIN"):
        expected[rid] = {"estado": "no_encontrado", "linea": None}
    table, wrong = confusion(expected, obtained, statement_of.get)
    read_right = [rid for rid in statement_of
                  if all(documents[names[rid]]["extracted_fields"].get(k) == truth[rid][k] for k in FIELDS)]
    return table, wrong, read_right, obtained, names


def _generated_part(base, database_url, tmp_path, tenant_keys):
    rt = Runtime.from_settings(load_settings({"DATABASE_URL": database_url, "STORAGE_ROOT": str(tmp_path / "side")}))
    total: Counter = Counter()
    wrong_all = []
    seconds = {}
    try:
        for index, (format_id, (key, tenant_id)) in enumerate(sorted(tenant_keys.items())):
            generated = generate_statement(format_id, seed=index, receipts=200)
            started = time.perf_counter()
            if index % 2:
                statement_id = post_statement(base, key, generated)["statement"]["id"]
            names = {r["id"]: f"{format_id}-{r['id']}.png" for r in generated.receipts}
            for receipt in generated.receipts:
                finish_receipt(rt, tenant_id, names[receipt["id"]], receipt)
            if not index % 2:
                statement_id = post_statement(base, key, generated)["statement"]["id"]
            seconds[format_id] = time.perf_counter() - started
            documents = documents_of(base, key)
            obtained = {rid: documents[name]["conciliacion"] for rid, name in names.items()}
            table, wrong = confusion(generated.expected, obtained, lambda _rid, s=statement_id: s)
            print(f"{format_id}: {dict(sorted(table.items()))}  ({seconds[format_id]:.1f} s)")
            total.update(table)
            wrong_all += wrong
            unmatched = requests.get(f"{base}/api/conciliacion/no_conciliados", headers=keyed(key),
                                     params={"limit": 1000}, timeout=60).json()["movements"]
            assert set(generated.extra_credit_lines) <= {m["linea"] for m in unmatched}, format_id
    finally:
        rt.db.dispose()
    return total, wrong_all


def test_receipts_and_statements_reconcile_through_the_real_server(tmp_path, database_url):
    db = Database(database_url)
    upgrade_to_head(db)
    image_key, _ = create_key(db, "imagenes")
    tenant_keys = {}
    for format_id in sorted(load_specs()):
        key, record = create_key(db, f"t-{format_id.replace('_', '-')}")
        tenant_keys[format_id] = (key, record.tenant_id)
    db.dispose()
    chosen = image_receipts()
    assert len(chosen) >= 30
    with running_service(tmp_path / "storage", database_url, API_KEYS=ADMIN_KEY, UPLOAD_RATE_LIMIT_PER_MINUTE="0",
                         start_timeout=180, print_log_tail=True) as service:
        table, wrong, read_right, obtained, names = _image_part(service.base, image_key, chosen)
        print(f"\nimages through HTTP + worker OCR ({len(names)} receipts, {len(read_right)} read right):")
        print(format_confusion(table))
        assert wrong == [], wrong
        assert len(read_right) >= len(chosen) // 2, "OCR read too few receipts right for the test to mean anything"
        for rid in read_right:
            assert obtained[rid]["estado"] == "conciliado", (rid, obtained[rid])
        for generated, _ in chosen[-MISSING:]:
            assert obtained[f"IMG{generated.seed}"]["estado"] != "conciliado"
        assert obtained["IMG_SAME_BYTES"]["estado"] != "conciliado"
        if obtained[f"IMG{chosen[0][0].seed}"]["estado"] == "conciliado":
            assert obtained["IMG_SAME_BYTES"]["reutilizacion"]["recibo"]  # names the receipt that has the credit

        total, wrong_all = _generated_part(service.base, database_url, tmp_path, tenant_keys)
        print(f"\n{len(tenant_keys)} formats x 200 generated receipts, through the worker's finish path:")
        print(format_confusion(total))
        assert wrong_all == [], wrong_all[:5]
        assert off_diagonal(total) == 0
