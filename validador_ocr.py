"""Validation of extracted receipt values and of a whole extraction result.

Every check reads its limits from `config.EXTRACTION_CONFIG['validation']` (phone prefixes and
length, cédula letters and length, amount range, reference length, date age). A validator
returns None when the value is acceptable and a short Spanish reason when it is not, so that a
rejected value always leaves an explanation behind.

`ValidadorOCR.validar(extracted_fields, campos_detalle)` produces the `validacion` block:
`{"valido", "campos_faltantes", "advertencias", "requiere_revision"}`.
"""
from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any, Callable

import config

def _cfg(section: str, cfg: dict | None) -> dict:
    base = cfg if cfg is not None else config.EXTRACTION_CONFIG.get("validation", {})
    return base.get(section, {}) if isinstance(base, dict) else {}


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


# ------------------------------------------------------------------------------------------------
# Field validators: (value, validation config, context) -> None | reason
# ------------------------------------------------------------------------------------------------
def validate_phone(value: Any, cfg: dict | None = None, context: dict | None = None) -> str | None:
    rules = _cfg("telefono_venezolano", cfg)
    length = int(rules.get("length", 11))
    prefixes = tuple(rules.get("prefixes", ()))
    if not _is_text(value) or not value.isdigit() or not value.isascii():
        return "teléfono no numérico"
    if len(value) != length:
        return f"teléfono de {len(value)} dígitos (se esperan {length})"
    if prefixes and not value.startswith(prefixes):
        return f"prefijo {value[:4]} no es de telefonía móvil venezolana"
    return None


def validate_cedula(value: Any, cfg: dict | None = None, context: dict | None = None) -> str | None:
    rules = _cfg("cedula_venezolana", cfg)
    if not _is_text(value):
        return "cédula vacía"
    match = re.fullmatch(r"(?:([A-Z])-)?([0-9]+)", value)
    if not match or not value.isascii():
        return "cédula con formato inválido"
    letters = {p.rstrip("-").upper() for p in rules.get("prefixes", ())}
    if match.group(1) and letters and match.group(1) not in letters:
        return f"letra de cédula {match.group(1)} no permitida"
    digits = match.group(2)
    low, high = int(rules.get("min_length", 6)), int(rules.get("max_length", 10))
    if not low <= len(digits) <= high:
        return f"cédula de {len(digits)} dígitos (se esperan {low}-{high})"
    if int(digits) == 0:
        return "cédula en ceros"
    return None


def validate_amount(value: Any, cfg: dict | None = None, context: dict | None = None) -> str | None:
    rules = _cfg("monto", cfg)
    if not _is_text(value) or not re.fullmatch(r"[0-9]+\.[0-9]{2}", value):
        return "monto con formato inválido"
    amount = float(value)
    low, high = float(rules.get("min", 0.01)), float(rules.get("max", 1_000_000_000))
    if amount < low:
        return f"monto {value} por debajo del mínimo {low}"
    if amount > high:
        return f"monto {value} por encima del máximo {high}"
    return None


def looks_like_date_digits(digits: str) -> bool:
    """'14052025' or '2025-05-14' written without separators: a date, not a reference."""
    for day, month, year in ((digits[:2], digits[2:4], digits[4:]), (digits[6:], digits[4:6], digits[:4])):
        if len(digits) == 8 and year.isdigit() and 2000 <= int(year) <= 2040:
            try:
                date(int(year), int(month), int(day))
                return True
            except ValueError:
                continue
    return False


def validate_reference(value: Any, cfg: dict | None = None, context: dict | None = None) -> str | None:
    rules = _cfg("referencia", cfg)
    if not _is_text(value) or not value.isdigit() or not value.isascii():
        return "referencia no numérica"
    low, high = int(rules.get("min_length", 4)), int(rules.get("max_length", 20))
    if not low <= len(value) <= high:
        return f"referencia de {len(value)} dígitos (se esperan {low}-{high})"
    if validate_phone(value, cfg) is None:
        return "la referencia es un número de teléfono"
    if len(value) == 20 and value.startswith("01"):
        return "la referencia es un número de cuenta"
    if looks_like_date_digits(value):
        return "la referencia es una fecha"
    if set(value) == {"0"}:
        return "referencia en ceros"
    return None


def reference_conflicts(value: str, fields: dict[str, Any]) -> str | None:
    """A reference equal to another extracted number is that number, not a reference."""
    if not value:
        return None
    if fields.get("telefono") and fields["telefono"] == value:
        return "la referencia coincide con el teléfono"
    cedula = fields.get("cedula")
    if cedula and re.sub(r"\D", "", str(cedula)) == value:
        return "la referencia coincide con la cédula"
    for account in ("cuenta_origen", "cuenta_destino"):
        digits = re.sub(r"\D", "", str(fields.get(account) or ""))
        if digits and len(digits) >= 8 and (value in digits or digits in value):
            return "la referencia coincide con una cuenta"
    return None


def validate_date(value: Any, cfg: dict | None = None, context: dict | None = None) -> str | None:
    rules = _cfg("fecha", cfg)
    if not _is_text(value) or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        return "fecha con formato inválido"
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        return "fecha inexistente"
    today = (context or {}).get("today") or date.today()
    if parsed > today + timedelta(days=1):  # one day of slack for time zones
        return f"fecha {value} en el futuro"
    max_age = int(rules.get("max_age_days", 3650))
    if parsed < today - timedelta(days=max_age):
        return f"fecha {value} con más de {max_age} días"
    return None


def validate_time(value: Any, cfg: dict | None = None, context: dict | None = None) -> str | None:
    if not _is_text(value) or not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", value):
        return "hora inválida"
    return None


def validate_rif(value: Any, cfg: dict | None = None, context: dict | None = None) -> str | None:
    if not _is_text(value) or not re.fullmatch(r"[JGVEPC]-[0-9]{8}-[0-9]", value):
        return "RIF con formato inválido"
    return None


def validate_account(value: Any, cfg: dict | None = None, context: dict | None = None) -> str | None:
    if not _is_text(value) or not re.fullmatch(r"[0-9]+|[0-9]*(?:[*•·…●∙⋅.]*[*•·…●∙⋅][*•·…●∙⋅.]*|\.{2,}|[xX]{2,})[0-9]+",
                                                value):
        return "cuenta con formato inválido"
    if value.isdigit() and len(value) != 20:
        return "cuenta completa debe tener 20 dígitos"
    if sum(c.isdigit() for c in value) < 4:
        return "cuenta con menos de 4 dígitos visibles"
    prefix = re.match(r"[0-9]{4}", value)
    if prefix and prefix.group().startswith("04"):
        return "la cuenta es un teléfono enmascarado"
    catalog = (context or {}).get("catalog")
    if prefix and catalog is not None and prefix.group().startswith("01") and not catalog.by_code(prefix.group()):
        return f"código de banco {prefix.group()} desconocido"
    return None


def validate_bank(value: Any, cfg: dict | None = None, context: dict | None = None) -> str | None:
    if not _is_text(value):
        return "banco vacío"
    catalog = (context or {}).get("catalog")
    if catalog is None:
        from extraction.banks import get_catalog

        catalog = get_catalog()
    if not any(bank.name == value for bank in catalog.banks):
        return f"banco {value!r} no está en el catálogo"
    return None


def validate_bank_code(value: Any, cfg: dict | None = None, context: dict | None = None) -> str | None:
    catalog = (context or {}).get("catalog")
    if catalog is None:
        from extraction.banks import get_catalog

        catalog = get_catalog()
    if not _is_text(value) or catalog.by_code(value) is None:
        return f"código de banco {value!r} desconocido"
    return None


def validate_text(value: Any, cfg: dict | None = None, context: dict | None = None) -> str | None:
    if not _is_text(value):
        return "texto vacío"
    if len(value) > 140:
        return "texto demasiado largo"
    if re.search(r"[\x00-\x08\x0b-\x1f\x7f]", value):
        return "texto con caracteres de control"
    if len(re.findall(r"[^\W_]", value)) < 2:
        return "texto sin contenido legible"
    return None


def validate_name(value: Any, cfg: dict | None = None, context: dict | None = None) -> str | None:
    reason = validate_text(value, cfg, context)
    if reason:
        return reason
    if len(re.findall(r"[^\W\d_]", value)) < 3:
        return "nombre sin letras suficientes"
    if len(value.split()) > 8:
        return "nombre demasiado largo"
    return None


def validate_keyword(value: Any, cfg: dict | None = None, context: dict | None = None) -> str | None:
    if not _is_text(value) or not re.fullmatch(r"[a-z_]{2,40}", value):
        return "valor de catálogo inválido"
    return None


VALIDATORS: dict[str, Callable[..., str | None]] = {
    "phone": validate_phone,
    "cedula": validate_cedula,
    "amount": validate_amount,
    "reference": validate_reference,
    "date": validate_date,
    "time": validate_time,
    "rif": validate_rif,
    "account": validate_account,
    "bank": validate_bank,
    "bank_code": validate_bank_code,
    "text": validate_text,
    "name": validate_name,
    "keyword": validate_keyword,
}

# Checks applied to a field's final value whatever rule produced it.
FIELD_VALIDATORS: dict[str, tuple[str, ...]] = {
    "monto": ("amount",),
    "referencia": ("reference",),
    "telefono": ("phone",),
    "cedula": ("cedula",),
    "fecha": ("date",),
    "banco_origen": ("bank",),
    "banco_destino": ("bank",),
    "concepto": ("text",),
    "beneficiario": ("name",),
    "cuenta_origen": ("account",),
    "cuenta_destino": ("account",),
    "tipo_transaccion": ("keyword",),
    "hora_operacion": ("time",),
    "identificador_fiscal": ("rif",),
    "comprobante": ("reference",),
    "canal_pago": ("text",),
}


class ValidadorOCR:
    """Validates values and whole results with the limits of `EXTRACTION_CONFIG`."""

    def __init__(self, extraction_config: dict | None = None, catalog: Any = None) -> None:
        self.config = extraction_config if extraction_config is not None else config.EXTRACTION_CONFIG
        self.validation = self.config.get("validation", {})
        self.catalog = catalog

    def _context(self, context: dict | None) -> dict:
        merged = {"catalog": self.catalog} if self.catalog is not None else {}
        merged.update(context or {})
        return merged

    def check(self, validator: str, value: Any, context: dict | None = None) -> str | None:
        """Run one named validator; unknown names are a programming error (KeyError)."""
        try:
            return VALIDATORS[validator](value, self.validation, self._context(context))
        except (TypeError, ValueError) as exc:  # hostile values never escape as exceptions
            return f"valor inválido ({exc.__class__.__name__})"

    def validate_field(self, field_name: str, value: Any, context: dict | None = None) -> str | None:
        for validator in FIELD_VALIDATORS.get(field_name, ()):
            reason = self.check(validator, value, context)
            if reason:
                return reason
        return None

    def validar(self, extracted_fields: dict[str, Any], campos_detalle: dict[str, Any] | None = None) -> dict[str, Any]:
        """The `validacion` block of an extraction result."""
        detail = campos_detalle or {}
        required = list(self.config.get("required_fields", []))
        min_confidence = float(self.config.get("min_field_confidence", 0.0))
        missing = [name for name in required if extracted_fields.get(name) in (None, "")]
        warnings: list[str] = []
        invalid = False
        for name in missing:
            reason = (detail.get(name) or {}).get("motivo")
            warnings.append(f"{name}: campo requerido no encontrado" + (f" ({reason})" if reason else ""))
        for name, value in extracted_fields.items():
            if value in (None, ""):
                continue
            reason = self.validate_field(name, value)
            if reason:
                invalid = True
                warnings.append(f"{name}: {reason}")
        low_confidence = []
        for name in required:
            info = detail.get(name) or {}
            confidence = info.get("confianza")
            if extracted_fields.get(name) not in (None, "") and isinstance(confidence, (int, float)) \
                    and confidence < min_confidence:
                low_confidence.append(name)
                warnings.append(f"{name}: confianza {confidence:.2f} por debajo del mínimo {min_confidence:.2f}")
        doubtful = []
        for name, info in detail.items():
            if isinstance(info, dict) and info.get("motivo_revision") == "lectura_dudosa":
                doubtful.append(name)
                chars = ", ".join(str(c.get("texto")) for c in info.get("caracteres_dudosos") or [])
                warnings.append(f"{name}: lectura_dudosa ({chars})")
        result = {
            "valido": not missing and not invalid,
            "campos_faltantes": missing,
            "advertencias": warnings,
            "requiere_revision": bool(missing or low_confidence or invalid or doubtful),
        }
        if doubtful:
            result["campos_dudosos"] = doubtful  # read unsure and confirmed by nothing: a person decides
        return result
