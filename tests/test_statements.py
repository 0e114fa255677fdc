"""Statements and reconciliation through the API (issue 13): uploads, errors, overlap, every
receipt's state on its read paths, filters, unmatched credits, the day summary, tenants, and one
credit for one receipt under concurrency. SQLite and, with TEST_DATABASE_URL, PostgreSQL.

Receipts are recorded through the worker's own finish path (no OCR here: tests/test_conciliation_e2e.py
drives real images through the real server)."""
from __future__ import annotations

import io
import json
import shutil
import threading

import pytest
from sqlalchemy import func, select

from database import BankStatement, Conciliacion, Result, StatementMovement
from reconciliation.spec import DEFAULT_DIR
from service.access import create_key
from service.conciliation import reconcile_upload
from tests.recon_helpers import confusion, finish_receipt, format_confusion, off_diagonal
from tools.statement_generator import generate_statement

ADMIN_KEY = "bootstrap-admin-key-for-statements-77"
H = {"X-API-Key": ADMIN_KEY}


def post_statement(client, data, filename="extracto.txt", fmt=None, headers=H):
    form = {"file": (io.BytesIO(data), filename)}
    if fmt:
        form["format"] = fmt
    return client.post("/api/statements", data=form, content_type="multipart/form-data", headers=headers)


def all_pages(client, path, key, headers=H, **params):
    rows, cursor = [], None
    while True:
        body = client.get(path, headers=headers, query_string={**params, **({"cursor": cursor} if cursor else {})})
        assert body.status_code == 200, body.get_json()
        body = body.get_json()
        rows += body[key]
        cursor = body["next_cursor"]
        if cursor is None:
            return rows


def states_by_receipt(client, names, headers=H):
    documents = {d["filename"]: d for d in all_pages(client, "/api/extract_results", "results", headers, limit=1000)}
    return {rid: documents[name]["conciliacion"] for rid, name in names.items()}, documents


@pytest.fixture
def service(make_app):
    app = make_app(API_KEYS=[ADMIN_KEY])
    return app, app.extensions["ocr_runtime"], app.test_client()


def record(rt, generated, tenant_id=1, prefix=""):
    names = {}
    for receipt in generated.receipts:
        name = f"{prefix}{generated.format_id}-{receipt['id']}.png"
        finish_receipt(rt, tenant_id, name, receipt)
        names[receipt["id"]] = name
    return names


@pytest.mark.parametrize("order", ["receipts_first", "statement_first"])
@pytest.mark.parametrize("format_id", ["banesco_qif", "provincial_online"])
def test_every_receipt_gets_its_expected_state_and_never_another_credit(service, format_id, order):
    app, rt, client = service
    generated = generate_statement(format_id, seed=3, receipts=80)
    if order == "receipts_first":
        names = record(rt, generated)
        answer = post_statement(client, generated.data, generated.filename)
    else:
        answer = post_statement(client, generated.data, generated.filename)
        names = record(rt, generated)
    assert answer.status_code == 201, answer.get_json()
    body = answer.get_json()
    statement = body["statement"]
    assert statement["formato"] == format_id and statement["movimientos"] == len(generated.lines)
    assert statement["movimientos_nuevos"] == statement["movimientos"] and statement["movimientos_conocidos"] == 0
    assert (statement["desde"], statement["hasta"]) == ("2025-02-24", "2025-03-12")
    states, documents = states_by_receipt(client, names)
    table, wrong = confusion(generated.expected, states)
    print(f"\n{format_id} ({order}):\n{format_confusion(table)}")
    assert wrong == [] and off_diagonal(table) == 0

    # The state on every read path, and `ambiguo` asks for review.
    for name in names.values():
        document = documents[name]
        single = client.get(f"/api/ocr/result_data/{name}", headers=H).get_json()["data"]
        assert single["conciliacion"] == document["conciliacion"]
        if document["conciliacion"]["estado"] == "ambiguo":
            assert document["validacion"]["requiere_revision"] is True
            assert len(document["conciliacion"]["candidatos"]) >= 2 or \
                document["conciliacion"]["candidatos"][0]["metodo"] == "solo_monto_fecha"
        if document["conciliacion"]["estado"] == "conciliado":
            assert document["validacion"]["requiere_revision"] is False
        stored = json.loads((rt.storage.dirs["results"] / f"{name}.json").read_text())
        assert stored["conciliacion"] == document["conciliacion"]  # the result file follows the row
    for estado in ("conciliado", "ambiguo", "no_encontrado", "pendiente"):
        want = sorted(names[r] for r, e in generated.expected.items() if e["estado"] == estado)
        listed = all_pages(client, "/api/extract_results", "results", conciliacion=estado, limit=7)
        assert sorted(d["filename"] for d in listed) == want, estado
        exported = client.get("/api/extract_results/export", headers=H, query_string={"conciliacion": estado})
        assert sorted(json.loads(line)["filename"] for line in exported.get_data(as_text=True).splitlines()) == want
        files = all_pages(client, "/api/files/processed", "files", conciliacion=estado)
        assert sorted(f["stored_name"] for f in files) == want

    # Each credit lists the receipt it pays; the rest is money with no receipt.
    movements = all_pages(client, f"/api/statements/{statement['id']}/movements", "movements", limit=50)
    assert len(movements) == len(generated.lines)
    paid = {m["linea"]: m["recibo"]["stored_name"] for m in movements if m["recibo"]}
    assert paid == {e["linea"]: names[r] for r, e in generated.expected.items() if e["estado"] == "conciliado"}
    unmatched = all_pages(client, "/api/conciliacion/no_conciliados", "movements", limit=9)
    assert sorted(m["linea"] for m in unmatched) == sorted(
        m["linea"] for m in movements if m["tipo"] == "credito" and not m["comision"] and not m["recibo"])
    assert set(generated.extra_credit_lines) <= {m["linea"] for m in unmatched}

    summary = client.get("/api/conciliacion/resumen", headers=H,
                         query_string={"desde": "2025-02-20", "hasta": "2025-03-31"}).get_json()["dias"]
    assert sum(d["creditos_conciliados"] for d in summary) == len(paid)
    assert sum(d["creditos_sin_recibo"] for d in summary) == len(unmatched)
    assert sum(d["recibos"] for d in summary) == len(names)
    for estado in ("conciliado", "ambiguo", "no_encontrado", "pendiente"):
        assert sum(d[f"recibos_{estado}"] for d in summary) == \
            sum(1 for e in generated.expected.values() if e["estado"] == estado)


def test_an_overlapping_reupload_adds_nothing_and_changes_nothing(service):
    app, rt, client = service
    generated = generate_statement("bnc_tsv", seed=5, receipts=60)
    names = record(rt, generated)
    first = post_statement(client, generated.data).get_json()
    before, _ = states_by_receipt(client, names)
    again = post_statement(client, generated.data).get_json()
    assert again["statement"]["movimientos_nuevos"] == 0
    assert again["statement"]["movimientos_conocidos"] == first["statement"]["movimientos"]
    after, _ = states_by_receipt(client, names)
    assert after == before
    with rt.db.session() as session:
        assert session.scalar(select(func.count()).select_from(StatementMovement)) == len(generated.lines)
    # Reconciling again is idempotent: nothing is rewritten.
    with rt.db.session() as session:
        stamps = dict(session.execute(select(Conciliacion.upload_id, Conciliacion.reconciled_at)).all())
    for upload_id in list(stamps)[:10]:
        reconcile_upload(rt, 1, upload_id)
    with rt.db.session() as session:
        later = dict(session.execute(select(Conciliacion.upload_id, Conciliacion.reconciled_at)).all())
    assert {k: later[k] for k in list(stamps)[10:]} == {k: stamps[k] for k in list(stamps)[10:]}
    assert states_by_receipt(client, names)[0] == before
    listed = client.get("/api/statements", headers=H, query_string={"limit": 1}).get_json()
    assert listed["count"] == 1 and listed["next_cursor"]
    rest = client.get("/api/statements", headers=H, query_string={"cursor": listed["next_cursor"]}).get_json()
    assert [s["id"] for s in listed["statements"] + rest["statements"]] == [first["statement"]["id"],
                                                                            again["statement"]["id"]]


def _nothing_stored(rt):
    with rt.db.session() as session:
        return (session.scalar(select(func.count()).select_from(BankStatement)) == 0
                and session.scalar(select(func.count()).select_from(StatementMovement)) == 0)


def test_bad_files_and_rows_are_refused_naming_the_line_and_nothing_is_stored(service):
    app, rt, client = service
    generated = generate_statement("bnc_tsv", seed=1, receipts=30)
    credit = next(line for line in generated.lines if line.amount > 0)
    mangled = generated.data.replace(f"\t{credit.reference}\t".encode(), b"\t3.46E+10\t", 1)
    answer = post_statement(client, mangled)
    assert answer.status_code == 400
    error = answer.get_json()["error"]
    assert error["code"] == "statement_unreadable" and error["details"]["linea"] == credit.line
    assert f"línea {credit.line}" in error["message"]
    assert _nothing_stored(rt)

    for data, code in ((b"", "statement_unreadable"), (b"\x00\x01 not a statement", "statement_format_unknown"),
                       (b"Fecha;Nada\n1;2\n", "statement_format_unknown")):
        answer = post_statement(client, data)
        assert answer.status_code == 400 and answer.get_json()["error"]["code"] == code, data
    answer = post_statement(client, generated.data, fmt="banesco_qif")  # the wrong format named
    assert answer.status_code == 400 and answer.get_json()["error"]["details"]["formato"] == "banesco_qif"
    answer = post_statement(client, generated.data, fmt="no_such_bank")
    assert answer.status_code == 400 and answer.get_json()["error"]["details"]["field"] == "format"
    answer = client.post("/api/statements", data={}, content_type="multipart/form-data", headers=H)
    assert answer.status_code == 400 and answer.get_json()["error"]["code"] == "no_file"
    assert client.post("/api/statements", json={"file": "x"}, headers=H).status_code == 400
    assert _nothing_stored(rt)


def test_a_file_that_fits_two_formats_gets_400_listing_both(make_app, tmp_path):
    formats = tmp_path / "formats"
    formats.mkdir()
    for path in DEFAULT_DIR.glob("*.json"):
        shutil.copy(path, formats / path.name)
    twin = json.loads((DEFAULT_DIR / "bnc_tsv.json").read_text(encoding="utf-8"))
    (formats / "bnc_copy.json").write_text(json.dumps({**twin, "id": "bnc_tsv_copy"}), encoding="utf-8")
    app = make_app(API_KEYS=[ADMIN_KEY], STATEMENT_FORMATS_DIR=str(formats))
    client = app.test_client()
    data = generate_statement("bnc_tsv", seed=0, receipts=10).data
    answer = post_statement(client, data)
    assert answer.status_code == 400
    error = answer.get_json()["error"]
    assert error["code"] == "statement_format_ambiguous" and error["details"]["candidatos"] == ["bnc_tsv", "bnc_tsv_copy"]
    assert post_statement(client, data, fmt="bnc_tsv_copy").status_code == 201


def test_size_limit_and_bad_parameters(make_app):
    app = make_app(API_KEYS=[ADMIN_KEY], STATEMENT_MAX_FILE_MB=1)
    client = app.test_client()
    answer = post_statement(client, b"x" * (1024 * 1024 + 1))
    assert answer.status_code == 413 and answer.get_json()["error"]["code"] == "statement_too_large"
    for path, params in (("/api/conciliacion/resumen", {"desde": "ayer"}),
                         ("/api/conciliacion/resumen", {"desde": "2025-03-02", "hasta": "2025-03-01"}),
                         ("/api/conciliacion/resumen", {"desde": "2020-01-01", "hasta": "2025-01-01"}),
                         ("/api/conciliacion/resumen", {"desde": "9999-12-31"}),
                         ("/api/conciliacion/resumen", {"hasta": "0001-01-05"}),
                         ("/api/conciliacion/no_conciliados", {"hasta": "2025-02-30"}),
                         ("/api/conciliacion/no_conciliados", {"cursor": "nonsense"}),
                         ("/api/statements", {"limit": "0"}),
                         ("/api/extract_results", {"conciliacion": "pagado"}),
                         ("/api/extract_results/export", {"conciliacion": "x"}),
                         ("/api/files/processed", {"conciliacion": "CONCILIADO"})):
        answer = client.get(path, headers=H, query_string=params)
        assert answer.status_code == 400, (path, params)
        assert answer.get_json()["success"] is False and answer.get_json()["error"]["code"] == "invalid_parameter"
    for statement_id in ("999", "99999999999999999999", "0"):
        answer = client.get(f"/api/statements/{statement_id}/movements", headers=H)
        assert answer.status_code == 404 and answer.get_json()["error"]["code"] == "not_found"
    for hostile in ("../../etc/passwd", "auto\x00", "a" * 5000, "bnc_tsv' OR 1=1 --"):
        answer = client.post("/api/statements", headers=H, content_type="multipart/form-data",
                             data={"format": hostile, "file": (io.BytesIO(b"Fecha\tReferencia\n"), "x.tsv")})
        assert answer.status_code == 400 and answer.get_json()["error"]["details"]["field"] == "format"
    for garbage in (bytes(range(256)) * 40, b"PK\x03\x04" + b"\x00" * 500, b"<html><table><tr><td>1</td></tr>" * 200,
                    "Fecha;Referencia;Descripción;Monto\n01/02/2025;123;ñ;12,3x\n".encode("utf-16")):
        answer = client.post("/api/statements", headers=H, content_type="multipart/form-data",
                             data={"file": (io.BytesIO(garbage), "x.xls")})
        assert 400 <= answer.status_code < 500 and answer.get_json()["success"] is False


def test_another_tenant_sees_none_of_it(service):
    app, rt, client = service
    other_key, _ = create_key(rt.db, "other")
    other = {"X-API-Key": other_key}
    generated = generate_statement("banplus_tsv", seed=2, receipts=30)
    names = record(rt, generated)
    statement = post_statement(client, generated.data).get_json()["statement"]
    missing = client.get("/api/statements/99999/movements", headers=other)
    theirs = client.get(f"/api/statements/{statement['id']}/movements", headers=other)
    assert theirs.status_code == 404
    assert {k: v for k, v in theirs.get_json()["error"].items() if k != "request_id"} == \
        {k: v for k, v in missing.get_json()["error"].items() if k != "request_id"}
    assert client.get("/api/statements", headers=other).get_json()["statements"] == []
    assert client.get("/api/conciliacion/no_conciliados", headers=other).get_json()["movements"] == []
    summary = client.get("/api/conciliacion/resumen", headers=other,
                         query_string={"desde": "2025-02-01", "hasta": "2025-03-31"}).get_json()
    assert summary["dias"] == []
    # The other tenant's receipts of the same payments are never matched against this statement.
    _key, record_other = create_key(rt.db, "third")
    receipt = next(r for r in generated.receipts if generated.expected[r["id"]]["estado"] == "conciliado")
    finish_receipt(rt, record_other.tenant_id, "theirs.png", receipt)
    with rt.db.session() as session:
        document = session.scalar(select(Result.document).where(Result.filename == "theirs.png"))
    assert document["conciliacion"]["estado"] == "pendiente"  # no statement of theirs covers it
    assert states_by_receipt(client, names)[0][receipt["id"]]["estado"] == "conciliado"


def test_one_credit_pays_one_receipt_even_when_its_copies_finish_together(service):
    app, rt, client = service
    generated = generate_statement("banesco_qif", seed=7, receipts=40)
    post_statement(client, generated.data)
    receipt = next(r for r in generated.receipts if generated.expected[r["id"]]["estado"] == "conciliado"
                   and r["referencia"])
    errors = []
    start = threading.Barrier(4)

    def finish(index):
        try:
            start.wait()
            finish_receipt(rt, 1, f"copy-{index}.png", receipt)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=finish, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with rt.db.session() as session:
        rows = session.execute(select(Result.upload_id, Result.document).where(Result.filename.like("copy-%"))
                               .order_by(Result.upload_id)).all()
    states = [document["conciliacion"]["estado"] for _, document in rows]
    assert states.count("conciliado") == 1, states
    winner = rows[states.index("conciliado")]
    assert winner[0] == rows[0][0]  # the first presentation keeps it, whichever finished first
    for _, document in rows[1:]:
        assert document["conciliacion"]["estado"] == "no_encontrado"
        assert document["conciliacion"]["reutilizacion"]["recibo"] == str(winner[0])
        assert document["validacion"]["requiere_revision"] is True


def test_a_corrected_receipt_gives_its_credit_back(service):
    """A correction through PATCH /api/uploads/<id>/fields reconciles the receipt again: the copy
    that was flagged as reuse now takes the credit the corrected one no longer claims."""
    app, rt, client = service
    generated = generate_statement("bancaribe_csv", seed=4, receipts=40)
    post_statement(client, generated.data)
    receipt = next(r for r in generated.receipts if generated.expected[r["id"]]["estado"] == "conciliado")
    first = finish_receipt(rt, 1, "first.png", receipt)
    second = finish_receipt(rt, 1, "second.png", receipt)
    with rt.db.session() as session:
        docs = dict(session.execute(select(Result.upload_id, Result.document)).all())
    assert (docs[first]["conciliacion"]["estado"], docs[second]["conciliacion"]["estado"]) == ("conciliado", "no_encontrado")
    # Staff correct the first one's amount through the API: it was another payment.
    corrected = client.patch(f"/api/uploads/{first}/fields", headers=H, json={"monto": "1,23"})
    assert corrected.status_code == 200, corrected.get_json()
    view = client.get(f"/api/uploads/{first}", headers=H).get_json()["upload"]
    assert view["result"]["extracted_fields"]["monto"] == "1.23" and view["conciliacion"]["estado"] == "no_encontrado"
    assert reconcile_upload(rt, 1, first) == "no_encontrado"  # idempotent
    with rt.db.session() as session:
        docs = dict(session.execute(select(Result.upload_id, Result.document)).all())
    assert docs[second]["conciliacion"]["estado"] == "conciliado"
    assert docs[second]["conciliacion"]["movimiento"]["linea"] == generated.expected[receipt["id"]]["linea"]
    # The correction also re-ran the reuse check: the two are no longer the same payment.
    assert docs[second]["posible_reutilizacion"] is None
