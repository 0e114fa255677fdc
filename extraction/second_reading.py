"""A second, closer look at a page for the key values its first reading left unread or unsure.

The first reading (the profile's own detection canvas and recognizers) may leave a key value
- unsure: `lectura_dudosa` on a field of the rules' `doubt_null_fields`, returned as None; or
- unread: the field's label stands on the page with nothing readable beside or under it
  (`etiqueta sin valor legible`) on a field of the rules' `second_reading_fields`: a photographed
  BDV screen's underlined green reference is no text to the detector at its usual scale.

Such a page is read again closer (`AplicadorOCR.procesar_lote(..., closer=True)`, ocr/reading.py),
its fields extracted again, and each field asked for is taken from the second reading only when
that reading is sure of it (no `requiere_revision`) and agrees with the other fields. Everything
else stays the first reading's: its words, lines and other fields. `campos_detalle` says which
values came from the second reading and what the first one made of them.
"""
from __future__ import annotations

import copy
from typing import Any

from extraction.extractor import DOUBTFUL_READING, LABEL_WITHOUT_VALUE, cross_check
from extraction.rules import RuleSet


def fields_to_reread(extraction: dict[str, Any], rules: RuleSet, more_pixels: bool = True) -> list[str]:
    """The fields a second, closer reading of the page is asked for, in the rules' field order.

    `more_pixels`: the page has more pixels than the first reading's detector saw, so a larger
    canvas shows the detector something new. Without them (a thumbnail, already enlarged for the
    first reading) a value nobody detected stays undetected; only an unsure one is read again,
    by the other recognizer."""
    fields, detail = extraction["extracted_fields"], extraction.get("campos_detalle", {})
    wanted = []
    for name, value in fields.items():
        reason = detail.get(name, {}).get("motivo")
        if value is not None:
            continue
        if (reason == DOUBTFUL_READING and name in rules.doubt_null_fields) or \
                (more_pixels and reason == LABEL_WITHOUT_VALUE and name in rules.second_reading_fields):
            wanted.append(name)
    return wanted


def take_second_reading(first: dict[str, Any], second: dict[str, Any], fields: list[str],
                        validator: Any) -> dict[str, Any]:
    """`first` with each of `fields` that `second` read sure of taken from it, validated again."""
    merged = copy.deepcopy(first)
    extracted, detail = merged["extracted_fields"], merged["campos_detalle"]
    taken = []
    for name in fields:
        value = second["extracted_fields"].get(name)
        found = second.get("campos_detalle", {}).get(name, {})
        if value is None or found.get("requiere_revision"):
            continue
        if cross_check(name, value, {k: v for k, v in extracted.items() if k != name and v is not None}):
            continue
        before = detail.get(name, {})
        detail[name] = {**found, "segunda_lectura": {
            "motivo_primera": before.get("motivo"),
            "valor_leido_primera": before.get("valor_leido"),
        }}
        extracted[name] = value
        taken.append(name)
    merged["validacion"] = validator.validar(extracted, detail)
    merged.setdefault("metadatos_extraccion", {})["segunda_lectura"] = {"pedidos": fields, "tomados": taken}
    return merged
