"""Real OCR on generated receipts of every layout: words, coordinates and reading-order rows."""
import re

import pytest

from tools.receipt_generator import LAYOUTS, generate_receipt


def _compact(text):
    # PP-OCR may drop a space after "Bs." or around "-": compare rows without spaces.
    return re.sub(r"\s+", "", text)


def _assert_reads_receipt(result, receipt):
    rows = [_compact(line["texto"]) for line in result["lineas"]]
    for key in ("monto", "referencia"):
        value = receipt.fields[key]
        if value is None:
            continue
        digits = re.sub(r"\D", "", value)
        # The value as printed, e.g. "1.234,56" for monto "1234.56".
        tokens = [token for line in receipt.lines for token in line.split() if re.sub(r"\D", "", token) == digits]
        assert tokens, f"{key} {value} is not printed as one token"
        assert any(tokens[0] in row for row in rows), (key, tokens[0], rows)
    width, height = result["image_size"]
    assert [width, height] == list(receipt.size)
    for word in result["palabras_detectadas"]:
        x1, y1, x2, y2 = word["coordenadas"]
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
        assert 0.0 < word["confianza"] <= 1.0
    # Reading order: rows go down the page, words within a row go right.
    tops = [line["coordenadas"][1] for line in result["lineas"]]
    assert tops == sorted(tops)
    for line in result["lineas"]:
        lefts = [result["palabras_detectadas"][i]["coordenadas"][0] for i in line["palabras"]]
        assert lefts == sorted(lefts)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_ultra_rapido_reads_every_layout(engine, layout):
    receipt = generate_receipt(11, layout=layout, variant="whatsapp")
    result = engine.procesar_imagen(receipt.image_bytes, "ultra_rapido")
    _assert_reads_receipt(result, receipt)


def test_reference_row_keeps_label_and_value_together(engine):
    receipt = generate_receipt(5, layout="bdv_light", variant="clean")
    result = engine.procesar_imagen(receipt.image_bytes, "ultra_rapido")
    reference = receipt.fields["referencia"]
    rows = result["structured_text_ocr"].splitlines()
    # The label and its value on one row, the value right after the label (the copy icon after
    # it may be read as a weak glyph or two).
    assert any(row.split()[:2] == ["Operación:", reference] for row in rows), rows


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["balanced", "high_confidence"])
def test_slower_profiles_read_generated_receipts(engine, profile):
    receipt = generate_receipt(21, layout="bnc", variant="clean")
    result = engine.procesar_imagen(receipt.image_bytes, profile)
    assert result["profile_used"] == profile
    _assert_reads_receipt(result, receipt)
