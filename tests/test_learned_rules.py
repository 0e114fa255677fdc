"""Issue 20 item 7: corrections teach the extraction, per tenant. A correction proposes the label
that would have found the value; an admin accepts it; the worker applies it to that tenant's later
receipts of that layout only; switched off it no longer applies; another tenant sees none of it.
Through the app and the worker's round, on SQLite and PostgreSQL. The receipts are text pages with
word boxes (extraction.extractor.ocr_result_from_text) read by a stand-in for the OCR engine, so the
worker's code runs as is; tests/test_learned_rules_ocr.py does the same with the real OCR."""
from typing import Any

import pytest
from alembic import command
from sqlalchemy import create_engine, select

from database import Database, LearnedRuleRow, Result, Role, Upload
from extraction.extractor import extract_fields, ocr_result_from_text
from extraction.learning import LearnedRule, apply_learned, learn_from_correction
from main_ocr_process import ImagenLote
from migrations_runner import alembic_config, upgrade_to_head
from service.access import create_key
from service.batches import run_worker_round
from service.staff import create_staff
from tests.test_migrations import empty_database_url, schema_differences  # noqa: F401 - the fixture
from tests.test_tenants import ADMIN_KEY, image_bytes, keyed, upload

# A layout whose reference label the shipped rules do not know ("Clave única"), and its concept's ("Glosa").
LAYOUT = ("Banco Mercantil\nPago Móvil\nClave única    {ref}\nMonto    Bs. {monto}\nFecha    11/07/2025\n"
          "Teléfono    0414-7650321\nGlosa    {concepto}")
# Another bank's layout that prints the same label: a rule learned on the first is not its.
OTHER_BANK = ("Banco Provincial\nTransferencia\nClave única    {ref}\nMonto    Bs. {monto}\nFecha    12/07/2025\n"
              "Cédula    V-12345678")
# The same bank with other labels: not the layout either.
OTHER_LAYOUT = ("Banco Mercantil\nTransferencia\nClave única    {ref}\nImporte    Bs. {monto}\nDía    12/07/2025\n"
                "Cuenta destino    0105****1234\nTitular    Ana Pérez\nHora    10:15")


def ocr_document(text: str) -> dict[str, Any]:
    """A result document as the worker stores it (fields, detail, words with boxes, lines)."""
    ocr = ocr_result_from_text(text)
    return {**extract_fields(ocr), "palabras_detectadas": ocr["palabras_detectadas"], "lineas": ocr["lineas"],
            "processing_metadata": {"image_size": ocr["image_size"]}}


class TextOrchestrator:
    """Reads each image as the receipt text registered for its bytes (the OCR's place in the worker)."""

    def __init__(self) -> None:
        self.texts: dict[bytes, str] = {}

    def procesar_lote_imagenes(self, items: list[ImagenLote], *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        return [{"processing_status": "success", "request_id": None, "filename": item.filename,
                 "metadata": item.metadata, **ocr_document(self.texts[item.image_bytes])} for item in items]


@pytest.fixture
def desk(make_app):
    app = make_app(API_KEYS=[ADMIN_KEY])
    rt = app.extensions["ocr_runtime"]
    keys = {"staff": create_key(rt.db, "default", name="maria")[0],
            "boss": create_key(rt.db, "default", Role.ADMIN, name="jefa")[0],
            "other": create_key(rt.db, "other", name="pedro")[0],
            "other_admin": create_key(rt.db, "other", Role.ADMIN, name="otra jefa")[0]}
    return app, rt, app.test_client(), keys, TextOrchestrator()


_seed = iter(range(1, 10_000))


def receipt(env, key: str, text: str) -> int:
    """An upload of the tenant of `key`, processed by the worker's round; its id."""
    app, rt, client, keys, ocr = env
    data = image_bytes(next(_seed))
    ocr.texts[data] = text
    answer = upload(client, keys[key], data)
    assert answer.status_code in (200, 201, 202), answer.get_json()
    while run_worker_round(rt, ocr, "w"):
        pass
    with rt.db.session() as session:
        return session.scalars(select(Upload.id).order_by(Upload.id.desc())).first()


def fields(env, key: str, upload_id: int) -> dict[str, Any]:
    _, _, client, keys, _ = env
    answer = client.get(f"/api/uploads/{upload_id}", headers=keyed(keys[key]))
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()["upload"]["result"]


def rules(env, key: str, **query) -> list[dict[str, Any]]:
    _, _, client, keys, _ = env
    answer = client.get("/api/learned_rules", headers=keyed(keys[key]), query_string=query)
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()["items"]


def correct(env, upload_id: int, body: dict[str, Any]) -> None:
    _, _, client, keys, _ = env
    answer = client.patch(f"/api/uploads/{upload_id}/fields", headers=keyed(keys["staff"]), json=body)
    assert answer.status_code == 200, answer.get_json()


def test_a_correction_proposes_the_label_that_would_have_found_the_value(desk):
    first = receipt(desk, "staff", LAYOUT.format(ref="405622415499", monto="20,57", concepto="alquiler junio"))
    assert fields(desk, "staff", first)["extracted_fields"]["referencia"] is None  # the shipped rules miss it
    correct(desk, first, {"referencia": "405622415499", "concepto": "alquiler junio", "telefono": None})
    proposed = {r["campo"]: r for r in rules(desk, "staff", estado="propuesta")}
    assert set(proposed) == {"referencia", "concepto"}  # clearing a field teaches nothing
    rule = proposed["referencia"]
    assert (rule["etiqueta"], rule["posicion"], rule["banco"], rule["estado"]) == (
        "Clave única", "right", "Banco Mercantil", "propuesta")
    assert set(rule["etiquetas_pagina"]) == {"clave unica", "monto", "fecha", "telefono", "glosa"}
    assert (rule["upload_id"], rule["valor_ejemplo"], rule["propuesta_por"], rule["veces"]) == (
        first, "405622415499", "maria", 1)
    assert rule["reglas_corregidas"] == [] and rule["aceptada_por"] is None
    # The same lesson from another receipt of the layout is the same proposal, taught twice.
    second = receipt(desk, "staff", LAYOUT.format(ref="11223344", monto="5,00", concepto="pago"))
    correct(desk, second, {"referencia": "11223344"})
    again = [r for r in rules(desk, "staff") if r["campo"] == "referencia"]
    assert [(r["id"], r["veces"]) for r in again] == [(rule["id"], 2)]


def test_an_accepted_rule_reads_that_tenants_later_receipts_of_that_layout_only(desk):
    _, _, client, keys, _ = desk
    first = receipt(desk, "staff", LAYOUT.format(ref="405622415499", monto="20,57", concepto="alquiler junio"))
    correct(desk, first, {"referencia": "405622415499"})
    rule = rules(desk, "staff")[0]
    refused = client.post(f"/api/learned_rules/{rule['id']}/accept", headers=keyed(keys["staff"]))
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "forbidden"
    answer = client.post(f"/api/learned_rules/{rule['id']}/accept", headers=keyed(keys["boss"]))
    assert answer.status_code == 200, answer.get_json()
    accepted = answer.get_json()["regla"]
    assert (accepted["estado"], accepted["aceptada_por"]) == ("activa", "jefa") and accepted["aceptada_en"]

    later = fields(desk, "staff", receipt(desk, "staff", LAYOUT.format(ref="98765432", monto="7,50", concepto="x")))
    assert later["extracted_fields"]["referencia"] == "98765432"
    detail = later["campos_detalle"]["referencia"]
    assert detail["regla"] == f"aprendida.{rule['id']}" and detail["regla_aprendida"]["reemplaza"] is None
    assert later["metadatos_extraccion"]["reglas_aprendidas"] == [rule["id"]]
    assert later["extracted_fields"]["monto"] == "7.50"  # the other fields are the shipped rules'

    # Other layouts printing the same label, and the other tenant's receipt of this very layout: untouched.
    for key, text in (("staff", OTHER_BANK), ("staff", OTHER_LAYOUT), ("other", LAYOUT)):
        page = text.format(ref="55554444", monto="9,99", concepto="y")
        got = fields(desk, key, receipt(desk, key, page))
        assert got["extracted_fields"] == ocr_document(page)["extracted_fields"], (key, text[:20])
        assert "reglas_aprendidas" not in got["metadatos_extraccion"]


def test_a_switched_off_rule_no_longer_applies_and_is_still_listed(desk):
    _, _, client, keys, _ = desk
    first = receipt(desk, "staff", LAYOUT.format(ref="405622415499", monto="20,57", concepto="alquiler junio"))
    correct(desk, first, {"referencia": "405622415499"})
    rule_id = rules(desk, "staff")[0]["id"]
    assert client.post(f"/api/learned_rules/{rule_id}/accept", headers=keyed(keys["boss"])).status_code == 200
    answer = client.post(f"/api/learned_rules/{rule_id}/switch_off", headers=keyed(keys["boss"]))
    assert answer.status_code == 200
    off = answer.get_json()["regla"]
    assert (off["estado"], off["desactivada_por"], off["aceptada_por"]) == ("desactivada", "jefa", "jefa")
    later = fields(desk, "staff", receipt(desk, "staff", LAYOUT.format(ref="98765432", monto="7,50", concepto="x")))
    assert later["extracted_fields"]["referencia"] is None
    assert [r["id"] for r in rules(desk, "staff", estado="desactivada")] == [rule_id]
    assert rules(desk, "staff", estado="activa") == []
    # Taught again, a switched-off rule stays off.
    correct(desk, receipt(desk, "staff", LAYOUT.format(ref="31313131", monto="1,00", concepto="z")),
            {"referencia": "31313131"})
    assert [(r["estado"], r["veces"]) for r in rules(desk, "staff") if r["campo"] == "referencia"] == [("desactivada", 2)]


def test_another_tenants_keys_get_404_and_see_no_rule(desk):
    _, _, client, keys, _ = desk
    first = receipt(desk, "staff", LAYOUT.format(ref="405622415499", monto="20,57", concepto="alquiler junio"))
    correct(desk, first, {"referencia": "405622415499"})
    rule_id = rules(desk, "staff")[0]["id"]
    assert rules(desk, "other") == [] and rules(desk, "other_admin") == []
    for key in ("other", "other_admin"):
        answer = client.get(f"/api/learned_rules/{rule_id}", headers=keyed(keys[key]))
        assert answer.status_code == 404 and answer.get_json()["error"]["code"] == "not_found"
    for action in ("accept", "switch_off"):
        answer = client.post(f"/api/learned_rules/{rule_id}/{action}", headers=keyed(keys["other_admin"]))
        assert answer.status_code == 404 and answer.get_json()["success"] is False
    assert rules(desk, "staff")[0]["estado"] == "propuesta"
    assert client.get(f"/api/learned_rules/{rule_id}", headers=keyed(keys["staff"])).status_code == 200
    assert client.get("/api/learned_rules/99999999999999", headers=keyed(keys["boss"])).status_code == 404
    for query in ({"estado": "todas"}, {"cursor": "nope"}, {"limit": "0"}):
        answer = client.get("/api/learned_rules", headers=keyed(keys["staff"]), query_string=query)
        assert answer.status_code == 400 and answer.get_json()["error"]["code"] == "invalid_parameter", query
    assert client.get("/api/learned_rules").status_code == 401


def test_the_list_is_paged(desk):
    first = receipt(desk, "staff", LAYOUT.format(ref="405622415499", monto="20,57", concepto="alquiler junio"))
    correct(desk, first, {"referencia": "405622415499", "concepto": "alquiler junio"})
    _, _, client, keys, _ = desk
    page = client.get("/api/learned_rules?limit=1", headers=keyed(keys["staff"])).get_json()
    assert page["count"] == 1 and page["next_cursor"]
    rest = client.get(f"/api/learned_rules?limit=1&cursor={page['next_cursor']}", headers=keyed(keys["staff"])).get_json()
    assert rest["count"] == 1 and rest["next_cursor"] is None and rest["items"][0]["id"] != page["items"][0]["id"]


def test_the_review_desk_lists_the_rules_with_its_own_script(desk):
    _, _, client, keys, _ = desk
    client.post("/review/login", data={"clave": keys["boss"], "csrf_token": _csrf(client)})
    page = client.get("/review/reglas")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "learned_rules.js" in html and 'data-admin="si"' in html
    assert client.get("/review/static/learned_rules.js").status_code == 200


def test_a_team_admin_signed_in_as_a_person_decides_rules_and_a_revisor_cannot(desk):
    _, rt, _, _, _ = desk
    first = receipt(desk, "staff", LAYOUT.format(ref="405622415499", monto="20,57", concepto="alquiler junio"))
    correct(desk, first, {"referencia": "405622415499"})
    rule = next(r for r in rules(desk, "staff") if r["campo"] == "referencia")
    create_staff(rt.db, 1, "ana", "una-clave-larga-1", "admin", None, "Ana Pérez")
    create_staff(rt.db, 1, "luis", "una-clave-larga-1", "revisor", None, "Luis Díaz")
    app = desk[0]

    def signed_in_as(name):
        client = app.test_client()
        answer = client.post("/review/login", data={"usuario": name, "clave": "una-clave-larga-1",
                                                    "csrf_token": _csrf(client)})
        assert answer.status_code == 302
        page = client.get("/review/reglas").get_data(as_text=True)
        return client, page, page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]

    luis, page, token = signed_in_as("luis")
    assert 'data-admin="no"' in page
    refused = luis.post(f"/api/learned_rules/{rule['id']}/accept", headers={"X-CSRF-Token": token}, json={})
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "forbidden"
    ana, page, token = signed_in_as("ana")
    assert 'data-admin="si"' in page and 'id="ir-reglas"' in ana.get("/review").get_data(as_text=True)
    accepted = ana.post(f"/api/learned_rules/{rule['id']}/accept", headers={"X-CSRF-Token": token}, json={})
    assert accepted.status_code == 200, accepted.get_json()
    assert (accepted.get_json()["regla"]["estado"], accepted.get_json()["regla"]["aceptada_por"]) == ("activa", "Ana Pérez")


def _csrf(client) -> str:
    html = client.get("/review/login").get_data(as_text=True)
    return html.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]


# --- the policy: a learned rule never overrides a validated value of the shipped rules ----------
# The amount's label is unknown ("Valor neto"); a lone "Bs. 5,00" line is what the shipped rules take.
WRONG_AMOUNT = "Banco Mercantil\nPago Móvil\nBs. 5,00\nValor neto    {monto}\nFecha    11/07/2025\nTeléfono    0414-7650321"


def test_a_rule_replaces_only_the_value_of_a_shipped_rule_a_correction_proved_wrong():
    page = ocr_document(WRONG_AMOUNT.format(monto="20,57"))
    assert page["extracted_fields"]["monto"] == "5.00"
    lesson = learn_from_correction(page, "monto", "20.57")
    assert (lesson.etiqueta, lesson.posicion, lesson.reglas_corregidas) == ("Valor neto", "right",
                                                                            ("monto.moneda_sin_etiqueta",))
    rule = lesson.as_rule(7)
    later = apply_learned(ocr_document(WRONG_AMOUNT.format(monto="44,10")), [rule])
    assert later["extracted_fields"]["monto"] == "44.10"
    assert later["campos_detalle"]["monto"]["regla_aprendida"]["reemplaza"] == {
        "valor": "5.00", "regla": "monto.moneda_sin_etiqueta"}
    # The same layout where a labelled "Monto" row gave the amount: that validated value stays.
    labelled = WRONG_AMOUNT.format(monto="44,10") + "\nMonto    Bs. 30,00"
    assert ocr_document(labelled)["extracted_fields"]["monto"] == "30.00"
    assert apply_learned(ocr_document(labelled), [rule]) is None
    # A fill-only rule (nothing proved wrong) never replaces a value either.
    fill_only = LearnedRule(8, "monto", "Valor neto", "right", "Banco Mercantil", rule.etiquetas_pagina)
    assert apply_learned(ocr_document(WRONG_AMOUNT.format(monto="44,10")), [fill_only]) is None


def test_a_value_not_among_the_pages_words_teaches_nothing():
    page = ocr_document(LAYOUT.format(ref="405622415499", monto="20,57", concepto="alquiler junio"))
    assert learn_from_correction(page, "referencia", "999999999") is None
    assert learn_from_correction(page, "monto", "20.57") is None  # read right already
    assert learn_from_correction({**page, "palabras_detectadas": []}, "referencia", "405622415499") is None


# --- the migration ------------------------------------------------------------------------------
def test_the_learned_rules_table_is_added_on_top_of_0005(empty_database_url):  # noqa: F811
    engine = create_engine(empty_database_url)
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0005_statements")
    engine.dispose()
    db = Database(empty_database_url)
    upgrade_to_head(db)
    assert schema_differences(db) == []
    with db.session() as session:
        session.add(LearnedRuleRow(tenant_id=1, clave="c" * 64, campo="referencia", etiqueta="Clave única",
                                   posicion="right", banco=None, etiquetas_pagina=["clave unica"],
                                   reglas_corregidas=[], propuesta_por="maria"))
        session.commit()
        stored = session.scalar(select(LearnedRuleRow))
        assert (stored.estado, stored.veces, stored.etiquetas_pagina) == ("propuesta", 1, ["clave unica"])
    db.dispose()


def test_accepting_can_reread_the_pending_receipts_of_that_layout(desk):
    _, rt, client, keys, _ = desk
    texts = [LAYOUT.format(ref=ref, monto="3,00", concepto="c") for ref in ("405622415499", "70707070", "80808080",
                                                                            "90909090")]
    first, pending, decided, others = (receipt(desk, "staff", t) for t in texts)
    theirs = receipt(desk, "other", LAYOUT.format(ref="60606060", monto="3,00", concepto="c"))
    correct(desk, first, {"referencia": "405622415499"})
    review = client.post(f"/api/uploads/{decided}/review", headers=keyed(keys["staff"]), json={"estado": "aprobado"})
    assert review.status_code == 200
    rule_id = rules(desk, "staff")[0]["id"]
    bad = client.post(f"/api/learned_rules/{rule_id}/accept", headers=keyed(keys["boss"]),
                      json={"releer_pendientes": "yes"})
    assert bad.status_code == 400 and rules(desk, "staff")[0]["estado"] == "propuesta"
    answer = client.post(f"/api/learned_rules/{rule_id}/accept", headers=keyed(keys["boss"]),
                         json={"releer_pendientes": True})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["releidos"] == 2  # `pending` and `others`: never corrected, still pending
    reread = fields(desk, "staff", pending)
    assert reread["extracted_fields"]["referencia"] == "70707070"
    assert reread["campos_detalle"]["referencia"]["regla"] == f"aprendida.{rule_id}"
    assert fields(desk, "staff", others)["extracted_fields"]["referencia"] == "90909090"
    assert fields(desk, "staff", decided)["extracted_fields"]["referencia"] is None  # a person decided it
    assert fields(desk, "other", theirs)["extracted_fields"]["referencia"] is None  # another tenant's
    with rt.db.session() as session:  # the result's column and file follow the document
        row = session.scalar(select(Result).where(Result.upload_id == pending))
        assert row.referencia == "70707070"
    assert '"70707070"' in (rt.storage.dirs["results"] / f"{row.filename}.json").read_text()
