"""Extraction engine: hand-built OCR words for every layout style, and (slow) end-to-end runs on
generated and real receipts."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import config
from extraction import extract_fields, extract_fields_from_text
from extraction.extractor import ocr_result_from_text

FIELDS = config.EXTRACTION_CONFIG["fields"]
CHAR_W = 13  # px per character of the fake font


# ------------------------------------------------------------------------------------------------
# Fake OCR results
# ------------------------------------------------------------------------------------------------
def page(rows, width=720, height=1280, confidence=0.97):
    """An OCR result from rows of cells. A row is (y, [(x, text), ...]) or (y, [(x, text, h), ...]);
    x is the left edge, or negative for a right edge (value right-aligned at width + x); h is the
    text height in px (28 by default). Cells are split into words like the OCR engine does, each
    with every character read at `confidence`."""
    words, lines = [], []
    for y, cells in rows:
        members = []
        for cell in cells:
            x, text = cell[0], cell[1]
            h = cell[2] if len(cell) > 2 else 28
            char_w = CHAR_W * h / 28
            if x < 0:
                x = width + x - char_w * len(text)
            cursor = x
            for token in text.split(" "):
                if token:
                    members.append(len(words))
                    words.append({"texto": token, "confianza": confidence, "confianza_minima_caracter": confidence,
                                  "coordenadas": [int(cursor), int(y), int(cursor + char_w * len(token)), int(y + h)]})
                cursor += char_w * (len(token) + 1)
        if members:
            boxes = [words[i]["coordenadas"] for i in members]
            members.sort(key=lambda i: words[i]["coordenadas"][0])
            lines.append({"texto": " ".join(words[i]["texto"] for i in members), "palabras": members,
                          "coordenadas": [min(b[0] for b in boxes), min(b[1] for b in boxes),
                                          max(b[2] for b in boxes), max(b[3] for b in boxes)]})
    return {"palabras_detectadas": words, "lineas": lines, "image_size": [width, height],
            "structured_text_ocr": "\n".join(l["texto"] for l in lines)}


def rows_lv(pairs, top=300, pitch=52, label_x=40, value_x=-40):
    """Label left, value right-aligned, one pair per row (BDV, Banesco, generic transfer)."""
    return [(top + i * pitch, [(label_x, label), (value_x, value)] if value else [(label_x, label)])
            for i, (label, value) in enumerate(pairs)]


def rows_stacked(pairs, top=300, label_h=22, value_h=28, gap=8, pitch=30, x=40):
    """Label on one line, value on the next (BNC, Bancamiga, Mercantil phone)."""
    rows, y = [], top
    for label, value in pairs:
        rows.append((y, [(x, label, label_h)]))
        y += label_h + gap
        for line in value if isinstance(value, list) else [value]:
            rows.append((y, [(x, line, value_h)]))
            y += value_h + 4
        y += pitch
    return rows


def status_bar(clock="9:37 p. m."):
    return (12, [(20, clock, 26), (600, "60%", 26)])


def bdv_page(**overrides):
    pairs = {
        "Fecha:": "14/05/2025", "Operación:": "004512398761", "Identificación:": "18234567",
        "Origen:": "0102****4821", "Destino:": "04147650321", "Banco:": "0105 - BANCO MERCANTIL",
        "Concepto:": "07 Rosa",
    }
    pairs.update(overrides)
    rows = [status_bar(), (80, [(110, "Comprobante de operación")]), (240, [(110, "PagomóvilBDV Personas", 34)]),
            (380, [(200, "187,43 Bs", 36)])]
    rows += rows_lv([(k, v) for k, v in pairs.items() if v is not None], top=460)
    return page(rows, width=540, height=1230)


def fields(ocr, **kwargs):
    return extract_fields(ocr, **kwargs)["extracted_fields"]


# ------------------------------------------------------------------------------------------------
# Layout styles
# ------------------------------------------------------------------------------------------------
def test_same_line_label_value_bdv():
    result = extract_fields(bdv_page())
    got = result["extracted_fields"]
    assert got["monto"] == "187.43"
    assert got["referencia"] == "004512398761"
    assert got["cedula"] == "18234567"
    assert got["telefono"] == "04147650321"
    assert got["fecha"] == "2025-05-14"
    assert got["cuenta_origen"] == "0102****4821"
    assert got["banco_origen"] == "Banco de Venezuela"
    assert got["banco_destino"] == "Banco Mercantil"
    assert got["concepto"] == "07 Rosa"
    assert got["tipo_transaccion"] == "pago_movil"
    assert got["canal_pago"] == "PagomóvilBDV"
    assert got["hora_operacion"] is None  # the status bar clock is not the operation time
    assert got["comprobante"] is None  # "Comprobante de operación" is a title, not a number
    assert set(got) == set(FIELDS)


def test_detail_has_raw_text_confidences_coordinates_and_rule():
    ocr = bdv_page()
    result = extract_fields(ocr)
    detail = result["campos_detalle"]["referencia"]
    assert detail["texto_original"] == "004512398761"
    assert detail["valor"] == "004512398761"
    assert detail["regla"] == "referencia.etiqueta"
    assert 0 < detail["confianza_ocr"] <= 1 and 0 < detail["confianza_regla"] <= 1
    assert detail["confianza"] == pytest.approx(detail["confianza_ocr"] * detail["confianza_regla"], abs=1e-3)
    word = next(w for w in ocr["palabras_detectadas"] if w["texto"] == "004512398761")
    assert detail["coordenadas"] == word["coordenadas"]
    assert result["validacion"]["valido"] is True
    assert result["validacion"]["requiere_revision"] is False
    for name in FIELDS:  # every null says why
        if result["extracted_fields"][name] is None:
            assert result["campos_detalle"][name]["motivo"]


def test_stacked_label_above_value_bancamiga():
    rows = [(100, [(100, "Bancamiga", 34)]), (200, [(250, "Pago Móvil")])]
    rows += rows_stacked([
        ("Monto", "Bs. 1.234,56"), ("Nro. Referencia", "000123456789"), ("Fecha", "05-03-2025"),
        ("Hora", "2:32 p. m."), ("Banco destino", "0134 - Banesco"), ("Teléfono", "+58 414 1234567"),
        ("Documento de identidad", "V-12.345.678"), ("Cuenta debitada", "0172****1025"), ("Concepto", "alquiler"),
    ], top=280)
    got = fields(page(rows, height=1600))
    assert got["monto"] == "1234.56"
    assert got["referencia"] == "000123456789"
    assert got["fecha"] == "2025-03-05"
    assert got["hora_operacion"] == "14:32"
    assert got["banco_destino"] == "Banesco"
    assert got["telefono"] == "04141234567"
    assert got["cedula"] == "V-12345678"
    assert got["cuenta_origen"] == "0172****1025"
    assert got["banco_origen"] == "Bancamiga"
    assert got["concepto"] == "alquiler"
    assert got["tipo_transaccion"] == "pago_movil"
    assert got["canal_pago"] == "Bancamiga"


def test_two_column_stacked_layout_pairs_by_column():
    rows = [
        (300, [(40, "Monto", 22), (380, "Referencia", 22)]),
        (330, [(40, "250,00 Bs"), (380, "000987654321")]),
        (400, [(40, "Fecha", 22), (380, "Hora", 22)]),
        (430, [(40, "12/01/2025"), (380, "09:15")]),
        (500, [(40, "Banco receptor", 22), (380, "Celular destino", 22)]),
        (530, [(40, "0102 - Banco de"), (380, "0424-1112233")]),
        (560, [(40, "Venezuela")]),
    ]
    got = fields(page(rows))
    assert got["monto"] == "250.00"
    assert got["referencia"] == "000987654321"
    assert got["fecha"] == "2025-01-12"
    assert got["hora_operacion"] == "09:15"
    assert got["banco_destino"] == "Banco de Venezuela"
    assert got["telefono"] == "04241112233"


def test_wrapped_bank_value_on_two_lines():
    ocr = bdv_page(**{"Banco:": "0108 - BBVA", "Concepto:": None})
    line = next(l for l in ocr["lineas"] if "BBVA" in l["texto"])
    y = line["coordenadas"][3] + 2
    ocr["palabras_detectadas"].append({"texto": "PROVINCIAL", "confianza": 0.99, "coordenadas": [370, y, 500, y + 28]})
    ocr["lineas"].append({"texto": "PROVINCIAL", "palabras": [len(ocr["palabras_detectadas"]) - 1],
                          "coordenadas": [370, y, 500, y + 28]})
    assert fields(ocr)["banco_destino"] == "BBVA Provincial"


def test_wrapped_bank_name_without_code():
    rows = rows_stacked([("Banco destino", ["Banco Nacional de", "Crédito"]), ("Teléfono", "04141234567")])
    assert fields(page(rows))["banco_destino"] == "Banco Nacional de Crédito"


def test_bnc_total_and_commission_are_not_the_amount():
    pairs = [("Cuenta debitada:", "Cta. Corriente BNC: ***3317"),
             ("Beneficiario:", ["0414-7650321 INVERSIONES PEÑA C.A. V-", "18234567 - MERCANTIL"]),
             ("Monto:", "Bs. 230,00"), ("Comisión:", "Bs. 0,69"), ("Total:", "Bs. 230,69"),
             ("Referencia:", "583920174"), ("Código autorizador:", "715302")]
    got = fields(page([(90, [(30, "Su pago movil ha sido Ejecutado exitosamente")])] + rows_stacked(pairs, top=150)))
    assert got["monto"] == "230.00"
    assert got["referencia"] == "583920174"
    assert got["telefono"] == "04147650321"
    assert got["cedula"] == "V-18234567"
    assert got["beneficiario"] == "INVERSIONES PEÑA C.A."
    assert got["banco_destino"] == "Banco Mercantil"
    assert got["banco_origen"] == "Banco Nacional de Crédito"
    assert got["cuenta_origen"] == "***3317"
    assert got["canal_pago"] == "BNC"
    assert got["tipo_transaccion"] == "pago_movil"


def test_without_monto_label_total_is_not_taken_and_code_is_not_a_reference():
    pairs = [("Comisión:", "Bs. 0,69"), ("Total:", "Bs. 230,69"), ("Código autorizador:", "715302")]
    result = extract_fields(page(rows_stacked(pairs)))
    assert result["extracted_fields"]["monto"] is None
    assert result["extracted_fields"]["referencia"] is None
    assert result["validacion"]["requiere_revision"] is True
    assert set(result["validacion"]["campos_faltantes"]) >= {"monto", "referencia"}


def test_status_bar_time_ignored_but_labelled_time_used():
    ocr = page([status_bar("10:15"), *rows_lv([("Fecha:", "14/05/2025"), ("Monto:", "10,00")])])
    assert fields(ocr)["hora_operacion"] is None
    ocr = page([status_bar("10:15"), *rows_lv([("Fecha:", "14/05/2025"), ("Hora:", "14:32")])])
    assert fields(ocr)["hora_operacion"] == "14:32"


def test_time_in_the_date_value():
    got = fields(page(rows_stacked([("Fecha:", "14/05/2025 2:32 p. m.")])))
    assert got["fecha"] == "2025-05-14" and got["hora_operacion"] == "14:32"


def test_reference_that_is_a_phone_is_rejected_with_reason():
    result = extract_fields(page(rows_lv([("Referencia:", "04147650321"), ("Monto:", "Bs. 10,00")])))
    assert result["extracted_fields"]["referencia"] is None
    assert "teléfono" in result["campos_detalle"]["referencia"]["motivo"]


def test_reference_equal_to_the_phone_elsewhere_is_rejected():
    ocr = page(rows_lv([("Operación:", "18234567"), ("Identificación:", "18234567"), ("Destino:", "04147650321")]))
    result = extract_fields(ocr)
    assert result["extracted_fields"]["cedula"] == "18234567"
    assert result["extracted_fields"]["referencia"] is None
    assert "cédula" in result["campos_detalle"]["referencia"]["motivo"]


@pytest.mark.parametrize("value", ["01020123450123456789", "14/05/2025", "230,00", "V-18234567", "0102****4821"])
def test_reference_is_never_an_account_date_amount_or_cedula(value):
    assert fields(page(rows_lv([("Referencia:", value)])))["referencia"] is None


@pytest.mark.parametrize("label", ["Operacion:", "0peración:", "Nro.Referencia:", "N° de operación:", "Ref:",
                                   "Nº Referencia", "NUMERO DE REFERENCIA", "Referenc1a:"])
def test_reference_label_tolerates_ocr_noise(label):
    assert fields(page(rows_lv([(label, "51920384756")])))["referencia"] == "51920384756"


def test_phone_of_the_payer_is_not_the_destination_phone():
    got = fields(page(rows_lv([("Teléfono origen:", "04141112233"), ("Teléfono destino:", "04147650321")])))
    assert got["telefono"] == "04147650321"
    got = fields(page(rows_lv([("Teléfono origen:", "04141112233")])))
    assert got["telefono"] is None


def test_beneficiary_block_mercantil_columns():
    rows = [
        (60, [(40, "Mercantil", 40), (500, "Envío de Tpago")]),
        (200, [(20, "Desde mi cuenta", 22), (280, "Se Envió (Bs.)", 22), (540, "Al beneficiario", 22)]),
        (226, [(20, "Cuenta de Ahorro - ••••5810", 22), (280, "315,00", 22), (540, "0414 - ••••321", 22)]),
        (250, [(540, "Banco Mercantil, C.A. S.A.C.A.", 20)]),
        (272, [(540, "Banco Universal", 20)]),
        (294, [(540, "Panadería Sol", 20)]),
        (316, [(540, "V - 18.234.567", 20)]),
        (360, [(20, "Concepto", 22), (280, "Nro. Referencia", 22), (540, "Fecha y hora", 22)]),
        (386, [(20, "205 17", 22), (280, "51920384756", 22), (540, "14/05/2025 - 07:41:15", 22)]),
    ]
    got = fields(page(rows, width=816, height=1056))
    assert got["monto"] == "315.00"
    assert got["referencia"] == "51920384756"
    assert got["telefono"] is None  # masked
    assert got["cedula"] == "V-18234567"
    assert got["beneficiario"] == "Panadería Sol"
    assert got["banco_destino"] == "Banco Mercantil"
    assert got["banco_origen"] == "Banco Mercantil"
    assert got["cuenta_origen"] == "••••5810"
    assert got["fecha"] == "2025-05-14"
    assert got["hora_operacion"] == "07:41"
    assert got["concepto"] == "205 17"
    assert got["canal_pago"] == "Tpago"


def test_unlabelled_amount_ambiguity_gives_none():
    rows = [(200, [(100, "187,43 Bs", 30)]), (300, [(100, "99,00 Bs", 30)])]
    result = extract_fields(page(rows))
    assert result["extracted_fields"]["monto"] is None
    assert "varios" in result["campos_detalle"]["monto"]["motivo"]


def test_labelled_amount_beats_unlabelled_and_requires_decimals():
    assert fields(page([(150, [(100, "5,00 Bs", 30)]), *rows_lv([("Monto:", "Bs. 7,50")])]))["monto"] == "7.50"
    assert fields(page(rows_lv([("Monto:", "10500")])))["monto"] is None


def test_concept_saying_transferencia_does_not_set_the_type():
    got = fields(page([(100, [(200, "Pago Móvil")]), *rows_lv([("Concepto:", "transferencia a Juan")])]))
    assert got["tipo_transaccion"] == "pago_movil"
    assert got["concepto"] == "transferencia a Juan"


def test_destination_bank_in_body_is_not_the_channel():
    got = fields(bdv_page(**{"Banco:": "0134 - BANESCO"}))
    assert got["canal_pago"] == "PagomóvilBDV"
    assert got["banco_destino"] == "Banesco"


def test_generic_transfer_rif_comprobante_accounts():
    rows = [(100, [(60, "Banco Exterior", 34)]), (170, [(200, "Transferencia exitosa")]),
            (210, [(200, "Comprobante N° 12345678")])]
    rows += rows_lv([("Fecha", "15 de junio de 2025"), ("Monto", "1.500,00 Bs"), ("Cuenta origen", "0115****1234"),
                     ("Cuenta destino", "0191****5678"), ("Beneficiario", "Inversiones Peña C.A."),
                     ("RIF", "J-40123456-7")], top=280)
    got = fields(page(rows))
    assert got["comprobante"] == "12345678"
    assert got["identificador_fiscal"] == "J-40123456-7"
    assert got["cuenta_origen"] == "0115****1234" and got["banco_origen"] == "Banco Exterior"
    assert got["cuenta_destino"] == "0191****5678" and got["banco_destino"] == "Banco Nacional de Crédito"
    assert got["beneficiario"] == "Inversiones Peña C.A."
    assert got["tipo_transaccion"] == "transferencia"
    assert got["fecha"] == "2025-06-15"
    assert got["cedula"] is None and got["canal_pago"] is None


def test_merged_label_value_segments_and_inline_colon():
    rows = [(300 + i * 40, [(30, text)]) for i, text in enumerate(
        ["Monto: Bs. 162,66", "Referencia: 54539000", "Fecha: 03/03/25", "Concepto: Pago señora Inés",
         "Banco destino 0104 - Venezolano de Crédito", "C.I.: V29247922"])]
    got = fields(page(rows))
    assert got["monto"] == "162.66"
    assert got["referencia"] == "54539000"
    assert got["fecha"] == "2025-03-03"
    assert got["concepto"] == "Pago señora Inés"
    assert got["banco_destino"] == "Venezolano de Crédito"
    assert got["cedula"] == "V-29247922"


def test_cropped_receipt_first_row_is_not_a_status_bar():
    rows = [(10, [(60, "Su pago movil ha sido", 24)]), (40, [(60, "Ejecutado exitosamente", 24)])]
    rows += rows_stacked([("Monto:", "Bs. 12,00")], top=120)
    assert fields(page(rows, height=800))["tipo_transaccion"] == "pago_movil"


def test_two_columns_read_as_one_segment_are_split_by_column():
    rows = [
        (300, [(40, "Teléfono", 22), (262, "Documento de identidad", 22)]),
        # columns so close that the two values form one segment "+58 426 4909668 861664"
        (330, [(40, "+58 426 4909668", 28), (262, "861664", 28)]),
    ]
    got = fields(page(rows))
    assert got["telefono"] == "04264909668"
    assert got["cedula"] == "861664"


def test_two_labels_glued_inside_one_word_are_split_by_column():
    # A thumbnail's small text: the recognizer read "identidad" + "Cuenta" as one word and lost
    # the label's last letter; the values below each stay in their own column.
    rows = [
        (300, [(40, "Documento de identidafCuenta debitada", 22)]),
        (330, [(40, "V-8083985", 28), (262, "0172****3230", 28)]),
    ]
    got = fields(page(rows))
    assert got["cedula"] == "V-8083985"
    assert got["cuenta_origen"] == "0172****3230"


def test_a_glued_word_that_is_not_two_labels_is_left_whole():
    rows = [(300, [(40, "Documento de identidafCuentas varias", 22)]), (330, [(40, "V-8083985", 28)])]
    assert fields(page(rows))["cedula"] is None


# Labels as the recognizer misreads them in thumbnails (benchmarks/accuracy.py --variants thumbnail).
def test_phone_label_misread_in_small_text():
    rows = [(300, [(40, "Banco destino", 22), (262, "Teléfana", 22)]),
            (330, [(40, "0169 - R4", 28), (262, "04266555149", 28)])]
    assert fields(page(rows))["telefono"] == "04266555149"


def test_reference_label_misread_in_small_text_is_not_the_concept():
    rows = [(300, [(30, "Concepto", 22), (250, "Nre. Referencia", 22), (480, "Fecha y hara", 22)]),
            (330, [(30, "204 17", 28), (250, "52019384721", 28), (480, "14/03/2025-09:12:05", 28)])]
    got = fields(page(rows))
    assert got["referencia"] == "52019384721"
    assert got["concepto"] == "204 17"


def test_wrapped_value_line_that_looks_like_a_label_is_a_continuation():
    rows = [(300, [(40, "Banco receptor", 22)]), (330, [(40, "0156 - 100%")]), (360, [(40, "Banco")]),
            (420, [(40, "Teléfono", 22)]), (450, [(40, "0414-1234567")])]
    got = fields(page(rows))
    assert got["banco_destino"] == "100% Banco"
    assert got["telefono"] == "04141234567"


def test_masked_phone_digits_are_not_a_bank_name():
    rows = rows_stacked([("Al beneficiario", ["0424 - …100", "Banco Nacional de Crédito Banco", "Universal",
                                              "Martín Pérez", "V-9874385"])])
    got = fields(page(rows))
    assert got["banco_destino"] == "Banco Nacional de Crédito"
    assert got["beneficiario"] == "Martín Pérez"
    assert got["telefono"] is None


def test_a_label_of_several_words_tight_under_a_value_is_a_label():
    """wa-1772291232 in a gallery viewer: the page rescaled, boxes grew tall and the destination
    phone's label sat 7 px under the origin phone; taken for its second line, the phone was lost."""
    rows = rows_stacked([("NÚMERO DE CELULAR DE ORIGEN", "04**-***4222"), ("NÚMERO DE CELULAR DE DESTINO", "04143297358")],
                        label_h=35, value_h=35, gap=2, pitch=-2)
    assert fields(page(rows))["telefono"] == "04143297358"


def test_a_label_farther_from_a_value_than_its_own_label_is_a_label():
    """wa-1775613172 in a gallery viewer: "IDENTIFICACIÓN" 6 px under the phone (a fifth of a
    line), the phone 2 px under its own label: the next row's label, not the phone's second line."""
    rows = rows_stacked([("NÚMERO CELULAR DE DESTINO", "04127965701"), ("IDENTIFICACIÓN", "V31031988")],
                        label_h=31, value_h=31, gap=1, pitch=2)
    assert fields(page(rows))["cedula"] == "V-31031988"


def test_a_bank_name_set_wide_in_the_header_is_not_a_label_and_its_value():
    """Generated receipt 1031 in a gallery viewer: the header "Banco Plaza", its words a little
    apart, was read as the label "Banco" with the value "Plaza": a wrong destination bank."""
    rows = [(90, [(131, "Banco", 37), (250, "Plaza", 37)])] + rows_lv([("Monto", "533,32 Bs"), ("Ref.", "335432621444")])
    assert fields(page(rows))["banco_destino"] is None


def test_a_bank_label_with_its_value_in_the_other_column_is_still_a_label():
    assert fields(page(rows_lv([("Banco", "Mercantil"), ("Referencia:", "335432621444")])))["banco_destino"] == "Banco Mercantil"


@pytest.mark.parametrize("value,date,time", [
    ("25/11/20251:11p.m.", "2025-11-25", "13:11"),
    ("28/02/202611:06:44AM", "2026-02-28", "11:06"),
    # wa-1772902968 on a large screen: "07/03/26 01:02pm" read without its space, once year 2601.
    ("07/03/2601:02pm", "2026-03-07", "13:02"),
])
def test_date_and_time_glued_by_ocr(value, date, time):
    got = fields(page(rows_stacked([("Fecha:", value)])))
    assert got["fecha"] == date and got["hora_operacion"] == time


@pytest.mark.parametrize("value", ["31/08/2025 10:20p.1 m", "31/08/2025 10:20 p", "31/08/2025 10:20 a.1m."])
def test_time_with_an_unreadable_meridiem_is_not_read_as_24_hours(value):
    """Regression: "10:20p.1 m" (p.m. misread on a small screenshot) gave 10:20 instead of 22:20."""
    got = fields(page(rows_stacked([("Fecha:", value)])))
    assert got["fecha"] == "2025-08-31" and got["hora_operacion"] is None


def test_tab_bar_words_are_not_receipt_text():
    rows = rows_lv([("Monto:", "Bs. 12,00"), ("Referencia:", "12345678")])
    rows.append((1200, [(20, "Inicio", 20), (200, "Transferencias", 20), (420, "Pagos", 20), (600, "Más", 20)]))
    assert fields(page(rows))["tipo_transaccion"] is None


def test_unknown_label_is_not_taken_as_a_value():
    got = extract_fields_from_text("Concepto:\nTipo:  Pago Móvil\nMonto:  Bs. 10,00")["extracted_fields"]
    assert got["concepto"] is None
    assert got["tipo_transaccion"] == "pago_movil"


def test_long_value_joined_to_its_label_is_split_at_the_wide_gap():
    # "Beneficiario   Jesús Márquez Mendoza": the value is so long the OCR row is one segment
    words = [("Beneficiario", 28, 164), ("Jesús", 194, 270), ("Márquez", 285, 391), ("Mendoza", 407, 513)]
    ocr = {"palabras_detectadas": [{"texto": t, "confianza": 0.98, "coordenadas": [x1, 602, x2, 631]}
                                   for t, x1, x2 in words], "image_size": [540, 1170]}
    assert fields(ocr)["beneficiario"] == "Jesús Márquez Mendoza"


def test_same_priority_conflict_gives_none_with_reason():
    result = extract_fields(page(rows_lv([("Referencia:", "11112222"), ("Nro. Referencia:", "33334444")])))
    assert result["extracted_fields"]["referencia"] is None
    assert "conflicto" in result["campos_detalle"]["referencia"]["motivo"]


def test_extract_fields_from_text_uses_the_same_engine():
    text = "PagomóvilBDV Personas\n187,43 Bs\nFecha:    14/05/2025\nOperación:    004512398761\nDestino:   0414-7650321"
    got = extract_fields_from_text(text)["extracted_fields"]
    assert got["monto"] == "187.43" and got["referencia"] == "004512398761"
    assert got["telefono"] == "04147650321" and got["fecha"] == "2025-05-14"
    assert got["banco_origen"] == "Banco de Venezuela"
    assert ocr_result_from_text("a  b")["lineas"][0]["texto"] == "a b"


@pytest.mark.parametrize("ocr", [
    None, {}, [], "texto", {"palabras_detectadas": None}, {"palabras_detectadas": [None, 1, "x", {}]},
    {"palabras_detectadas": [{"texto": "Monto:", "coordenadas": [0, 0, "a", 1]}]},
    {"palabras_detectadas": [{"texto": "Monto:", "coordenadas": [float("nan"), 0, 10, 10], "confianza": 1}]},
    {"palabras_detectadas": [{"texto": "x" * 10_000, "coordenadas": [0, 0, 10, 10]}], "lineas": "bad"},
    {"palabras_detectadas": [{"texto": "Referencia:", "coordenadas": [0, 0, 10, 10]}], "lineas": [{"palabras": [5, -1, "a"]}]},
])
def test_hostile_ocr_input_never_raises(ocr):
    result = extract_fields(ocr)
    assert set(result["extracted_fields"]) == set(FIELDS)


def test_hostile_text_values():
    text = "\n".join(["Referencia:  '; DROP TABLE pagos; --", "Concepto:  <script>alert(1)</script>",
                      "Monto:  " + "9" * 5000, "Teléfono:  ٠٤١٤٧٦٥٠٣٢١", "Fecha:  99/99/9999"] + ["ruido"] * 3000)
    got = extract_fields_from_text(text)["extracted_fields"]
    assert got["referencia"] is None and got["monto"] is None and got["fecha"] is None
    assert got["telefono"] == "04147650321"  # unicode digits are digits
    assert got["concepto"] == "<script>alert(1)</script>"  # data, to be escaped by whoever renders it


# ------------------------------------------------------------------------------------------------
# End to end (slow): OCR engine + extraction
# ------------------------------------------------------------------------------------------------
CORE = ("monto", "referencia", "telefono", "cedula", "fecha", "banco_origen", "banco_destino")
REAL_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "receipts" / "real"


def _same(field, expected, got):
    from benchmarks.accuracy import same_value

    return same_value(field, expected, got)


def _layouts():
    try:
        from tools.receipt_generator import LAYOUTS
    except ImportError:
        return []
    return list(LAYOUTS)


@pytest.mark.slow
@pytest.mark.parametrize("layout", _layouts() or ["none"])
def test_generated_receipts_end_to_end(engine, layout):
    generator = pytest.importorskip("tools.receipt_generator")
    for seed in range(3):
        receipt = generator.generate_receipt(1000 + seed, layout=layout, variant="clean")
        got = extract_fields(engine.procesar_imagen(receipt.image_bytes, "ultra_rapido"))["extracted_fields"]
        for name in FIELDS:
            expected, value = receipt.fields[name], got[name]
            if name in CORE:
                assert _same(name, expected, value), (receipt.filename, name, expected, value)
            else:  # never a wrong value; a missing one is tolerated outside the core fields
                assert value is None or _same(name, expected, value), (receipt.filename, name, expected, value)


@pytest.mark.slow
def test_real_receipts_end_to_end(engine):
    if not (REAL_DIR / "labels.json").is_file():
        pytest.skip(f"real receipts not available at {REAL_DIR}")
    from benchmarks.accuracy import load_folder

    for path, expected, _ in load_folder(REAL_DIR):
        got = extract_fields(engine.procesar_imagen(path.read_bytes(), "ultra_rapido"))["extracted_fields"]
        for name, want in expected.items():
            assert _same(name, want, got[name]), (path.name, name)


def test_real_labels_file_is_never_copied_into_the_repository():
    root = Path(__file__).resolve().parent.parent
    if not (REAL_DIR / "labels.json").is_file():
        pytest.skip("real receipts not available")
    labels = json.loads((REAL_DIR / "labels.json").read_text(encoding="utf-8"))
    secrets = {v for label in labels.values() for k, v in label.items()
               if k in ("referencia", "telefono", "cedula") and isinstance(v, str) and len(v) >= 8}
    mine = [root / p for p in ("validador_ocr.py", "config/extraction_rules.json", "benchmarks/accuracy.py",
                               "tests/test_extractor.py", "tests/test_rules.py", "tests/test_normalizers.py",
                               "tests/test_validador.py")] + sorted((root / "extraction").glob("*.py"))
    for path in mine:
        text = path.read_text(encoding="utf-8")
        assert not any(secret in text for secret in secrets), path
