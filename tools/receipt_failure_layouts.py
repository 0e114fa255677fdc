"""Layouts of the ways unseen receipts fail, for regression tests (only drawn when asked for by
name, so the default generated sets and the int8 detector's calibration receipts stay the same).

- bfc_sentence: BFC's dark receipt, the amount in a sentence ("Realizaste un Pago Móvil de
  Bs. X" / "Realizaste una transacción de Bs. X"), "Comprobante:" or "Referencia:" for the
  reference, "Cédula de Identidad / RIF:" for the ID, the boilerplate "Tu Pago Móvil fue
  Exitoso" and, sometimes, a "¿Agregar Pago Frecuente?" toggle and buttons tight under the concept.
- web_shifted: an online-banking page in a phone browser: the bank only in the address bar's
  domain (config/banks.json "domains"), a "Datos del Pago" table whose values sit one row off
  their labels (a value left empty moves the rest up; a value wrapped onto two rows moves the rest
  down), then a disclaimer paragraph and button captions.
- signed_debit: a movement detail ("Operación pagomovilbdv otros bancos") with the debit printed
  negative ("-3.397,41 Bs", or with the Unicode minus).

Ground truth follows the generator's conventions (tools/receipt_generator.py): each value only
when the page shows it, bound to the items that print it.
"""
from __future__ import annotations

import json

from tools.receipt_layouts import (
    Canvas,
    LayoutContext,
    Rendered,
    RowStyle,
    _banks_path,
    _screenshot_clock,
    bank,
    bank_short_name,
    digits,
    fmt_amount,
    fmt_cedula,
    fmt_date,
    fmt_time,
    lv_row,
    norm_amount,
    norm_cedula,
    norm_time,
    status_bar,
)

DISCLAIMER = ("Estimado cliente, su transacción fue procesada exitosamente; en caso de devoluciones "
              "por parte del Banco Central de Venezuela, se realizará el reintegro de los fondos a su cuenta.")


WEB_CANALES = {"0191": "BNC", "0134": "Banesco", "0172": "Bancamiga"}


def _domains() -> dict[str, list[str]]:
    data = json.loads(_banks_path().read_text(encoding="utf-8"))
    return {b["code"]: list(b.get("domains", ())) for b in data["banks"] if b.get("domains")}


# --------------------------------------------------------------------------------------------
# BFC: the amount in a sentence
# --------------------------------------------------------------------------------------------
def render_bfc_sentence(ctx: LayoutContext) -> Rendered:
    t, rng = ctx.txn, ctx.rng
    width = rng.choice((540, 556, 720))
    c = Canvas(width, round(width * rng.uniform(2.1, 2.3)), "#1d1f24", ctx.fonts)
    y = status_bar(c, rng, _screenshot_clock(t), "#1d1f24", "#f0f0f0") if rng.random() < 0.5 else 10.0
    origin = bank("0151")
    c.text(c.W / 2, y + 50, "BFC", 44, "bold", "#f5b400", "center")
    brand = c.text(c.W / 2, y + 86, "BancoFondoComún", 17, "bold", "#f0f0f0", "center")
    c.text(c.W / 2 + 40, y + 104, "Banco Universal", 9, "regular", "#cfcfcf", "center")
    c.bind("banco_origen", origin.name, brand)
    y += 140
    amount = fmt_amount(t.amount_cents)
    pago_movil = rng.random() < 0.5
    sentence = (f"Realizaste un Pago Móvil de Bs. {amount}" if pago_movil
                else f"Realizaste una transacción de Bs. {amount}")
    said = c.text(c.W / 2, y, sentence, 14.5, "medium", "#f0f0f0", "center")
    c.bind("monto", norm_amount(t.amount_cents), said)
    if pago_movil:
        c.bind("tipo_transaccion", "pago_movil", said)
    y += 44
    st = RowStyle(margin=22, label_size=13.5, value_size=13.5, label_weight="medium", value_weight="regular",
                  label_color="#f0f0f0", value_color="#f0f0f0", height=rng.choice((32.0, 34.0, 38.0)))
    ref = digits(rng, rng.choice((8, 10, 12)))
    ref_label = rng.choice(("Referencia:", "Comprobante:"))
    dest = t.dest_bank
    rows = [
        ("Fecha:", f"{fmt_date(t.day, 'dmy')} {fmt_time(t.moment, '12')}",
         {"fecha": t.day.isoformat(), "hora_operacion": norm_time(t.moment)}),
        (ref_label, ref, {"referencia": ref, **({"comprobante": ref} if ref_label == "Comprobante:" else {})}),
        ("Origen:", f"0151{'*' * 12}{t.origin_last4}", {"cuenta_origen": f"0151{'*' * 12}{t.origin_last4}"}),
        ("Destino:", t.phone, {"telefono": t.phone}),
        (rng.choice(("Cédula de Identidad / RIF:", "Cédula de Identidad/RIF:")),
         fmt_cedula(t.id_letter, t.id_digits, "dash"), {"cedula": norm_cedula(t.id_letter, t.id_digits, "dash")}),
        ("Banco:", bank_short_name(dest), {"banco_destino": dest.name}),
        ("Concepto:", t.concept, {"concepto": t.concept}),
    ]
    for label, value, fields in rows:
        items, y = lv_row(c, y, label, value, st)
        for name, val in fields.items():
            c.bind(name, val, *items)
    # The app's furniture right under the last value: a toggle caption and a button.
    if rng.random() < 0.6:
        c.text(c.W / 2, y - st.height / 2 + 16, "¿Agregar Pago Frecuente?", 13, "regular", "#cfcfcf", "center")
        y += 10
        c.text(c.W - 40, y, "ACEPTAR", 13, "bold", "#f5b400", "right")
    done = c.text(c.W / 2, y + 50, "Tu Pago Móvil fue Exitoso", 15, "bold", "#f0f0f0", "center")
    c.bind("tipo_transaccion", "pago_movil", done)
    c.text(c.W / 2, y + 90, rng.choice(("Compartir", "Finalizar")), 14, "medium", "#f5b400", "center")
    return c.finish()


# --------------------------------------------------------------------------------------------
# An online-banking page in a browser, values off their labels
# --------------------------------------------------------------------------------------------
def render_web_shifted(ctx: LayoutContext) -> Rendered:
    t, rng = ctx.txn, ctx.rng
    c = Canvas(540, rng.choice((1170, 1200)), "#ffffff", ctx.fonts)
    y = status_bar(c, rng, _screenshot_clock(t), "#f2f2f2", "#111111")
    domains = _domains()
    code = rng.choice(sorted(domains))
    domain = rng.choice(domains[code])
    host = rng.choice(("", "www.", "vol.", "online.")) + domain
    c.rounded(36, y + 8, c.W - 60, y + 34, 12, "#e9e9ee")
    address = c.text(52, y + 21, host + rng.choice(("/", "/pagos", "")), 12.5, "regular", "#222222")
    c.text(c.W - 36, y + 21, str(rng.randint(2, 9)), 11, "regular", "#222222", "center")
    c.bind("banco_origen", bank(code).name, address)
    # The extractor's closed vocabulary names these banks' own channel, when the host spells it.
    if code in WEB_CANALES and WEB_CANALES[code].lower() in host.split("."):
        c.bind("canal_pago", WEB_CANALES[code], address)
    y += 44
    c.rect(0, y, c.W, y + 40, "#123e6b")
    c.text(16, y + 20, rng.choice(("JUAN PEREZ", "MARIA LOPEZ", "ANA DIAZ")), 13, "bold", "#ffffff")
    y += 60
    c.text(20, y, "Resumen Pago", 14, "medium", "#333333")
    y += 70
    c.text(c.W / 2, y, "Datos del Pago", 15, "bold", "#123e6b", "center")
    y += 80
    amt = c.text(c.W / 2, y, f"Bs.{fmt_amount(t.amount_cents)}", 17, "bold", "#111111", "center")
    c.bind("monto", norm_amount(t.amount_cents), amt)
    y += 30

    ref = digits(rng, 12)
    date_text = fmt_date(t.day, rng.choice(("dmy2", "dmy")))
    dest = t.dest_bank
    shift_up = rng.random() < 0.5
    if shift_up:
        # The beneficiary's value is empty: the values below it move up one row.
        labels = ["Referencia", "Beneficiario", "Teléfono", "Fecha", "Concepto"]
        cells = [(ref, {"referencia": ref}), (t.phone, {"telefono": t.phone}),
                 (date_text, {"fecha": t.day.isoformat()}), (t.concept, {"concepto": t.concept})]
    else:
        # The bank's name takes two rows: the values below it move down one row.
        labels = ["Referencia", "Cédula", "Banco", "Teléfono", "Fecha", "Concepto"]
        cedula = fmt_cedula(t.id_letter, t.id_digits, "dash")
        # As such pages print it: the name and its legal suffix, the suffix's end on the next row.
        first, rest = f"{bank_short_name(dest).upper()} BANCO UNIVERSAL", "C.A."
        if c.measure(first, 13) > c.W - 140:
            first, rest = bank_short_name(dest).upper(), "BANCO UNIVERSAL"
        cells = [(ref, {"referencia": ref}), (cedula, {"cedula": norm_cedula(t.id_letter, t.id_digits, "dash")}),
                 (first, {"banco_destino": dest.name}), (rest, {}),
                 (t.phone, {"telefono": t.phone}), (date_text, {"fecha": t.day.isoformat()}),
                 (t.concept, {"concepto": t.concept})]
    pitch = 26.0
    for row in range(max(len(labels), len(cells))):
        row_y = y + row * pitch
        if row < len(labels):
            c.text(27, row_y, labels[row], 13, "regular", "#333333")
        if row < len(cells):
            value, fields = cells[row]
            item = c.text(c.W - 24, row_y, value, 13, "regular", "#111111", "right")
            for field_name, field_value in fields.items():
                c.bind(field_name, field_value, item)
    y += max(len(labels), len(cells)) * pitch + 30
    for index, line in enumerate(c.wrap(DISCLAIMER, 11.5, "regular", c.W - 48)):
        c.text(24, y + index * 15, line, 11.5, "regular", "#555555")
    y += 130
    c.text(c.W * 0.3, y, "Afiliar al beneficiario", 12.5, "medium", "#123e6b", "center")
    c.text(c.W * 0.72, y, "Realizar otro pago", 12.5, "medium", "#123e6b", "center")
    c.text(c.W / 2, c.H - 40, "Favoritos  Afiliar  Afiliados  Pagar  Histórico", 11, "regular", "#333333", "center")
    return c.finish()


# --------------------------------------------------------------------------------------------
# A debit printed negative
# --------------------------------------------------------------------------------------------
def render_signed_debit(ctx: LayoutContext) -> Rendered:
    t, rng = ctx.txn, ctx.rng
    dp_width = rng.choice((360.0, 420.0))
    c = Canvas(1080, round(1080 / dp_width * rng.uniform(330, 370)), "#202124", ctx.fonts, dp_width=dp_width)
    title = c.text(c.W / 2, 50, rng.choice(("Operacion pagomovilbdv otros banco",
                                            "Operación pagomovilbdv otros bancos")), 15, "medium", "#f0f0f0", "center")
    c.bind("banco_origen", bank("0102").name, title)
    minus = rng.choice(("-", "\u2212"))
    amount = c.text(c.W / 2, 140, f"{minus}{fmt_amount(t.amount_cents)} Bs", 20, "bold", "#f0f0f0", "center")
    c.bind("monto", norm_amount(t.amount_cents), amount)
    st = RowStyle(margin=30, label_size=14, value_size=14, label_color="#f0f0f0", value_color="#f0f0f0",
                  height=42.0)
    ref = digits(rng, rng.choice((12, 13)))
    y = 210.0
    for label, value, fields in (
        ("Fecha:", fmt_date(t.day, "dmy"), {"fecha": t.day.isoformat()}),
        ("Hora:", fmt_time(t.moment, "12"), {"hora_operacion": norm_time(t.moment)}),
        ("Operación:", ref, {"referencia": ref}),
    ):
        items, y = lv_row(c, y, label, value, st)
        for name, val in fields.items():
            c.bind(name, val, *items)
    return c.finish()


FAILURE_RENDERERS = {
    "bfc_sentence": render_bfc_sentence,
    "web_shifted": render_web_shifted,
    "signed_debit": render_signed_debit,
}
