"""Labels wrapped over two lines in their column ("Documento de" / "identidad"): the receipt
generator draws them so, and the extractor reads the two lines as one label and finds its value
below the second line or right of the first; text that only looks like such a pair stays apart."""
from __future__ import annotations

import pytest

import config
from extraction import extract_fields
from extraction.banks import get_catalog
from extraction.layout import build_document
from extraction.rules import get_registry
from extraction.run import Extraction
from tools.receipt_generator import generate_receipt
from tools.receipt_layouts import Canvas, RowStyle, available_font_families, lv_row, stacked_row
from validador_ocr import ValidadorOCR

CHAR_W = 13  # px per character of 28 px high text in the fake font


# ------------------------------------------------------------------------------------------------
# Fake OCR results
# ------------------------------------------------------------------------------------------------
def page(lines, width=720, height=1280):
    """An OCR result from lines of cells (x, y, text, h): x is the left edge, or negative for a
    right edge (right-aligned at width + x); y the top, h the text height. Cells of one line may
    sit at different heights, as when OCR puts one column's text on another column's line."""
    words, out_lines = [], []
    for cells in lines:
        members = []
        for x, y, text, h in cells:
            char_w = CHAR_W * h / 28
            if x < 0:
                x = width + x - char_w * len(text)
            for token in text.split(" "):
                members.append(len(words))
                words.append({"texto": token, "confianza": 0.97,
                              "coordenadas": [int(x), y, int(x + char_w * len(token)), y + h]})
                x += char_w * (len(token) + 1)
        boxes = [words[i]["coordenadas"] for i in members]
        out_lines.append({"texto": " ".join(words[i]["texto"] for i in members), "palabras": members,
                          "coordenadas": [min(b[0] for b in boxes), min(b[1] for b in boxes),
                                          max(b[2] for b in boxes), max(b[3] for b in boxes)]})
    return {"palabras_detectadas": words, "lineas": out_lines, "image_size": [width, height]}


def header():
    return [[(100, 60, "Bancamiga", 34)], [(250, 130, "Pago Móvil", 28)]]


def stacked(x, y, label_lines, value, gap=0, label_h=22, value_h=28):
    """A stacked row: label lines `gap` px apart, the value 8 px under the last one (as
    tests/test_extractor.py's rows_stacked)."""
    lines = []
    for text in label_lines:
        lines.append([(x, y, text, label_h)])
        y += label_h + gap
    lines.append([(x, y - gap + 8, value, value_h)])
    return lines


def fields(ocr):
    return extract_fields(ocr)["extracted_fields"]


def label_texts(ocr):
    """The texts of the segments the extraction takes as labels."""
    catalog = get_catalog()
    rules = get_registry().current
    doc = build_document(ocr, rules.settings)
    run = Extraction(doc, rules, catalog, ValidadorOCR(config.EXTRACTION_CONFIG, catalog))
    return {run.doc.segments[i].text for i in run.labels}


# ------------------------------------------------------------------------------------------------
# Joined
# ------------------------------------------------------------------------------------------------
def test_stacked_label_on_two_lines_finds_its_value_below_the_second():
    ocr = page(header() + stacked(40, 300, ["Monto"], "Bs. 1.234,56")
               + stacked(40, 400, ["Documento de", "identidad"], "V-12.345.678")
               + stacked(40, 520, ["Concepto"], "alquiler"))
    got = fields(ocr)
    assert got["cedula"] == "V-12345678"
    assert got["monto"] == "1234.56"
    assert got["concepto"] == "alquiler"


def test_two_columns_second_line_read_on_the_other_columns_value_line():
    # As PP-OCR reads Bancamiga's two columns: "identidad" joins the line of the phone number
    # printed under "Teléfono" in the left column.
    ocr = page(header() + [
        [(40, 300, "Teléfono", 24), (380, 300, "Documento de", 24)],
        [(40, 334, "0414-1234567", 28), (380, 324, "identidad", 24)],
        [(380, 358, "V-9.331.045", 28)],
        [(40, 410, "Cuenta origen", 24), (380, 410, "Concepto", 24)],
        [(40, 444, "0172****4045", 28), (380, 444, "condominio", 28)],
    ])
    got = fields(ocr)
    assert got["cedula"] == "V-9331045"
    assert got["telefono"] == "04141234567"
    assert got["cuenta_origen"] == "0172****4045"
    assert got["concepto"] == "condominio"


def test_label_left_on_two_lines_finds_its_value_right_of_the_first():
    ocr = page(header() + [
        [(40, 300, "Fecha", 28), (-40, 300, "14/05/2025", 28)],
        [(40, 360, "Documento de", 28), (-40, 360, "V-12345678", 28)],
        [(40, 390, "identidad", 28)],
        [(40, 450, "Concepto", 28), (-40, 450, "alquiler", 28)],
    ])
    got = fields(ocr)
    assert got["cedula"] == "V-12345678"
    assert got["fecha"] == "2025-05-14"
    assert got["concepto"] == "alquiler"


def test_first_line_may_be_a_shorter_label():
    # "Cuenta" alone is a label (of an account); with its second line it is the debited account.
    ocr = page(header() + stacked(40, 300, ["Monto"], "Bs. 1.234,56")
               + stacked(40, 400, ["Cuenta", "debitada"], "0172****1025"))
    assert "Cuenta debitada" in label_texts(ocr)
    assert fields(ocr)["cuenta_origen"] == "0172****1025"


# ------------------------------------------------------------------------------------------------
# Not joined (each page also holds a wrapped label that must be joined, so that these cases
# test what the join leaves alone, not the absence of any join)
# ------------------------------------------------------------------------------------------------
def _control():
    return stacked(40, 900, ["Documento de", "identidad"], "V-12.345.678")


def test_two_label_value_rows_close_together_stay_two_rows():
    # "Cuenta destino" is a label, but here each line is a label with its own value.
    ocr = page(header() + [
        [(40, 300, "Cuenta", 28), (-40, 300, "0102****1234", 28)],
        [(40, 330, "Destino", 28), (-40, 330, "0414-1234567", 28)],
    ] + _control())
    got = fields(ocr)
    assert got["cuenta_origen"] == "0102****1234"
    assert got["cuenta_destino"] is None
    assert got["telefono"] == "04141234567"
    assert got["cedula"] == "V-12345678"


def test_value_as_close_as_a_wrapped_line_completing_its_own_label_is_a_value():
    # "Concepto pago" reads as "Concepto de pago", a label of the same rule as "Concepto": the
    # word is the value, printed as close under its label as Bancamiga does in WhatsApp copies.
    ocr = page(header() + [[(40, 300, "Concepto", 28)], [(40, 336, "pago", 28)]] + _control())
    got = fields(ocr)
    assert got["concepto"] == "pago"
    assert got["cedula"] == "V-12345678"


def test_label_under_a_value_ending_in_a_label_word():
    # "Banco" ends the bank value above ("0156 - 100%" / "Banco"): it is no label whose value
    # "Documento de" would be.
    ocr = page(header() + [
        [(40, 300, "Fecha", 24), (380, 300, "Banco destino", 24)],
        [(40, 334, "17/02/2024", 28), (380, 334, "0156 - 100%", 28)],
        [(380, 364, "Banco", 28)],
        [(40, 420, "Celular destino", 24), (380, 420, "Documento de", 24)],
        [(40, 454, "0424-4229918", 28), (380, 444, "identidad", 24)],
        [(380, 478, "V-11.970.477", 28)],
    ])
    got = fields(ocr)
    assert got["cedula"] == "V-11970477"
    assert got["banco_destino"] == "100% Banco"
    assert got["telefono"] == "04244229918"


def test_value_under_its_label_is_not_the_first_line_of_a_label():
    ocr = page(header() + stacked(40, 300, ["Concepto"], "Documento de")
               + [[(40, 358, "identidad", 28)]] + _control())
    labels = label_texts(ocr)
    assert "Documento de identidad" in labels  # the control, at the bottom
    assert "Concepto" in labels
    got = fields(ocr)
    assert got["concepto"] == "Documento de identidad"
    assert got["cedula"] == "V-12345678"


def test_value_second_line_is_not_the_first_line_of_a_label():
    ocr = page(header() + stacked(40, 300, ["Concepto"], "Pago del")
               + [[(40, 360, "Documento de", 28)], [(40, 390, "identidad", 28)]] + _control())
    got = fields(ocr)
    assert got["concepto"] == "Pago del Documento de"
    assert got["cedula"] == "V-12345678"


@pytest.mark.parametrize("second", [
    (100, 322, "referencia", 22),  # not where the first line starts
    (40, 322, "referencia", 36),  # larger text: a heading, a value
    (40, 334, "referencia", 22),  # a row's spacing below, not a wrapped line's
], ids=["shifted", "larger", "farther"])
def test_lines_not_set_as_one_label_stay_apart(second):
    ocr = page(header() + [[(40, 300, "Número de", 22)], [second]] + _control())
    labels = label_texts(ocr)
    assert "Documento de identidad" in labels
    assert "Número de referencia" not in labels


def test_second_line_adding_no_label_word_is_not_joined():
    # "Monto Bs." is the label "Monto" again: the amount below it is not searched under "Bs.".
    ocr = page(header() + [[(40, 300, "Monto", 22)], [(40, 322, "Bs.", 22)], [(40, 352, "1.234,56", 28)]]
               + _control())
    labels = label_texts(ocr)
    assert "Documento de identidad" in labels
    assert "Monto Bs." not in labels


# ------------------------------------------------------------------------------------------------
# The generator draws wrapped labels
# ------------------------------------------------------------------------------------------------
def _canvas():
    return Canvas(540, 1200, "#ffffff", available_font_families()[0])


def test_stacked_row_wraps_a_label_wider_than_its_column():
    c = _canvas()
    x, width = 24, 120
    items, _next = stacked_row(c, 100, "Documento de identidad", "V-12345678",
                               RowStyle(label_size=13, value_size=16.5), x=x, width=width)
    labels = [item for item in c.items if item not in items]
    assert [item.text for item in labels] == ["Documento de", "identidad"]
    assert all(item.box[2] <= (x + width) * c.s for item in labels)
    assert items[0].box[1] > labels[-1].box[3]  # the value below the label's last line


def test_lv_row_wraps_a_label_that_would_run_into_its_value():
    c = _canvas()
    items, _next = lv_row(c, 100, "Número de teléfono del beneficiario", "+58 412 1234567", RowStyle())
    labels = [item for item in c.items if item not in items]
    assert len(labels) > 1
    value = items[0].box
    assert all(label.box[2] < value[0] for label in labels)
    assert abs(items[0].cy - labels[0].cy) < 1  # the value on the label's first line


# ------------------------------------------------------------------------------------------------
# Real OCR
# ------------------------------------------------------------------------------------------------
def test_bancamiga_receipt_with_a_wrapped_label_gives_the_cedula(engine):
    receipt = generate_receipt(174, layout="bancamiga", variant="whatsapp")
    assert "identidad" in receipt.lines  # the label's second line, alone on its printed line
    result = engine.procesar_imagen(receipt.image_bytes, "ultra_rapido")
    assert receipt.fields["cedula"] == "V-9331045"
    assert fields(result)["cedula"] == receipt.fields["cedula"]
