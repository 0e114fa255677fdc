"""OCR confusions inside numeric values: letters read for digits ("10s,00", "27061O25"), a
digit read for the currency's letter ("B5. 104,54"), a decimal comma read as the thousands
point ("1.267.99") or with a second mark beside it ("238,.40"), and a thousands point read as a
space ("28.094 436").

Only a value a rule expects to be numeric or an amount is ever repaired, and the repair is kept
only when the repaired value then passes the field's normalizer and validators (extraction/run.py);
the extractor records it in `campos_detalle`.
"""
from __future__ import annotations

import re

# Letters the recognizer reads for digits on receipt fonts (the one table of them).
DIGIT_LOOKALIKES = {"O": "0", "o": "0", "D": "0", "l": "1", "I": "1", "|": "1", "S": "5", "s": "5", "B": "8"}
_DIGIT_FOR = str.maketrans(DIGIT_LOOKALIKES)
# Glyphs the recognizer swaps inside words of letters (case already folded): "RlF" for "RIF",
# "C0d" for "Cod". Short label words must otherwise match exactly.
_LETTER_SHAPE = str.maketrans({"l": "i", "1": "i", "|": "i", "!": "i", "0": "o"})


def letter_shape(token: str) -> str:
    """`token` with the glyphs OCR confuses inside words made one: equal shapes are the same word."""
    return token.translate(_LETTER_SHAPE)
# "D" is left out of values: next to digits it is as often a real letter ("Ref D-1234").
_CONFUSABLE = "OolI|SsB"
# "B5." / "85." / "BS" before an amount is the bolívar sign "Bs.".
_CURRENCY = re.compile(r"(?<![\w])[B8][5sS](?=\.?\s*\d)")
# A run of digits and confusable letters: a token that is mostly digits.
_TOKEN = re.compile(rf"[0-9{re.escape(_CONFUSABLE)}]+")

# Thousands groups followed by one more point and two digits: small text loses the comma's tail
# ("1.267,99" read "1.267.99"). Two digits can only be cents after groups of three, so the last
# mark is the decimal one whichever way the amount was printed. Also with the marks swapped.
_DECIMAL_READ_AS_GROUP = re.compile(r"(?<![\d.,])\d{1,3}(?:(?P<mark>[.,])\d{3})+(?P=mark)(?=\d{2}(?![\d.,]))")
_OTHER_MARK = {".": ",", ",": "."}
# Two marks before the cents ("238,.40"): moiré or a speck beside the comma read as one more mark.
# The second becomes a space, which the amount reader takes next to a decimal mark; after
# thousands groups ("1.238.,40") the mark kept is the one that is not theirs.
_DOUBLED_MARK = re.compile(r"(?<![\d.,])(?P<whole>\d+(?:(?P<group>[.,])\d{3})*)(?P<pair>[.,]{2})(?=\d{2}(?![\d.,]))")
# A thousands point read as a space inside dotted groups ("V-28.094 436"): small text loses it.
_GROUP_POINT_READ_AS_SPACE = re.compile(r"(?<![\d.,])(\d{1,3}(?:\.\d{3})+) (?=\d{3}(?![\d.,]))")

# Normalizers whose values are numbers: only these are repaired.
NUMERIC_NORMALIZERS = frozenset({"amount", "digits", "reference", "phone", "cedula", "rif", "account"})


def _one_decimal_mark(match: re.Match) -> str:
    group, pair = match.group("group"), match.group("pair")
    mark = _OTHER_MARK[group] if group else pair[0]
    return match.group("whole") + mark + " "


def repair_numeric(text: str) -> str:
    """`text` with the confusions of item-sized numeric tokens undone; the same length as `text`,
    so character offsets (and the words behind them) stay valid."""
    text = _CURRENCY.sub("Bs", text)
    text = _DECIMAL_READ_AS_GROUP.sub(lambda m: m.group(0)[:-1] + _OTHER_MARK[m.group("mark")], text)
    text = _DOUBLED_MARK.sub(_one_decimal_mark, text)
    text = _GROUP_POINT_READ_AS_SPACE.sub(r"\1.", text)

    def fix(match: re.Match) -> str:
        token = match.group(0)
        digits = sum(ch.isdigit() for ch in token)
        letters = len(token) - digits
        # "Bs" alone, "SOS", a word: not a number. A number with one or two misread characters is.
        if digits < 2 or letters == 0 or letters > max(1, digits // 3):
            return token
        return token.translate(_DIGIT_FOR)

    return _TOKEN.sub(fix, text)
