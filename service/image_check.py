"""The upload check of an image: its real format and size, verified, or the refusal to answer with.

Opening and verifying happen in ocr/image_safety.py, the one place images are opened; this turns
its answer into what an upload needs (the stored extension) and its refusal into UploadRejected.
"""
from __future__ import annotations

from dataclasses import dataclass

from ocr.image_safety import ImageRejected, verify_image
from storage import UploadRejected

EXTENSION_BY_FORMAT = {"PNG": "png", "JPEG": "jpg", "GIF": "gif", "BMP": "bmp", "TIFF": "tiff", "WEBP": "webp"}


@dataclass(frozen=True)
class ImageInfo:
    image_format: str
    extension: str
    width: int
    height: int


def inspect_image(data: bytes) -> ImageInfo:
    """The real format of the bytes (never the client's extension), verified to be intact."""
    try:
        checked = verify_image(data)
    except ImageRejected as exc:
        raise UploadRejected(exc.code, exc.message, status=413 if exc.code == "image_too_large" else 400) from exc
    extension = EXTENSION_BY_FORMAT.get(checked.image_format)
    if extension is None:
        raise UploadRejected("unsupported_format", f"Image format {checked.image_format or 'unknown'} is not allowed")
    return ImageInfo(image_format=checked.image_format, extension=extension, width=checked.width, height=checked.height)
