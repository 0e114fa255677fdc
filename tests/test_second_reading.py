"""The second, closer reading of a page whose first reading left a key value unread or unsure."""
from __future__ import annotations

import random
from pathlib import Path

import pytest

import config
from extraction import extract_fields
from extraction.banks import get_catalog
from extraction.extractor import LABEL_WITHOUT_VALUE
from extraction.rules import get_registry
from extraction.second_reading import fields_to_reread, take_second_reading
from main_ocr_process import ImagenLote
from tests.test_extractor import page, rows_lv, rows_stacked
from validador_ocr import ValidadorOCR

WHATSAPP_DIR = Path(__file__).resolve().parents[2] / "shared" / "receipts" / "whatsapp"


def validator():
    return ValidadorOCR(config.EXTRACTION_CONFIG, get_catalog())


def unsure(ocr, text, weakest):
    for word in ocr["palabras_detectadas"]:
        if word["texto"] == text:
            word["confianza_minima_caracter"] = weakest
    return ocr


# ------------------------------------------------------------------------------------------------
# Which values are asked for
# ------------------------------------------------------------------------------------------------
def test_a_reference_label_standing_without_a_value_asks_for_a_second_reading():
    first = extract_fields(page(rows_stacked([("Monto:", "Bs. 10,00"), ("NÚMERO DE REFERENCIA", "")])))
    assert first["campos_detalle"]["referencia"]["motivo"] == LABEL_WITHOUT_VALUE
    assert first["campos_detalle"]["referencia"]["etiqueta"] == "NÚMERO DE REFERENCIA"
    assert fields_to_reread(first, get_registry().current) == ["referencia"]


def test_a_page_with_no_more_pixels_than_the_detector_saw_is_not_searched_again():
    """A thumbnail was enlarged for the first reading: a larger canvas shows nothing new."""
    first = extract_fields(page(rows_stacked([("Monto:", "Bs. 10,00"), ("NÚMERO DE REFERENCIA", "")])))
    assert fields_to_reread(first, get_registry().current, more_pixels=False) == []


def test_a_key_value_read_unsure_asks_for_a_second_reading():
    ocr = unsure(page(rows_lv([("Monto:", "Bs. 10,00"), ("Referencia:", "069757009883")])), "069757009883", 0.62)
    first = extract_fields(ocr)
    assert first["campos_detalle"]["referencia"]["motivo"] == "lectura_dudosa"
    assert fields_to_reread(first, get_registry().current) == ["referencia"]
    # The other recognizer may read it sure whatever the page's size.
    assert fields_to_reread(first, get_registry().current, more_pixels=False) == ["referencia"]


def test_a_phone_label_without_a_phone_asks_for_nothing():
    """'Destino' labels an account as often as a phone: a transfer has no phone to look for."""
    first = extract_fields(page(rows_lv([("Monto:", "Bs. 10,00"), ("Referencia:", "12345678"), ("Destino", "")])))
    assert first["extracted_fields"]["telefono"] is None
    assert fields_to_reread(first, get_registry().current) == []


def test_a_page_read_whole_asks_for_nothing():
    first = extract_fields(page(rows_lv([("Monto:", "Bs. 10,00"), ("Referencia:", "12345678")])))
    assert fields_to_reread(first, get_registry().current) == []


# ------------------------------------------------------------------------------------------------
# What is taken from it
# ------------------------------------------------------------------------------------------------
def test_a_sure_second_reading_fills_the_value_and_says_so():
    first = extract_fields(unsure(page(rows_lv([("Monto:", "Bs. 10,00"), ("Referencia:", "069757009883")])),
                                  "069757009883", 0.62))
    second = extract_fields(page(rows_lv([("Monto:", "Bs. 10,00"), ("Referencia:", "060757009883")])))
    merged = take_second_reading(first, second, ["referencia"], validator())
    assert merged["extracted_fields"]["referencia"] == "060757009883"
    detail = merged["campos_detalle"]["referencia"]
    assert detail["segunda_lectura"] == {"motivo_primera": "lectura_dudosa", "valor_leido_primera": "069757009883"}
    assert "requiere_revision" not in detail
    assert "referencia" not in merged["validacion"].get("campos_dudosos", [])
    assert merged["metadatos_extraccion"]["segunda_lectura"] == {"pedidos": ["referencia"], "tomados": ["referencia"]}
    assert first["extracted_fields"]["referencia"] is None  # the first extraction is left as it was


def test_an_unsure_second_reading_is_not_taken():
    first = extract_fields(page(rows_stacked([("Monto:", "Bs. 10,00"), ("NÚMERO DE REFERENCIA", "")])))
    second = extract_fields(unsure(page(rows_stacked([("Monto:", "Bs. 10,00"), ("NÚMERO DE REFERENCIA", "060503659437")])),
                                   "060503659437", 0.5))
    merged = take_second_reading(first, second, ["referencia"], validator())
    assert merged["extracted_fields"]["referencia"] is None
    assert merged["campos_detalle"]["referencia"]["motivo"] == LABEL_WITHOUT_VALUE
    assert merged["metadatos_extraccion"]["segunda_lectura"]["tomados"] == []


def test_a_second_reading_is_only_taken_for_the_values_asked_for():
    first = extract_fields(page(rows_lv([("Monto:", "Bs. 10,00"), ("Referencia:", "12345678")])))
    second = extract_fields(page(rows_lv([("Monto:", "Bs. 99,00"), ("Referencia:", "12345678")])))
    assert take_second_reading(first, second, [], validator())["extracted_fields"]["monto"] == "10.00"


def test_a_second_reading_that_disagrees_with_the_other_fields_is_not_taken():
    """A reference equal to the page's phone is the phone read twice, not a reference."""
    first = extract_fields(page(rows_stacked([("Teléfono:", "04143297358"), ("NÚMERO DE REFERENCIA", "")])))
    second = extract_fields(page(rows_stacked([("Teléfono:", "04143297358"), ("NÚMERO DE REFERENCIA", "04143297358")])))
    assert take_second_reading(first, second, ["referencia"], validator())["extracted_fields"]["referencia"] is None


# ------------------------------------------------------------------------------------------------
# Real OCR
# ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_closer_reading_is_a_real_reading_of_the_page(engine):
    from tools.receipt_generator import generate_receipt

    receipt = generate_receipt(3, variant="clean")
    first = engine.procesar_imagen(receipt.image_bytes, "ultra_rapido")
    closer = engine.procesar_lote([receipt.image_bytes], "ultra_rapido", closer=True)[0]
    assert closer["image_sha256"] == first["image_sha256"]
    got = extract_fields(closer)["extracted_fields"]
    assert got["monto"] == receipt.fields["monto"] and got["referencia"] == receipt.fields["referencia"]


def test_profiles_without_a_closer_canvas_take_no_second_look(engine):
    assert engine.reads_closer("ultra_rapido") and not engine.reads_closer("balanced")
    with pytest.raises(ValueError):
        engine.procesar_lote([b"not read"], "balanced", closer=True)


@pytest.mark.slow
def test_a_second_reading_that_fails_leaves_the_first_standing(orquestador, monkeypatch):
    from tools.receipt_generator import generate_receipt

    image = generate_receipt(4, variant="clean").image_bytes
    ocr = orquestador.aplicador.procesar_imagen(image, "ultra_rapido")
    first = extract_fields(ocr)
    first["extracted_fields"]["referencia"] = None
    first["campos_detalle"]["referencia"] = {"valor": None, "motivo": LABEL_WITHOUT_VALUE, "etiqueta": "Referencia"}

    def broken(*args, **kwargs):
        raise RuntimeError("onnxruntime fell over")

    monkeypatch.setattr(orquestador.aplicador, "procesar_lote", broken)
    again = orquestador.extraer_campos([image], [ocr], "ultra_rapido", first=[first])
    assert again[0] is first or again[0]["extracted_fields"] == first["extracted_fields"]


@pytest.mark.slow
@pytest.mark.skipif(not (WHATSAPP_DIR / "labels.json").is_file(), reason="whatsapp receipts not present")
@pytest.mark.parametrize("name,reference", [("wa-1772291232", "060593659437"), ("wa-1772896364", "060666464389")])
def test_a_photographed_green_reference_is_read_the_second_time(orquestador, name, reference):
    """BDV's underlined green reference, photographed off the screen: no text to the detector at
    960x544, read by the closer reading (1280x736, the small recognizer)."""
    from PIL import Image

    from tools.receipt_variants import apply_arrival

    path = next(WHATSAPP_DIR.glob(name + "*"))
    with Image.open(path) as image:
        data, _, _ = apply_arrival(image.convert("RGB"), "photo", random.Random(f"{path.name}:photo"))
    document = orquestador.procesar_lote_imagenes([ImagenLote("photo.jpg", data)], "ultra_rapido")[0]
    assert document["extracted_fields"]["referencia"] == reference
    detail = document["campos_detalle"]["referencia"]
    assert detail["segunda_lectura"]["motivo_primera"] == LABEL_WITHOUT_VALUE
    assert document["metadatos_extraccion"]["segunda_lectura"]["tomados"] == ["referencia"]
