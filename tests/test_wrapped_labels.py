"""Labels wrapped over two lines in their column ("Documento de" / "identidad"): the receipt
generator draws them so, its value below the label's last line or right of its first."""
from __future__ import annotations

from tools.receipt_layouts import Canvas, RowStyle, available_font_families, lv_row, stacked_row


# ------------------------------------------------------------------------------------------------
# The generator draws wrapped labels
# ------------------------------------------------------------------------------------------------
def _canvas():
    return Canvas(540, 1200, "#ffffff", available_font_families()[0])


def test_stacked_row_wraps_a_label_wider_than_its_column():
    c = _canvas()
    x, width = 24, 120
    items, _next = stacked_row(c, 100, "Documento de identidad", "V-12345678",
                               RowStyle(label_size=13, value_size=16.5), x=x, width=width)
    labels = [item for item in c.items if item not in items]
    assert [item.text for item in labels] == ["Documento de", "identidad"]
    assert all(item.box[2] <= (x + width) * c.s for item in labels)
    assert items[0].box[1] > labels[-1].box[3]  # the value below the label's last line


def test_lv_row_wraps_a_label_that_would_run_into_its_value():
    c = _canvas()
    items, _next = lv_row(c, 100, "Número de teléfono del beneficiario", "+58 412 1234567", RowStyle())
    labels = [item for item in c.items if item not in items]
    assert len(labels) > 1
    value = items[0].box
    assert all(label.box[2] < value[0] for label in labels)
    assert abs(items[0].cy - labels[0].cy) < 1  # the value on the label's first line
