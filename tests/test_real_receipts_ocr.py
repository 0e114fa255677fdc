"""Real receipts from ../shared/receipts/real (personal data: read at run time, never copied).

Every legible receipt's amount, reference, phone and cédula must be readable in the row text
produced by the fastest profile.
"""
import json
import re
from pathlib import Path

import pytest

REAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "receipts" / "real"
LABELS = REAL_DIR / "labels.json"

pytestmark = pytest.mark.skipif(not LABELS.is_file(), reason=f"real receipts not present at {REAL_DIR}")


def _labelled():
    if not LABELS.is_file():
        return []
    labels = json.loads(LABELS.read_text(encoding="utf-8"))
    return [(name, entry) for name, entry in sorted(labels.items()) if entry.get("legible", True)]


def _digits(text):
    return re.sub(r"\D", "", text)


@pytest.mark.parametrize("name,labels", _labelled(), ids=lambda value: value[:30] if isinstance(value, str) else "")
def test_key_values_are_in_the_row_text(engine, name, labels):
    result = engine.procesar_imagen((REAL_DIR / name).read_bytes(), "ultra_rapido")
    rows = result["structured_text_ocr"].splitlines()
    for field in ("monto", "referencia", "telefono", "cedula"):
        value = labels.get(field)
        if not value:
            continue
        # The value's digits appear within one row (separators such as "-" or "." may differ).
        assert any(_digits(value) in _digits(row) for row in rows), f"{field} {value!r} not found in rows"
    amount = labels["monto_normalized"].replace(".", ",")
    assert any(amount in row.replace(".", "") or amount in row for row in rows)
