"""Deterministic synthetic screenshots of Venezuelan payment receipts, with ground truth.

Used by tests and by the accuracy evaluation of the OCR + extraction pipeline::

    from tools.receipt_generator import generate_receipt, generate_set
    receipt = generate_receipt(7)                       # layout/variant chosen by seed
    receipt = generate_receipt(7, layout="bnc", variant="whatsapp")
    generate_set("/tmp/synth", count=200)               # images + ground_truth.json

    python -m tools.receipt_generator OUT_DIR --count 200 [--seed 0]

Same seed, layout and variant => byte-identical image and identical ground truth, for the same
installed fonts (fonts are discovered under /usr/share/fonts, sorted, and picked by seed; DejaVu
alone is enough, Roboto and Liberation add variety). The variant is drawn from its own random
stream, so forcing a variant does not change what the receipt says.

Layouts (`LAYOUTS`): bdv_light, bdv_dark (PagomóvilBDV Personas), bnc (BNC pago móvil result),
mercantil ("Envío de Tpago", web page or phone), provincial (BBVA "Dinero Rápido" or transfer),
banesco (Banesco Pago Móvil), bancamiga (label above value, one or two columns) and
generic_transfer (a bank without a dedicated layout). Only when asked for by name
(`FAILURE_LAYOUTS`, tools/receipt_failure_layouts.py): bfc_sentence, web_shifted, signed_debit.
Variants (`VARIANTS`): "clean" (PNG as rendered), "whatsapp" (downscaled to 720 or 540 px wide,
JPEG quality 60-80, sometimes recompressed twice), "lowres" (288 px wide JPEG, like a forwarded
thumbnail), drawn at random when none is asked for; and, only when asked for, the ways of arriving
of tools/receipt_variants.py (photo of the screen, turned 90/180/270, thumbnail, large screen,
framed in a viewer, screenshot of a screenshot).

Ground truth (`GeneratedReceipt.fields`): always the 16 keys of `FIELD_NAMES`; a value is present
only when the receipt visibly prints it (cropped-off or scrolled-away rows give None), normalized
the way the extractor must output it:

- monto: "1234.56" (dot, two decimals). On BNC it is "Monto", never "Total" (which adds "Comisión").
- referencia: digits, leading zeros kept (BDV "Operación", Banesco "Nro. de Recibo", ...).
- telefono: 11 digits "04125318244" whatever the print ("0412-5318244", "+58 412 5318244");
  None when masked ("0412 - ••••244").
- cedula: "V-12345678" when a letter is printed (from "V-12345678", "V12345678",
  "V - 12.345.678"); digits only when none is (BDV "Identificación").
- fecha: ISO "2025-06-20" (from "20/06/2025", "20/06/25", "15 jun 2025", "15 de junio de 2025").
- hora_operacion: "HH:MM" 24 h (from "14:32", "02:32 PM", "2:32 p. m.", "14:32:10"); the phone's
  status-bar clock is not the operation time and never counts.
- banco_origen, banco_destino: the canonical `name` of config/banks.json. A brand printed on the
  receipt (PagomóvilBDV, BNC, Tpago/Mercantil, BBVA, Banesco, Bancamiga) gives the origin bank;
  a masked account with a bank prefix ("0102****2663") gives that account's bank.
- cuenta_origen, cuenta_destino: the account as printed, masking kept ("0102****2663",
  "***9496", "••••3976"); an account-type prefix ("Cuenta de Ahorro - ") is not part of it.
- concepto, beneficiario: as printed (case and accents kept).
- tipo_transaccion: "pago_movil" or "transferencia", when the receipt names the operation
  (title "Pago Móvil", "PagomóvilBDV", "Envío de Tpago", "Dinero Rápido", "Transferencia ...").
- identificador_fiscal: RIF as printed "J-40123456-7" (generic transfers to a business).
- comprobante: the "Comprobante N°" digits.
- canal_pago: the app/product that issued the receipt, from a closed vocabulary (`CANALES_PAGO`):
  "PagomóvilBDV", "BNC", "Tpago", "Dinero Rápido", "BBVA Provincial" (Provincial transfers),
  "Banesco", "Bancamiga"; None for generic_transfer (an app without a known brand).

`lines` lists every printed text line top to bottom, items on the same visual line joined by one
space, exactly as drawn (status bar clock and tab labels included): the reference for character
error rate.
"""
from __future__ import annotations

import argparse
import io
import json
import random
import sys
import time as _time
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from pathlib import Path

from PIL import Image

from tools.receipt_failure_layouts import FAILURE_RENDERERS
from tools.receipt_layouts import (
    RENDERERS,
    LayoutContext,
    Transaction,
    available_font_families,
    load_banks,
)
from tools.receipt_variants import (
    ARRIVAL_VARIANTS,
    apply_arrival,
    encode_jpeg,
    encode_png,
)

FIELD_NAMES: tuple[str, ...] = (
    "monto", "referencia", "telefono", "cedula", "fecha", "banco_origen", "banco_destino",
    "concepto", "beneficiario", "cuenta_origen", "cuenta_destino", "tipo_transaccion",
    "hora_operacion", "identificador_fiscal", "comprobante", "canal_pago",
)
LAYOUTS: tuple[str, ...] = ("bdv_light", "bdv_dark", "bnc", "mercantil", "provincial", "banesco",
                            "bancamiga", "generic_transfer")
# The failure classes of unseen receipts (tools/receipt_failure_layouts.py): only when asked for
# by name, so the sets drawn by seed stay the same.
FAILURE_LAYOUTS: tuple[str, ...] = tuple(FAILURE_RENDERERS)
# Drawn at random when no variant is asked for (the sets of earlier measurements stay the same).
SHARING_VARIANTS: tuple[str, ...] = ("clean", "whatsapp", "lowres")
VARIANTS: tuple[str, ...] = SHARING_VARIANTS + ARRIVAL_VARIANTS
CANALES_PAGO: tuple[str, ...] = ("PagomóvilBDV", "BNC", "Tpago", "Dinero Rápido", "BBVA Provincial",
                                 "Banesco", "Bancamiga")


@dataclass
class GeneratedReceipt:
    image_bytes: bytes
    image_format: str  # "PNG" or "JPEG"
    layout: str
    variant: str
    fields: dict[str, str | None]
    lines: list[str]
    seed: int = 0
    size: tuple[int, int] = (0, 0)
    extra: dict = field(default_factory=dict)

    @property
    def filename(self) -> str:
        ext = "png" if self.image_format == "PNG" else "jpg"
        return f"receipt_{self.seed:05d}_{self.layout}_{self.variant}.{ext}"


# --------------------------------------------------------------------------------------------
# Invented values (never taken from the real receipts, which hold personal data)
# --------------------------------------------------------------------------------------------
FIRST_NAMES = ("María", "José", "Luis", "Ana", "Carlos", "Andrés", "Sofía", "Valentina", "Jesús",
               "Ramón", "Martín", "Inés", "Begoña", "Génesis", "Óscar", "Rubén", "Héctor", "Yusmary",
               "Dayana", "Nayelis", "Iván", "Mónica", "Raúl", "Verónica", "Darwin", "Maryelis",
               "Eliécer", "Ángel", "Zuleima", "Simón")
LAST_NAMES = ("Peña", "Muñoz", "Núñez", "Pérez", "González", "Rodríguez", "Hernández", "Martínez",
              "Gutiérrez", "Díaz", "Briceño", "Ordóñez", "Castañeda", "Quiñónez", "Sánchez",
              "Ramírez", "Fernández", "Gómez", "López", "Zambrano", "Márquez", "Mendoza", "Salazar",
              "Carreño", "Useche", "Villegas", "Montaño", "Bolívar")
BUSINESSES = ("Inversiones Peña C.A.", "Bodega El Trébol", "Panadería La Espiga", "Ferretería Núñez",
              "Comercial Año Nuevo", "Farmacia San Martín", "Distribuidora Briceño C.A.",
              "Charcutería La Montaña", "Licorería El Caribeño", "Repuestos Muñoz",
              "Óptica Visión Clara", "Papelería El Niño", "Frutería Doña Inés")
CONCEPTS = ("pagos", "pago", "abono a pedido", "compra de víveres", "alquiler", "mensualidad junio",
            "cuota del carro", "pago factura 1045", "rifa", "servicio de internet", "almuerzo",
            "reparación", "cumpleaños Sofía", "pedido 3321", "condominio", "útiles escolares",
            "uñas", "piñata", "consulta médica", "envío", "mercado", "pasaje", "gasolina",
            "cuota 3 de 4", "préstamo", "Pago señora Inés")
PHONE_PREFIXES = ("0412", "0414", "0416", "0424", "0426")
_RIF_WEIGHTS = (4, 3, 2, 7, 6, 5, 4, 3, 2)
_RIF_LETTER_VALUE = {"V": 1, "E": 2, "J": 3, "P": 4, "G": 5}


def rif_check_digit(letter: str, body: str) -> int:
    """SENIAT modulo-11 check digit, so generated RIFs pass the validation real ones pass."""
    total = _RIF_LETTER_VALUE[letter] * _RIF_WEIGHTS[0]
    total += sum(int(d) * w for d, w in zip(body, _RIF_WEIGHTS[1:]))
    check = 11 - total % 11
    return 0 if check >= 10 else check


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _amount_cents(rng: random.Random) -> int:
    # Log-uniform: small daily payments are as common as large ones are rare.
    bolivares = 10 ** rng.uniform(0, 4.699)  # 1 .. 50.000
    cents = round(bolivares * 100)
    if rng.random() < 0.35:
        cents = round(cents, -2)  # whole bolívares: "210,00"
    return max(100, min(cents, 5_000_000))


def _cedula(rng: random.Random) -> tuple[str, str]:
    if rng.random() < 0.15:
        return "E", str(rng.randint(80_000_000, 89_999_999) if rng.random() < 0.6
                        else rng.randint(100_000, 9_999_999))
    return "V", str(rng.choice((rng.randint(500_000, 999_999), rng.randint(1_000_000, 9_999_999),
                                rng.randint(10_000_000, 33_999_999), rng.randint(10_000_000, 33_999_999))))


def sample_transaction(rng: random.Random) -> Transaction:
    banks = load_banks()
    codes = sorted(banks)
    letter, ced = _cedula(rng)
    rif_letter = rng.choice(("J", "J", "J", "G"))
    rif_body = _digits(rng, 8)
    first, last1, last2 = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES), rng.choice(LAST_NAMES)
    person = f"{first} {last1}" if rng.random() < 0.5 else f"{first} {last1} {last2}"
    seconds = rng.randint(6 * 3600, 23 * 3600 + 59 * 60)
    return Transaction(
        amount_cents=_amount_cents(rng),
        day=date(2024, 1, 1) + timedelta(days=rng.randint(0, 730)),
        moment=time(seconds // 3600, seconds // 60 % 60, seconds % 60),
        phone=rng.choice(PHONE_PREFIXES) + str(rng.randint(1_000_000, 9_999_999)),
        id_letter=letter,
        id_digits=ced,
        person=person,
        business=rng.choice(BUSINESSES),
        rif=f"{rif_letter}-{rif_body}-{rif_check_digit(rif_letter, rif_body)}",
        concept=rng.choice(CONCEPTS),
        dest_bank=banks[rng.choice(codes)],
        origin_last4=_digits(rng, 4),
        dest_last4=_digits(rng, 4),
        screenshot_delay_min=rng.choice((0, 0, 1, 1, 2, 5)),
    )


# --------------------------------------------------------------------------------------------
# Variants: what sharing does to a screenshot
# --------------------------------------------------------------------------------------------
def _resize_to_width(img: Image.Image, width: int) -> Image.Image:
    if img.width <= width:
        return img
    height = round(img.height * width / img.width)
    return img.resize((width, height), Image.Resampling.LANCZOS)


def apply_variant(img: Image.Image, variant: str, rng: random.Random, dp_width: float = 360.0
                  ) -> tuple[bytes, str, tuple[int, int]]:
    """Encode as shared. Target widths are in pixels per dp so that a wide web page shrinks its
    text as much as a phone screenshot does (720 px for a 360 dp phone is 2 px/dp)."""
    if variant == "clean":
        return encode_png(img), "PNG", img.size
    if variant == "whatsapp":
        img = _resize_to_width(img, round(dp_width * rng.choice((2.0, 2.0, 1.5))))
        data = encode_jpeg(img, rng.randint(60, 80))
        if rng.random() < 0.35:  # forwarded once more
            data = encode_jpeg(Image.open(io.BytesIO(data)).convert("RGB"), rng.randint(60, 80))
        return data, "JPEG", img.size
    if variant == "lowres":
        img = _resize_to_width(img, round(dp_width * 0.8))  # 288 px for a phone
        return encode_jpeg(img, rng.randint(70, 85)), "JPEG", img.size
    if variant in ARRIVAL_VARIANTS:
        return apply_arrival(img, variant, rng)
    raise ValueError(f"Unknown variant {variant!r}; expected one of {VARIANTS}")


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
def generate_receipt(seed: int, layout: str | None = None, variant: str | None = None, *,
                     scroll: float | None = None, brand_in_tabs: bool = False) -> GeneratedReceipt:
    """`scroll` (dp) and `brand_in_tabs` force what a layout otherwise draws by chance (BNC)."""
    layout = LAYOUTS[seed % len(LAYOUTS)] if layout is None else layout
    renderer = RENDERERS.get(layout) or FAILURE_RENDERERS.get(layout)
    if renderer is None:
        raise ValueError(f"Unknown layout {layout!r}; expected one of {LAYOUTS + FAILURE_LAYOUTS}")
    variant_rng = random.Random(f"{seed}:variant")
    if variant is None:
        variant = variant_rng.choices(SHARING_VARIANTS, weights=(4, 4, 2))[0]
    elif variant not in VARIANTS:
        raise ValueError(f"Unknown variant {variant!r}; expected one of {VARIANTS}")

    rng = random.Random(seed)
    fonts = rng.choice(available_font_families())
    ctx = LayoutContext(txn=sample_transaction(rng), rng=rng, fonts=fonts, scroll=scroll, brand_in_tabs=brand_in_tabs)
    rendered = renderer(ctx)
    data, fmt, size = apply_variant(rendered.image, variant, variant_rng, rendered.dp_width)
    fields = {name: rendered.fields.get(name) for name in FIELD_NAMES}
    return GeneratedReceipt(data, fmt, layout, variant, fields, rendered.lines, seed, size,
                            {"font": fonts.name})


def generate_set(out_dir: str | Path, count: int, start_seed: int = 0) -> list[GeneratedReceipt]:
    """Write `count` receipts (seeds start_seed..) and ground_truth.json into out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    receipts, truth = [], {}
    for seed in range(start_seed, start_seed + count):
        receipt = generate_receipt(seed)
        (out / receipt.filename).write_bytes(receipt.image_bytes)
        truth[receipt.filename] = {"layout": receipt.layout, "variant": receipt.variant, "seed": seed,
                                   "fields": receipt.fields, "lines": receipt.lines}
        receipts.append(receipt)
    (out / "ground_truth.json").write_text(json.dumps(truth, ensure_ascii=False, indent=1), encoding="utf-8")
    return receipts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate synthetic Venezuelan payment receipts.")
    parser.add_argument("out_dir")
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    args = parser.parse_args(argv)
    started = _time.perf_counter()
    receipts = generate_set(args.out_dir, args.count, args.seed)
    print(f"{len(receipts)} receipts written to {args.out_dir} in {_time.perf_counter() - started:.1f}s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
