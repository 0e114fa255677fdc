"""Strict readers for the values printed in statements: amounts, dates and references.

Statements are read exactly as their format declares, never guessed: a `1.136,52` in a format
with a decimal comma is 1136.52, and the same text in a format with a decimal point is an error,
not 1.13652. Each function raises ValueError with a short Spanish reason; the caller adds the line.
"""
from __future__ import annotations

import re
from datetime import date, datetime, time
from decimal import Decimal

# re.ASCII everywhere: \d alone also matches Arabic-Indic and other Unicode digits ("١٢٣,٤٥" would be
# read as 123.45); a statement's numbers are ASCII digits, anything else is refused.
_SCIENTIFIC = re.compile(r"^\s*[+-]?\d+(?:[.,]\d+)?[eE][+-]?\d+\s*$", re.ASCII)
_MAX_AMOUNT_CHARS = 40
_CENT = Decimal("0.01")


def parse_amount(text: object, decimal_separator: str) -> Decimal:
    """An amount printed with `decimal_separator` ("," or "."), optional thousands and sign."""
    if isinstance(text, bool):
        raise ValueError(f"monto no numérico: {text!r}")
    if isinstance(text, (int, float)):  # a spreadsheet cell: its text form is the exact value
        if not abs(text) < 1e15:  # also NaN and infinity
            raise ValueError(f"monto fuera de rango: {text!r}")
        return _two_places(Decimal(repr(text)), text)
    raw = str(text).strip().replace("\u00a0", "")
    if not raw or len(raw) > _MAX_AMOUNT_CHARS:
        raise ValueError(f"monto vacío o demasiado largo: {raw[:_MAX_AMOUNT_CHARS]!r}")
    if _SCIENTIFIC.match(raw):
        raise ValueError(f"monto en notación científica: {raw!r}")
    thousands = "." if decimal_separator == "," else ","
    sign = ""
    body = raw
    if body[0] in "+-":
        sign, body = ("-" if body[0] == "-" else ""), body[1:].strip()
    elif body.endswith("-"):  # "1.234,56-" as some banks print debits
        sign, body = "-", body[:-1].strip()
    pattern = (rf"\d{{1,3}}(?:{re.escape(thousands)}\d{{3}})+|\d+")
    match = re.fullmatch(rf"({pattern})(?:{re.escape(decimal_separator)}(\d{{1,2}}))?", body, re.ASCII)
    if not match:
        raise ValueError(f"monto no numérico: {raw!r}")
    whole = match.group(1).replace(thousands, "")
    cents = (match.group(2) or "").ljust(2, "0") or "00"
    return Decimal(f"{sign}{whole}.{cents}")


def _two_places(value: Decimal, original: object) -> Decimal:
    if value != value.quantize(_CENT):
        raise ValueError(f"monto con más de dos decimales: {original!r}")
    return value.quantize(_CENT)


def parse_implied_decimals(text: str, places: int = 2) -> Decimal:
    """A fixed-width digit field with implied decimals: "000000000000083300" -> 833.00."""
    field = text.strip()
    if not field.isdigit() or not field.isascii():
        raise ValueError(f"campo numérico inválido: {text!r}")
    return Decimal(int(field)).scaleb(-places).quantize(Decimal(1).scaleb(-places))


def parse_date(text: object, formats: list[str]) -> tuple[date, time | None]:
    """A date (and time when the format carries one) in exactly one of `formats` (strptime)."""
    if isinstance(text, datetime):
        return text.date(), (text.time() if (text.hour, text.minute, text.second) != (0, 0, 0) else None)
    if isinstance(text, date):
        return text, None
    raw = " ".join(str(text).split())
    if not raw.isascii():  # strptime reads Unicode digits too
        raise ValueError(f"fecha {raw[:40]!r} no tiene el formato {' o '.join(formats)}")
    for fmt in formats:
        try:
            parsed = datetime.strptime(raw, fmt)
        except ValueError:
            continue
        has_time = any(code in fmt for code in ("%H", "%I", "%M"))
        return parsed.date(), (parsed.time() if has_time else None)
    raise ValueError(f"fecha {raw[:40]!r} no tiene el formato {' o '.join(formats)}")


def parse_reference(text: object) -> str | None:
    """The reference as printed (digits, leading zeros kept), None when the cell is empty.

    A spreadsheet that turned a long reference into `3.46E+10` destroyed its digits: refused,
    never guessed.
    """
    if text is None:
        return None
    if isinstance(text, float):
        if not text.is_integer() or abs(text) >= 1e15:
            raise ValueError(f"referencia numérica alterada por una hoja de cálculo: {text!r}")
        text = str(int(text))
    raw = str(text).strip().strip("'\"")
    if not raw:
        return None
    if _SCIENTIFIC.match(raw):
        raise ValueError(f"referencia alterada por una hoja de cálculo: {raw!r}")
    if re.fullmatch(r"\d+\.0", raw, re.ASCII):  # an integer cell written back as text
        raw = raw[:-2]
    if not re.fullmatch(r"[0-9A-Za-z/-]{1,40}", raw):
        raise ValueError(f"referencia inválida: {raw[:40]!r}")
    return raw


def reference_digits(reference: str | None) -> str:
    """The digits of a reference without leading zeros, the form references are compared in."""
    return re.sub(r"\D", "", reference or "", flags=re.ASCII).lstrip("0")
