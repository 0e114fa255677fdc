"""Issue 23 item 5: the review export the office opens. The XLSX (openpyxl reads it back) has
Spanish titles, amounts as numbers, dates as dates, times in the desk's time zone, one row per
receipt with its reconciliation state, the credit it matched, why it needs review and who approved
it when; the CSV gains the same columns; filters and cursors as the queue; a stored name starting
with '-' is no formula, real formulas are still defused; another tenant's receipts never appear."""
import csv
import io
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from database import Result, utcnow
from service.access import create_key
from service.export import safe_cell
from service.export_xlsx import TITLES, write_workbook
from service.staff import create_staff
from tests.recon_helpers import finish_receipt
from tests.test_review_desk import _tenant_of, finished
from tests.test_staff_sessions import PASSWORD, person
from tests.test_tenants import ADMIN_KEY, keyed
from tools.statement_generator import statement_for_receipts

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PAID = {"monto": "21070.56", "fecha": "2025-06-20", "referencia": "405622415499", "telefono": "04141234567",
        "cedula": "V-12345678", "banco_origen": "Banesco", "banco_destino": "BNC"}


def sheet_rows(content: bytes):
    book = load_workbook(io.BytesIO(content), read_only=True)
    rows = [list(row) for row in book["Comprobantes"].iter_rows(values_only=True)]
    book.close()
    # A read-only sheet leaves trailing empty cells out of a row.
    return rows[0], [dict(zip(rows[0], row + [None] * (len(rows[0]) - len(row)))) for row in rows[1:]]


@pytest.fixture
def office(make_app):
    app = make_app(API_KEYS=[ADMIN_KEY], LOGIN_RATE_LIMIT_PER_MINUTE=0)
    rt = app.extensions["ocr_runtime"]
    key, _ = create_key(rt.db, "tienda", name="bot")
    other_key, _ = create_key(rt.db, "otra", name="bot de otra")
    tienda = _tenant_of(rt, "tienda")
    create_staff(rt.db, tienda, "ana", PASSWORD, "admin", None, "Ana Pérez")
    return app, rt, key, other_key, tienda


def test_the_xlsx_has_numbers_dates_the_credit_the_reasons_and_who_approved(office):
    app, rt, key, other_key, tienda = office
    paid = finish_receipt(rt, tienda, "pagado.png", PAID)
    flagged = finished(rt, "-maria.png", tenant_id=tienda, ref="99887766", metadata={"nombre": "-María"})
    statement = statement_for_receipts("bnc_tsv", [{"id": "pagado", **PAID}])
    client = app.test_client()
    posted = client.post("/api/statements", headers=keyed(key), content_type="multipart/form-data",
                         data={"file": (io.BytesIO(statement.data), statement.filename)})
    assert posted.status_code == 201, posted.get_data(as_text=True)
    ana, token = person(app, "ana")
    assert ana.post(f"/api/uploads/{paid}/review", json={"estado": "aprobado"},
                    headers={"X-CSRF-Token": token}).status_code == 200
    with rt.db.session() as session:  # make the second one need review, as a low-confidence read would
        row = session.query(Result).filter_by(upload_id=flagged).one()
        document = dict(row.document)
        document["validacion"] = {"valido": False, "campos_faltantes": ["fecha"], "requiere_revision": True,
                                  "advertencias": ["fecha: campo requerido no encontrado",
                                                   "monto: confianza 0.72 por debajo del mínimo 0.85"]}
        row.document = document
        session.commit()
    finished(rt, "ajeno.png", tenant_id=_tenant_of(rt, "otra"), ref="11112222")

    answer = ana.get("/api/review_queue?estado=todos&format=xlsx")
    assert answer.status_code == 200 and answer.headers["Content-Type"] == XLSX
    assert 'filename="comprobantes-todos.xlsx"' in answer.headers["Content-Disposition"]
    titles, rows = sheet_rows(answer.data)
    assert tuple(titles) == TITLES and "Conciliación" in titles and "Motivos de revisión" in titles
    assert [row["Comprobante"] for row in rows] == [flagged, paid]  # newest first, the tenant's only
    approved = rows[1]
    assert approved["Monto"] == pytest.approx(21070.56) and isinstance(approved["Monto"], float)
    assert approved["Fecha"] == datetime(2025, 6, 20)  # a date cell (openpyxl reads dates as datetimes)
    assert approved["Conciliación"] == "Conciliado"
    assert approved["Crédito: monto"] == pytest.approx(21070.56) and approved["Crédito: referencia"]
    assert isinstance(approved["Crédito: fecha"], datetime)
    assert approved["Revisión"] == "Aprobado" and approved["Aprobado por"] == "Ana Pérez"
    view = ana.get(f"/api/uploads/{paid}").get_json()["upload"]
    decided = datetime.fromisoformat(view["review"]["en"].replace("Z", "+00:00")).astimezone(ZoneInfo("America/Caracas"))
    assert abs((approved["Aprobado el"] - decided.replace(tzinfo=None)).total_seconds()) < 1  # Caracas time
    needs = rows[0]
    assert needs["Motivos de revisión"] == "falta fecha; monto se leyó con poca seguridad (72 %)"
    assert needs["Nombre"] == "-María" and needs["Archivo"] == "-maria.png"
    assert needs["Revisión"] == "Pendiente" and needs["Aprobado por"] is None
    # The number formats Excel shows: thousands and two decimals, day/month/year.
    book = load_workbook(io.BytesIO(answer.data))
    sheet = book["Comprobantes"]
    column = {title: index + 1 for index, title in enumerate(TITLES)}
    assert sheet.cell(3, column["Monto"]).number_format == "#,##0.00"
    assert sheet.cell(3, column["Fecha"]).number_format == "DD/MM/YYYY"

    # Filters and cursors as the queue: approved only; below the newest id.
    _, approved_only = sheet_rows(ana.get("/api/review_queue?estado=aprobado&format=xlsx").data)
    assert [row["Comprobante"] for row in approved_only] == [paid]
    cursor = ana.get("/api/review_queue?estado=todos&limit=1").get_json()["next_cursor"]  # after the newest
    _, below = sheet_rows(ana.get(f"/api/review_queue?estado=todos&format=xlsx&cursor={cursor}").data)
    assert [row["Comprobante"] for row in below] == [paid]
    # Another tenant's key sees only its own.
    foreign = client.get("/api/review_queue?estado=todos&format=xlsx", headers=keyed(other_key))
    assert foreign.status_code == 200 and foreign.data[:2] == b"PK", (foreign.headers, foreign.data[:300])
    _, theirs = sheet_rows(foreign.data)
    assert len(theirs) == 1 and theirs[0]["Comprobante"] not in (paid, flagged)
    assert client.get("/api/review_queue?format=pdf", headers=keyed(key)).status_code == 400

    # The CSV gains the same columns.
    text = ana.get("/api/review_queue?estado=todos&format=csv").get_data(as_text=True).lstrip("\ufeff")
    lines = list(csv.DictReader(io.StringIO(text)))
    by_id = {int(line["upload_id"]): line for line in lines}
    assert by_id[paid]["conciliacion"] == "conciliado" and by_id[paid]["conciliacion_monto"] == "21070.56"
    assert by_id[paid]["aprobado_por"] == "Ana Pérez" and by_id[paid]["aprobado_en"] == view["review"]["en"]
    assert by_id[flagged]["motivos_revision"].startswith("falta fecha")
    assert by_id[flagged]["filename"] == "-maria.png" and by_id[flagged]["nombre"] == "-María"


def test_only_real_formulas_are_defused():
    for harmless in ("-maria.png", "-5", "+58 414 1234567", "-María José", "plain"):
        assert safe_cell(harmless) == harmless
    for formula in ("=1+1", "@SUM(A1)", "-2+3+cmd|' /C calc'!A0", "+HYPERLINK(\"http://x\")", "-A1:B2", "\tx"):
        assert safe_cell(formula) == "'" + formula


def test_formulas_in_the_xlsx_are_text_and_memory_is_flat_for_many_rows():
    import json
    import tracemalloc

    def rows(count):
        for n in range(count):
            document = {"filename": f"=HYPERLINK(\"http://evil\",\"{n}\")", "metadata": {"nombre": "=1+1"},
                        "processing_metadata": {"upload_id": n, "timestamp": "2026-12-07T01:47:00Z"},
                        "extracted_fields": {"monto": "1234.56", "fecha": "2025-06-20", "referencia": f"{n:012d}"},
                        "validacion": {"requiere_revision": False}}
            yield n, json.dumps(document), "aprobado", None, "Ana", utcnow()

    out = io.BytesIO()
    write_workbook(rows(3), out)
    book = load_workbook(io.BytesIO(out.getvalue()))
    cell = book["Comprobantes"].cell(2, 2)
    assert cell.data_type == "s" and cell.value.startswith("=HYPERLINK")
    assert book["Comprobantes"].cell(2, 3).value == datetime(2026, 12, 6, 21, 47)  # 01:47 UTC in Caracas
    sink = io.BytesIO()
    tracemalloc.start()
    write_workbook(rows(2000), sink)
    small = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    sink = io.BytesIO()
    tracemalloc.start()
    write_workbook(rows(10000), sink)
    large = tracemalloc.get_traced_memory()[1] - len(sink.getvalue())
    tracemalloc.stop()
    # Five times the rows, about the same memory beyond the file itself (rows go to a temporary file).
    assert large < small * 2 + 5_000_000, (small, large)
    assert date(2025, 6, 20)  # the dates above are real dates
    assert Decimal("1234.56")
