"""The extraction engine: OCR words and lines in, the 16 receipt fields out.

How a receipt is read:

1. Layout (extraction/layout.py). Words (with pixel boxes) are grouped into lines, and each line
   into *segments*: a label and its value on the same row ("Fecha:" ... "14/05/2025") are two
   segments; so are the columns of a multi-column receipt.
2. Labels. A segment that starts with a known label phrase (any rule's, or an exclusion such as
   "Comisión" or "Código autorizador") is a label. Matching is accent/case-insensitive and
   tolerates OCR noise (one edit in words of 5+ letters, "N°"/"Nro."/"Número" as one token).
   When phrases compete for one segment the longest wins ("Teléfono origen" beats "Teléfono").
3. Values. For each rule, the value of a label is looked for where the rule says: in the same
   segment after a colon, to the right on the same line (optionally continued on the next line
   when it wraps: "0108 - BBVA" / "PROVINCIAL"), or below the label in its column (stacked
   layouts, optionally a block of several lines). The rule's regex finds the value in that
   text; its normalizer and validators accept or reject it, with a reason.
4. Fallbacks rank below labelled values: an unlabelled amount with "Bs" (not claimed by any
   label such as "Total"), the bank named in the header (the app: "PagomóvilBDV"), the bank of an
   account prefix ("0102****4821"), keywords ("Pago Móvil" -> pago_movil).
5. Resolution. Per field the highest priority wins; equal-priority candidates that disagree
   give None (a wrong value is worse than a missing one). Cross-field checks reject a reference
   that equals the phone, the cédula or an account.

The phone status bar and an app's tab bar (chrome, marked by the layout) are ignored by every
unlabelled rule, so the status bar's clock is never the operation time.
"""
from __future__ import annotations

import re
import time
from typing import Any

import config
from extraction.banks import BankCatalog, get_catalog
from extraction.layout import build_document
from extraction.normalizers import MASK_CHARS, compact
from extraction.pairing import pair_by_type
from extraction.rules import RuleSet, get_registry
from extraction.run import Candidate, Extraction, Rejection
from extraction.strategies import (
    below_gap_check,
    keyword_index,
    run_derived,
    run_header_bank,
    run_keyword,
    run_label_rules,
    run_page_bank,
    run_unlabelled,
)
from validador_ocr import ValidadorOCR, reference_conflicts


# ------------------------------------------------------------------------------------------------
# Resolution
# ------------------------------------------------------------------------------------------------
def _resolve(cands: list[Candidate], margin: float) -> tuple[Candidate | None, str | None]:
    if not cands:
        return None, None
    top = max(c.priority for c in cands)
    group = sorted((c for c in cands if c.priority == top), key=lambda c: -c.confidence)
    best = group[0]
    rivals = [c for c in group if c.value != best.value]
    if rivals and best.confidence - rivals[0].confidence < margin:
        values = ", ".join(dict.fromkeys(c.value for c in group))
        return None, f"valores en conflicto con igual prioridad: {values[:100]}"
    return best, None


def extract_fields(ocr_result: dict[str, Any], rules: RuleSet | None = None, *, catalog: BankCatalog | None = None,
                   _status_bar: bool = True) -> dict[str, Any]:
    """The 16 receipt fields of one OCR result, with per-field detail and validation.

    Returns {"extracted_fields", "campos_detalle", "validacion", "metadatos_extraccion"}.
    """
    started = time.perf_counter()
    ruleset = rules or get_registry().current
    bank_catalog = catalog or get_catalog()
    validator = ValidadorOCR(config.EXTRACTION_CONFIG, bank_catalog)
    doc = build_document(ocr_result if isinstance(ocr_result, dict) else {}, ruleset.settings, _status_bar)
    run = Extraction(doc, ruleset, bank_catalog, validator)

    run_label_rules(run)
    pair_by_type(run)
    below_gap_check(run)
    for rule in ruleset.rules:
        if rule.strategy == "unlabelled":
            run_unlabelled(run, rule)
        elif rule.strategy == "header_bank":
            run_header_bank(run, rule)
        elif rule.strategy == "page_bank":
            run_page_bank(run, rule)
        elif rule.strategy == "keyword":
            run_keyword(run, rule, keyword_index(ruleset, rule))

    fields = list(config.EXTRACTION_CONFIG["fields"])
    margin = ruleset.settings["conflict_margin"]
    chosen: dict[str, Candidate] = {}
    reasons: dict[str, str] = {}

    def resolve(name: str) -> None:
        cands = list(run.candidates.get(name, []))
        while cands:
            best, reason = _resolve(cands, margin)
            if best is None:
                reasons[name] = reason or ""
                chosen.pop(name, None)
                return
            conflict = cross_check(name, best.value, {k: v.value for k, v in chosen.items() if k != name})
            if not conflict:
                chosen[name] = best
                return
            run.rejections.setdefault(name, []).append(Rejection(name, best.rule, best.priority, best.raw, conflict))
            cands = [c for c in cands if c.value != best.value]
        chosen.pop(name, None)

    order = [f for f in fields if f not in ("referencia", "comprobante")] + ["referencia", "comprobante"]
    for name in order:
        resolve(name)
    derived = ruleset.rules_by_strategy("derived")
    for rule in derived:
        run_derived(run, rule, chosen)
    for name in {rule.field for rule in derived}:
        resolve(name)

    extracted: dict[str, Any] = {}
    detail: dict[str, Any] = {}
    for name in fields:
        cand = chosen.get(name)
        if cand is not None:
            extracted[name] = cand.value
            detail[name] = {
                "texto_original": cand.raw,
                "valor": cand.value,
                "confianza_ocr": cand.conf_ocr,
                "confianza_regla": cand.conf_rule,
                "confianza": cand.confidence,
                "coordenadas": cand.box,
                "regla": cand.rule,
            }
            if cand.repair:
                detail[name]["reparacion_ocr"] = cand.repair
            if cand.notes:
                detail[name].update(cand.notes)
            doubt = _doubtful_characters(cand, run.candidates.get(name, []), ruleset.settings["doubt_char_confidence"])
            if doubt:
                detail[name].update({"requiere_revision": True, "motivo_revision": DOUBTFUL_READING,
                                     "caracteres_dudosos": doubt})
                if name in ruleset.doubt_null_fields and any(_unchecked(d["texto"]) for d in doubt):
                    # A payment is matched on these: a person reads the value, the service guesses none.
                    extracted[name] = None
                    detail[name]["valor_leido"] = detail[name]["valor"]
                    detail[name].update({"valor": None, "motivo": DOUBTFUL_READING})
            continue
        extracted[name] = None
        rejected = sorted(run.rejections.get(name, []), key=lambda r: -r.priority)
        if name in reasons and reasons[name]:
            detail[name] = {"valor": None, "motivo": reasons[name]}
        elif rejected:
            top = rejected[0]
            detail[name] = {"valor": None, "motivo": top.reason, "texto_original": top.raw, "regla": top.rule}
        elif (label := _label_without_value(run, name)) is not None:
            # The page says the value is there: a person (or a second, closer reading) can find it.
            detail[name] = {"valor": None, "motivo": LABEL_WITHOUT_VALUE, "etiqueta": label}
        else:
            detail[name] = {"valor": None, "motivo": "no se encontró etiqueta ni valor reconocible"}
    validacion = validator.validar(extracted, detail)
    return {
        "extracted_fields": extracted,
        "campos_detalle": detail,
        "validacion": validacion,
        "metadatos_extraccion": {
            "reglas_id": ruleset.id,
            "reglas_version": ruleset.version,
            "tiempo_ms": round((time.perf_counter() - started) * 1000, 3),
        },
    }


DOUBTFUL_READING = "lectura_dudosa"
LABEL_WITHOUT_VALUE = "etiqueta sin valor legible"


def _label_without_value(run: Extraction, name: str) -> str | None:
    """The text of a label of field `name` standing on its own (alone or with a colon) when no
    value was read for it, else None."""
    for occs in run.labels.values():
        for occ in occs:
            if occ.ref.field == name and occ.strong and occ.inline is None:
                return occ.segment.text[:80]
    return None


# Fields whose validator confirms what was read: a bank is recognised by name or code against the
# catalog (fuzzy), so an unsure letter in "Mercantil" changes nothing.
_CONFIRMED_BY_VALIDATOR = {"banco_origen", "banco_destino", "tipo_transaccion", "canal_pago"}


def _weakest_character(word: Any) -> float:
    """The probability of a word's least sure character: the recognizer's own when it gave one,
    otherwise the lowest the word's mean allows (all other characters certain, one carries all the
    shortfall: a 12-digit reference at 0.957 may hide a digit read at 0.49)."""
    if word.weakest is not None:
        return word.weakest
    return max(0.0, 1.0 - len(word.text) * (1.0 - word.confidence))


def _unchecked(text: str) -> bool:
    """A run of digits and nothing else: where the doubt falls, no validator can tell. A number
    printed with its separators ("E-88.245.609", "2.708,00") has them checked by its normalizer
    (groups of three, two decimals), and OCR's doubt in such words mostly sits on the separators."""
    return bool(re.fullmatch(r"\d+", text))


def _in_value(text: str, value: str) -> bool:
    """Whether a word is part of the value (a beneficiary block's phone and bank are not)."""
    if any(ch.isdigit() for ch in value) and not re.search(r"[^\W\d_]{2}", value):
        key, whole = re.sub(r"\D", "", text), re.sub(r"\D", "", value)
    else:
        key, whole = compact(text), compact(value)
    return bool(key) and (key in whole or whole in key)


def _doubtful_characters(chosen: Candidate, rivals: list[Candidate], threshold: float) -> list[dict[str, Any]]:
    """The words of a value in which OCR may have read a character unsure (below `threshold`),
    unless a validator or a second reading confirms it: the same value read from other, sure
    words. Each is {"texto", "confianza" (the word's), "confianza_minima_caracter" (the least
    one of its characters may have), "posicion" (where in the value as read)}."""
    if chosen.field in _CONFIRMED_BY_VALIDATOR or chosen.kind == "derived":
        return []
    if chosen.field.startswith("cuenta_") and any(ch in MASK_CHARS for ch in chosen.value):
        return []  # OCR reads the mask's bullets unsure; a masked account is only a hint anyway
    unsure = [w for w in chosen.words if _weakest_character(w) < threshold and _in_value(w.text, chosen.value)]
    if not unsure:
        return []
    own = {id(w) for w in chosen.words}
    for other in rivals:
        if other is not chosen and other.value == chosen.value and other.words \
                and not own & {id(w) for w in other.words} \
                and min(_weakest_character(w) for w in other.words) >= threshold:
            return []  # a second, sure reading of the same value elsewhere on the page
    out = []
    for word in unsure:
        position = chosen.raw.find(word.text)
        out.append({"texto": word.text, "confianza": round(word.confidence, 4),
                    "confianza_minima_caracter": round(_weakest_character(word), 4),
                    "posicion": position if position >= 0 else None})
    return out


def cross_check(name: str, value: str, others: dict[str, Any]) -> str | None:
    if name in ("referencia", "comprobante"):
        return reference_conflicts(value, others)
    if name == "cedula" and others.get("telefono") and re.sub(r"\D", "", value) == others["telefono"]:
        return "la cédula coincide con el teléfono"
    return None


# ------------------------------------------------------------------------------------------------
# Plain text entry point (same engine)
# ------------------------------------------------------------------------------------------------
CHAR_WIDTH, LINE_HEIGHT, LINE_PITCH, CELL_GAP = 10, 20, 30, 60


def ocr_result_from_text(text: str) -> dict[str, Any]:
    """An OCR-shaped document from plain text: one line per text line; two or more spaces, a tab
    or " | " separate cells (as a wide gap between label and value columns would)."""
    text = text if isinstance(text, str) else ""
    words: list[dict[str, Any]] = []
    lines: list[dict[str, Any]] = []
    width = 0
    for row, line in enumerate(text[:200_000].splitlines()[:2000]):
        y1 = 10 + row * LINE_PITCH
        x = 10
        members = []
        for cell in re.split(r"\t+| {2,}| \| ", line):
            tokens = cell.split()
            if not tokens:
                continue
            for token in tokens:
                x2 = x + CHAR_WIDTH * len(token)
                members.append(len(words))
                words.append({"texto": token, "confianza": 1.0, "coordenadas": [x, y1, x2, y1 + LINE_HEIGHT]})
                x = x2 + 6
            x += CELL_GAP
        if members:
            boxes = [words[i]["coordenadas"] for i in members]
            lines.append({"texto": " ".join(words[i]["texto"] for i in members), "palabras": members,
                          "coordenadas": [boxes[0][0], y1, boxes[-1][2], y1 + LINE_HEIGHT]})
            width = max(width, boxes[-1][2])
    height = 10 + min(len(text[:200_000].splitlines()), 2000) * LINE_PITCH
    return {"palabras_detectadas": words, "lineas": lines, "image_size": [width + 10, height]}


def extract_fields_from_text(text: str, rules: RuleSet | None = None) -> dict[str, Any]:
    """`extract_fields` on plain text (no status bar: a text has no phone chrome)."""
    return extract_fields(ocr_result_from_text(text), rules, _status_bar=False)

