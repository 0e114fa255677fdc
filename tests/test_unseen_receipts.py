"""Receipts of layouts the rules were not written on (issue 20): labels and sentences as data,
values paired by type, the origin bank from what the page shows, signed amounts, free text as one
cell, and doubt sent to a person. Fake OCR pages for each rule, generated receipts of each failure
class read by the real OCR (tools/receipt_failure_layouts.py), and the real folders when present."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

from extraction import extract_fields
from extraction.banks import BankCatalog, BankCatalogError, get_catalog
from extraction.extractor import extract_fields_from_text
from extraction.rules import get_registry, parse_rules
from tests.test_extractor import page, rows_lv, status_bar


def fields(ocr, **kwargs):
    return extract_fields(ocr, **kwargs)["extracted_fields"]


def web_page(labels, values, extra=(), address="vol.venezolano.com/", width=540):
    """A web banking page: address bar, a label column and a value column whose cells are given
    row by row (None leaves a cell empty), then `extra` rows (y, cells) below."""
    rows = [status_bar(), (70, [(90, address)]), (200, [(42, "Resumen Pago")]), (340, [(200, "Datos del Pago")]),
            (508, [(183, "Bs.3.171,20", 34)])]
    y = 555
    for row in range(max(len(labels), len(values))):
        cells = []
        if row < len(labels):
            cells.append((54, labels[row]))
        if row < len(values) and values[row] is not None:
            cells.append((-48, values[row]))
        if cells:
            rows.append((y, cells))
        y += 27
    rows += list(extra)
    return page(rows, width=width, height=1170)


# ------------------------------------------------------------------------------------------------
# 1. Labels and sentences as data, matched loosely
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("label", ["Nro. Referencia", "N° Referencia", "Núm. de referencia", "NRO. REFERENCIA",
                                   "No. de Referencia", "Numero de referencia", "Referenc1a"])
def test_reference_label_spellings(label):
    got = fields(page(rows_lv([("Monto:", "Bs. 12,50"), (label + ":", "004512398761")])))
    assert got["referencia"] == "004512398761"


@pytest.mark.parametrize("text,amount", [
    ("Realizaste un Pago Móvil de Bs. 3.061,01", "3061.01"),
    ("Realizaste una transacción de Bs. 4.439,00", "4439.00"),
    ("Realizaste una transaccion de Bs. 15,00", "15.00"),
    ("Has enviado Bs. 120,50 a Maria Perez", "120.50"),
    ("Monto debitado: 55,00", "55.00"),
])
def test_sentences_that_carry_the_amount(text, amount):
    assert extract_fields_from_text(f"BFC\n{text}\nReferencia: 12345678")["extracted_fields"]["monto"] == amount


def test_bfc_cedula_and_rif_label():
    got = fields(page(rows_lv([("Referencia:", "95562595"), ("Cédula de Identidad / RIF:", "E-82078228")])))
    assert got["cedula"] == "E-82078228"


@pytest.mark.parametrize("label", ["Cédula de Identidad / RlF:", "C.I./RlF:"])
def test_short_label_words_tolerate_the_glyphs_ocr_swaps(label):
    """wa-1778945275 photographed: "RIF" read "RlF"; a 3-letter word tolerates no edit, but an
    l for an I is no edit."""
    got = fields(page(rows_lv([("Referencia:", "95562595"), (label, "E-82078228")])))
    assert got["cedula"] == "E-82078228"


@pytest.mark.parametrize("label,value,field,expected", [
    # wa-1781363624 as a thumbnail: small text loses the spaces between a label's words.
    ("NÚMERO CELULARDE DESTINO", "0414-3297358", "telefono", "04143297358"),
    ("NÚMEROCELULARDEDESTINO", "0414-3297358", "telefono", "04143297358"),
    ("BANCORECEPTOR", "BANCO MERCANTIL", "banco_destino", "Banco Mercantil"),
    ("NÚMERODEREFERENCIA", "061649414859", "referencia", "061649414859"),
    ("MONTODELAOPERACIÓN", "Bs. 4.700,00", "monto", "4700.00"),
])
def test_label_words_run_together_are_cut_back(label, value, field, expected):
    got = fields(page(rows_lv([("Cédula:", "V-12.345.678"), (label, value)])))
    assert got[field] == expected


def test_a_word_that_only_starts_like_a_label_is_not_cut():
    rules = get_registry().current
    assert [t.norm for t in rules.label_tokens("MONTESINOS")] == ["montesinos"]
    assert [t.norm for t in rules.label_tokens("BANCORECEPTOR")] == ["banco", "receptor"]
    assert not rules.made_of_label_words("MONTESINOS")


def test_a_glued_origin_phone_label_does_not_take_the_destination_phone():
    got = fields(page(rows_lv([("NÚMEROCELULARDEORIGEN", "04**-***4138"), ("Referencia:", "061649414859")])))
    assert got["telefono"] is None


def test_comprobante_row_is_the_reference_but_a_title_is_not():
    assert fields(page(rows_lv([("Comprobante:", "95562595"), ("Monto:", "Bs. 10,00")])))["referencia"] == "95562595"
    title = fields(page([(200, [(150, "Comprobante N° 318380")])] + rows_lv([("Monto", "Bs. 10,00")], top=400)))
    assert title["referencia"] is None and title["comprobante"] == "318380"


def test_a_learned_rule_is_one_more_rule_of_the_same_schema():
    """Tenant-learned rules are plain rules appended to the document (labels as data)."""
    document = copy.deepcopy(get_registry().current.document)
    ocr = page(rows_lv([("Código de pago:", "77788899"), ("Monto:", "Bs. 10,00")]))
    assert fields(ocr)["referencia"] is None
    learned = copy.deepcopy(next(r for r in document["rules"] if r["id"] == "referencia.etiqueta"))
    learned.update(id="tenant.referencia.codigo_de_pago", labels=["Código de pago"])
    document["rules"].append(learned)
    assert fields(ocr, rules=parse_rules(document))["referencia"] == "77788899"


def test_rules_without_the_new_keys_still_load():
    document = copy.deepcopy(get_registry().current.document)
    for key in ("boilerplate", "none_values", "doubt_null_fields"):
        document.pop(key)
    document["rules"] = [r for r in document["rules"] if r.get("strategy") != "page_bank"]
    rules = parse_rules(document)
    assert rules.boilerplate == () and not rules.none_values and not rules.doubt_null_fields


# ------------------------------------------------------------------------------------------------
# 2. Values paired by type as well as by place
# ------------------------------------------------------------------------------------------------
def test_values_moved_up_a_row_are_paired_by_type():
    ocr = web_page(["Referencia", "Beneficiario", "Teléfono", "Fecha", "Concepto"],
                   ["000000454592", "04143297358", "14/02/26", "Fuol"])
    result = extract_fields(ocr)
    got, detail = result["extracted_fields"], result["campos_detalle"]
    assert got["telefono"] == "04143297358"
    assert got["fecha"] == "2026-02-14"
    assert got["concepto"] == "Fuol"
    assert got["referencia"] == "000000454592"
    assert detail["fecha"]["emparejamiento"] == "por_tipo" and detail["fecha"]["filas_desde_etiqueta"] == -1
    assert "emparejamiento" not in detail["referencia"]


def test_values_moved_down_by_a_wrapped_value_are_paired_by_type():
    ocr = web_page(["Referencia", "Beneficiario", "Cédula", "Banco", "Teléfono", "Fecha", "Concepto"],
                   ["000000365659", "Pago Express", "V-26741737", "BANCAMIGA BANCO UNIVERSAL", "C.A.",
                    "04122376070", "01/04/26", "Fuol"])
    result = extract_fields(ocr)
    got = result["extracted_fields"]
    assert got["telefono"] == "04122376070"
    assert got["fecha"] == "2026-04-01"
    assert got["concepto"] == "Fuol"
    assert got["cedula"] == "V-26741737"
    assert got["banco_destino"] == "Bancamiga"
    assert result["campos_detalle"]["telefono"]["filas_desde_etiqueta"] == 1


def test_aligned_table_is_read_by_place():
    ocr = web_page(["Referencia", "Teléfono", "Fecha", "Concepto"], ["000000454592", "04143297358", "14/02/26", "Fuol"])
    result = extract_fields(ocr)
    assert result["extracted_fields"]["fecha"] == "2026-02-14"
    assert all("emparejamiento" not in d for d in result["campos_detalle"].values())


def test_an_unreadable_value_does_not_pull_its_neighbours_values():
    """A date misread beside its own label stays unread: the rows around it are not shifted."""
    ocr = web_page(["Referencia", "Teléfono", "Fecha", "Concepto"], ["000000454592", "04143297358", "14/0Z/2G", "Fuol"])
    got = fields(ocr)
    assert got["telefono"] == "04143297358" and got["fecha"] is None and got["concepto"] == "Fuol"


# ------------------------------------------------------------------------------------------------
# 3. The origin bank from what the page shows
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("address,bank", [
    ("vol.venezolano.com/", "Venezolano de Crédito"),
    ("https://www.bancamiga.com/pagos", "Bancamiga"),
    ("online.mercantilbanco.com", "Banco Mercantil"),
    ("venezolano.com.pagos-seguros.net/", None),
    ("notvenezolano.com/", None),
])
def test_origin_bank_from_the_address_bar(address, bank):
    ocr = web_page(["Referencia", "Teléfono"], ["000000454592", "04143297358"], address=address)
    assert fields(ocr)["banco_origen"] == bank


def test_the_address_bar_of_a_photographed_screen_is_measured_from_the_page_top():
    """wa-1771081520 photographed: a desk above the screen pushes the address bar to 17% of the
    frame; it is still the top of the page."""
    ocr = web_page(["Referencia", "Teléfono"], ["000000454592", "04143297358"])
    desk = 260
    for word in ocr["palabras_detectadas"]:
        word["coordenadas"][1] += desk
        word["coordenadas"][3] += desk
    ocr["image_size"] = [ocr["image_size"][0], ocr["image_size"][1] + 2 * desk]
    for line in ocr["lineas"]:
        line["coordenadas"][1] += desk
        line["coordenadas"][3] += desk
    assert fields(ocr)["banco_origen"] == "Venezolano de Crédito"


def test_a_domain_in_the_body_is_not_the_address_bar():
    ocr = web_page(["Referencia", "Teléfono"], ["000000454592", "04143297358"], address="Resumen",
                   extra=[(850, [(150, "www.bancamiga.com")])])
    assert fields(ocr)["banco_origen"] is None


@pytest.mark.parametrize("sentence,bank", [("Tu Tpago fue exitoso", "Banco Mercantil"),
                                           ("Operacion pagomovilbdv otros banco", "Banco de Venezuela")])
def test_origin_bank_from_the_apps_signature(sentence, bank):
    rows = [(300, [(120, sentence)])] + rows_lv([("Monto:", "Bs. 10,00"), ("Referencia:", "48315566838")], top=400)
    assert fields(page(rows))["banco_origen"] == bank


def test_a_bank_named_in_the_body_without_a_label_is_no_origin():
    rows = rows_lv([("Monto:", "Bs. 10,00"), ("Referencia:", "48315566838")], top=400)
    rows.append((700, [(40, "Pagos a clientes de Banesco y Mercantil sin comisión")]))
    assert fields(page(rows))["banco_origen"] is None


def test_catalog_refuses_malformed_domains():
    with pytest.raises(BankCatalogError):
        BankCatalog.from_dict({"banks": [{"code": "0104", "name": "X", "domains": ["not a host"]}]})


def test_the_one_bank_table_holds_apps_and_domains():
    catalog = get_catalog()
    assert catalog.from_domain("vol.venezolano.com/").bank.code == "0104"
    assert {m.bank.code for m in catalog.find_apps("Tu Tpago fue exitoso")} == {"0105"}


# ------------------------------------------------------------------------------------------------
# 4. Signed amounts
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("printed", ["-3.397,41 Bs", "\u22123.397,41 Bs", "Bs. -3.397,41"])
def test_a_debit_printed_negative_is_the_amount(printed):
    rows = [(100, [(100, "Operacion pagomovilbdv otros banco")]), (300, [(200, printed, 36)])]
    rows += rows_lv([("Fecha:", "18/04/2026"), ("Operación:", "0050336200419")], top=450)
    result = extract_fields(page(rows))
    assert result["extracted_fields"]["monto"] == "3397.41"
    assert result["campos_detalle"]["monto"]["signo"] == "negativo"


def test_an_unsigned_amount_has_no_sign():
    result = extract_fields(page(rows_lv([("Monto:", "Bs. 3.397,41")])))
    assert result["extracted_fields"]["monto"] == "3397.41" and "signo" not in result["campos_detalle"]["monto"]


# ------------------------------------------------------------------------------------------------
# 5. Free text is one cell
# ------------------------------------------------------------------------------------------------
def test_boilerplate_under_an_empty_concept_is_not_the_concept():
    ocr = web_page(["Referencia", "Teléfono", "Concepto"], ["000000454592", "04143297358"],
                   extra=[(719, [(23, "Estimado cliente, su transacción fue procesada")]),
                          (741, [(22, "exitosamente; en caso de devoluciones por parte del Banco")])])
    assert fields(ocr)["concepto"] is None


def test_a_button_caption_glued_under_the_concept_is_cut_off():
    rows = rows_lv([("Referencia:", "060974085810"), ("Concepto:", "PAGO")], top=400)
    rows.append((400 + 52 + 26, [(300, "¿Agregar Pago")]))
    assert fields(page(rows))["concepto"] == "PAGO"


@pytest.mark.parametrize("printed,concept", [("01/04/26 Fuol", "Fuol"), ("pago 0414-1234567", "pago"),
                                             ("pago factura 1045", "pago factura 1045"), ("14/02/2026", None)])
def test_a_value_glued_to_a_concept_is_split_off(printed, concept):
    assert fields(page(rows_lv([("Referencia:", "060974085810"), ("Concepto:", printed)])))["concepto"] == concept


def test_no_indicado_means_no_beneficiary():
    rows = [(140, [(50, "Resultado de la operación realizada")]), (420, [(48, "Beneficiario:")]),
            (470, [(62, "0414-3297358 No indicado E-82078228 - 0105")]), (505, [(56, "- Mercantil")])]
    got = fields(page(rows, width=591))
    assert got["beneficiario"] is None and got["telefono"] == "04143297358"


# ------------------------------------------------------------------------------------------------
# 6. Doubt goes to a person
# ------------------------------------------------------------------------------------------------
def _with_confidence(ocr, text, confidence, weakest):
    """The word `text` read at `confidence` (the mean) with its least sure character at `weakest`
    (None: a recognizer that gives no per-character probabilities)."""
    for word in ocr["palabras_detectadas"]:
        if word["texto"] == text:
            word["confianza"] = confidence
            word.pop("confianza_minima_caracter", None)
            if weakest is not None:
                word["confianza_minima_caracter"] = weakest
    return ocr


def test_a_key_value_read_unsure_is_none_with_the_reading_kept():
    ocr = _with_confidence(page(rows_lv([("Monto:", "Bs. 10,00"), ("Referencia:", "069757009883")])),
                           "069757009883", 0.969, 0.622)  # wa-1773702181 re-screenshotted: a 0 read as 9
    result = extract_fields(ocr)
    detail = result["campos_detalle"]["referencia"]
    assert result["extracted_fields"]["referencia"] is None
    assert detail["motivo"] == "lectura_dudosa" and detail["valor_leido"] == "069757009883"
    assert detail["requiere_revision"] is True
    assert detail["caracteres_dudosos"][0]["texto"] == "069757009883"
    assert detail["caracteres_dudosos"][0]["confianza_minima_caracter"] == 0.622
    assert result["validacion"]["requiere_revision"] is True
    assert "referencia" in result["validacion"]["campos_dudosos"]


def test_without_per_character_probabilities_the_weakest_is_estimated_from_the_mean():
    # 12 digits at a mean of 0.957: one of them may have been read at 0.48.
    ocr = _with_confidence(page(rows_lv([("Monto:", "Bs. 10,00"), ("Referencia:", "069757009883")])),
                           "069757009883", 0.957, None)
    result = extract_fields(ocr)
    assert result["extracted_fields"]["referencia"] is None
    assert result["campos_detalle"]["referencia"]["caracteres_dudosos"][0]["confianza_minima_caracter"] == 0.484


def test_a_sure_mean_over_sure_characters_raises_no_doubt():
    ocr = _with_confidence(page(rows_lv([("Monto:", "Bs. 10,00"), ("Referencia:", "069757009883")])),
                           "069757009883", 0.957, 0.9)
    assert extract_fields(ocr)["extracted_fields"]["referencia"] == "069757009883"


def test_a_number_with_separators_read_unsure_keeps_its_value_flagged():
    """Its normalizer checks the groups; OCR's doubt in such words mostly sits on the separators."""
    ocr = _with_confidence(page(rows_lv([("Referencia:", "069757009883"), ("Cédula:", "V-12.345.678")]), confidence=0.99),
                           "V-12.345.678", 0.93, 0.4)
    result = extract_fields(ocr)
    assert result["extracted_fields"]["cedula"] == "V-12345678"
    assert result["campos_detalle"]["cedula"]["motivo_revision"] == "lectura_dudosa"


def test_free_text_read_unsure_keeps_its_value_flagged():
    # wa-1772902968 photographed: "faltante" read at a mean of 0.953, its "l" as a "t" at 0.62.
    ocr = _with_confidence(page(rows_lv([("Referencia:", "069757009883"), ("Concepto:", "fattante")])),
                           "fattante", 0.953, 0.62)
    result = extract_fields(ocr)
    assert result["extracted_fields"]["concepto"] == "fattante"
    assert result["campos_detalle"]["concepto"]["motivo_revision"] == "lectura_dudosa"
    assert result["validacion"]["requiere_revision"] is True


def test_a_second_sure_reading_confirms_an_unsure_one():
    rows = rows_lv([("Referencia:", "069757009883"), ("Nro. de operación:", "069757009883")])
    ocr = page(rows)
    _with_confidence(ocr, "069757009883", 0.957, None)  # both readings ...
    ocr["palabras_detectadas"][-1].update(confianza=0.97, confianza_minima_caracter=0.97)  # ... the last one sure
    result = extract_fields(ocr)
    assert result["extracted_fields"]["referencia"] == "069757009883"
    assert "requiere_revision" not in result["campos_detalle"]["referencia"]


def test_sure_readings_raise_no_doubt():
    result = extract_fields(page(rows_lv([("Monto:", "Bs. 10,00"), ("Referencia:", "069757009883")]), confidence=0.99))
    assert result["extracted_fields"]["referencia"] == "069757009883"
    assert "campos_dudosos" not in result["validacion"]


# ------------------------------------------------------------------------------------------------
# Generated receipts of each failure class, read by the OCR
# ------------------------------------------------------------------------------------------------
FAILURE_FIELDS = {
    "bfc_sentence": ("monto", "referencia", "telefono", "cedula", "fecha", "hora_operacion", "banco_origen",
                     "banco_destino", "concepto"),
    "web_shifted": ("monto", "referencia", "telefono", "cedula", "fecha", "banco_origen", "banco_destino", "concepto"),
    "signed_debit": ("monto", "referencia", "fecha", "hora_operacion", "banco_origen"),
}


@pytest.mark.parametrize("layout", sorted(FAILURE_FIELDS))
@pytest.mark.parametrize("seed", [3, 8, 11])
def test_failure_class_receipts_are_read(engine, layout, seed):
    from benchmarks.accuracy import same_value
    from tools.receipt_generator import generate_receipt

    receipt = generate_receipt(seed, layout=layout, variant="whatsapp")
    got = fields(engine.procesar_imagen(receipt.image_bytes, "ultra_rapido"))
    for name in FAILURE_FIELDS[layout]:
        want = receipt.fields[name]
        assert same_value(name, want, got[name]), f"{name}: want {want!r} got {got[name]!r}"
    assert receipt.fields["monto"] and receipt.fields["banco_origen"]


def test_web_shifted_receipts_record_the_pairing(engine):
    from tools.receipt_generator import generate_receipt

    receipt = generate_receipt(8, layout="web_shifted", variant="clean")
    result = extract_fields(engine.procesar_imagen(receipt.image_bytes, "ultra_rapido"))
    assert result["campos_detalle"]["fecha"]["emparejamiento"] == "por_tipo"


# ------------------------------------------------------------------------------------------------
# The real folders, when present (personal data: read at run time, never copied)
# ------------------------------------------------------------------------------------------------
SHARED = Path(__file__).resolve().parents[2] / "shared" / "receipts"


@pytest.mark.slow
@pytest.mark.parametrize("folder", ["real", "whatsapp"])
def test_real_folder_has_no_wrong_value_and_98_percent(engine, folder):
    from benchmarks.accuracy import evaluate, load_folder

    path = SHARED / folder
    if not (path / "labels.json").is_file():
        pytest.skip(f"{path} not present")
    report = evaluate(load_folder(path), "ultra_rapido", engine)
    rows = report["fields"].values()
    labelled = sum(r["labelled"] for r in rows)
    correct = sum(r["correct"] for r in rows)
    wrong = [f for f in report["failures"] if f["kind"] != "missed"]
    # File and field only: the values are personal data.
    assert not wrong, [(f["file"], f["field"], f["kind"]) for f in wrong]
    assert correct >= 0.98 * labelled
