"""Images for OCR tests, drawn with Pillow so each test knows exactly what is printed where."""
from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT_PATHS = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSans-Regular.ttf",
]


def font(size: int) -> ImageFont.FreeTypeFont:
    for path in FONT_PATHS:
        if Path(path).is_file():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)


def draw_rows(rows: list[tuple[str, str]], size=(540, 900), text_size=26) -> tuple[Image.Image, list[tuple[int, int]]]:
    """A receipt-like page: one label/value pair per row. Returns the page and each row's y centre."""
    page = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(page)
    face = font(text_size)
    centres = []
    for index, (label, value) in enumerate(rows):
        y = 60 + index * 70
        draw.text((30, y), label, fill=(70, 70, 70), font=face)
        if value:
            width = draw.textlength(value, font=face)
            draw.text((size[0] - 30 - width, y), value, fill="black", font=face)
        centres.append(y + text_size // 2)
    return page, centres


def encode(image: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()
