"""Drawing toolkit and one renderer per receipt layout for `tools.receipt_generator`.

Layouts are designed in density-independent units ("dp"): a phone screen is 360 dp wide whatever
its pixel width, the way Android apps lay out, so one renderer serves 540, 720 and 1080 px screens.

Ground truth is never computed apart from the drawing: a renderer *binds* each field value to the
text items that show it, and `Canvas.finish` keeps a field only when all of its items survived
clipping and cropping. That is what guarantees "nothing in the ground truth that is not visibly
printed".
"""
from __future__ import annotations

import json
import math
import os
import random
import re
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, time
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator

from PIL import Image, ImageDraw, ImageFont

Color = str

# --------------------------------------------------------------------------------------------
# Fonts
# --------------------------------------------------------------------------------------------
FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts")

# Sans families that phone apps plausibly use and that cover Spanish accents and "•".
# (regular, medium, bold); medium falls back to bold when a family has none.
_KNOWN_FAMILIES: dict[str, tuple[str, str | None, str]] = {
    "DejaVu Sans": ("DejaVuSans.ttf", None, "DejaVuSans-Bold.ttf"),
    "DejaVu Sans Condensed": ("DejaVuSansCondensed.ttf", None, "DejaVuSansCondensed-Bold.ttf"),
    "Lato": ("Lato-Regular.ttf", "Lato-Semibold.ttf", "Lato-Bold.ttf"),
    "Liberation Sans": ("LiberationSans-Regular.ttf", None, "LiberationSans-Bold.ttf"),
    "Noto Sans": ("NotoSans-Regular.ttf", "NotoSans-Medium.ttf", "NotoSans-Bold.ttf"),
    "Open Sans": ("OpenSans-Regular.ttf", "OpenSans-SemiBold.ttf", "OpenSans-Bold.ttf"),
    "Roboto": ("Roboto-Regular.ttf", "Roboto-Medium.ttf", "Roboto-Bold.ttf"),
    "Roboto Condensed": ("RobotoCondensed-Regular.ttf", "RobotoCondensed-Medium.ttf",
                         "RobotoCondensed-Bold.ttf"),
}


class FontNotFoundError(RuntimeError):
    pass


@dataclass(frozen=True)
class FontFamily:
    name: str
    regular: str
    medium: str
    bold: str

    def path(self, weight: str) -> str:
        return {"regular": self.regular, "medium": self.medium, "bold": self.bold}[weight]


def _ttf_paths(dirs: tuple[str, ...]) -> list[str]:
    found: list[str] = []
    for root_dir in dirs:
        for root, _subdirs, files in os.walk(root_dir):
            found.extend(os.path.join(root, f) for f in files if f.lower().endswith(".ttf"))
    # Sorted so that the same installed fonts always give the same choice for a seed.
    return sorted(found)


def available_font_families(dirs: tuple[str, ...] | None = None) -> tuple[FontFamily, ...]:
    """Sans families installed under `dirs` (default FONT_DIRS, read at call time)."""
    return _families(tuple(FONT_DIRS if dirs is None else dirs))


@lru_cache(maxsize=None)
def _families(dirs: tuple[str, ...]) -> tuple[FontFamily, ...]:
    paths = _ttf_paths(dirs)
    by_name: dict[str, str] = {}
    for p in paths:
        by_name.setdefault(os.path.basename(p), p)
    families = []
    for name, (reg, med, bold) in sorted(_KNOWN_FAMILIES.items()):
        if reg in by_name and bold in by_name:
            medium = by_name.get(med, by_name[bold]) if med else by_name[bold]
            families.append(FontFamily(name, by_name[reg], medium, by_name[bold]))
    if families:
        return tuple(families)
    plain = [p for p in paths if not any(k in p for k in ("Mono", "Math", "Emoji", "Symbol"))]
    if plain:
        return (FontFamily(os.path.basename(plain[0]), plain[0], plain[0], plain[0]),)
    raise FontNotFoundError(
        f"No TrueType font found under {', '.join(dirs)}. "
        "Install one, e.g. `apt-get install -y fonts-dejavu-core`."
    )


@lru_cache(maxsize=512)
def _font(path: str, size_px: int) -> ImageFont.FreeTypeFont:
    # BASIC layout: identical output with or without libraqm installed.
    return ImageFont.truetype(path, size_px, layout_engine=ImageFont.Layout.BASIC)


# --------------------------------------------------------------------------------------------
# Bank catalog
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Bank:
    code: str
    name: str
    aliases: tuple[str, ...]


def _banks_path() -> Path:
    try:  # the service's own setting, so ground truth follows the catalog the extractor uses
        from config import BANKS_PATH  # type: ignore

        return Path(BANKS_PATH)
    except ImportError:
        return Path(__file__).resolve().parent.parent / "config" / "banks.json"


@lru_cache(maxsize=None)
def load_banks() -> dict[str, Bank]:
    data = json.loads(_banks_path().read_text(encoding="utf-8"))
    return {b["code"]: Bank(b["code"], b["name"], tuple(b.get("aliases", ()))) for b in data["banks"]}


def bank(code: str) -> Bank:
    return load_banks()[code]


def strip_accents(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFD", text) if unicodedata.category(ch) != "Mn")


_STOPWORDS = {"banco", "bco", "de", "del", "la", "los", "c.a.", "s.a.c.a", "universal"}


def bank_short_name(b: Bank) -> str:
    """Shortest catalog spelling that keeps a distinctive word of the name ("MERCANTIL")."""
    words = {w.lower() for w in strip_accents(b.name).split()} - _STOPWORDS
    candidates = [a for a in (b.name, *b.aliases)
                  if words & {w.lower() for w in strip_accents(a).split()}]
    return min(candidates or [b.name], key=lambda a: (len(a), a))


# --------------------------------------------------------------------------------------------
# Printed formats (Venezuelan conventions)
# --------------------------------------------------------------------------------------------
MONTHS = ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto",
          "septiembre", "octubre", "noviembre", "diciembre")


def fmt_amount(cents: int, thousands: bool = True) -> str:
    units, dec = divmod(cents, 100)
    whole = f"{units:,}".replace(",", ".") if thousands else str(units)
    return f"{whole},{dec:02d}"


def norm_amount(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def fmt_phone(phone: str, style: str) -> str:
    if style == "dash":
        return f"{phone[:4]}-{phone[4:]}"
    if style == "intl":
        return f"+58 {phone[1:4]} {phone[4:]}"
    if style == "space":
        return f"{phone[:4]} {phone[4:]}"
    return phone


def fmt_cedula(letter: str, digits: str, style: str) -> str:
    dotted = f"{int(digits):,}".replace(",", ".")
    return {
        "dash": f"{letter}-{digits}",
        "compact": f"{letter}{digits}",
        "dotted": f"{letter} - {dotted}",
        "dotted_dash": f"{letter}-{dotted}",
        "digits": digits,
    }[style]


def norm_cedula(letter: str, digits: str, style: str) -> str:
    return digits if style == "digits" else f"{letter}-{digits}"


def fmt_date(d: date, style: str) -> str:
    if style == "dmy2":
        return d.strftime("%d/%m/%y")
    if style == "dmy_dash":
        return d.strftime("%d-%m-%Y")
    if style == "short_month":
        return f"{d.day:02d} {MONTHS[d.month - 1][:3]} {d.year}"
    if style == "long":
        return f"{d.day} de {MONTHS[d.month - 1]} de {d.year}"
    return d.strftime("%d/%m/%Y")


def fmt_time(t: time, style: str) -> str:
    h12 = t.hour % 12 or 12
    am = t.hour < 12
    if style == "24s":
        return t.strftime("%H:%M:%S")
    if style == "12":
        return f"{h12:02d}:{t.minute:02d} {'AM' if am else 'PM'}"
    if style == "12s":
        return f"{h12:02d}:{t.minute:02d}:{t.second:02d} {'am' if am else 'pm'}"
    if style == "12dots":
        return f"{h12}:{t.minute:02d} {'a. m.' if am else 'p. m.'}"
    return t.strftime("%H:%M")


def norm_time(t: time) -> str:
    return t.strftime("%H:%M")


# --------------------------------------------------------------------------------------------
# What a receipt is about; renderers choose what to print and how
# --------------------------------------------------------------------------------------------
@dataclass
class Transaction:
    amount_cents: int
    day: date
    moment: time
    phone: str  # 11 digits
    id_letter: str  # "V" / "E"
    id_digits: str
    person: str
    business: str
    rif: str
    concept: str
    dest_bank: Bank
    origin_last4: str
    dest_last4: str
    screenshot_delay_min: int


# Phones, amounts, cédulas, dates, masked accounts: printed on one line whatever the width.
_ATOMIC = re.compile(r"^(Bs\.? )?[+VEJG]?[ \-]*\d[\d .,\-*•/:]*( Bs\.?)?$")


# --------------------------------------------------------------------------------------------
# Canvas: drawing plus bookkeeping of printed text
# --------------------------------------------------------------------------------------------
@dataclass
class TextItem:
    text: str
    box: tuple[int, int, int, int]  # ink box in px
    cy: float  # vertical middle in px, used to group items into lines
    height: float  # font size in px


@dataclass
class Rendered:
    image: Image.Image
    lines: list[str]
    fields: dict[str, str]
    dp_width: float = 360.0  # lets variants downscale by text size, not by raw width


class Canvas:
    def __init__(self, width_px: int, height_px: int, bg: Color, fonts: FontFamily,
                 dp_width: float = 360.0):
        self.img = Image.new("RGB", (width_px, height_px), bg)
        self.draw = ImageDraw.Draw(self.img)
        self.fonts = fonts
        self.s = width_px / dp_width
        self.W = dp_width
        self.H = height_px / self.s
        self.items: list[TextItem] = []
        self._bindings: list[tuple[str, str, tuple[TextItem, ...]]] = []
        self.clip_top = 0.0  # dp; text outside [clip_top, clip_bottom] is not drawn at all
        self.clip_bottom = self.H
        self.crop_top = 0.0  # dp; where a cropped screenshot of this screen would start
        self.row_tops: list[float] = []  # candidate cut lines for cropped screenshots
        self.content_bottom = 0.0

    # -- text -----------------------------------------------------------------------------
    def font(self, size: float, weight: str = "regular") -> ImageFont.FreeTypeFont:
        return _font(self.fonts.path(weight), max(6, round(size * self.s)))

    def measure(self, text: str, size: float, weight: str = "regular") -> float:
        return self.font(size, weight).getlength(text) / self.s

    def text(self, x: float, y: float, text: str, size: float, weight: str = "regular",
             fill: Color = "#000000", align: str = "left") -> TextItem | None:
        """Draw `text` vertically centred on y; None when it would not be fully visible."""
        font = self.font(size, weight)
        anchor = {"left": "lm", "center": "mm", "right": "rm"}[align]
        xy = (x * self.s, y * self.s)
        box = self.draw.textbbox(xy, text, font=font, anchor=anchor)
        # Half-visible text would be read by OCR but could not be in the ground truth.
        if box[1] < self.clip_top * self.s or box[3] > self.clip_bottom * self.s:
            return None
        self.draw.text(xy, text, font=font, fill=fill, anchor=anchor)
        item = TextItem(text, box, xy[1], float(font.size))
        self.items.append(item)
        return item

    def wrap(self, text: str, size: float, weight: str, max_width: float) -> list[str]:
        lines: list[str] = []
        for word in text.split(" "):
            if lines and self.measure(f"{lines[-1]} {word}", size, weight) <= max_width:
                lines[-1] = f"{lines[-1]} {word}"
            else:
                lines.append(word)
        return lines

    def paragraph(self, x: float, y: float, text: str, size: float, weight: str, fill: Color,
                  max_width: float, align: str = "left", leading: float = 1.35
                  ) -> tuple[list[TextItem | None], float]:
        if _ATOMIC.match(text):  # apps shrink numbers rather than break "+58 412 1234567"
            width = self.measure(text, size, weight)
            size = size * max(0.75, min(1.0, max_width / width)) if width > max_width else size
            return [self.text(x, y, text, size, weight, fill, align)], y
        items = []
        for i, line in enumerate(self.wrap(text, size, weight, max_width)):
            items.append(self.text(x, y + i * size * leading, line, size, weight, fill, align))
        return items, y + (len(items) - 1) * size * leading

    def bind(self, name: str, value: str | None, *items: TextItem | None) -> None:
        """Declare that `items` show field `name` = value (kept only if all stay visible)."""
        if value is not None and items and all(i is not None for i in items):
            self._bindings.append((name, value, tuple(items)))  # type: ignore[arg-type]

    # -- shapes ---------------------------------------------------------------------------
    def px(self, *dps: float) -> list[float]:
        return [v * self.s for v in dps]

    def rect(self, x0: float, y0: float, x1: float, y1: float, fill: Color) -> None:
        self.draw.rectangle(self.px(x0, y0, x1, y1), fill=fill)

    def hline(self, x0: float, x1: float, y: float, fill: Color, width: float = 1.0) -> None:
        if not self.clip_top <= y <= self.clip_bottom:  # dividers must not cross the chrome
            return
        self.draw.line(self.px(x0, y, x1, y), fill=fill, width=max(1, round(width * self.s)))

    def rounded(self, x0: float, y0: float, x1: float, y1: float, r: float, fill: Color,
                outline: Color | None = None, width: float = 1.0) -> None:
        if outline:
            self.rounded(x0, y0, x1, y1, r, outline)
            x0, y0, x1, y1, r = x0 + width, y0 + width, x1 - width, y1 - width, max(0, r - width)
        # Straight parts without anti-aliasing are exact; only corners need smoothing.
        self.rect(x0 + r, y0, x1 - r, y1, fill)
        self.rect(x0, y0 + r, x1, y1 - r, fill)
        for cx, cy in ((x0, y0), (x1 - r, y0), (x0, y1 - r), (x1 - r, y1 - r)):
            ex = x0 if cx == x0 else x1 - 2 * r
            ey = y0 if cy == y0 else y1 - 2 * r
            with self.aa(cx, cy, cx + r, cy + r) as (d, P, _k):
                d.ellipse([*P(ex, ey), *P(ex + 2 * r, ey + 2 * r)], fill=fill)

    @contextmanager
    def aa(self, x0: float, y0: float, x1: float, y1: float, k: int = 4
           ) -> Iterator[tuple[ImageDraw.ImageDraw, Callable[[float, float], tuple[float, float]], float]]:
        """Supersampled patch: PIL shapes have jagged edges, real screenshots do not."""
        px0, py0 = math.floor(x0 * self.s), math.floor(y0 * self.s)
        px1, py1 = math.ceil(x1 * self.s), math.ceil(y1 * self.s)
        w, h = max(1, px1 - px0), max(1, py1 - py0)
        patch = Image.new("RGBA", (w * k, h * k), (0, 0, 0, 0))

        def P(x: float, y: float) -> tuple[float, float]:
            return ((x * self.s - px0) * k, (y * self.s - py0) * k)

        yield ImageDraw.Draw(patch), P, self.s * k
        small = patch.resize((w, h), Image.Resampling.BOX)
        self.img.paste(small, (px0, py0), small)

    def snapshot(self, y0: float, y1: float) -> tuple[Image.Image, int]:
        """Pixels of a band, to put back after scrolled content has been drawn across it."""
        top = round(y0 * self.s)
        return self.img.crop((0, top, self.img.width, round(y1 * self.s))), top

    def restore(self, snap: tuple[Image.Image, int]) -> None:
        self.img.paste(snap[0], (0, snap[1]))

    # -- output ---------------------------------------------------------------------------
    def finish(self, crop: tuple[float, float] | None = None) -> Rendered:
        """Crop vertically (dp range), then keep the text and fields that remain visible."""
        img, top_px, bottom_px = self.img, 0, self.img.height
        if crop:
            top_px, bottom_px = round(crop[0] * self.s), round(crop[1] * self.s)
            img = img.crop((0, top_px, img.width, bottom_px))
        visible = [it for it in self.items if it.box[1] >= top_px and it.box[3] <= bottom_px]
        ids = {id(it) for it in visible}
        fields: dict[str, str] = {}
        for name, value, items in self._bindings:
            if name not in fields and all(id(i) in ids for i in items):
                fields[name] = value
        return Rendered(img, group_lines(visible), fields, self.W)

    def safe_cut(self, y: float, upward: bool) -> float:
        """Move a horizontal cut out of any text it would slice through."""
        for _ in range(len(self.items)):
            hit = [it for it in self.items if it.box[1] < y * self.s < it.box[3]]
            if not hit:
                return y
            y = (min(it.box[1] for it in hit) - 2) / self.s if upward \
                else (max(it.box[3] for it in hit) + 2) / self.s
        return y


def group_lines(items: list[TextItem]) -> list[str]:
    """Reading order: items whose middles align form one line, left to right."""
    lines: list[list[TextItem]] = []
    for it in sorted(items, key=lambda i: (i.cy, i.box[0])):
        if lines:
            ref = lines[-1][0]
            if abs(it.cy - ref.cy) < 0.35 * max(it.height, ref.height):
                lines[-1].append(it)
                continue
        lines.append([it])
    return [" ".join(i.text for i in sorted(line, key=lambda i: i.box[0])) for line in lines]


# --------------------------------------------------------------------------------------------
# Icons and phone chrome (shapes only, so OCR text and `lines` stay in step)
# --------------------------------------------------------------------------------------------
def check_circle(c: Canvas, cx: float, cy: float, r: float, color: Color, mark: Color,
                 outline: bool = False) -> None:
    with c.aa(cx - r - 1, cy - r - 1, cx + r + 1, cy + r + 1) as (d, P, k):
        if outline:
            d.ellipse([*P(cx - r, cy - r), *P(cx + r, cy + r)], outline=color, width=round(r * 0.14 * k))
            mark = color
        else:
            d.ellipse([*P(cx - r, cy - r), *P(cx + r, cy + r)], fill=color)
        pts = [P(cx - 0.42 * r, cy + 0.02 * r), P(cx - 0.12 * r, cy + 0.32 * r), P(cx + 0.44 * r, cy - 0.3 * r)]
        d.line(pts, fill=mark, width=round(r * 0.17 * k), joint="curve")


def copy_icon(c: Canvas, x: float, cy: float, size: float, color: Color) -> None:
    with c.aa(x, cy - size / 2, x + size, cy + size / 2) as (d, P, k):
        w = max(1, round(size * 0.1 * k))
        d.rounded_rectangle([*P(x + size * 0.3, cy - size / 2 + 1), *P(x + size - 1, cy + size * 0.2)],
                            radius=size * 0.08 * k, outline=color, width=w)
        d.rounded_rectangle([*P(x + 1, cy - size * 0.2), *P(x + size * 0.7, cy + size / 2 - 1)],
                            radius=size * 0.08 * k, outline=color, width=w)


def back_arrow(c: Canvas, x: float, cy: float, size: float, color: Color) -> None:
    with c.aa(x - 1, cy - size / 2 - 1, x + size + 1, cy + size / 2 + 1) as (d, P, k):
        w = round(size * 0.11 * k)
        d.line([P(x + 1, cy), P(x + size, cy)], fill=color, width=w)
        d.line([P(x + size * 0.45, cy - size * 0.42), P(x + 1, cy), P(x + size * 0.45, cy + size * 0.42)],
               fill=color, width=w, joint="curve")


def close_icon(c: Canvas, cx: float, cy: float, size: float, color: Color) -> None:
    h = size / 2
    with c.aa(cx - h - 1, cy - h - 1, cx + h + 1, cy + h + 1) as (d, P, k):
        w = round(size * 0.1 * k)
        d.line([P(cx - h, cy - h), P(cx + h, cy + h)], fill=color, width=w)
        d.line([P(cx - h, cy + h), P(cx + h, cy - h)], fill=color, width=w)


def share_icon(c: Canvas, cx: float, cy: float, size: float, color: Color) -> None:
    h = size / 2
    with c.aa(cx - h - 2, cy - h - 2, cx + h + 2, cy + h + 2) as (d, P, k):
        a, b, e = (cx + h * 0.7, cy - h * 0.7), (cx - h * 0.7, cy), (cx + h * 0.7, cy + h * 0.7)
        d.line([P(*a), P(*b), P(*e)], fill=color, width=round(size * 0.09 * k))
        for px, py in (a, b, e):
            rr = size * 0.2
            d.ellipse([*P(px - rr, py - rr), *P(px + rr, py + rr)], fill=color)


def wifi_icon(c: Canvas, cx: float, cy: float, size: float, color: Color) -> None:
    with c.aa(cx - size, cy - size, cx + size, cy + size * 0.2) as (d, P, _k):
        d.pieslice([*P(cx - size * 0.8, cy - size * 0.8), *P(cx + size * 0.8, cy + size * 0.8)],
                   225, 315, fill=color)


def signal_icon(c: Canvas, x: float, cy: float, size: float, color: Color) -> None:
    bw = size / 5
    for i in range(4):
        h = size * (0.3 + 0.23 * i)
        c.rect(x + i * bw * 1.25, cy + size / 2 - h, x + i * bw * 1.25 + bw, cy + size / 2, color)


def battery_icon(c: Canvas, x: float, cy: float, size: float, color: Color, level: float) -> None:
    w, h = size * 1.9, size
    with c.aa(x, cy - h / 2, x + w + size * 0.2, cy + h / 2) as (d, P, k):
        d.rounded_rectangle([*P(x, cy - h / 2), *P(x + w, cy + h / 2)], radius=h * 0.25 * k,
                            outline=color, width=max(1, round(size * 0.1 * k)))
        d.rectangle([*P(x + w, cy - h * 0.2), *P(x + w + size * 0.15, cy + h * 0.2)], fill=color)
        d.rectangle([*P(x + size * 0.18, cy - h / 2 + size * 0.18),
                     *P(x + size * 0.18 + (w - size * 0.36) * level, cy + h / 2 - size * 0.18)], fill=color)


def status_bar(c: Canvas, rng: random.Random, clock: time, bg: Color, fg: Color) -> float:
    """Android or iOS status bar; returns its height in dp."""
    ios = rng.random() < 0.25
    h = 44.0 if ios else rng.choice((24.0, 26.0, 28.0))
    c.rect(0, 0, c.W, h, bg)
    cy = h / 2 + (3 if ios else 0)
    style = "24" if ios else rng.choice(("24", "12dots", "12dots", "12caps"))
    label = fmt_time(clock, "12dots" if style == "12caps" else style)
    if style == "12caps":  # some Android skins print "7:15 P.M."
        label = label.replace("a. m.", "A.M.").replace("p. m.", "P.M.")
    if ios:
        label = label.lstrip("0")
    c.text(22 if ios else 14, cy, label, 14 if ios else 12.5, "bold" if ios else "regular", fg)
    if not ios:
        for i in range(rng.randint(0, 3)):  # notification icons (chat bubble, mail, dot)
            nx = 14 + c.measure(label, 12.5) + 10 + i * 15
            kind = rng.choice(("bubble", "mail", "dot"))
            with c.aa(nx, cy - 6, nx + 12, cy + 6) as (d, P, k):
                if kind == "bubble":
                    d.ellipse([*P(nx, cy - 5), *P(nx + 10, cy + 5)], fill=fg)
                    d.polygon([P(nx, cy + 5), P(nx + 2, cy + 1), P(nx + 4, cy + 4)], fill=fg)
                elif kind == "mail":
                    d.rectangle([*P(nx, cy - 4), *P(nx + 11, cy + 4)], fill=fg)
                    d.line([P(nx, cy - 4), P(nx + 5.5, cy), P(nx + 11, cy - 4)], fill=bg, width=round(k * c.s))
                else:
                    d.ellipse([*P(nx + 3, cy - 2), *P(nx + 7, cy + 2)], fill=fg)
    x = c.W - 14
    level = rng.uniform(0.15, 1.0)
    x -= 19
    battery_icon(c, x, cy, 10, fg, level)
    if not ios and rng.random() < 0.5:
        c.text(x - 3, cy, f"{round(level * 100)}%", 11, "regular", fg, "right")
        x -= c.measure(f"{round(level * 100)}%", 11) + 3
    signal_icon(c, x - 18, cy, 10, fg)
    wifi_icon(c, x - 28, cy + 4, 10, fg)
    return h


def android_nav(c: Canvas, rng: random.Random, bg: Color, fg: Color) -> float:
    """Bottom system navigation; returns its height in dp (0 when none is shown)."""
    kind = rng.choice(("buttons", "buttons", "gesture", "none"))
    if kind == "none":
        return 0.0
    h = 48.0 if kind == "buttons" else 20.0
    top = c.H - h
    c.rect(0, top, c.W, c.H, bg)
    cy = top + h / 2
    if kind == "gesture":
        c.rounded(c.W / 2 - 50, cy - 2, c.W / 2 + 50, cy + 2, 2, fg)
        return h
    with c.aa(0, top, c.W, c.H) as (d, P, k):
        w = round(1.6 * k)
        for cx, shape in ((c.W * 0.25, "back"), (c.W * 0.5, "home"), (c.W * 0.75, "menu")):
            if shape == "back":
                d.polygon([P(cx - 6, cy), P(cx + 5, cy - 7), P(cx + 5, cy + 7)], outline=fg, width=w)
            elif shape == "home":
                d.ellipse([*P(cx - 7, cy - 7), *P(cx + 7, cy + 7)], outline=fg, width=w)
            else:
                for dy in (-5, 0, 5):
                    d.line([P(cx - 7, cy + dy), P(cx + 7, cy + dy)], fill=fg, width=w)
    return h


def app_bar(c: Canvas, y: float, title: str, bg: Color | None, fg: Color, size: float = 17,
            share: bool = True, centered: bool = True) -> tuple[TextItem | None, float]:
    h = 56.0
    if bg:
        c.rect(0, y, c.W, y + h, bg)
    back_arrow(c, 16, y + h / 2, 20, fg)
    item = c.text(c.W / 2 if centered else 56, y + h / 2, title, size, "bold", fg,
                  "center" if centered else "left")
    if share:
        share_icon(c, c.W - 26, y + h / 2, 20, fg)
    return item, y + h


# --------------------------------------------------------------------------------------------
# Row helpers shared by the layouts
# --------------------------------------------------------------------------------------------
@dataclass
class RowStyle:
    margin: float = 20.0
    label_size: float = 15.0
    value_size: float = 15.0
    label_weight: str = "medium"
    value_weight: str = "regular"
    label_color: Color = "#222222"
    value_color: Color = "#222222"
    height: float = 38.0
    divider: Color | None = None
    value_right_pad: float = 0.0


# Apps set the lines of a wrapped label closer than those of a paragraph.
LABEL_LEADING = 1.25


def draw_label(c: Canvas, x: float, y: float, label: str, st: RowStyle, max_width: float
               ) -> tuple[float, float]:
    """Draw a row's label from y down, wrapped inside `max_width` when it is wider, the way apps
    wrap a label in its column; returns the y of its last line and the width it takes."""
    size, weight = st.label_size, st.label_weight
    lines = [label]
    if c.measure(label, size, weight) > max_width:
        lines = c.wrap(label, size, weight, max_width)
    for i, line in enumerate(lines):
        c.text(x, y + i * size * LABEL_LEADING, line, size, weight, st.label_color)
    return y + (len(lines) - 1) * size * LABEL_LEADING, max(c.measure(line, size, weight) for line in lines)


def _narrowest_value(c: Canvas, value: str, st: RowStyle) -> float:
    """The least width a value can be printed in: numbers shrink to 3/4 (see Canvas.paragraph),
    words wrap down to the widest one."""
    if _ATOMIC.match(value):
        return 0.75 * c.measure(value, st.value_size, st.value_weight)
    return max(c.measure(word, st.value_size, st.value_weight) for word in value.split(" "))


def lv_row(c: Canvas, y: float, label: str, value: str, st: RowStyle
           ) -> tuple[list[TextItem | None], float]:
    """Label on the left, value right-aligned (wrapping leftwards when long); returns next y.
    A label that would leave its value too little room wraps instead, the value right of its
    first line."""
    c.row_tops.append(y - st.height / 2)
    right = c.W - st.margin - st.value_right_pad
    label_room = right - st.margin - 16 - _narrowest_value(c, value, st)
    label_bottom, label_width = draw_label(c, st.margin, y, label, st, label_room)
    avail = right - st.margin - label_width - 16
    items, last_y = c.paragraph(right, y, value, st.value_size, st.value_weight, st.value_color,
                                avail, "right", 1.3)
    last_y = max(last_y, label_bottom)
    if st.divider:
        c.hline(st.margin, c.W - st.margin, last_y + st.height / 2, st.divider, 0.8)
    c.content_bottom = last_y + st.value_size
    return items, last_y + st.height


def stacked_row(c: Canvas, y: float, label: str, value: str, st: RowStyle, x: float | None = None,
                width: float | None = None) -> tuple[list[TextItem | None], float]:
    """Label on one line and its value below it (Bancamiga/BNC style); returns next y. A label
    wider than its column wraps inside it, the value below its last line."""
    x = st.margin if x is None else x
    width = (c.W - 2 * st.margin) if width is None else width
    c.row_tops.append(y - st.label_size)
    label_bottom, _width = draw_label(c, x, y, label, st, width)
    vy = label_bottom + st.label_size * 0.75 + st.value_size * 0.85
    items, last_y = c.paragraph(x, vy, value, st.value_size, st.value_weight, st.value_color, width)
    if st.divider:
        c.hline(st.margin, c.W - st.margin, last_y + st.value_size * 1.1, st.divider, 0.8)
    c.content_bottom = last_y + st.value_size
    return items, last_y + st.height


# --------------------------------------------------------------------------------------------
# Screen geometry
# --------------------------------------------------------------------------------------------
PHONE_SIZES = ((1080, 2400), (1080, 2340), (720, 1600), (720, 1560), (720, 1280),
               (540, 1200), (540, 1170))


@dataclass
class Screen:
    width: int
    height: int
    cropped: bool  # a crop of the receipt area only, without phone chrome


def pick_screen(rng: random.Random, crop_chance: float = 0.3) -> Screen:
    w, h = rng.choice(PHONE_SIZES)
    return Screen(w, h, rng.random() < crop_chance)


def crop_range(c: Canvas, rng: random.Random) -> tuple[float, float]:
    """Vertical dp range of a cropped screenshot: from the logo down to the last rows.

    Like real crops, the bottom sometimes cuts off the last row or two entirely.
    """
    top = c.safe_cut(max(0.0, c.crop_top), upward=True)
    bottom = c.content_bottom + rng.uniform(14, 40)
    tops = [t for t in c.row_tops if t > top + 120]
    if len(tops) > 3 and rng.random() < 0.3:
        bottom = tops[-rng.randint(1, 2)] + 4
    bottom = c.safe_cut(min(bottom, c.H), upward=True)
    return top, bottom


@dataclass
class LayoutContext:
    """Everything a renderer needs; `rng` drives every visual and textual choice."""
    txn: Transaction
    rng: random.Random
    fonts: FontFamily
    # Forced scroll in dp (None: the layout's own random choice), and the app's brand written in
    # its tab bar; both only when asked for, so seeds keep their images.
    scroll: float | None = None
    brand_in_tabs: bool = False


# --------------------------------------------------------------------------------------------
# Small value helpers used by several layouts
# --------------------------------------------------------------------------------------------
def digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def bdv_bank_label(b: Bank, sep: str = " - ") -> str:
    return f"{b.code}{sep}{strip_accents(b.name).upper()}"


def amount_text(c_cents: int, rng: random.Random, styles: tuple[str, ...]) -> str:
    """One of the ways apps print an amount: "Bs. 1.234,56", "1.234,56 Bs", "1234,56"..."""
    style = rng.choice(styles)
    num = fmt_amount(c_cents, thousands=rng.random() < 0.8)
    return {"prefix": f"Bs. {num}", "suffix": f"{num} Bs", "suffix_dot": f"{num} Bs.",
            "bare": num}[style]


def scaled(st: RowStyle, rng: random.Random) -> RowStyle:
    """Per-seed size jitter so that all receipts of a layout do not share one geometry."""
    f = rng.uniform(0.93, 1.07)
    st.label_size *= f
    st.value_size *= f
    st.height *= f
    st.margin *= rng.uniform(0.85, 1.15)
    return st


# --------------------------------------------------------------------------------------------
# PagomóvilBDV "Personas" (light and dark)
# --------------------------------------------------------------------------------------------
_BDV = {
    False: dict(bg="#e4e4e4", status="#d5d5d5", fg="#1e1e1e", pill="#d3d3d3", check="#c8174b",
                mark="#ffffff", copy="#c8174b", knob="#ffffff", track="#8a8a8a"),
    True: dict(bg="#262626", status="#1c1c1c", fg="#f4f4f4", pill="#5e5e5e", check="#ffffff",
               mark="#262626", copy="#f4f4f4", knob="#d8d8d8", track="#6e6e6e"),
}


def bdv_logo(c: Canvas, cx: float, cy: float, size: float) -> None:
    s = size / 2
    with c.aa(cx - s, cy - s, cx + s, cy + s) as (d, P, _k):
        d.polygon([P(cx - 0.85 * s, cy - 0.55 * s), P(cx - 0.25 * s, cy - 0.85 * s),
                   P(cx + 0.15 * s, cy + 0.35 * s), P(cx - 0.15 * s, cy + 0.9 * s)], fill="#ffd200")
        d.polygon([P(cx + 0.2 * s, cy - 0.75 * s), P(cx + 0.85 * s, cy - 0.95 * s),
                   P(cx + 0.55 * s, cy + 0.25 * s), P(cx + 0.1 * s, cy + 0.1 * s)], fill="#e0174f")
        d.polygon([P(cx - 0.15 * s, cy - 0.2 * s), P(cx + 0.5 * s, cy + 0.3 * s),
                   P(cx + 0.05 * s, cy + 0.95 * s), P(cx - 0.35 * s, cy + 0.55 * s)], fill="#0066b3")


def render_bdv(ctx: LayoutContext, dark: bool) -> Rendered:
    t, rng, pal = ctx.txn, ctx.rng, _BDV[dark]
    screen = pick_screen(rng, 0.35)
    c = Canvas(screen.width, screen.height, pal["bg"], ctx.fonts)
    y = status_bar(c, rng, _screenshot_clock(t), pal["status"], pal["fg"])
    _, y = app_bar(c, y, "Comprobante de operación", None, pal["fg"], 17)
    nav_h = android_nav(c, rng, "#000000", "#e0e0e0")
    bottom_chrome = c.H - nav_h - 66  # the "Crear Acceso directo" strip is pinned to the bottom
    c.clip_bottom = bottom_chrome - 4

    c.crop_top = y + 10
    bdv_logo(c, c.W / 2, y + 52, 62)
    title = "PagomóvilBDV Personas" if rng.random() < 0.8 else "PagomóvilBDV"
    head = c.text(c.W / 2, y + 104, title, 19, "medium", pal["fg"], "center")
    c.bind("banco_origen", bank("0102").name, head)
    c.bind("tipo_transaccion", "pago_movil", head)
    c.bind("canal_pago", "PagomóvilBDV", head)
    check_circle(c, c.W / 2, y + 136, 12.5, pal["check"], pal["mark"])
    y += 160
    if rng.random() < 0.25:
        c.text(c.W / 2, y + 4, "Operación exitosa", 15, "regular", pal["fg"], "center")
        y += 26
    c.rounded(26, y, c.W - 26, y + 44, 9, pal["pill"])
    amt = c.text(c.W / 2, y + 22, f"{fmt_amount(t.amount_cents)} Bs", 18, "bold", pal["fg"], "center")
    c.bind("monto", norm_amount(t.amount_cents), amt)
    c.content_bottom = y + 44
    y += 72

    st = scaled(RowStyle(margin=30, label_size=15, value_size=15, label_color=pal["fg"],
                         value_color=pal["fg"], height=34.5), rng)
    for label, value, fields in _bdv_rows(t, rng):
        row_st = replace(st, value_right_pad=24) if label == "Operación:" else st
        items, y_next = lv_row(c, y, label, value, row_st)
        if label == "Operación:" and items[0]:
            copy_icon(c, c.W - st.margin - 17, y - 1, 17, pal["copy"])
        for name, val in fields.items():
            # "0166 - BANCO AGRICOLA DE" names the bank by its code even if the wrapped rest is cut.
            shown = items[:1] if name == "banco_destino" else items
            c.bind(name, val, *shown)
        y = y_next

    c.clip_bottom = c.H
    arrow_y = max(y + 20, bottom_chrome - 70)
    if arrow_y + 14 < bottom_chrome:  # the back arrow scrolls with the content
        back_arrow(c, c.W / 2 - 12, arrow_y, 24, pal["fg"] if dark else pal["copy"])
    _bdv_bottom(c, pal, nav_h, bottom_chrome)
    return c.finish(crop_range(c, rng) if screen.cropped else None)


def _bdv_rows(t: Transaction, rng: random.Random) -> list[tuple[str, str, dict[str, str]]]:
    ref = "00" + digits(rng, 10)  # BDV operation numbers are 12 digits starting "00"
    origin = f"0102****{t.origin_last4}"
    rows = [
        ("Fecha:", fmt_date(t.day, "dmy"), {"fecha": t.day.isoformat()}),
        ("Operación:", ref, {"referencia": ref}),
        ("Identificación:", t.id_digits, {"cedula": t.id_digits}),
        ("Origen:", origin, {"cuenta_origen": origin, "banco_origen": bank("0102").name}),
        ("Destino:", t.phone, {"telefono": t.phone}),
        ("Banco:", bdv_bank_label(t.dest_bank), {"banco_destino": t.dest_bank.name}),
    ]
    if rng.random() < 0.9:
        rows.append(("Concepto:", t.concept, {"concepto": t.concept}))
    return rows


def _bdv_bottom(c: Canvas, pal: dict, nav_h: float, top: float) -> None:
    c.rect(0, top, c.W, c.H - nav_h, pal["bg"])
    c.hline(0, c.W, top, "#c9c9c9" if pal["bg"] == "#e4e4e4" else "#3a3a3a", 0.7)
    ty = top + 33
    c.rounded(c.W / 2 - 90, ty - 8, c.W / 2 - 62, ty + 8, 8, pal["track"])
    with c.aa(c.W / 2 - 100, ty - 12, c.W / 2 - 76, ty + 12) as (d, P, _k):
        d.ellipse([*P(c.W / 2 - 99, ty - 11), *P(c.W / 2 - 77, ty + 11)], fill=pal["knob"])
    c.text(c.W / 2 - 50, ty, "Crear Acceso directo", 16, "medium", pal["fg"])


def _screenshot_clock(t: Transaction) -> time:
    minutes = (t.moment.hour * 60 + t.moment.minute + t.screenshot_delay_min) % (24 * 60)
    return time(minutes // 60, minutes % 60)


# --------------------------------------------------------------------------------------------
# BNC: pago móvil result, label over value with dividers, bottom tab bar
# --------------------------------------------------------------------------------------------
_BNC_NAVY, _BNC_GREEN, _BNC_RED, _BNC_ORANGE = "#0d2a5c", "#2a8c3a", "#c0453a", "#e8791d"


def render_bnc(ctx: LayoutContext) -> Rendered:
    t, rng = ctx.txn, ctx.rng
    screen = pick_screen(rng, 0.2)
    c = Canvas(screen.width, screen.height, "#ffffff", ctx.fonts)
    bar_h = status_bar(c, rng, _screenshot_clock(t), "#ffffff", "#303030")
    status_pixels = c.snapshot(0, bar_h)
    nav_h = android_nav(c, rng, "#ffffff", "#505050")
    tab_top = c.H - nav_h - 64
    top = bar_h + 56
    # Users often scroll before the screenshot: the success banner may be off screen.
    scroll = rng.choice((0.0, 0.0, rng.uniform(20, 150)))
    scroll = scroll if ctx.scroll is None else ctx.scroll
    c.clip_top, c.clip_bottom = top, tab_top
    y = top + 16 - scroll
    c.crop_top = max(top, y - 8)
    c.rounded(14, y, c.W - 14, y + 70, 8, "#ffffff", outline="#3aa44a", width=1.6)
    check_circle(c, 42, y + 35, 14, _BNC_GREEN, "#ffffff")
    banner = c.text(66, y + 24, "Su pago movil ha sido", 14.5, "regular", "#444444")
    c.text(66, y + 46, "Ejecutado exitosamente", 14.5, "regular", "#444444")
    c.bind("tipo_transaccion", "pago_movil", banner)
    y += 100

    st = scaled(RowStyle(margin=26, label_size=13.5, value_size=14.5, label_color="#333333",
                         value_color="#333333", height=36, divider="#e3e3e3"), rng)
    acct_type = rng.choice(("Cta. Corriente", "Cta. Ahorro"))
    acct = f"***{t.origin_last4}"
    name = t.person.upper() if rng.random() < 0.6 else t.business.upper()
    ced_style = rng.choice(("dash", "dash", "compact"))
    benef = (f"{fmt_phone(t.phone, 'dash')} {name} {fmt_cedula(t.id_letter, t.id_digits, ced_style)}"
             f" - {strip_accents(bank_short_name(t.dest_bank)).upper()}")
    commission = max(1, round(t.amount_cents * 0.003))
    thousands = rng.random() < 0.8
    ref = digits(rng, rng.choice((8, 9, 9, 10)))
    ref = str(rng.randint(1, 9)) + ref[1:]
    labels = {"ref": rng.choice(("Referencia:", "Nro. Referencia:", "Referencia:"))}

    def row(label: str, value: str, color: str = "#333333", weight: str = "regular",
            indent: float = 10) -> list[TextItem | None]:
        nonlocal y
        rs = replace(st, value_color=color, value_weight=weight)
        items, y = stacked_row(c, y, label, value, rs, x=st.margin, width=c.W - 2 * st.margin - indent)
        return items

    items = row("Cuenta debitada:", f"{acct_type} BNC: {acct}")
    c.bind("cuenta_origen", acct, *items)
    c.bind("banco_origen", bank("0191").name, *items)
    c.bind("canal_pago", "BNC", *items)
    items = row("Beneficiario:", benef)
    for fname, value in (("telefono", t.phone), ("beneficiario", name),
                         ("cedula", norm_cedula(t.id_letter, t.id_digits, ced_style)),
                         ("banco_destino", t.dest_bank.name)):
        c.bind(fname, value, *items)
    c.bind("monto", norm_amount(t.amount_cents),
           *row("Monto:", f"Bs. {fmt_amount(t.amount_cents, thousands)}"))
    row("Comisión:", f"Bs. {fmt_amount(commission, thousands)}", _BNC_RED)
    row("Total:", f"Bs. {fmt_amount(t.amount_cents + commission, thousands)}", _BNC_NAVY, "bold")
    ref_items = row(labels["ref"], ref, _BNC_GREEN, "bold")
    if ref_items[0]:
        copy_icon(c, st.margin + c.measure(ref, st.value_size, "bold") + 6,
                  (ref_items[0].box[1] + ref_items[0].box[3]) / 2 / c.s, 17, _BNC_GREEN)
    c.bind("referencia", ref, *ref_items)
    row("Código autorizador:", digits(rng, 6), _BNC_GREEN)
    if rng.random() < 0.8:
        c.bind("concepto", t.concept, *row("Concepto:", t.concept))
    if rng.random() < 0.6:
        items = row("Fecha:", f"{fmt_date(t.day, 'dmy')} {fmt_time(t.moment, rng.choice(('12dots', '24')))}")
        c.bind("fecha", t.day.isoformat(), *items)
        c.bind("hora_operacion", norm_time(t.moment), *items)

    c.clip_top, c.clip_bottom = 0, c.H
    # Chrome drawn (or put back) last so scrolled content slides under it.
    c.restore(status_pixels)
    c.rect(0, bar_h, c.W, top, "#ffffff")
    title, _ = app_bar(c, bar_h, rng.choice(("Pago Móvil", "Pagos")), "#ffffff", _BNC_NAVY, 17,
                       share=False, centered=False)
    if title and title.text == "Pago Móvil":
        c.bind("tipo_transaccion", "pago_movil", title)
    c.hline(0, c.W, top, "#e0e0e0", 0.8)
    brand = _bnc_tabs(c, tab_top, c.H - nav_h, ctx.brand_in_tabs)
    c.bind("banco_origen", bank("0191").name, brand)  # kept when the account row is scrolled away
    c.bind("canal_pago", "BNC", brand)
    return c.finish(crop_range(c, rng) if screen.cropped else None)


def _bnc_tabs(c: Canvas, top: float, bottom: float, brand: bool = False) -> TextItem | None:
    """The tab bar; with `brand`, the middle tab's logo carries the app's name."""
    c.rect(0, top, c.W, bottom, _BNC_NAVY)
    brand_item = None
    for i, label in enumerate(("CUENTAS", "TARJETAS", None, "PAGOS", "DIVISAS")):
        cx = c.W * (0.1 + 0.2 * i)
        if label is None:
            with c.aa(cx - 30, top - 14, cx + 30, top + 46) as (d, P, _k):
                d.ellipse([*P(cx - 28, top - 12), *P(cx + 28, top + 44)], fill="#ffffff")
                d.ellipse([*P(cx - 23, top - 7), *P(cx + 23, top + 39)], fill=_BNC_NAVY)
                d.pieslice([*P(cx - 20, top - 4), *P(cx + 20, top + 36)], 200, 340, fill=_BNC_ORANGE)
            if brand:
                brand_item = c.text(cx, top + 24, "BNC", 13, "bold", "#ffffff", "center")
            continue
        c.rounded(cx - 9, top + 14, cx + 9, top + 27, 2, "#ffffff")
        c.text(cx, top + 44, label, 9.5, "medium", "#ffffff", "center")
    return brand_item


# --------------------------------------------------------------------------------------------
# Mercantil "Envío de Tpago": web page (three columns) or phone (one column)
# --------------------------------------------------------------------------------------------
_MERC_BLUE, _MERC_LABEL, _MERC_TEXT = "#0b3a82", "#174e86", "#333333"


def mercantil_logo(c: Canvas, x: float, cy: float, size: float) -> TextItem | None:
    item = c.text(x, cy, "Mercantil", size, "bold", _MERC_BLUE)
    end = x + c.measure("Mercantil", size, "bold") + 4
    with c.aa(end, cy - size, end + size * 1.3, cy + size) as (d, P, _k):
        d.ellipse([*P(end, cy - size * 0.9), *P(end + size * 1.25, cy + size * 0.9)], fill="#f39a1f")
        d.ellipse([*P(end - size * 0.35, cy - size * 1.2), *P(end + size * 0.95, cy + size * 0.6)],
                  fill="#ffffff")
        d.arc([*P(end - size * 0.1, cy - size * 0.9), *P(end + size * 1.1, cy + size * 0.7)], 300, 80,
              fill=_MERC_BLUE, width=round(size * 0.18 * c.s * 4))
    return item


def _merc_values(ctx: LayoutContext) -> list[tuple[str, list[tuple[str, dict[str, str]]]]]:
    """Blocks of (label, [(printed line, fields it shows)])."""
    t, rng = ctx.txn, ctx.rng
    masked = rng.random() < 0.85
    phone = f"{t.phone[:4]} - ••••{t.phone[-3:]}" if masked else f"{t.phone[:4]} - {t.phone[4:]}"
    ced = fmt_cedula(t.id_letter, t.id_digits, rng.choice(("dotted", "dotted", "dash")))
    name = rng.choice((t.person, t.business, t.person.split(" ")[0] + " " + t.person.split(" ")[-1]))
    name = name if rng.random() < 0.6 else name.capitalize()
    long_bank = t.dest_bank.name + rng.choice(("", " Banco Universal", ", C.A. Banco Universal"))
    if t.dest_bank.code == "0105":
        long_bank = "Banco Mercantil, C.A. S.A.C.A. Banco Universal"
    ref = digits(rng, 11)
    acct_type = rng.choice(("Cuenta de Ahorro", "Cuenta Corriente"))
    when = f"{fmt_date(t.day, 'dmy')} - {fmt_time(t.moment, '24s')}"
    bank_line = (long_bank, {"banco_destino": t.dest_bank.name})
    own_block = rng.random() < 0.4  # newer app versions give the bank its own "Banco receptor"
    benef = [(phone, {} if masked else {"telefono": t.phone}), (name, {"beneficiario": name}),
             (ced, {"cedula": f"{t.id_letter}-{t.id_digits}"})]
    if not own_block:
        benef.insert(1, bank_line)
    return [
        ("Desde mi cuenta", [(f"{acct_type} - ••••{t.origin_last4}", {"cuenta_origen": f"••••{t.origin_last4}"})]),
        (rng.choice(("Se Envió (Bs.)", "Monto (Bs.)")),
         [(fmt_amount(t.amount_cents, rng.random() < 0.7), {"monto": norm_amount(t.amount_cents)})]),
        ("Al beneficiario", benef),
        *([("Banco receptor", [bank_line])] if own_block else []),
        ("Concepto", [(t.concept, {"concepto": t.concept})]),
        (rng.choice(("Nro. Referencia", "Nro. de referencia", "Número de referencia")),
         [(ref, {"referencia": ref})]),
        ("Fecha y hora", [(when, {"fecha": t.day.isoformat(), "hora_operacion": norm_time(t.moment)})]),
    ]


def render_mercantil(ctx: LayoutContext) -> Rendered:
    rng = ctx.rng
    page = rng.random() < 0.5
    if page:
        w, h = rng.choice(((816, 1056), (1024, 1325), (768, 994)))
        c = Canvas(w, h, "#ffffff", ctx.fonts, dp_width=720)
        y = _merc_page_header(c, ctx)
    else:
        screen = pick_screen(rng, 0.0)
        c = Canvas(screen.width, screen.height, "#ffffff", ctx.fonts)
        y = status_bar(c, rng, _screenshot_clock(ctx.txn), "#ffffff", "#303030")
        android_nav(c, rng, "#ffffff", "#555555")
        y = _merc_phone_header(c, ctx, y)
    fy = c.H - 52 if page else c.H - 110
    c.clip_bottom = fy - 6
    blocks = _merc_values(ctx)
    y = _merc_grid(c, blocks, y) if page else _merc_column(c, blocks, y, rng)
    c.clip_bottom = c.H
    c.rect(10, fy, c.W - 10, fy + 36, "#eeeeee")
    c.text(c.W / 2, fy + 18, "La información mostrada en esta página es confidencial", 10.5 if page else 9.5,
           "regular", "#555555", "center")
    return c.finish()


def _merc_page_header(c: Canvas, ctx: LayoutContext) -> float:
    t = ctx.txn
    stamp = _screenshot_clock(t)
    stamp_s = time(stamp.hour, stamp.minute, min(59, t.moment.second + ctx.rng.randint(2, 9)))
    c.text(c.W - 10, 21, f"{fmt_date(t.day, 'dmy')} - {fmt_time(stamp_s, '12s')}", 16, "regular",
           "#444444", "right")
    logo = mercantil_logo(c, 44, 63, 30)
    c.bind("banco_origen", bank("0105").name, logo)
    title = c.text(c.W - 45, 76, "Envío de Tpago", 17, "medium", "#111111", "right")
    c.bind("tipo_transaccion", "pago_movil", title)
    c.bind("canal_pago", "Tpago", title)
    msg = "Operación realizada"
    wid = c.measure(msg, 19) + 42
    check_circle(c, (c.W - wid) / 2 + 16, 133, 16, "#2f8a3c", "#ffffff", outline=True)
    c.text((c.W - wid) / 2 + 42, 133, msg, 19, "regular", "#222222")
    return 188


def _merc_phone_header(c: Canvas, ctx: LayoutContext, y: float) -> float:
    c.rect(0, y, c.W, y + 56, _MERC_BLUE)
    back_arrow(c, 16, y + 28, 20, "#ffffff")
    title = c.text(56, y + 28, "Envío de Tpago", 18, "medium", "#ffffff")
    c.bind("tipo_transaccion", "pago_movil", title)
    c.bind("canal_pago", "Tpago", title)
    y += 56
    c.crop_top = y
    logo = mercantil_logo(c, 24, y + 36, 24)
    c.bind("banco_origen", bank("0105").name, logo)
    check_circle(c, 40, y + 88, 15, "#2f8a3c", "#ffffff", outline=True)
    c.text(66, y + 88, "Operación realizada", 18, "regular", "#222222")
    return y + 136


def _merc_grid(c: Canvas, blocks: list, y: float) -> float:
    col_x = (21, 250, 477)
    for row_start in range(0, len(blocks), 3):
        bottom = y
        for col, (label, values) in enumerate(blocks[row_start:row_start + 3]):
            x = col_x[col]
            c.text(x, y, label, 13.5, "medium", _MERC_LABEL)
            vy = y + 22
            for i, (line, fields) in enumerate(values):
                size = 13.5 if i == 0 else 12
                items, vy = c.paragraph(x, vy, line, size, "regular", _MERC_TEXT, 215, leading=1.45)
                for name, value in fields.items():
                    c.bind(name, value, *items)
                vy += size * 1.55
            bottom = max(bottom, vy)
        y = bottom + 26
    return y


def _merc_column(c: Canvas, blocks: list, y: float, rng: random.Random) -> float:
    st = scaled(RowStyle(margin=24, label_size=14, value_size=15, label_color=_MERC_LABEL,
                         value_color=_MERC_TEXT, height=10, divider="#e6e6e6"), rng)
    for label, values in blocks:
        c.row_tops.append(y - st.label_size)
        c.text(st.margin, y, label, st.label_size, "medium", _MERC_LABEL)
        vy = y + st.label_size * 0.8 + st.value_size * 0.85
        for line, fields in values:
            items, vy = c.paragraph(st.margin, vy, line, st.value_size, "regular", _MERC_TEXT,
                                    c.W - 2 * st.margin)
            for name, value in fields.items():
                c.bind(name, value, *items)
            vy += st.value_size * 1.4
        c.hline(st.margin, c.W - st.margin, vy - st.value_size * 0.3, "#e6e6e6", 0.8)
        c.content_bottom = vy
        y = vy + st.label_size * 1.2
    return y


# --------------------------------------------------------------------------------------------
# BBVA Provincial: "Dinero Rápido" (pago móvil) or transfer to another bank
# --------------------------------------------------------------------------------------------
_BBVA_NAVY, _BBVA_AQUA, _BBVA_BLUE = "#072146", "#2dcccd", "#1464a5"


def render_provincial(ctx: LayoutContext) -> Rendered:
    t, rng = ctx.txn, ctx.rng
    screen = pick_screen(rng, 0.25)
    c = Canvas(screen.width, screen.height, "#ffffff", ctx.fonts)
    dinero_rapido = rng.random() < 0.6
    y = status_bar(c, rng, _screenshot_clock(t), _BBVA_NAVY, "#ffffff")
    head_h = 250.0
    c.rect(0, y, c.W, y + head_h, _BBVA_NAVY)
    c.crop_top = y
    brand = c.text(20, y + 26, "BBVA", 20, "bold", "#ffffff")
    c.bind("banco_origen", bank("0108").name, brand)
    close_icon(c, c.W - 26, y + 26, 16, "#ffffff")
    check_circle(c, c.W / 2, y + 80, 24, _BBVA_AQUA, _BBVA_NAVY)
    msg = rng.choice(("¡Operación exitosa!", "Listo, enviaste tu dinero", "¡Envío realizado!"))
    c.text(c.W / 2, y + 126, msg, 18, "medium", "#ffffff", "center")
    product = "Dinero Rápido" if dinero_rapido else "Transferencia a otros bancos"
    prod = c.text(c.W / 2, y + 152, product, 14, "regular", "#9fc4f0", "center")
    c.bind("tipo_transaccion", "pago_movil" if dinero_rapido else "transferencia", prod)
    c.bind("canal_pago", "Dinero Rápido" if dinero_rapido else "BBVA Provincial",
           prod if dinero_rapido else brand)
    amount = f"{fmt_amount(t.amount_cents)} Bs."
    big = c.text(c.W / 2, y + 196, amount, 28, "medium", "#ffffff", "center")
    c.bind("monto", norm_amount(t.amount_cents), big)
    y += head_h + 30

    nav_h = android_nav(c, rng, "#ffffff", "#555555")
    c.clip_bottom = c.H - nav_h - 70
    st = scaled(RowStyle(margin=20, label_size=14, value_size=15, label_weight="regular",
                         label_color="#666666", value_color="#121212", height=44, divider="#e8e8e8"), rng)
    for label, value, fields in _provincial_rows(t, rng, dinero_rapido, amount):
        items, y = lv_row(c, y, label, value, st)
        for name, val in fields.items():
            c.bind(name, val, *items)
    c.clip_bottom = c.H
    by = c.H - nav_h - 40
    c.rect(0, c.H - nav_h - 70, c.W, c.H - nav_h, "#ffffff")
    c.rounded(20, by - 22, c.W / 2 - 6, by + 22, 2, "#ffffff", outline=_BBVA_BLUE, width=1.5)
    c.text(c.W / 4 + 7, by, "Compartir", 15, "medium", _BBVA_BLUE, "center")
    c.rounded(c.W / 2 + 6, by - 22, c.W - 20, by + 22, 2, _BBVA_BLUE)
    c.text(c.W * 3 / 4 - 7, by, "Ir a inicio", 15, "medium", "#ffffff", "center")
    return c.finish(crop_range(c, rng) if screen.cropped else None)


def _provincial_rows(t: Transaction, rng: random.Random, dinero_rapido: bool, amount: str
                     ) -> list[tuple[str, str, dict[str, str]]]:
    ref = digits(rng, rng.choice((8, 10, 12)))
    ced_style = rng.choice(("dash", "dash", "compact", "dotted_dash"))
    rows: list[tuple[str, str, dict[str, str]]] = []
    if rng.random() < 0.6:
        rows.append(("Importe", amount, {"monto": norm_amount(t.amount_cents)}))
    rows.append((rng.choice(("Referencia", "N° de operación", "Número de referencia")), ref,
                 {"referencia": ref}))
    rows.append(("Fecha", fmt_date(t.day, rng.choice(("short_month", "short_month", "dmy"))),
                 {"fecha": t.day.isoformat()}))
    if rng.random() < 0.6:
        rows.append(("Hora", fmt_time(t.moment, rng.choice(("24", "12dots"))),
                     {"hora_operacion": norm_time(t.moment)}))
    dest = t.dest_bank
    if dinero_rapido:
        rows.append(("Banco destino", f"{dest.code} - {dest.name}", {"banco_destino": dest.name}))
        rows.append(("Teléfono", fmt_phone(t.phone, rng.choice(("intl", "intl", "dash", "plain"))),
                     {"telefono": t.phone}))
    else:
        acct_o = f"•••• {t.origin_last4}"
        acct_d = f"{dest.code}****{t.dest_last4}"
        rows.append(("Cuenta origen", acct_o, {"cuenta_origen": acct_o}))
        rows.append(("Cuenta destino", acct_d, {"cuenta_destino": acct_d, "banco_destino": dest.name}))
        rows.append(("Beneficiario", t.person, {"beneficiario": t.person}))
    rows.append(("Documento", fmt_cedula(t.id_letter, t.id_digits, ced_style),
                 {"cedula": norm_cedula(t.id_letter, t.id_digits, ced_style)}))
    if rng.random() < 0.7:
        rows.append(("Concepto", t.concept, {"concepto": t.concept}))
    return rows


# --------------------------------------------------------------------------------------------
# Banesco Pago Móvil: "Label: value" lines in a card
# --------------------------------------------------------------------------------------------
_BANESCO_GREEN, _BANESCO_DARK = "#00875a", "#005c3c"


def banesco_logo(c: Canvas, x: float, cy: float, size: float, color: Color) -> TextItem | None:
    with c.aa(x, cy - size / 2, x + size, cy + size / 2) as (d, P, k):
        d.rounded_rectangle([*P(x, cy - size / 2), *P(x + size, cy + size / 2)], radius=size * 0.22 * k,
                            fill=color)
        d.ellipse([*P(x + size * 0.36, cy - size * 0.36), *P(x + size * 0.64, cy - size * 0.08)],
                  fill="#ffffff")
        d.arc([*P(x + size * 0.18, cy - size * 0.15), *P(x + size * 0.82, cy + size * 0.45)], 200, 340,
              fill="#ffffff", width=round(size * 0.12 * k))
    return c.text(x + size + 8, cy, "Banesco", size * 0.8, "bold", color)


def render_banesco(ctx: LayoutContext) -> Rendered:
    t, rng = ctx.txn, ctx.rng
    screen = pick_screen(rng, 0.3)
    c = Canvas(screen.width, screen.height, "#f1f3f2", ctx.fonts)
    y = status_bar(c, rng, _screenshot_clock(t), _BANESCO_DARK, "#ffffff")
    title, y = app_bar(c, y, "Pago Móvil", _BANESCO_GREEN, "#ffffff", 18, share=False)
    c.bind("tipo_transaccion", "pago_movil", title)
    nav_h = android_nav(c, rng, "#000000", "#dddddd")
    c.rounded(14, y + 14, c.W - 14, c.H - nav_h - 84, 12, "#ffffff")
    c.clip_bottom = c.H - nav_h - 96
    c.crop_top = y + 8
    logo = banesco_logo(c, 30, y + 46, 30, _BANESCO_GREEN)
    c.bind("banco_origen", bank("0134").name, logo)
    c.bind("canal_pago", "Banesco", logo)
    check_circle(c, c.W / 2, y + 100, 22, _BANESCO_GREEN, "#ffffff")
    head = c.text(c.W / 2, y + 142, rng.choice(("Pago Móvil exitoso", "¡Pago Móvil exitoso!", "Operación exitosa")),
                  18, "bold", "#1d1d1d", "center")
    if head and "Pago Móvil" in head.text:
        c.bind("tipo_transaccion", "pago_movil", head)
    y += 184
    inline = rng.random() < 0.5
    st = scaled(RowStyle(margin=30, label_size=14.5, value_size=14.5, label_color="#4d4d4d",
                         value_color="#1d1d1d", height=31), rng)
    for label, value, fields in _banesco_rows(t, rng):
        if inline:
            c.row_tops.append(y - st.height / 2)
            lab = c.text(st.margin, y, label, st.label_size, "bold", st.label_color)
            x = st.margin + c.measure(label, st.label_size, "bold") + 6
            items, last = c.paragraph(x, y, value, st.value_size, "regular", st.value_color,
                                      c.W - st.margin - x)
            items = items if lab else [None]
            c.content_bottom = last + st.value_size
            y = last + st.height
        else:
            items, y = lv_row(c, y, label, value, replace(st, label_weight="bold"))
        for name, val in fields.items():
            c.bind(name, val, *items)
    c.clip_bottom = c.H
    by = c.H - nav_h - 44
    c.rounded(20, by - 22, c.W / 2 - 6, by + 22, 22, _BANESCO_GREEN)
    c.text(c.W / 4 + 7, by, "Compartir", 15, "medium", "#ffffff", "center")
    c.rounded(c.W / 2 + 6, by - 22, c.W - 20, by + 22, 22, "#ffffff", outline=_BANESCO_GREEN, width=1.5)
    c.text(c.W * 3 / 4 - 7, by, "Finalizar", 15, "medium", _BANESCO_GREEN, "center")
    return c.finish(crop_range(c, rng) if screen.cropped else None)


def _banesco_rows(t: Transaction, rng: random.Random) -> list[tuple[str, str, dict[str, str]]]:
    ref = digits(rng, rng.choice((8, 9, 10, 12)))
    ced_style = rng.choice(("dash", "dash", "compact"))
    date_style = rng.choice(("dmy2", "dmy"))
    amount = amount_text(t.amount_cents, rng, ("prefix", "prefix", "suffix"))
    rows = [
        ("Monto:", amount, {"monto": norm_amount(t.amount_cents)}),
        (rng.choice(("Nro. de Recibo:", "Referencia:", "Ref.:", "Nro. Referencia:")), ref, {"referencia": ref}),
        ("Fecha:", fmt_date(t.day, date_style), {"fecha": t.day.isoformat()}),
    ]
    if rng.random() < 0.75:
        rows.append(("Hora:", fmt_time(t.moment, rng.choice(("12", "12", "24"))), {"hora_operacion": norm_time(t.moment)}))
    rows.append(("Banco:", bdv_bank_label(t.dest_bank, " "), {"banco_destino": t.dest_bank.name}))
    rows.append((rng.choice(("Celular:", "Teléfono:")), fmt_phone(t.phone, rng.choice(("dash", "dash", "plain"))),
                 {"telefono": t.phone}))
    rows.append((rng.choice(("C.I.:", "Cédula:")), fmt_cedula(t.id_letter, t.id_digits, ced_style),
                 {"cedula": norm_cedula(t.id_letter, t.id_digits, ced_style)}))
    if rng.random() < 0.4:
        acct = f"0134****{t.origin_last4}"
        # The account's bank code names the payer's bank even when the logo is scrolled away.
        rows.append(("Cuenta:", acct, {"cuenta_origen": acct, "banco_origen": bank("0134").name}))
    if rng.random() < 0.65:
        rows.append(("Concepto:", t.concept, {"concepto": t.concept}))
    return rows


# --------------------------------------------------------------------------------------------
# Bancamiga: stacked label / value (one or two columns), light or dark
# --------------------------------------------------------------------------------------------
_BANCAMIGA = {
    False: dict(bg="#ffffff", fg="#0e2a47", muted="#6b7a8c", accent="#00a19b", bar="#0e2a47",
                divider="#e4e8ec"),
    True: dict(bg="#0b1d36", fg="#ffffff", muted="#9fb0c6", accent="#1fc7bd", bar="#07152a",
               divider="#1d3350"),
}


def render_bancamiga(ctx: LayoutContext) -> Rendered:
    t, rng = ctx.txn, ctx.rng
    pal = _BANCAMIGA[rng.random() < 0.4]
    screen = pick_screen(rng, 0.3)
    c = Canvas(screen.width, screen.height, pal["bg"], ctx.fonts)
    y = status_bar(c, rng, _screenshot_clock(t), pal["bar"], "#ffffff")
    transfer = rng.random() < 0.35
    c.rect(0, y, c.W, y + 56, pal["bar"])
    with c.aa(14, y + 14, 42, y + 42) as (d, P, _k):
        d.ellipse([*P(14, y + 14), *P(42, y + 42)], fill=pal["accent"])
        d.ellipse([*P(21, y + 21), *P(35, y + 35)], fill=pal["bar"])
    brand = c.text(50, y + 28, "Bancamiga", 18, "bold", "#ffffff")
    c.bind("banco_origen", bank("0172").name, brand)
    c.bind("canal_pago", "Bancamiga", brand)
    y += 56
    c.crop_top = y + 4
    check_circle(c, c.W / 2, y + 46, 24, pal["accent"], pal["bg"])
    kind = c.text(c.W / 2, y + 92, "Transferencia" if transfer else "Pago Móvil", 15, "medium",
                  pal["muted"], "center")
    c.bind("tipo_transaccion", "transferencia" if transfer else "pago_movil", kind)
    c.text(c.W / 2, y + 118, rng.choice(("¡Operación exitosa!", "Transacción exitosa", "¡Listo!")), 20,
           "bold", pal["fg"], "center")
    y += 160
    nav_h = android_nav(c, rng, "#000000", "#dddddd")
    c.clip_bottom = c.H - nav_h - 8
    st = scaled(RowStyle(margin=24, label_size=13, value_size=16.5, label_weight="regular",
                         value_weight="medium", label_color=pal["muted"], value_color=pal["fg"],
                         height=30, divider=pal["divider"]), rng)
    rows = _bancamiga_rows(t, rng, transfer)
    if rng.random() < 0.35:
        _two_columns(c, rows, y, st)
    else:
        for label, value, fields in rows:
            items, y = stacked_row(c, y, label, value, st)
            for name, val in fields.items():
                c.bind(name, val, *items)
    return c.finish(crop_range(c, rng) if screen.cropped else None)


def _two_columns(c: Canvas, rows: list, y: float, st: RowStyle) -> None:
    col_w = (c.W - 2 * st.margin - 16) / 2
    plain = replace(st, divider=None)
    for i in range(0, len(rows), 2):
        bottom = y
        for j, (label, value, fields) in enumerate(rows[i:i + 2]):
            items, yy = stacked_row(c, y, label, value, plain, x=st.margin + j * (col_w + 16), width=col_w)
            for name, val in fields.items():
                c.bind(name, val, *items)
            bottom = max(bottom, yy)
        c.hline(st.margin, c.W - st.margin, bottom - st.height + st.value_size * 1.1, st.divider or "#ddd", 0.8)
        y = bottom


def _bancamiga_rows(t: Transaction, rng: random.Random, transfer: bool) -> list[tuple[str, str, dict[str, str]]]:
    ref = "0" * rng.randint(0, 4)
    ref += digits(rng, 12 - len(ref))
    ced_style = rng.choice(("dash", "compact", "dotted_dash", "digits"))
    dest = t.dest_bank
    rows = [
        ("Monto", amount_text(t.amount_cents, rng, ("prefix", "prefix", "suffix")),
         {"monto": norm_amount(t.amount_cents)}),
        (rng.choice(("Referencia", "Nro. Referencia", "N° de operación", "Operación")), ref, {"referencia": ref}),
        ("Fecha", fmt_date(t.day, rng.choice(("dmy", "dmy", "dmy_dash"))), {"fecha": t.day.isoformat()}),
    ]
    if rng.random() < 0.6:
        rows.append(("Hora", fmt_time(t.moment, rng.choice(("12dots", "24", "12"))),
                     {"hora_operacion": norm_time(t.moment)}))
    if transfer:
        acct_d = f"{dest.code}****{t.dest_last4}"
        rows.append(("Cuenta destino", acct_d, {"cuenta_destino": acct_d, "banco_destino": dest.name}))
        rows.append(("Beneficiario", t.person, {"beneficiario": t.person}))
    else:
        rows.append((rng.choice(("Banco destino", "Banco receptor")), f"{dest.code} - {dest.name}",
                     {"banco_destino": dest.name}))
        rows.append((rng.choice(("Teléfono", "Celular destino")),
                     fmt_phone(t.phone, rng.choice(("plain", "dash", "intl"))), {"telefono": t.phone}))
    rows.append((rng.choice(("Cédula", "Documento de identidad")),
                 fmt_cedula(t.id_letter, t.id_digits, ced_style),
                 {"cedula": norm_cedula(t.id_letter, t.id_digits, ced_style)}))
    if transfer or rng.random() < 0.5:
        acct_o = f"0172****{t.origin_last4}"
        rows.append((rng.choice(("Cuenta origen", "Cuenta debitada")), acct_o,
                     {"cuenta_origen": acct_o, "banco_origen": bank("0172").name}))
    if rng.random() < 0.7:
        rows.append(("Concepto", t.concept, {"concepto": t.concept}))
    return rows


# --------------------------------------------------------------------------------------------
# Generic bank transfer receipt (banks without a dedicated layout)
# --------------------------------------------------------------------------------------------
GENERIC_BRANDS = ("0104", "0114", "0115", "0128", "0137", "0138", "0151", "0156", "0157", "0163",
                  "0169", "0171", "0174", "0175")
_BRAND_COLORS = ("#0a4f9c", "#c4161c", "#00695c", "#5b2a86", "#e36414", "#1b3a5c", "#00796b")


def render_generic(ctx: LayoutContext) -> Rendered:
    t, rng = ctx.txn, ctx.rng
    brand_bank = bank(rng.choice(GENERIC_BRANDS))
    color = rng.choice(_BRAND_COLORS)
    screen = pick_screen(rng, 0.3)
    c = Canvas(screen.width, screen.height, "#ffffff", ctx.fonts)
    y = status_bar(c, rng, _screenshot_clock(t), color, "#ffffff")
    c.rect(0, y, c.W, y + 64, color)
    with c.aa(16, y + 14, 52, y + 50) as (d, P, _k):
        d.ellipse([*P(16, y + 14), *P(52, y + 50)], fill="#ffffff")
        d.rectangle([*P(26, y + 26), *P(42, y + 38)], fill=color)
    brand = c.text(62, y + 32, brand_bank.name, 18, "bold", "#ffffff")
    c.bind("banco_origen", brand_bank.name, brand)
    y += 64
    c.crop_top = y + 4
    check_circle(c, c.W / 2, y + 44, 22, color, "#ffffff")
    head = c.text(c.W / 2, y + 88, rng.choice(("Transferencia exitosa", "Comprobante de transferencia",
                                               "Transferencia realizada")), 18, "bold", "#1f1f1f", "center")
    c.bind("tipo_transaccion", "transferencia", head)
    comp = digits(rng, rng.choice((6, 8, 10)))
    comp_item = c.text(c.W / 2, y + 114, f"{rng.choice(('Comprobante N°', 'N° de comprobante'))} {comp}",
                       14, "regular", "#555555", "center")
    c.bind("comprobante", comp, comp_item)
    y += 150
    nav_h = android_nav(c, rng, "#000000", "#dddddd")
    c.clip_bottom = c.H - nav_h - 8
    st = scaled(RowStyle(margin=20, label_size=14, value_size=14.5, label_weight="regular",
                         value_weight="medium", label_color="#6a6a6a", value_color="#1f1f1f",
                         height=40, divider="#ececec"), rng)
    for label, value, fields in _generic_rows(t, rng, brand_bank):
        items, y = lv_row(c, y, label, value, st)
        for name, val in fields.items():
            c.bind(name, val, *items)
    return c.finish(crop_range(c, rng) if screen.cropped else None)


def _generic_rows(t: Transaction, rng: random.Random, origin: Bank) -> list[tuple[str, str, dict[str, str]]]:
    dest = t.dest_bank
    acct_o, acct_d = f"{origin.code}****{t.origin_last4}", f"{dest.code}****{t.dest_last4}"
    business = rng.random() < 0.5
    name = t.business if business else t.person
    rows = [
        ("Fecha", fmt_date(t.day, rng.choice(("dmy", "dmy", "long"))), {"fecha": t.day.isoformat()}),
    ]
    if rng.random() < 0.7:
        rows.append(("Hora", fmt_time(t.moment, rng.choice(("12dots", "24", "12", "24s"))),
                     {"hora_operacion": norm_time(t.moment)}))
    rows += [
        ("Monto", amount_text(t.amount_cents, rng, ("prefix", "suffix", "suffix_dot")),
         {"monto": norm_amount(t.amount_cents)}),
        ("Cuenta origen", acct_o, {"cuenta_origen": acct_o, "banco_origen": origin.name}),
        ("Cuenta destino", acct_d, {"cuenta_destino": acct_d, "banco_destino": dest.name}),
    ]
    if rng.random() < 0.4:
        rows.append(("Banco destino", dest.name, {"banco_destino": dest.name}))
    rows.append(("Beneficiario", name, {"beneficiario": name}))
    if business:
        rows.append(("RIF", t.rif, {"identificador_fiscal": t.rif}))
    else:
        style = rng.choice(("dash", "compact", "dotted_dash"))
        rows.append((rng.choice(("C.I.", "Cédula")), fmt_cedula(t.id_letter, t.id_digits, style),
                     {"cedula": norm_cedula(t.id_letter, t.id_digits, style)}))
    if rng.random() < 0.8:
        rows.append(("Concepto", t.concept, {"concepto": t.concept}))
    if rng.random() < 0.5:
        ref = digits(rng, rng.choice((8, 10, 12)))
        rows.append((rng.choice(("Referencia", "Ref.", "Nro. Referencia", "N° de operación")), ref,
                     {"referencia": ref}))
    return rows


RENDERERS: dict[str, Callable[[LayoutContext], Rendered]] = {
    "bdv_light": lambda ctx: render_bdv(ctx, dark=False),
    "bdv_dark": lambda ctx: render_bdv(ctx, dark=True),
    "bnc": render_bnc,
    "mercantil": render_mercantil,
    "provincial": render_provincial,
    "banesco": render_banesco,
    "bancamiga": render_bancamiga,
    "generic_transfer": render_generic,
}
