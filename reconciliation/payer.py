"""Who paid: the payer's phone, cédula, RIF and bank code as statement descriptions print them.

Descriptions are terse and vary by bank: `PAGOMOVIL OTROS BANCOS 0134 04121234567`,
`PAGOMOVIL BDV V012345678 MARIA`, `CR.I/REC 0134 V012345678`, `DR OB 04141234567 134BANESCO`,
`PAGO RECIBIDO OTROS BANCOS 0191 J401234567`. Only bank codes that are in config/banks.json count.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from extraction.banks import BankCatalog, get_catalog

_PHONE = re.compile(r"(?<!\d)(?:58)?(0?4(?:12|14|16|22|24|26)\d{7})(?!\d)")
_CEDULA = re.compile(r"(?<![A-Z0-9])([VE])-?0*(\d{6,9})(?!\d)")
_RIF = re.compile(r"(?<![A-Z0-9])([JGPC])-?0*(\d{7,9})-?(\d)?(?!\d)")
_BANK_CODE = re.compile(r"(?<!\d)(0\d{3})(?!\d)")
_SHORT_BANK_CODE = re.compile(r"(?<!\d)(1\d{2})\s?[A-Z]")  # Provincial prints "134BANESCO"


@dataclass(frozen=True)
class Payer:
    phone: str | None = None
    cedula: str | None = None
    rif: str | None = None
    bank_code: str | None = None


def find_payer(description: str, catalog: BankCatalog | None = None) -> Payer:
    text = (description or "").upper()
    phone = _PHONE.search(text)
    cedula = _CEDULA.search(text)
    rif = _RIF.search(text)
    return Payer(
        phone=("0" + phone.group(1).lstrip("0")) if phone else None,
        cedula=f"{cedula.group(1)}-{cedula.group(2)}" if cedula else None,
        rif=f"{rif.group(1)}-{rif.group(2)}" + (f"-{rif.group(3)}" if rif.group(3) else "") if rif else None,
        bank_code=_bank_code(text, catalog or get_catalog()),
    )


def _bank_code(text: str, catalog: BankCatalog) -> str | None:
    for pattern, prefix in ((_BANK_CODE, ""), (_SHORT_BANK_CODE, "0")):
        codes = {prefix + m.group(1) for m in pattern.finditer(text) if catalog.by_code(prefix + m.group(1))}
        if len(codes) == 1:
            return codes.pop()
        if codes:
            return None  # two codes in one description: which one paid is not said
    named = {match.bank.code for match in catalog.find(text)}
    return named.pop() if len(named) == 1 else None


def same_cedula(a: str | None, b: str | None) -> bool:
    """Cédulas compared by their number: "V-12345678", "V012345678" and "12345678" are one."""
    digits_a, digits_b = (re.sub(r"\D", "", x or "").lstrip("0") for x in (a, b))
    return bool(digits_a) and digits_a == digits_b


def same_phone(a: str | None, b: str | None) -> bool:
    digits_a, digits_b = (re.sub(r"\D", "", x or "")[-10:] for x in (a, b))
    return len(digits_a) == 10 and digits_a == digits_b
