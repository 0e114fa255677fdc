"""The person or business named in a value that may also print phone, ID and bank."""
from __future__ import annotations

import re

from extraction.banks import BankCatalog
from extraction.normalizers import normalize_text

_ID_WITH_LETTER = re.compile(
    r"(?:(?<![^\W\d_])[VEJGP]\s*[-.]?\s*|(?<=[^\W\d_])[VEJGP]\s*-\s*)\d[\d.]{4,11}(?:\s*-\s*\d)?(?!\d)",
    re.IGNORECASE,
)
_NUMBERISH = re.compile(r"[+(]?[\d*•·…●][\d*•·…●\s.\-()]{2,}[\d*•·…●]")


def beneficiary_name(text: str, catalog: BankCatalog) -> str | None:
    """The person or business named in a value that may also print phone, ID and bank.

    "0414-7650321 PANADERÍA SOL V-18234567 - MERCANTIL" -> "PANADERÍA SOL". A value without digits
    is taken as printed ("Inversiones Peña C.A."), and so is one whose only digits are its own
    ("Farmacia 24 Horas"); digits left beside a phone, ID or bank give no name.
    """
    if not text:
        return None
    value, stripped = text, False
    if re.search(r"\d", value):
        value = _ID_WITH_LETTER.sub(" ", value)
        value = catalog.strip_bank_names(value)
        value = _NUMBERISH.sub(" ", value)
        value = re.sub(r"\s[-–|/]\s|^\s*[-–|/]|[-–|/]\s*$", " ", value)
        stripped = value.split() != text.split()
    value = normalize_text(value, 80) or ""  # also OCR's zero for the letter O ("BEG0ÑA")
    value = re.sub(r"\s{2,}", " ", value).strip(" -–,;:")
    if len(re.findall(r"[^\W\d_]", value)) < 3 or re.search(r"\d{4,}", value):
        return None
    # Digits left beside a phone, ID or bank that was taken out are a piece of one of them
    # misread ("Zuleima diaz 436", "~.060 Zulema diaz"), not part of the name.
    if stripped and re.search(r"\d", value):
        return None
    return value


