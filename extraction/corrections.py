"""A field value set by hand, read the way extraction reads it: the field's own normalizer (from its
rules, highest priority first) and validators, then the checks every final value gets. A correction
cannot store what the extraction would have refused, and comes out in the same canonical form
("1.234,56" -> "1234.56", "v 12.345.678" -> "V-12345678", "Banesco" -> the catalog name)."""
from __future__ import annotations

from typing import Any

import config
from extraction.banks import BankCatalog, get_catalog
from extraction.normalizers import MAX_INPUT_CHARS, fold
from extraction.rules import RuleSet, get_registry
from extraction.run import normalize_value, validate_value
from validador_ocr import ValidadorOCR


def read_correction(field: str, raw: Any, rules: RuleSet | None = None,
                    catalog: BankCatalog | None = None) -> tuple[str | None, str | None]:
    """(canonical value, None), or (None, why it is refused). None or "" clears the field: (None, None)."""
    if field not in config.FIELDS:
        return None, f"campo desconocido; los campos son {', '.join(config.FIELDS)}"
    if raw is None:
        return None, None
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        return None, "el valor debe ser un texto, un número o null"
    text = str(raw).strip()
    if not text:
        return None, None
    if len(text) > MAX_INPUT_CHARS:
        return None, f"valor de más de {MAX_INPUT_CHARS} caracteres"
    ruleset = rules or get_registry().current
    bank_catalog = catalog or get_catalog()
    validator = ValidadorOCR(config.EXTRACTION_CONFIG, bank_catalog)
    own = sorted((r for r in ruleset.rules if r.field == field), key=lambda r: -r.priority)
    normalizing = [r for r in own if r.normalizer]
    keywords = {value: value for r in own for value, _phrases in r.keywords}
    if normalizing:
        reasons: list[str] = []
        for rule in normalizing:
            value, reason = normalize_value(rule, text, bank_catalog)
            if value is not None:
                reason = validate_value(rule, value, validator, bank_catalog)
                if reason is None:
                    break
            reasons.append(reason or "valor ilegible")
        else:
            return None, reasons[0]
    elif keywords:
        # A catalog field (tipo_transaccion, canal_pago): one of the values its rules give.
        by_fold = {fold(v): v for v in keywords}
        value = by_fold.get(fold(text))
        if value is None:
            return None, f"debe ser uno de: {', '.join(sorted(keywords))}"
    else:
        value = text
    reason = validator.validate_field(field, value)
    return (None, reason) if reason else (value, None)
