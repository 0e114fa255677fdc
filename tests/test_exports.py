"""Issue 10 item 5: `GET /api/extract_results?format=csv|ndjson`, streamed, with the filters and
cursor of the JSON list; the CSV opens with Python's csv module with the accents intact, and
cells a spreadsheet would run as formulas are defused."""
import csv
import io
import json

from service.export import COLUMNS
from tests.test_corrections import finished, patch
from tests.test_tenants import ADMIN_KEY, keyed


def read_csv(answer):
    raw = answer.get_data()
    assert raw.startswith("\ufeff".encode("utf-8"))  # the BOM Excel needs to read UTF-8
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))


def test_csv_and_ndjson_exports(make_app):
    app = make_app(API_KEYS=[ADMIN_KEY])
    rt = app.extensions["ocr_runtime"]
    client = app.test_client()
    ids = [finished(rt, f"e{n}.png", ref=f"40562241{n:04d}") for n in range(5)]
    with rt.db.session() as session:  # hostile and accented metadata, as clients send it
        from database import Result
        row = session.get(Result, 1)
        row.document = {**row.document, "metadata": {"nombre": "-José Ñúñez 1+1", "idWhatsapp": "+584141234567@lid",
                                                     "numerosorteo": "A"}}
        session.commit()
    patch(client, ADMIN_KEY, ids[0], {"concepto": '=HYPERLINK("http://x.example","Pago")', "monto": "1.234,56"})
    client.post(f"/api/uploads/{ids[1]}/review", headers=keyed(ADMIN_KEY), json={"estado": "rechazado", "nota": "ilegible; otra vez"})

    answer = client.get("/api/extract_results?format=csv", headers=keyed(ADMIN_KEY))
    assert answer.status_code == 200 and answer.is_streamed and answer.mimetype == "text/csv"
    rows = read_csv(answer)
    assert list(rows[0]) == list(COLUMNS) and len(rows) == 5
    first = rows[0]
    assert first["nombre"] == "'-José Ñúñez 1+1" and first["idWhatsapp"] == "'+584141234567@lid"
    assert first["concepto"] == "'=HYPERLINK(\"http://x.example\",\"Pago\")"
    assert first["monto"] == "1234.56" and first["campos_corregidos"] == "monto; concepto"
    assert (first["upload_id"], first["filename"], first["referencia"]) == (str(ids[0]), "e0.png", "405622410000")
    assert first["revision"] == "pendiente" and first["valido"] == "true" and first["requiere_revision"] == "false"
    assert (rows[1]["revision"], rows[1]["revision_nota"], rows[1]["revision_por"]) == ("rechazado", "ilegible; otra vez", "admin")
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row.values())

    # The filters and cursor of the JSON list.
    assert [r["upload_id"] for r in read_csv(client.get("/api/extract_results?format=csv&revision=rechazado",
                                                        headers=keyed(ADMIN_KEY)))] == [str(ids[1])]
    page = client.get("/api/extract_results?format=csv&limit=2", headers=keyed(ADMIN_KEY))
    seen = [r["upload_id"] for r in read_csv(page)]
    while page.headers["X-Next-Cursor"]:
        page = client.get(f"/api/extract_results?format=csv&limit=2&cursor={page.headers['X-Next-Cursor']}",
                          headers=keyed(ADMIN_KEY))
        seen += [r["upload_id"] for r in read_csv(page)]
    assert seen == [str(i) for i in ids]
    assert read_csv(client.get("/api/extract_results?format=csv&request_id=BATCH_20990101_000000_abc",
                               headers=keyed(ADMIN_KEY))) == []

    ndjson = client.get("/api/extract_results?format=ndjson&limit=3", headers=keyed(ADMIN_KEY))
    assert ndjson.mimetype == "application/x-ndjson" and ndjson.headers["X-Next-Cursor"]
    documents = [json.loads(line) for line in ndjson.get_data(as_text=True).splitlines()]
    assert [d["filename"] for d in documents] == ["e0.png", "e1.png", "e2.png"]
    assert documents[0]["extracted_fields"]["monto"] == "1234.56"
    rest = client.get(f"/api/extract_results?format=ndjson&cursor={ndjson.headers['X-Next-Cursor']}", headers=keyed(ADMIN_KEY))
    assert [json.loads(line)["filename"] for line in rest.get_data(as_text=True).splitlines()] == ["e3.png", "e4.png"]
    for bad in ("format=xml", "format=csv&limit=0", "format=csv&cursor=nope", "format=ndjson&revision=x"):
        answer = client.get(f"/api/extract_results?{bad}", headers=keyed(ADMIN_KEY))
        assert answer.status_code == 400 and answer.get_json()["error"]["code"] == "invalid_parameter", bad
