"""Issue 10 item 4: corrections of fields and the review state, through the app on SQLite and
PostgreSQL. Results are recorded by service/results.finish_upload from real extraction output of a
receipt's text (the OCR itself is exercised end to end in tests/test_follow_e2e.py)."""
import hashlib
import json
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from database import Correction, Result, Upload, utcnow
from extraction.extractor import extract_fields_from_text
from service.access import create_key
from service.results import finish_upload
from tests.test_tenants import ADMIN_KEY, image_bytes, keyed, upload

RECEIPT = ("Pago Móvil\nBanco: Banesco\nReferencia: {ref}\nMonto: Bs. {monto}\nFecha: 11/07/2025\n"
           "Teléfono: 0414-7650321\nCédula: V-12345678")


def finished(rt, name, tenant_id=1, ref="405622415499", monto="20,57"):
    """An upload recorded as processed with the extraction of a receipt's text, as the worker would."""
    with rt.db.session() as session:
        row = Upload(stored_name=name, original_name=name, sha256=hashlib.sha256(name.encode()).hexdigest(),
                     size_bytes=1, tenant_id=tenant_id, status="processing", claimed_by="w",
                     lease_expires_at=utcnow() + timedelta(minutes=5), attempts=1, upload_metadata={"nombre": "Ana"})
        session.add(row)
        session.commit()
    (rt.storage.dirs["inbox"] / name).write_bytes(image_bytes(len(name)))
    extraction = extract_fields_from_text(RECEIPT.format(ref=ref, monto=monto))
    document = {"processing_status": "success", "request_id": None, "filename": name, "metadata": {"nombre": "Ana"},
                **extraction}
    assert finish_upload(rt, "w", row, document)
    return row.id


@pytest.fixture
def keyed_app(make_app):
    app = make_app(API_KEYS=[ADMIN_KEY])
    rt = app.extensions["ocr_runtime"]
    staff, _ = create_key(rt.db, "default", name="maria")
    other, _ = create_key(rt.db, "other")
    return app, rt, staff, other


def patch(client, key, upload_id, body):
    return client.patch(f"/api/uploads/{upload_id}/fields", headers=keyed(key), json=body)


def test_a_correction_changes_what_every_read_path_returns(keyed_app):
    app, rt, staff, _ = keyed_app
    client = app.test_client()
    upload_id = finished(rt, "a.png")
    answer = patch(client, staff, upload_id, {"monto": "1.500,00", "referencia": "00012345678", "concepto": None})
    assert answer.status_code == 200, answer.get_json()
    view = answer.get_json()["upload"]
    assert view["result"]["extracted_fields"]["monto"] == "1500.00"
    assert view["result"]["extracted_fields"]["referencia"] == "00012345678"
    detail = view["result"]["campos_detalle"]["monto"]
    assert detail["valor"] == "1500.00" and detail["valor_extraido"] == "20.57"
    assert detail["corregido"]["por"] == "maria" and detail["corregido"]["anterior"] == "20.57"
    assert [(c["campo"], c["anterior"], c["nuevo"], c["por"]) for c in view["corrections"]] == [
        ("monto", "20.57", "1500.00", "maria"), ("referencia", "405622415499", "00012345678", "maria")]
    # concepto was already null: no correction recorded for it.

    def fields_of(document):
        return document["extracted_fields"]["monto"], document["extracted_fields"]["referencia"]

    expected = ("1500.00", "00012345678")
    got = client.get(f"/api/uploads/{upload_id}", headers=keyed(ADMIN_KEY)).get_json()["upload"]
    assert fields_of(got["result"]) == expected
    assert fields_of(client.get("/api/ocr/result_data/a.png", headers=keyed(staff)).get_json()["data"]) == expected
    assert fields_of(client.get("/api/extract_results", headers=keyed(staff)).get_json()["results"][0]) == expected
    exported = client.get("/api/extract_results/export", headers=keyed(staff)).get_data(as_text=True)
    assert fields_of(json.loads(exported.splitlines()[0])) == expected
    assert fields_of(json.loads((rt.storage.dirs["results"] / "a.png.json").read_text())) == expected
    with rt.db.session() as session:
        row = session.scalar(select(Result).where(Result.upload_id == upload_id))
        assert (str(row.monto), row.referencia) == expected  # SQL filters see the corrected value
    # Setting a value back to the extracted one is a correction too; the extracted value stays.
    back = patch(client, staff, upload_id, {"monto": "20,57"}).get_json()["upload"]
    assert back["result"]["campos_detalle"]["monto"]["valor_extraido"] == "20.57"
    assert len(back["corrections"]) == 3


def test_bad_values_are_refused_naming_the_field_and_nothing_is_stored(keyed_app):
    app, rt, staff, _ = keyed_app
    client = app.test_client()
    upload_id = finished(rt, "b.png")
    for body, bad in (({"monto": "1500"}, ["monto"]),  # no cents: refused as the extraction refuses it
                      ({"monto": "12,50", "telefono": "123", "banco_origen": "Banco de Nada"},
                       ["banco_origen", "telefono"]),
                      ({"fecha": "31/02/2025"}, ["fecha"]), ({"referencia": 12}, ["referencia"]),
                      ({"no_such_field": "1"}, ["no_such_field"]), ({"cedula": ["V-1"]}, ["cedula"]),
                      ({"concepto": "x" * 500}, ["concepto"]), ({"tipo_transaccion": "cheque"}, ["tipo_transaccion"]),
                      ({"monto": float("nan")}, ["monto"]), ({"monto": 1e400}, ["monto"]), ({"monto": True}, ["monto"]),
                      ({"monto": "9.999.999.999.999.999.999,99"}, ["monto"]), ({"telefono": {"a": 1}}, ["telefono"])):
        answer = patch(client, staff, upload_id, body)
        error = answer.get_json()["error"]
        assert answer.status_code == 400 and error["code"] == "invalid_field", (body, error)
        assert error["details"]["fields"] == bad and error["details"]["field"] == bad[0], body
    for raw in (b"[1, 2]", b"{}", b"not json", b'"monto"'):
        answer = client.patch(f"/api/uploads/{upload_id}/fields", headers={**keyed(staff), "Content-Type": "application/json"},
                              data=raw)
        assert answer.status_code == 400 and answer.get_json()["success"] is False, raw
    with rt.db.session() as session:
        assert session.scalars(select(Correction)).all() == []
    # Canonical forms, as the extraction writes them.
    answer = patch(client, staff, upload_id, {"cedula": "v 12.345.679", "banco_origen": "banesco", "monto": 99.5,
                                              "tipo_transaccion": "Transferencia", "hora_operacion": "2:30 pm"})
    fields = answer.get_json()["upload"]["result"]["extracted_fields"]
    assert (fields["cedula"], fields["banco_origen"], fields["monto"], fields["tipo_transaccion"],
            fields["hora_operacion"]) == ("V-12345679", "Banesco", "99.50", "transferencia", "14:30")


def test_pending_uploads_409_other_tenants_404_and_huge_ids_404(keyed_app):
    app, rt, staff, other = keyed_app
    client = app.test_client()
    upload_id = finished(rt, "c.png")
    pending = upload(client, staff, image_bytes(99)).get_json()["files_processed"][0]
    assert pending["status_url"] == f"/api/uploads/{pending['id']}"
    answer = patch(client, staff, pending["id"], {"monto": "1,00"})
    assert answer.status_code == 409 and answer.get_json()["error"]["code"] == "not_processed"
    missing = client.get("/api/uploads/999999", headers=keyed(other)).get_json()
    for method, path, body in (("GET", f"/api/uploads/{upload_id}", None), ("GET", f"/api/uploads/{upload_id}/image", None),
                               ("PATCH", f"/api/uploads/{upload_id}/fields", {"monto": "1,00"}),
                               ("POST", f"/api/uploads/{upload_id}/review", {"estado": "aprobado"})):
        answer = client.open(path, method=method, headers=keyed(other), json=body)
        assert answer.status_code == 404, (method, path)
        error = answer.get_json()["error"]
        assert error["code"] == "not_found" and error["message"].replace(str(upload_id), "999999") == \
            missing["error"]["message"]
    for path in ("/api/uploads/99999999999999999999999", "/api/uploads/99999999999999999999999/image"):
        assert client.get(path, headers=keyed(staff)).status_code == 404
    assert patch(client, other, upload_id, {"monto": "1,00"}).status_code == 404
    got = client.get(f"/api/uploads/{upload_id}", headers=keyed(staff)).get_json()["upload"]
    assert got["corrections"] == [] and got["review"]["estado"] == "pendiente"


def test_a_correction_re_runs_the_reuse_check_with_the_corrected_payment(keyed_app):
    app, rt, staff, _ = keyed_app
    client = app.test_client()
    first = finished(rt, "first.png", ref="405622415499")
    second = finished(rt, "second.png", ref="405622415400")
    view = client.get(f"/api/uploads/{second}", headers=keyed(staff)).get_json()["upload"]
    assert view["posible_reutilizacion"] is None and view["requiere_revision"] is False
    # Staff read the second receipt again: it is the same payment as the first.
    view = patch(client, staff, second, {"referencia": "405622415499"}).get_json()["upload"]
    flag = view["posible_reutilizacion"]
    assert (flag["reason"], flag["upload_id"]) == ("mismo_pago_sin_banco", first)  # no origin bank on either
    assert view["requiere_revision"] is True
    assert client.get("/api/extract_results?requiere_revision=true", headers=keyed(staff)).get_json()["count"] == 1
    # ...and back: the flag goes away with the payment that caused it.
    view = patch(client, staff, second, {"referencia": "405622415400"}).get_json()["upload"]
    assert view["posible_reutilizacion"] is None and view["requiere_revision"] is False


def test_concurrent_corrections_of_one_upload_lose_none(keyed_app):
    app, rt, staff, _ = keyed_app
    upload_id = finished(rt, "d.png")
    values = [("monto", "1,11"), ("referencia", "111111111"), ("telefono", "04121234567"), ("cedula", "V-7654321"),
              ("fecha", "01/01/2025"), ("concepto", "Pago de cuota"), ("hora_operacion", "10:15"), ("comprobante", "98765")]
    barrier = threading.Barrier(len(values))
    answers = []

    def send(field, value):
        client = app.test_client()
        barrier.wait(timeout=30)
        answers.append(patch(client, staff, upload_id, {field: value}).status_code)

    threads = [threading.Thread(target=send, args=item) for item in values]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert answers == [200] * len(values)
    view = app.test_client().get(f"/api/uploads/{upload_id}", headers=keyed(staff)).get_json()["upload"]
    fields = view["result"]["extracted_fields"]
    assert {f: fields[f] for f, _ in values} == {
        "monto": "1.11", "referencia": "111111111", "telefono": "04121234567", "cedula": "V-7654321",
        "fecha": "2025-01-01", "concepto": "Pago de cuota", "hora_operacion": "10:15", "comprobante": "98765"}
    assert sorted(c["campo"] for c in view["corrections"]) == sorted(f for f, _ in values)


def test_review_state_and_the_list_filters(keyed_app):
    app, rt, staff, other = keyed_app
    client = app.test_client()
    ids = [finished(rt, f"r{n}.png", ref=f"40562241{n:04d}") for n in range(4)]
    patch(client, staff, ids[3], {"referencia": None})  # a required field missing: needs review
    answer = client.post(f"/api/uploads/{ids[0]}/review", headers=keyed(staff), json={"estado": "aprobado", "nota": "ok"})
    assert answer.status_code == 200
    review = answer.get_json()["upload"]["review"]
    assert (review["estado"], review["nota"], review["por"]) == ("aprobado", "ok", "maria") and review["en"]
    client.post(f"/api/uploads/{ids[1]}/review", headers=keyed(ADMIN_KEY), json={"estado": "rechazado"})
    client.post(f"/api/uploads/{ids[2]}/review", headers=keyed(staff), json={"estado": "aprobado"})
    client.post(f"/api/uploads/{ids[2]}/review", headers=keyed(staff), json={"estado": "pendiente", "nota": "otra vez"})

    def listed(path, key, query):
        body = client.get(f"{path}?{query}", headers=keyed(staff)).get_json()
        return sorted(entry.get("processing_metadata", {}).get("upload_id") or entry.get("id") for entry in body[key])

    for path, key in (("/api/extract_results", "results"), ("/api/files/processed", "files")):
        assert listed(path, key, "revision=aprobado") == [ids[0]]
        assert listed(path, key, "revision=rechazado") == [ids[1]]
        assert listed(path, key, "revision=pendiente") == [ids[2], ids[3]]
        assert listed(path, key, "requiere_revision=true") == [ids[3]]
        assert listed(path, key, "requiere_revision=false&revision=pendiente") == [ids[2]]
        for bad in ("revision=ok", "requiere_revision=yes", "revision="):
            answer = client.get(f"{path}?{bad}", headers=keyed(staff))
            assert answer.status_code == 400 and answer.get_json()["error"]["code"] == "invalid_parameter", bad
    for body in ({"estado": "listo"}, {}, {"estado": "aprobado", "nota": 5}, {"estado": "aprobado", "nota": "x" * 3000}):
        answer = client.post(f"/api/uploads/{ids[0]}/review", headers=keyed(staff), json=body)
        assert answer.status_code == 400 and answer.get_json()["error"]["code"] == "invalid_parameter", body
    assert client.get("/api/extract_results?revision=aprobado", headers=keyed(other)).get_json()["count"] == 0


def test_metrics_report_corrections_per_field(keyed_app):
    from prometheus_client.parser import text_string_to_metric_families

    app, rt, staff, _ = keyed_app
    client = app.test_client()
    ids = [finished(rt, f"m{n}.png", ref=f"40562241{n:04d}") for n in range(4)]
    patch(client, staff, ids[0], {"monto": "1,00"})
    patch(client, staff, ids[0], {"monto": "2,00", "cedula": "V-1234567"})
    patch(client, staff, ids[1], {"monto": "3,00"})
    figures = client.get("/api/metrics", headers=keyed(ADMIN_KEY)).get_json()["corrections"]
    assert figures["por_campo"]["monto"] == {"correcciones": 3, "resultados_corregidos": 2, "precision": 0.5}
    assert figures["por_campo"]["cedula"]["precision"] == 0.75 and figures["por_campo"]["fecha"]["correcciones"] == 0
    assert (figures["total"], figures["resultados"]) == (4, 4)
    text = client.get("/api/metrics?format=prometheus", headers=keyed(ADMIN_KEY)).get_data(as_text=True)
    samples = {(s.name, s.labels.get("campo")): s.value for family in text_string_to_metric_families(text)
               for s in family.samples}
    assert samples[("ocr_field_corrections", "monto")] == 3 and samples[("ocr_field_corrected_results", "monto")] == 2
    assert samples[("ocr_field_corrections", "fecha")] == 0
    assert client.get("/api/metrics", headers=keyed(staff)).status_code == 403  # client keys: not theirs to see


def test_correcting_the_earlier_receipt_clears_the_flags_its_misreading_caused(keyed_app):
    app, rt, staff, _ = keyed_app
    client = app.test_client()
    first = finished(rt, "misread.png", ref="405622415499")  # the OCR misread this one's reference...
    second = finished(rt, "later.png", ref="405622415499")   # ...as the reference of a later, other payment
    third = finished(rt, "again.png", ref="405622415499")
    for later in (second, third):
        flag = client.get(f"/api/uploads/{later}", headers=keyed(staff)).get_json()["upload"]["posible_reutilizacion"]
        assert flag["upload_id"] == first
    patch(client, staff, first, {"referencia": "405622415411"})
    views = [client.get(f"/api/uploads/{i}", headers=keyed(staff)).get_json()["upload"] for i in (first, second, third)]
    assert views[0]["posible_reutilizacion"] is None
    # The second is no reuse any more; the third still is, of the second (the earliest left).
    assert views[1]["posible_reutilizacion"] is None and views[1]["requiere_revision"] is False
    assert views[2]["posible_reutilizacion"]["upload_id"] == second and views[2]["requiere_revision"] is True
    stored = json.loads((rt.storage.dirs["results"] / "later.png.json").read_text())
    assert stored["posible_reutilizacion"] is None
