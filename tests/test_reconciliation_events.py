"""upload.reconciled: a receipt whose reconciliation state changes is announced in the transaction
that stores the change, once per change, never for a run that finds the same state; a correction's
own event carries the state after its re-reconciliation. SQLite and, with TEST_DATABASE_URL,
PostgreSQL. Receipts are recorded through the worker's finish path (no OCR here)."""
from __future__ import annotations

import io
from collections import defaultdict

import pytest
from sqlalchemy import select

import service.statements as statements_service
from database import Conciliacion, Result, WebhookEvent
from service.conciliation import reconcile_upload
from service.webhook_delivery import deliver_due
from tests.recon_helpers import finish_receipt
from tests.webhook_receiver import Receiver
from tools.statement_generator import generate_statement

ADMIN_KEY = "bootstrap-admin-key-for-recon-events-77"
H = {"X-API-Key": ADMIN_KEY}


def new_service(make_app):
    app = make_app(API_KEYS=[ADMIN_KEY], WEBHOOK_ALLOW_PRIVATE=True)
    return app, app.extensions["ocr_runtime"], app.test_client()


@pytest.fixture
def service(make_app):
    return new_service(make_app)


def configure(client, url="http://127.0.0.1:9/hooks/ocr"):
    answer = client.put("/api/webhooks/config", headers=H, json={"url": url})
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()["secret"]


def post_statement(client, generated):
    form = {"file": (io.BytesIO(generated.data), generated.filename)}
    answer = client.post("/api/statements", data=form, content_type="multipart/form-data", headers=H)
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()


def paid_receipts(client, format_id, seed, receipts=40):
    """A statement of that format posted; it and the receipts it pays (not yet recorded)."""
    generated = generate_statement(format_id, seed=seed, receipts=receipts)
    post_statement(client, generated)
    return generated, [r for r in generated.receipts if generated.expected[r["id"]]["estado"] == "conciliado"]


def record(rt, generated):
    return {r["id"]: finish_receipt(rt, 1, f"{generated.format_id}-{r['id']}.png", r) for r in generated.receipts}


def events(rt, event_type="upload.reconciled"):
    """The payloads of every event of that type in the outbox, by upload id, oldest first."""
    by_upload = defaultdict(list)
    with rt.db.session() as session:
        for payload in session.scalars(select(WebhookEvent.payload).where(WebhookEvent.type == event_type)
                                       .order_by(WebhookEvent.created_at, WebhookEvent.id)):
            by_upload[payload["data"]["upload_id"]].append(payload)
    return dict(by_upload)


def documents(rt):
    with rt.db.session() as session:
        return dict(session.execute(select(Result.upload_id, Result.document)).all())


def test_a_statement_announces_each_receipt_whose_state_it_changes_once(service):
    app, rt, client = service
    configure(client)
    generated = generate_statement("banesco_qif", seed=3, receipts=60)
    ids = record(rt, generated)
    assert events(rt) == {}  # nothing reconciled them yet: pendiente is no news

    post_statement(client, generated)
    told = events(rt)
    stored = documents(rt)
    expected_changed = {ids[r] for r, want in generated.expected.items() if want["estado"] != "pendiente"}
    assert set(told) == expected_changed and expected_changed
    assert {uid for uid, d in stored.items() if d["conciliacion"]["estado"] == "conciliado"} <= set(told)
    for uid, [payload] in told.items():
        data = payload["data"]
        assert payload["type"] == "upload.reconciled" and data["status"] == "processed"
        # The receipt's document as every read path now serves it, its conciliacion included.
        assert data["result"]["conciliacion"] == stored[uid]["conciliacion"]
        assert data["result"]["requiere_revision"] == stored[uid]["validacion"]["requiere_revision"]
        assert data["result"]["fields"] == stored[uid]["extracted_fields"]

    # The same export again, and every receipt reconciled again: the same states, no new event.
    post_statement(client, generated)
    for uid in ids.values():
        reconcile_upload(rt, 1, uid)
    assert events(rt) == told


def test_a_receipt_arriving_after_its_statement_is_announced_after_its_processed_event(service):
    app, rt, client = service
    configure(client)
    generated, [receipt, *_] = paid_receipts(client, "bnc_tsv", seed=5)
    uid = finish_receipt(rt, 1, "late.png", receipt)
    [processed] = events(rt, "upload.processed")[uid]
    [reconciled] = events(rt)[uid]
    assert processed["data"]["result"]["conciliacion"] is None  # recorded before its reconciliation ran
    movimiento = reconciled["data"]["result"]["conciliacion"]["movimiento"]
    assert reconciled["data"]["result"]["conciliacion"]["estado"] == "conciliado"
    assert movimiento["linea"] == generated.expected[receipt["id"]]["linea"] and movimiento["id"]
    assert reconciled["created"] >= processed["created"]


def test_no_event_when_the_statement_transaction_rolls_back(service, monkeypatch):
    """The event is in the statement's transaction: a statement that fails after reconciling
    leaves neither the new states nor their events."""
    app, rt, client = service
    configure(client)
    generated = generate_statement("banplus_tsv", seed=2, receipts=30)
    record(rt, generated)

    real = statements_service.reconcile_period
    written = []

    def reconcile_then_fail(*args, **kwargs):
        real(*args, **kwargs)
        written.extend(args[1].scalars(select(WebhookEvent.id).where(WebhookEvent.type == "upload.reconciled")))
        raise RuntimeError("the disk went away before the commit")

    monkeypatch.setattr(statements_service, "reconcile_period", reconcile_then_fail)
    form = {"file": (io.BytesIO(generated.data), generated.filename)}
    answer = client.post("/api/statements", data=form, content_type="multipart/form-data", headers=H)
    assert answer.status_code == 500
    assert written and events(rt) == {}
    with rt.db.session() as session:
        assert set(session.scalars(select(Conciliacion.estado))) == {"pendiente"}


def test_the_event_is_delivered_signed_like_every_other(service):
    app, rt, client = service
    receiver = Receiver().start()
    try:
        receiver.secret = configure(client, receiver.url)
        _, [receipt, *_] = paid_receipts(client, "banesco_qif", seed=11, receipts=20)
        uid = finish_receipt(rt, 1, "paid.png", receipt)
        for _ in range(200):
            deliver_due(rt, "test-deliverer")
            if len(receiver.accepted_ids()) == 2:
                break
        arrived = {r["event"]["type"]: r for r in receiver.received}
        assert set(arrived) == {"upload.processed", "upload.reconciled"}
        reconciled = arrived["upload.reconciled"]
        assert reconciled["valid"] and reconciled["header_id"] == reconciled["id"]
        assert reconciled["event"]["data"]["upload_id"] == uid
        assert reconciled["event"]["data"]["result"]["conciliacion"] == documents(rt)[uid]["conciliacion"]
        listed = client.get("/api/webhooks/deliveries", headers=H, query_string={"upload_id": uid}).get_json()
        assert [d["event_type"] for d in listed["deliveries"]] == ["upload.processed", "upload.reconciled"]
    finally:
        receiver.stop()


def test_a_correction_tells_the_state_after_its_own_reconciliation(service):
    """The corrected receipt gives its credit back to the copy that was flagged as its reuse: the
    correction's event carries the new state, and both receipts are announced as reconciled, in
    the correction's transaction (nothing is left for a later run to tell)."""
    app, rt, client = service
    configure(client)
    _, [receipt, *_] = paid_receipts(client, "bancaribe_csv", seed=4)
    first = finish_receipt(rt, 1, "first.png", receipt)
    second = finish_receipt(rt, 1, "second.png", receipt)
    before = events(rt)
    assert [p["data"]["result"]["conciliacion"]["estado"] for p in before[first]] == ["conciliado"]
    assert [p["data"]["result"]["conciliacion"]["estado"] for p in before[second]] == ["no_encontrado"]

    corrected = client.patch(f"/api/uploads/{first}/fields", headers=H, json={"monto": "1,23"})
    assert corrected.status_code == 200, corrected.get_json()
    stored = documents(rt)
    [told] = events(rt, "upload.corrected")[first]
    assert told["data"]["result"]["fields"]["monto"] == "1.23"
    assert told["data"]["result"]["conciliacion"] == stored[first]["conciliacion"]
    assert stored[first]["conciliacion"]["estado"] == "no_encontrado"
    after = events(rt)
    assert [p["data"]["result"]["conciliacion"]["estado"] for p in after[first]] == ["conciliado", "no_encontrado"]
    assert [p["data"]["result"]["conciliacion"]["estado"] for p in after[second]] == ["no_encontrado", "conciliado"]
    assert after[second][-1]["data"]["result"]["conciliacion"] == stored[second]["conciliacion"]
    # What the correction's answer shows is what its event said.
    assert corrected.get_json()["upload"]["conciliacion"] == told["data"]["result"]["conciliacion"]
    # Nothing is left for a later run to announce.
    reconcile_upload(rt, 1, first)
    reconcile_upload(rt, 1, second)
    assert events(rt) == after
