"""Ways a receipt arrives besides a clean screenshot, applied to any page image.

Used by the generator (`generate_receipt(seed, variant="photo")`) and by `benchmarks/accuracy.py`
to put real receipts through the same degradations. Every variant is deterministic for a given
`random.Random`: the same seed gives byte-identical output.

- photo: a phone photo of the screen: tilt up to 10 degrees, mild perspective, a border of desk,
  uneven light, moiré, blur, sensor noise, JPEG.
- turned90 / turned180 / turned270: the page turned clockwise by that much, no EXIF.
- thumbnail: forwarded twice as a thumbnail: 600-640 px on the long side, JPEG quality 40.
- large: a large phone screen: upscaled x2.2, at most 1440x3200.
- viewer: a screenshot of a gallery viewer showing the receipt: dark margins and a toolbar.
- rescreenshot: a screenshot of the receipt shown on another phone: its own status bar on top,
  grey margins, downscaled, JPEG.
"""
from __future__ import annotations

import io
import math
import random

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

ARRIVAL_VARIANTS: tuple[str, ...] = ("photo", "turned90", "turned180", "turned270", "thumbnail", "large",
                                     "viewer", "rescreenshot")
# PIL's transpose turns counter-clockwise; a variant's name says how far the page was turned clockwise.
_TURNS = {"turned90": Image.Transpose.ROTATE_270, "turned180": Image.Transpose.ROTATE_180,
          "turned270": Image.Transpose.ROTATE_90}
LARGE_SCREEN = (1440, 3200)


def encode_jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality, optimize=False, progressive=False, subsampling=2)
    return buf.getvalue()


def encode_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def apply_arrival(img: Image.Image, variant: str, rng: random.Random) -> tuple[bytes, str, tuple[int, int]]:
    """(encoded bytes, "PNG" or "JPEG", size) of `img` arrived as `variant`."""
    img = img.convert("RGB")
    if variant in _TURNS:
        turned = img.transpose(_TURNS[variant])
        return encode_png(turned), "PNG", turned.size
    if variant == "photo":
        photo = photograph(img, rng)
        return encode_jpeg(photo, rng.randint(70, 88)), "JPEG", photo.size
    if variant == "thumbnail":
        side = rng.randint(600, 640)
        thumb = img.copy()
        thumb.thumbnail((side, side), Image.Resampling.LANCZOS)
        data = encode_jpeg(thumb, 40)
        return encode_jpeg(Image.open(io.BytesIO(data)), 40), "JPEG", thumb.size  # forwarded twice
    if variant == "large":
        scale = min(2.2, LARGE_SCREEN[0] / img.width, LARGE_SCREEN[1] / img.height)
        large = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.BICUBIC)
        return encode_png(large), "PNG", large.size
    if variant == "viewer":
        framed = in_viewer(img, rng)
        return encode_png(framed), "PNG", framed.size
    if variant == "rescreenshot":
        shot = on_another_phone(img, rng)
        return encode_jpeg(shot, rng.randint(70, 85)), "JPEG", shot.size
    raise ValueError(f"Unknown arrival variant {variant!r}; expected one of {ARRIVAL_VARIANTS}")


# --------------------------------------------------------------------------------------------
# Photo of a screen
# --------------------------------------------------------------------------------------------
def photograph(img: Image.Image, rng: random.Random) -> Image.Image:
    """The page on a desk, photographed: the whole page stays in the frame."""
    import cv2  # the OCR stack's OpenCV; only the photo variant needs a perspective warp

    page = np.asarray(img, dtype=np.float32)
    height, width = page.shape[:2]
    page = _moire(page, rng)
    border = round(rng.uniform(0.05, 0.10) * max(width, height))
    angle = rng.uniform(2.0, 10.0) * rng.choice((-1, 1))
    out_w, out_h = _rotated_extent(width, height, angle)
    out_w, out_h = out_w + 2 * border, out_h + 2 * border
    # Corners of the page: rotated about the canvas centre, then each nudged for perspective.
    cx, cy = out_w / 2, out_h / 2
    cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    jitter = rng.uniform(0.01, 0.03) * min(width, height)
    corners = []
    for x, y in ((0, 0), (width, 0), (width, height), (0, height)):
        dx, dy = x - width / 2, y - height / 2
        corners.append((cx + dx * cos - dy * sin + rng.uniform(-jitter, jitter),
                        cy + dx * sin + dy * cos + rng.uniform(-jitter, jitter)))
    matrix = cv2.getPerspectiveTransform(np.float32([(0, 0), (width, 0), (width, height), (0, height)]),
                                         np.float32(corners))
    desk = np.array([rng.randint(90, 170), rng.randint(70, 140), rng.randint(50, 110)], dtype=np.float32)
    shot = cv2.warpPerspective(page, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=desk.tolist())
    shot *= _uneven_light(out_w, out_h, rng)[..., None]
    np_rng = np.random.default_rng(rng.getrandbits(32))
    shot += np_rng.normal(0.0, rng.uniform(3.0, 7.0), shot.shape).astype(np.float32)
    photo = Image.fromarray(np.clip(shot, 0, 255).astype(np.uint8))
    return photo.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.1)))


def _rotated_extent(width: int, height: int, angle: float) -> tuple[int, int]:
    cos, sin = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
    return math.ceil(width * cos + height * sin), math.ceil(width * sin + height * cos)


def _moire(page: np.ndarray, rng: random.Random) -> np.ndarray:
    """The interference of the screen's pixel grid with the camera's: faint diagonal fringes."""
    height, width = page.shape[:2]
    period = rng.uniform(3.0, 7.0)
    theta = rng.uniform(0, math.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    fringes = np.sin((xs * math.cos(theta) + ys * math.sin(theta)) * (2 * math.pi / period))
    return page * (1.0 + rng.uniform(0.02, 0.05) * fringes[..., None])


def _uneven_light(width: int, height: int, rng: random.Random) -> np.ndarray:
    """A lamp off to one side: brightness falls off linearly across the frame."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    direction = rng.uniform(0, 2 * math.pi)
    ramp = (xs / width - 0.5) * math.cos(direction) + (ys / height - 0.5) * math.sin(direction)
    darkest = rng.uniform(0.70, 0.85)
    return 1.0 - (1.0 - darkest) * (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)


# --------------------------------------------------------------------------------------------
# Shown inside another screen
# --------------------------------------------------------------------------------------------
def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def in_viewer(img: Image.Image, rng: random.Random) -> Image.Image:
    """A gallery viewer's screenshot: the receipt fitted inside dark margins, toolbar icons."""
    screen_w = rng.choice((720, 1080))
    screen_h = round(screen_w * rng.choice((2.0, 2.22)))
    canvas = Image.new("RGB", (screen_w, screen_h), (rng.randint(0, 25),) * 3)
    bar = round(screen_h * 0.07)
    scale = min(screen_w / img.width, (screen_h - 2 * bar) / img.height)
    shown = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
    canvas.paste(shown, ((screen_w - shown.width) // 2, (screen_h - shown.height) // 2))
    draw = ImageDraw.Draw(canvas)
    icon = round(bar * 0.4)
    for slot in range(4):  # share, edit, favourite, delete
        x = round(screen_w * (slot + 0.5) / 4) - icon // 2
        draw.rounded_rectangle((x, screen_h - bar + icon // 2, x + icon, screen_h - bar // 2 + icon // 2),
                               radius=icon // 4, outline=(220, 220, 220), width=max(2, icon // 10))
    return canvas


def on_another_phone(img: Image.Image, rng: random.Random) -> Image.Image:
    """A screenshot of the receipt opened on another phone: a new status bar, grey margins."""
    screen_w = rng.choice((720, 1080))
    status = round(screen_w * 0.07)
    scale = rng.uniform(0.85, 0.95) * screen_w / img.width
    shown = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
    screen_h = max(round(screen_w * 2.0), shown.height + 2 * status)
    canvas = Image.new("RGB", (screen_w, screen_h), (rng.randint(225, 245),) * 3)
    canvas.paste(shown, ((screen_w - shown.width) // 2, status + (screen_h - status - shown.height) // 2))
    draw = ImageDraw.Draw(canvas)
    clock = f"{rng.randint(1, 12)}:{rng.randint(0, 59):02d}"
    draw.text((round(screen_w * 0.05), status * 0.2), clock, fill=(30, 30, 30), font=_font(round(status * 0.5)))
    draw.text((round(screen_w * 0.82), status * 0.2), f"{rng.randint(10, 99)}%", fill=(30, 30, 30),
              font=_font(round(status * 0.45)))
    return canvas
