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
from PIL import Image, ImageOps, UnidentifiedImageError

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


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in {"I;16", "I;16B", "I;16L", "I"}:
        # Pillow clips 16/32-bit greys to 255 when converting; rescale to 8 bits instead.
        array = np.asarray(image, dtype=np.float64)
        top = array.max() or 1.0
        return Image.fromarray((array * (255.0 / top)).astype(np.uint8), mode="L").convert("RGB")
    if image.mode == "F":
        array = np.asarray(image, dtype=np.float64)
        span = (array.max() - array.min()) or 1.0
        return Image.fromarray(((array - array.min()) * (255.0 / span)).astype(np.uint8), mode="L").convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in {"RGBA", "LA", "PA", "RGBa", "La"}:
        # Transparent screenshots: text drawn on transparency must end up on white, not black.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def verify_image(data: bytes) -> VerifiedImage:
    """The sniffed format and size of an allowed image whose structure Pillow verified intact."""
    with _open(data) as probe:
        image_format = probe.format or ""
        width, height = probe.size
        try:
            probe.verify()
        except Exception as exc:  # verify() raises many types for corrupt files
            raise ImageRejected("invalid_image", "The image is corrupt or truncated") from exc
    return VerifiedImage(image_format=image_format, width=width, height=height)


def load_image(data: bytes) -> LoadedImage:
    """Decode, verify, orient and normalize an untrusted image."""
    image_format = verify_image(data).image_format
    # verify() leaves its object unusable: reopen for decoding.
    with _open(data) as image:
        try:
            image.seek(0)  # first frame of animated or multi-page files
            image.load()
            image = ImageOps.exif_transpose(image) or image
            width, height = image.size
            if min(width, height) < config.MIN_IMAGE_SIDE:
                raise ImageRejected(
                    "image_too_small",
                    f"Image is {width}x{height} pixels; both sides must be at least {config.MIN_IMAGE_SIDE}",
                )
            rgb = _to_rgb(image)
            if max(width, height) > config.MAX_IMAGE_SIDE:
                rgb.thumbnail((config.MAX_IMAGE_SIDE, config.MAX_IMAGE_SIDE), Image.Resampling.LANCZOS)
            pixels = np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))
        except ImageRejected:
            raise
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise ImageRejected("invalid_image", f"The image could not be decoded: {exc}") from exc
    return LoadedImage(pixels=pixels, original_size=(width, height), image_format=image_format, sha256=sha256_of(data))


# Pillow's own guard: refuse anything above our limit before allocating pixel buffers.
Image.MAX_IMAGE_PIXELS = config.MAX_IMAGE_PIXELS
