import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

import config
from ocr.image_safety import ImageRejected, load_image, sniff_format
from tests.ocr_helpers import draw_rows, encode


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims a size, followed by a tiny compressed body (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def test_reads_a_png_as_rgb():
    page, _ = draw_rows([("Monto", "Bs. 10,00")])
    loaded = load_image(encode(page))
    assert loaded.pixels.shape == (900, 540, 3)
    assert loaded.pixels.dtype == np.uint8
    assert loaded.original_size == (540, 900)
    assert loaded.image_format == "PNG"
    assert len(loaded.sha256) == 64


def test_decompression_bomb_is_refused_before_decoding():
    with pytest.raises(ImageRejected) as err:
        load_image(_png_header_only(30000, 30000))
    assert err.value.code == "image_too_large"
    assert str(config.MAX_IMAGE_PIXELS) in err.value.message


def test_truncated_file_is_a_clear_error():
    data = encode(draw_rows([("Monto", "Bs. 10,00")])[0], "JPEG", quality=90)
    with pytest.raises(ImageRejected) as err:
        load_image(data[: len(data) // 2])
    assert err.value.code == "invalid_image"


@pytest.mark.parametrize("data", [b"hello, I am text named receipt.png\n", b"%PDF-1.4\n1 0 obj<<>>endobj\n", b"<html><script>alert(1)</script></html>"])
def test_non_images_are_refused_whatever_their_name(data):
    with pytest.raises(ImageRejected) as err:
        load_image(data)
    assert err.value.code == "unsupported_format"
    with pytest.raises(ImageRejected):
        sniff_format(data)


def test_empty_file():
    with pytest.raises(ImageRejected) as err:
        load_image(b"")
    assert err.value.code == "empty_file"


def test_one_pixel_image_is_too_small():
    with pytest.raises(ImageRejected) as err:
        load_image(encode(Image.new("RGB", (1, 1), "white")))
    assert err.value.code == "image_too_small"


def test_cmyk_jpeg_becomes_rgb():
    page, _ = draw_rows([("Monto", "Bs. 10,00")])
    loaded = load_image(encode(page.convert("CMYK"), "JPEG", quality=95))
    assert loaded.pixels.shape[2] == 3
    assert loaded.pixels[5, 5].min() > 200  # white stays white


def test_sixteen_bit_grey_is_rescaled_not_clipped():
    array = np.full((64, 64), 30000, dtype=np.uint16)
    array[20:40, 20:40] = 1000
    loaded = load_image(encode(Image.fromarray(array)))
    assert loaded.pixels[0, 0, 0] == 255  # brightest value maps to white
    assert loaded.pixels[30, 30, 0] < 20  # dark square stays dark instead of clipping to white


def test_palette_with_transparency_lands_on_white():
    image = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    image.paste((0, 0, 0, 255), (10, 10, 30, 30))
    loaded = load_image(encode(image.convert("P")))
    assert loaded.pixels[50, 50].min() > 200
    assert loaded.pixels[20, 20].max() < 50


def test_animated_gif_uses_first_frame():
    frames = [Image.new("RGB", (64, 64), colour) for colour in ("white", "black")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    loaded = load_image(buffer.getvalue())
    assert loaded.pixels.mean() > 200


@pytest.mark.parametrize("size", [(100, 40), (6000, 3000)])  # the large one is rotated after its reduction
def test_exif_rotation_is_applied(size):
    image = Image.new("RGB", size, "white")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    loaded = load_image(encode(image, "JPEG", exif=exif.tobytes()))
    assert loaded.original_size == size[::-1]
    assert loaded.pixels.shape[0] > loaded.pixels.shape[1] and max(loaded.pixels.shape[:2]) <= config.MAX_IMAGE_SIDE


def test_oversized_image_is_downscaled_but_reports_original_size():
    big = Image.new("RGB", (config.MAX_IMAGE_SIDE + 600, 1000), "white")
    loaded = load_image(encode(big))
    assert max(loaded.pixels.shape[:2]) == config.MAX_IMAGE_SIDE
    assert loaded.original_size == (config.MAX_IMAGE_SIDE + 600, 1000)
