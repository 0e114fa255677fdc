"""Turning untrusted bytes into an RGB pixel array the OCR engine can read, or a clear refusal.

The one place images are opened: the upload check (`verify_image`) and the OCR (`load_image`)
both go through `_open` and the same verification.

Only bytes come in, never a path or URL chosen by a user. The format is sniffed from the bytes and
restricted to an allow-list; the extension a client sent is never consulted.
"""
from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

import config


class ImageRejected(Exception):
    """An image that cannot be read safely. `code` is stable and goes into API errors."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class VerifiedImage:
    image_format: str  # Pillow's name: PNG, JPEG...
    width: int
    height: int


@dataclass(frozen=True)
class LoadedImage:
    pixels: np.ndarray  # H x W x 3, uint8, RGB, possibly downscaled
    original_size: tuple[int, int]  # (width, height) of the image as sent, after EXIF rotation
    image_format: str
    sha256: str


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sniff_format(data: bytes) -> str:
    """The real image format of `data` (Pillow's name), or ImageRejected."""
    with _open(data) as image:
        return image.format or ""


def _open(data: bytes) -> Image.Image:
    if not data:
        raise ImageRejected("empty_file", "The file is empty")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between its limit and twice that; treat the warning as the error.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=sorted(config.ALLOWED_IMAGE_FORMATS))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected("image_too_large", f"Image has too many pixels (limit {config.MAX_IMAGE_PIXELS})") from exc
    except UnidentifiedImageError as exc:
        raise ImageRejected(
            "unsupported_format",
            "The bytes are not an image in an allowed format (" + ", ".join(sorted(config.ALLOWED_IMAGE_FORMATS)) + ")",
        ) from exc
    except Exception as exc:
        # A known format whose header is corrupt: Pillow raises OSError ("Truncated File Read"),
        # ValueError (a zTXt chunk above MAX_TEXT_CHUNK), struct.error, EOFError... It is the
        # client's bytes at fault (never the disk: `data` is already in memory).
        raise ImageRejected("invalid_image", "The image is corrupt or truncated") from exc
    width, height = image.size
    if width * height > config.MAX_IMAGE_PIXELS:
        image.close()
        raise ImageRejected(
            "image_too_large",
            f"Image is {width}x{height} = {width * height} pixels; the limit is {config.MAX_IMAGE_PIXELS}",
        )
    return image


# Bytes Pillow keeps per pixel of a decoded frame: one band of 8 bits takes 1, 16-bit grey 2,
# and every multi-band mode (RGB too) 4.
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
# Formats whose decoder hands over a full copy of the frame before Pillow stores it.
_DECODED_COPIES = {"WEBP": 4}  # measured: libwebp's canvas, its bytes, Pillow's frame
# Pixels of the full frame converted at once: conversions to 8-bit RGB never hold more than a strip.
_STRIP_PIXELS = 500_000
_EXIF_ORIENTATION = 0x0112
_TRANSPOSE_BY_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _reduce_factor(width: int, height: int) -> int:
    """The integer box reduction that brings the longest side down to at most twice MAX_IMAGE_SIDE
    (the rest of the way is a LANCZOS resize, finer than a box)."""
    return max(1, max(width, height) // config.MAX_IMAGE_SIDE)


@dataclass(frozen=True)
class _DecodePlan:
    factor: int  # box reduction applied while converting to 8-bit RGB
    cost: int  # bytes held at the peak: the decoded frame and its reduced RGB copy


def _plan_decoding(image: Image.Image) -> _DecodePlan:
    """Ask JPEG for a draft (DCT scaling: decoded smaller, never at full size), then the reduction
    and the memory of decoding, from the header alone: nothing is decoded yet."""
    if image.format == "JPEG":
        factor = _reduce_factor(*image.size)
        if factor > 1:
            image.draft("RGB", (-(-image.size[0] // factor), -(-image.size[1] // factor)))
    width, height = image.size
    frame = width * height * _BYTES_PER_PIXEL.get(image.mode, 4) * _DECODED_COPIES.get(image.format or "", 1)
    budget = config.MAX_DECODED_IMAGE_MB * 1024 * 1024
    fine = _reduce_factor(width, height)
    coarse = max(1, -(-max(width, height) // config.MAX_IMAGE_SIDE))  # straight to MAX_IMAGE_SIDE or less
    for factor in (fine, coarse):
        plan = _DecodePlan(factor, frame + -(-width // factor) * -(-height // factor) * 4)
        if plan.cost <= budget:
            break
    return plan


def _check_decoding_budget(image: Image.Image) -> _DecodePlan:
    plan = _plan_decoding(image)
    if plan.cost > config.MAX_DECODED_IMAGE_MB * 1024 * 1024:
        raise ImageRejected(
            "image_too_large",
            f"Image {image.size[0]}x{image.size[1]} ({image.format} {image.mode}) needs {plan.cost // (1024 * 1024)} "
            f"MB to decode; the limit is {config.MAX_DECODED_IMAGE_MB} MB",
        )
    return plan


def _levels(image: Image.Image) -> tuple[float, float] | None:
    """(low, span) of a 16/32-bit or float frame, read once over the whole image; None for 8-bit modes."""
    if image.mode not in {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}:
        return None
    low, high = image.getextrema()
    if image.mode != "F":
        low = 0  # integer greys keep their black: scaled by their top value only
    return float(low), float(high - low) or 1.0


def _strip_to_rgb(strip: Image.Image, levels: tuple[float, float] | None) -> Image.Image:
    if levels is not None:
        # Pillow clips 16/32-bit greys to 255 when converting; rescale to 8 bits instead (float32:
        # a strip of rows at a time, never the whole frame).
        low, span = levels
        array = np.asarray(strip).astype(np.float32)
        return Image.fromarray(((array - low) * (255.0 / span)).clip(0, 255).astype(np.uint8), mode="L").convert("RGB")
    if strip.mode == "P":
        strip = strip.convert("RGBA")
    if strip.mode in {"RGBA", "LA", "PA", "RGBa", "La"}:
        # Transparent screenshots: text drawn on transparency must end up on white, not black.
        rgba = strip.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return strip.convert("RGB")


def _reduced_rgb(image: Image.Image, factor: int) -> Image.Image:
    """8-bit RGB reduced by `factor`, converted and box-reduced strip by strip, so the
    only full-size buffer is the decoded frame itself."""
    width, height = image.size
    levels = _levels(image)
    rows = max(1, _STRIP_PIXELS // (width * factor)) * factor  # whole boxes of the reduction per strip
    reduced = Image.new("RGB", (-(-width // factor), -(-height // factor)))
    for top in range(0, height, rows):
        strip = _strip_to_rgb(image.crop((0, top, width, min(height, top + rows))), levels)
        reduced.paste(strip.reduce(factor) if factor > 1 else strip, (0, top // factor))
    return reduced


def verify_image(data: bytes) -> VerifiedImage:
    """The sniffed format and size of an allowed image whose structure Pillow verified intact and
    whose decoding fits the memory budget (read from the header: nothing is decoded)."""
    with _open(data) as probe:
        image_format = probe.format or ""
        width, height = probe.size
        _check_decoding_budget(probe)
        try:
            probe.verify()
        except Exception as exc:  # verify() raises many types for corrupt files
            raise ImageRejected("invalid_image", "The image is corrupt or truncated") from exc
    return VerifiedImage(image_format=image_format, width=width, height=height)


def load_image(data: bytes) -> LoadedImage:
    """Decode, verify, orient and normalize an untrusted image within the decoding memory budget."""
    image_format = verify_image(data).image_format
    # verify() leaves its object unusable: reopen for decoding.
    with _open(data) as image:
        try:
            image.seek(0)  # first frame of animated or multi-page files
            width, height = image.size
            orientation = image.getexif().get(_EXIF_ORIENTATION)
            if orientation in (5, 6, 7, 8):
                width, height = height, width
            if min(width, height) < config.MIN_IMAGE_SIDE:
                raise ImageRejected(
                    "image_too_small",
                    f"Image is {width}x{height} pixels; both sides must be at least {config.MIN_IMAGE_SIDE}",
                )
            plan = _check_decoding_budget(image)  # also sets a JPEG's draft scale
            image.load()
            rgb = _reduced_rgb(image, plan.factor)
        except ImageRejected:
            raise
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise ImageRejected("invalid_image", f"The image could not be decoded: {exc}") from exc
        finally:
            image.close()  # frees the full-size frame (leaving `with` only closes the file)
    # What follows works on the reduced copy only.
    if max(rgb.size) > config.MAX_IMAGE_SIDE:
        rgb.thumbnail((config.MAX_IMAGE_SIDE, config.MAX_IMAGE_SIDE), Image.Resampling.LANCZOS)
    if orientation in _TRANSPOSE_BY_ORIENTATION:
        rgb = rgb.transpose(_TRANSPOSE_BY_ORIENTATION[orientation])
    pixels = np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))
    return LoadedImage(pixels=pixels, original_size=(width, height), image_format=image_format, sha256=sha256_of(data))


# Pillow's own guard: refuse anything above our limit before allocating pixel buffers.
Image.MAX_IMAGE_PIXELS = config.MAX_IMAGE_PIXELS
