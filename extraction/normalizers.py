"""Text folding, tokenisation and the value normalizers of the extraction engine.

Every normalizer takes the raw text a rule matched and returns the canonical value as a string,
or None when the text cannot be read unambiguously (the engine then reports why). They never
raise on hostile input: None, empty strings, huge strings and unicode digits are all handled.

Canonical forms (the public contract of `extracted_fields`):
- amount:    "1234.56"  decimal point, two places.
- digits:    "004512398761"  digits only, leading zeros kept.
- phone:     "04147650321"  11 digits.
- cedula:    "V-12345678" when a letter is printed, "12345678" when none is.
- rif:       "J-40123456-7".
- date:      "2025-05-14"  ISO, day first on input (Venezuelan convention).
- time:      "14:15"  24 h.
- account:   as printed, mask characters (• * … x) kept, spaces and dashes removed.
- text:      whitespace collapsed, surrounding punctuation trimmed.

Amount separators (documented convention): Venezuelan receipts print "1.234,56" (dot for
thousands, comma for decimals). When both separators appear the last one is the decimal mark.
When only one kind appears: a single separator followed by one or two digits is the decimal mark
("187,43", "187.43"); followed by exactly three digits it is a thousands separator ("1.234" and
"1,234" are 1234.00, because Venezuelan amounts always print their cents); repeated separators
are thousands separators ("1.234.567"). Anything else ("1.23.45", "12,3456") is refused. A
space is accepted only as a thousands separator or next to the decimal mark ("2.000, 66"), so
"105 00" is refused rather than read as 10500. The extraction rules also set
`require_decimals` for `monto`: an amount printed without cents ("10500", "1.234") is refused
there, since OCR dropping a decimal comma would otherwise multiply the amount by 100.
"""
from __future__ import annotations

import re
import unicodedata
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Callable, NamedTuple

from extraction.confusions import DIGIT_LOOKALIKES

# Longest raw text a normalizer accepts: receipt values are short, hostile input is not.
MAX_INPUT_CHARS = 400

# Characters receipts use to mask account and phone digits ("0102****4821", "••••5810", "0414-…321").
MASK_CHARS = "*•·…●∙◦⋅⁎∗"
_MASK_CLASS = re.escape(MASK_CHARS)


# ------------------------------------------------------------------------------------------------
# Folding and tokens
# ------------------------------------------------------------------------------------------------
@lru_cache(maxsize=65536)
def fold(text: str) -> str:
    """Accent- and case-insensitive form: "Operación" -> "operacion", unicode digits -> ASCII."""
    if text.isascii():
        return text.lower()
    out = []
    for ch in text:
        if ch.isascii():
            out.append(ch.lower())
        elif ch.isdigit():
            try:
                out.append(str(unicodedata.digit(ch)))
            except (TypeError, ValueError):
                continue
        else:
            decomposed = unicodedata.normalize("NFKD", ch)
            out.append("".join(c for c in decomposed if not unicodedata.combining(c)).lower())
    return "".join(out)


def ascii_digits(text: str) -> str:
    """The text with every unicode decimal digit written as its ASCII digit (same length)."""
    if text.isascii():
        return text
    return "".join(str(unicodedata.digit(ch)) if ch.isdigit() and not ch.isascii() and _has_digit_value(ch)
                   else ch for ch in text)


def _has_digit_value(ch: str) -> bool:
    try:
        unicodedata.digit(ch)
        return True
    except (TypeError, ValueError):
        return False


class Token(NamedTuple):
    norm: str  # folded form ("operacion")
    start: int  # span in the raw text
    end: int


# Runs of letters or of digits. Letter runs are further split at lower->upper case changes, so
# OCR text that lost a space ("CorrienteBNC", "PagomóvilBDV") still yields "BNC" and "BDV".
_RUN = re.compile(r"\d+|[^\W\d_]+")


def tokenize(text: str) -> list[Token]:
    """Alphanumeric tokens of `text` with their raw spans (punctuation and spaces separate)."""
    tokens: list[Token] = []
    for match in _RUN.finditer(text):
        run, start = match.group(), match.start()
        if run[0].isdigit() or run.isupper() or run.islower():
            tokens.append(Token(fold(run), start, match.end()))
            continue
        cursor = 0
        for cut in _camel_cuts(run):
            tokens.append(Token(fold(run[cursor:cut]), start + cursor, start + cut))
            cursor = cut
        tokens.append(Token(fold(run[cursor:]), start + cursor, match.end()))
    return tokens


def _camel_cuts(run: str) -> list[int]:
    """Cuts where a lower-case letter is followed by a capitalised word or an acronym of two or
    more letters ("CorrienteBNC", "PagomóvilBDV"); a lone trailing capital ("BancO") is OCR noise."""
    cuts = []
    for i in range(1, len(run) - 1):
        if run[i].isupper() and run[i - 1].islower() and (run[i + 1].isupper() or run[i + 1].islower()):
            if run[i + 1].islower() and len(run) - i < 3:
                continue
            cuts.append(i)
    return cuts


def compact(text: str) -> str:
    """Folded alphanumerics only: "Nro. Ref" -> "nroref". Used to compare free text."""
    return "".join(t.norm for t in tokenize(text or ""))


def edit_distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance of a and b, or limit + 1 as soon as it must exceed limit."""
    if a == b:
        return 0
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        best = i
        for j, cb in enumerate(b, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb))
            best = min(best, current[j])
        if best > limit:
            return limit + 1
        previous = current
    return previous[-1] if previous[-1] <= limit else limit + 1


def _clip(text: object) -> str:
    """The text to normalize; "" for non-strings and for texts too long to be a receipt value
    (truncating could turn garbage into a plausible value)."""
    if not isinstance(text, str) or len(text) > MAX_INPUT_CHARS:
        return ""
    return ascii_digits(text).replace("\u00a0", " ")


# ------------------------------------------------------------------------------------------------
# Amounts
# ------------------------------------------------------------------------------------------------
_CURRENCY = re.compile(
    r"(?i)(?<![a-z])(?:bs\.?\s*[sfd](?![a-z])\.?|bs(?![a-z])\.?|ves(?![a-z])|bol[ií]vares(?![a-z])|bsf|bss)|[$]"
)
_AMOUNT_CORE = re.compile(r"^\d{1,3}(?:[.,]\d{3})*(?:[.,]\d{1,2})?$|^\d+(?:[.,]\d{1,2})?$")


MINUS_SIGNS = "-\u2212\u2013"  # hyphen-minus, the Unicode minus, an en dash


def amount_sign(text: object) -> str:
    """"-" when an amount is printed negative ("-3.397,41 Bs", "Bs. −12,00"), else ""."""
    if not isinstance(text, str):
        return ""
    body = _CURRENCY.sub(" ", text).strip()
    return "-" if body[:1] in MINUS_SIGNS and body[1:].strip()[:1].isdigit() else ""


def normalize_amount(text: object, require_decimals: bool = False, allow_sign: bool = False) -> str | None:
    """'1.234,56' / '187,43' / 'Bs. 187.43' / '3.415,00 Bs' -> '1234.56'-style; None if unclear.
    With allow_sign a debit printed negative ("-3.397,41 Bs") reads as its magnitude (the
    caller records the sign: amount_sign)."""
    raw = _clip(text)
    if not raw.strip():
        return None
    body = _CURRENCY.sub(" ", raw).strip()
    if allow_sign and body[:1] in MINUS_SIGNS:
        body = body[1:].lstrip()
    # A space may group thousands ("1 234,56") or follow the decimal mark ("2.000, 66"); any
    # other space splits two numbers ("105 00") and the amount is unreadable.
    body = re.sub(r"(?<=\d) (?=\d{3}(?:\D|$))", "", body)
    body = re.sub(r"(?<=\d[.,]) (?=\d)|(?<=\d) (?=[.,]\d{1,2}$)", "", body)
    if " " in body:
        return None
    if body.startswith("+"):
        body = body[1:]
    if not body or not _AMOUNT_CORE.match(body):
        return None
    dots, commas = body.count("."), body.count(",")
    if dots and commas:
        decimal_mark = "." if body.rfind(".") > body.rfind(",") else ","
        thousands = "," if decimal_mark == "." else "."
        whole, _, cents = body.rpartition(decimal_mark)
        if decimal_mark in whole or not _valid_grouping(whole, thousands) or not 1 <= len(cents) <= 2:
            return None
        digits = whole.replace(thousands, "") + "." + cents
    elif dots or commas:
        mark = "." if dots else ","
        groups = body.split(mark)
        tail = groups[-1]
        if len(groups) == 2 and 1 <= len(tail) <= 2:
            digits = groups[0] + "." + tail
        elif all(len(g) == 3 for g in groups[1:]) and 1 <= len(groups[0]) <= 3:
            if require_decimals:
                return None
            digits = "".join(groups)
        else:
            return None
    else:
        if require_decimals:
            return None
        digits = body
    try:
        value = Decimal(digits)
    except InvalidOperation:
        return None
    return f"{value:.2f}"


def _valid_grouping(whole: str, separator: str) -> bool:
    if separator not in whole:
        return whole.isdigit()
    groups = whole.split(separator)
    return 1 <= len(groups[0]) <= 3 and all(g.isdigit() for g in groups) and all(len(g) == 3 for g in groups[1:])


# ------------------------------------------------------------------------------------------------
# Digits, references, phones, IDs
# ------------------------------------------------------------------------------------------------
# OCR reads "0" as "O" and "1" as "l" inside long digit runs; fixed only when the rest are digits
# (normalize_digits lets only O, o, D, l, I and | through).
_DIGIT_LOOKALIKES = str.maketrans(DIGIT_LOOKALIKES)


def _repair_digit_run(token: str) -> str:
    if len(token) < 4 or token.isdigit():
        return token
    repaired = token.translate(_DIGIT_LOOKALIKES)
    non_digits = sum(not c.isdigit() for c in token)
    return repaired if repaired.isdigit() and non_digits <= max(1, len(token) // 6) else token


def normalize_digits(text: object, min_length: int = 1, max_length: int = 30) -> str | None:
    """One printed number ('004512398761', '0045 1239 8761') as its digits, leading zeros kept."""
    raw = _clip(text).strip()
    if not raw:
        return None
    parts = raw.split()
    if not all(re.fullmatch(r"[\dOolID|]+", p) for p in parts):
        return None
    digits = "".join(_repair_digit_run(p) for p in parts)
    if not digits.isdigit() or not min_length <= len(digits) <= max_length:
        return None
    return digits


def normalize_phone(text: object) -> str | None:
    """'0414-7650321', '+58 414 7650321', '0414 765 03 21', '(0414) 765.03.21' -> '04147650321'."""
    raw = _clip(text).strip()
    if not raw or re.search(f"[{_MASK_CLASS}]", raw):
        return None
    if re.search(r"[^\d\s()+.\-]", raw):
        return None
    digits = re.sub(r"\D", "", raw)
    if raw.lstrip().startswith("+") or (len(digits) == 12 and digits.startswith("58")):
        if not digits.startswith("58"):
            return None
        digits = "0" + digits[2:]
    elif len(digits) == 10 and digits.startswith("4"):
        digits = "0" + digits
    if len(digits) != 11 or not digits.startswith("0"):
        return None
    return digits


_CEDULA = re.compile(r"^([VEJGP])?\s*[-.]?\s*(\d{1,3}(?:[.\s]?\d{3}){1,3}|\d{4,10})$", re.IGNORECASE)


def normalize_cedula(text: object) -> str | None:
    """'V-12345678', 'V12345678', 'V - 12.345.678' -> 'V-12345678'; '12345678' -> '12345678'."""
    raw = _clip(text).strip().strip(":")
    match = _CEDULA.match(raw)
    if not match:
        return None
    digits = re.sub(r"\D", "", match.group(2))
    letter = match.group(1)
    return f"{letter.upper()}-{digits}" if letter else digits


_RIF = re.compile(r"^([JGVEPC])\s*-?\s*(\d{8})\s*-?\s*(\d)$", re.IGNORECASE)
_RIF_DOTTED = re.compile(r"^([JGVEPC])\s*-?\s*(\d{1,2}\.\d{3}\.\d{3})\s*-?\s*(\d)$", re.IGNORECASE)


def normalize_rif(text: object) -> str | None:
    """'J-40123456-7', 'J401234567', 'J-40.123.456-7' -> 'J-40123456-7'."""
    raw = _clip(text).strip()
    match = _RIF.match(raw) or _RIF_DOTTED.match(raw)
    if not match:
        return None
    body = match.group(2).replace(".", "").zfill(8)
    return f"{match.group(1).upper()}-{body}-{match.group(3)}"


def normalize_account(text: object) -> str | None:
    """An account as printed: '0102****4821', '***3317', '•••• 5810' -> '••••5810'; a full
    account '0105-0012-34-0123456789' -> its 20 digits.

    Mask characters are kept as printed (a run of two or more dots or x counts as a mask);
    spaces and dashes are dropped. At least four digits must be visible.
    """
    raw = _clip(text).strip()
    if not raw:
        return None
    value = re.sub(r"[\s\-–]", "", raw)
    masked = re.search(f"[{_MASK_CLASS}]|\\.{{2,}}|(?<=\\d)[xX]{{2,}}|^[xX]{{2,}}", value)
    if not masked:
        value = value.replace(".", "")
    if not re.fullmatch(f"[\\d{_MASK_CLASS}.xX]+", value) or sum(c.isdigit() for c in value) < 4:
        return None
    if not masked and (not value.isdigit() or len(value) != 20):
        return None
    if masked and not re.fullmatch(f"\\d*[{_MASK_CLASS}.xX]+\\d+", value):
        return None
    return value


# ------------------------------------------------------------------------------------------------
# Dates and times
# ------------------------------------------------------------------------------------------------
MONTHS = {
    "ene": 1, "enero": 1, "jan": 1, "january": 1,
    "feb": 2, "febrero": 2, "february": 2,
    "mar": 3, "marzo": 3, "march": 3,
    "abr": 4, "abril": 4, "apr": 4, "april": 4,
    "may": 5, "mayo": 5,
    "jun": 6, "junio": 6, "june": 6,
    "jul": 7, "julio": 7, "july": 7,
    "ago": 8, "agosto": 8, "aug": 8, "august": 8,
    "sep": 9, "sept": 9, "set": 9, "septiembre": 9, "setiembre": 9, "september": 9,
    "oct": 10, "octubre": 10, "october": 10,
    "nov": 11, "noviembre": 11, "november": 11,
    "dic": 12, "diciembre": 12, "dec": 12, "december": 12,
}
def _month(word: str) -> int | None:
    """A month name, tolerating one OCR error in names of 5+ letters ("junlo") when only one
    month is that close."""
    if word in MONTHS:
        return MONTHS[word]
    if len(word) < 5:
        return None
    close = {number for name, number in MONTHS.items() if len(name) >= 5 and edit_distance(word, name, 1) <= 1}
    return close.pop() if len(close) == 1 else None


_NUMERIC_DATE = re.compile(r"^(\d{1,2})\s*([/.\-])\s*(\d{1,2})\s*\2\s*(\d{4}|\d{2})$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_WORD_DATE = re.compile(r"^(\d{1,2})\s*(?:de\s+|[-/.]\s*)?([a-z]{3,10})\.?\s*(?:de(?:l)?\s+|[-/.,]\s*)?(\d{4})$")


def normalize_date(text: object) -> str | None:
    """'14/05/2025', '14/05/ 2025', '14/05/25', '14-05-2025', '14 may 2025',
    '14 de mayo de 2025', '2025-05-14' -> '2025-05-14'. Day first; None if not a real date."""
    raw = fold(_clip(text)).strip()
    if not raw:
        return None
    raw = re.sub(r"\s+", " ", raw)
    day = month = year = None
    if match := _NUMERIC_DATE.match(raw):
        day, month, year = int(match.group(1)), int(match.group(3)), match.group(4)
    elif match := _ISO_DATE.match(raw):
        year, month, day = match.group(1), int(match.group(2)), int(match.group(3))
    elif match := _WORD_DATE.match(raw):
        month = _month(match.group(2))
        day, year = int(match.group(1)), match.group(3)
    if month is None or year is None:
        return None
    full_year = int(year) + 2000 if len(year) == 2 else int(year)
    try:
        return date(full_year, month, day).isoformat()
    except ValueError:
        return None


_TIME = re.compile(
    r"^(\d{1,2})\s*[:h.]\s*(\d{2})(?:\s*:\s*(\d{2}))?\s*(?:(a|p)\s*\.?\s*m\b\.?|(hrs?|h)\b\.?)?$"
)


def normalize_time(text: object) -> str | None:
    """'07:41:15', '2:15 PM', '9:37 p. m.', '14:05 h' -> 'HH:MM' (24 h); None if impossible."""
    raw = fold(_clip(text)).strip()
    match = _TIME.match(re.sub(r"\s+", " ", raw))
    if not match:
        return None
    hour, minute = int(match.group(1)), int(match.group(2))
    seconds = match.group(3)
    meridiem = match.group(4)
    if minute > 59 or (seconds is not None and int(seconds) > 59):
        return None
    if meridiem:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if meridiem == "p" else 0)
    elif hour > 23:
        return None
    return f"{hour:02d}:{minute:02d}"


# ------------------------------------------------------------------------------------------------
# Free text
# ------------------------------------------------------------------------------------------------
# OCR reads "l" as "I" in the Spanish articles of mixed-case text ("EI Trébol", "AI beneficiario").
_ARTICLE_FIX = {"EI": "El", "AI": "Al"}


def _letter_o(match: re.Match) -> str:
    text, at = match.string, match.start()
    before = text[at - 1] if at > 0 and text[at - 1].isalpha() else ""
    if not before:  # word start: a capital, as names and sentences begin
        return "O"
    return "O" if before.isupper() else "o"


# A date, a phone or an amount at either end of a free text: another cell's value glued on
# ("01/04/26 Fuol", "pago 0414-1234567", "compra Bs. 120,00").
_GLUED_VALUE = (r"(?:\d{1,2}[/.\-]\d{1,2}[/.\-](?:\d{4}|\d{2})"
                r"|(?:\+?58[\s\-]?|0)4\d{2}[\s.\-]?\d{3}[\s.\-]?\d{2}[\s.\-]?\d{2}"
                r"|(?:bs\.?\s?)?\d{1,3}(?:[.,]\d{3})*[.,]\d{2}(?:\s?bs\.?)?)")
_GLUED_START = re.compile(rf"^\s*{_GLUED_VALUE}\s+(?=\S)", re.IGNORECASE)
_GLUED_END = re.compile(rf"(?<=\S)\s+{_GLUED_VALUE}\s*$", re.IGNORECASE)
_ONLY_VALUE = re.compile(rf"^\W*{_GLUED_VALUE}\W*$", re.IGNORECASE)


def split_glued_values(text: str) -> str:
    """`text` without a date, phone or amount glued to its start or end, as long as words remain."""
    for pattern in (_GLUED_START, _GLUED_END):
        rest = pattern.sub("", text, count=1)
        if rest != text and re.search(r"[^\W\d_]{2}", rest):
            text = rest
    return text


def normalize_text(text: object, max_length: int = 140, split_glued: bool = False) -> str | None:
    """Whitespace collapsed, surrounding punctuation trimmed; None when nothing readable is left.
    With split_glued a date, phone or amount at either end (another cell's value) is cut off."""
    raw = _clip(text)
    if split_glued:
        if _ONLY_VALUE.match(raw):
            return None  # a date, phone or amount alone is another field's value, not free text
        raw = split_glued_values(raw)
    value = re.sub(r"\s+", " ", raw).strip(" \t:;,-–—|_").lstrip(".")
    if value != value.upper():
        value = re.sub(r"(?<!\S)(EI|AI)(?!\S)", lambda m: _ARTICLE_FIX[m.group(1)], value)
    # A zero inside, ending or starting a word of letters is OCR's letter O ("almuerz0", "0scar").
    value = re.sub(r"(?<=[^\W\d_])0(?=[^\W\d_])|(?<=[^\W\d_]{2})0(?!\w)|(?<!\w)0(?=[^\W\d_]{2})",
                   _letter_o, value)
    if not value or not re.search(r"[^\W_]", value) or len(value) > max_length:
        return None
    return value


# ------------------------------------------------------------------------------------------------
# Registry used by rules ("normalizer": "amount")
# ------------------------------------------------------------------------------------------------
NORMALIZERS: dict[str, Callable[..., str | None]] = {
    "amount": normalize_amount,
    "digits": normalize_digits,
    "phone": normalize_phone,
    "cedula": normalize_cedula,
    "rif": normalize_rif,
    "account": normalize_account,
    "date": normalize_date,
    "time": normalize_time,
    "text": normalize_text,
}
