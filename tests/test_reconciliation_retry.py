"""A reconciliation that fails is not lost: the housekeeping sweep (service/housekeeping.py
retry_reconciliation, run by every worker) reconciles again the processed receipts whose
conciliacion is still null, once, announcing the state it finds, even with several workers
sweeping at once. Faults injected as in tests/test_faults.py; SQLite and, with TEST_DATABASE_URL,
PostgreSQL. Receipts are recorded through the worker's finish path (no OCR here)."""
from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

import service.conciliation as conciliation
import service.corrections as corrections
from database import Conciliacion, Result, Upload, WebhookEvent
from service.housekeeping import UNRECONCILED_MIN_AGE_SECONDS, retry_reconciliation
from tests.recon_helpers import finish_receipt
from tests.test_reconciliation_events import H, configure, new_service, paid_receipts, post_statement
from tools.statement_generator import generate_statement
from worker import Worker


@pytest.fixture
def service(make_app):
    """The service with a webhook URL configured (nothing listens: the outbox is what is read)."""
    started = new_service(make_app)
    configure(started[2])
    return started


def database_away(monkeypatch):
    """The reconciliation's first statement fails as a dropped PostgreSQL connection does, while
    `away["now"]` is set; everything else reaches the database."""
    real = conciliation.lock_tenant
    away = {"now": True}

    def lock_tenant(session, tenant_id):
        if away["now"]:
            raise OperationalError("SELECT pg_advisory_xact_lock(%(p)s)", {}, Exception("server closed the connection"))
        return real(session, tenant_id)

    monkeypatch.setattr(conciliation, "lock_tenant", lock_tenant)
    return away


def age(rt, seconds=UNRECONCILED_MIN_AGE_SECONDS + 5):
    """The receipts were recorded that long ago."""
    with rt.db.session() as session:
        for upload in session.scalars(select(Upload)):
            upload.processed_at -= timedelta(seconds=seconds)
        session.commit()


def states(rt):
    with rt.db.session() as session:
        return {uid: (doc["conciliacion"] or {}).get("estado") for uid, doc in
                session.execute(select(Result.upload_id, Result.document)).all()}


def reconciled_events(rt):
    with rt.db.session() as session:
        return sorted(session.scalars(select(WebhookEvent.upload_id).where(WebhookEvent.type == "upload.reconciled")))


def test_a_reconciliation_that_failed_after_finishing_is_retried_by_the_sweep(service, monkeypatch):
    app, rt, client = service
    generated, [receipt, *_] = paid_receipts(client, "banesco_qif", seed=3, receipts=30)
    away = database_away(monkeypatch)
    uid = finish_receipt(rt, 1, "paid.png", receipt)  # the image's result stands without its conciliacion
    assert states(rt)[uid] is None and reconciled_events(rt) == []

    assert retry_reconciliation(rt) == 0  # just finished: its own worker's run is not raced
    age(rt)
    with pytest.raises(OperationalError):  # still away: the sweep stops, the worker backs off
        retry_reconciliation(rt)
    assert states(rt)[uid] is None

    away["now"] = False
    assert retry_reconciliation(rt) == 1
    assert states(rt)[uid] == "conciliado" and reconciled_events(rt) == [uid]
    with rt.db.session() as session:
        row = session.scalar(select(Conciliacion).where(Conciliacion.upload_id == uid))
        document = session.scalar(select(Result.document).where(Result.upload_id == uid))
    assert row.estado == "conciliado" and row.movement_id == document["conciliacion"]["movimiento"]["id"]
    assert json.loads(rt.storage.path("results", "paid.png.json").read_text())["conciliacion"] == document["conciliacion"]
    # Done once: the next sweep finds nothing and tells nothing.
    assert retry_reconciliation(rt) == 0 and reconciled_events(rt) == [uid]


def test_a_receipt_that_is_still_pendiente_is_swept_once_and_not_announced(service, monkeypatch):
    app, rt, client = service
    away = database_away(monkeypatch)
    uid = finish_receipt(rt, 1, "nothing-covers-it.png", {"monto": "12.50", "fecha": "2031-01-01"})
    away["now"] = False
    age(rt)
    assert retry_reconciliation(rt) == 1 and retry_reconciliation(rt) == 0
    assert states(rt)[uid] == "pendiente" and reconciled_events(rt) == []


def test_several_workers_sweeping_at_once_reconcile_each_receipt_once(service, monkeypatch):
    app, rt, client = service
    generated = generate_statement("bnc_tsv", seed=8, receipts=40)
    post_statement(client, generated)
    away = database_away(monkeypatch)
    ids = {r["id"]: finish_receipt(rt, 1, f"r{r['id']}.png", r) for r in generated.receipts}
    away["now"] = False
    age(rt)
    start = threading.Barrier(3)
    errors, counts = [], []

    def sweep():
        try:
            start.wait()
            counts.append(retry_reconciliation(rt))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=sweep) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and sum(counts) >= len(ids)
    found = states(rt)
    assert {r: found[uid] for r, uid in ids.items()} == {r: e["estado"] for r, e in generated.expected.items()}
    # One event per receipt whose state is news, however many sweeps ran over it.
    assert reconciled_events(rt) == sorted(uid for r, uid in ids.items()
                                           if generated.expected[r]["estado"] != "pendiente")
    with rt.db.session() as session:
        paid = session.scalars(select(Conciliacion.movement_id).where(Conciliacion.estado == "conciliado")).all()
    assert len(paid) == len(set(paid))  # one credit, one receipt


def test_a_worker_round_runs_the_sweep(service, monkeypatch):
    app, rt, client = service
    _, [receipt, *_] = paid_receipts(client, "banesco_qif", seed=5, receipts=30)
    away = database_away(monkeypatch)
    uid = finish_receipt(rt, 1, "paid.png", receipt)
    away["now"] = False
    age(rt)
    Worker(rt, None, "sweeper").tick()  # nothing pending: the round reads no image
    assert states(rt)[uid] == "conciliado" and reconciled_events(rt) == [uid]


def test_a_correction_whose_reconciliation_fails_is_stored_and_swept(service, monkeypatch):
    """The correction stands without its reconciliation (its event says null, not the state of
    the payment before it) and the sweep announces the corrected payment's state."""
    app, rt, client = service
    _, [paid, *_] = paid_receipts(client, "banesco_qif", seed=9, receipts=30)
    uid = finish_receipt(rt, 1, "paid.png", paid)
    assert states(rt)[uid] == "conciliado"

    def broken(*args, **kwargs):
        raise ValueError("a bug in the matching")

    monkeypatch.setattr(corrections, "reconcile_in", broken)
    answer = client.patch(f"/api/uploads/{uid}/fields", headers=H, json={"monto": "1,23"})  # another payment
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["upload"]["result"]["extracted_fields"]["monto"] == "1.23"
    with rt.db.session() as session:
        [told] = session.scalars(select(WebhookEvent.payload).where(WebhookEvent.type == "upload.corrected")).all()
    assert told["data"]["result"]["conciliacion"] is None and states(rt)[uid] is None
    monkeypatch.undo()
    age(rt)
    assert retry_reconciliation(rt) == 1
    with rt.db.session() as session:
        document = session.scalar(select(Result.document).where(Result.upload_id == uid))
    assert document["conciliacion"]["estado"] == "no_encontrado"
    with rt.db.session() as session:  # its credit is free again
        assert session.scalar(select(Conciliacion.movement_id).where(Conciliacion.upload_id == uid)) is None
    assert reconciled_events(rt) == [uid, uid]  # conciliado when processed, then no_encontrado
