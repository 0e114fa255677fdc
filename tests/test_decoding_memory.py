"""Bounded decoding: any image the upload accepts decodes within MAX_DECODE_PEAK_MB above the
decoding process's resting RSS, and the upload refuses, from the header, what would not.

The memory tests run each decode in a fresh process (benchmarks/decode_memory.py) and read its
high-water mark, so nothing else in the test process counts.
"""
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import config
from benchmarks.decode_memory import largest_accepted, measure, write_sample
from ocr.image_safety import ImageRejected, load_image, verify_image
from tests.ocr_helpers import encode

MAX_DECODE_PEAK_MB = 150
HOSTILE_KINDS = ("png_16bit_grey", "tiff_float32", "gif_palette", "png_rgba", "jpeg_rgb", "webp_rgb")


@pytest.mark.slow
@pytest.mark.parametrize("kind", HOSTILE_KINDS)
def test_the_worst_accepted_image_of_each_kind_decodes_within_the_bound(tmp_path, kind):
    path = write_sample(tmp_path, kind, 40)
    if measure("check", path)["verdict"] != "ok":
        path = largest_accepted(tmp_path, kind, path)  # the biggest one the upload lets through
    assert measure("check", path)["verdict"] == "ok"
    decode = measure("decode", path)
    assert decode["verdict"] == "ok"
    assert decode["peak_mb"] <= MAX_DECODE_PEAK_MB, decode


def test_a_tiny_float_tiff_of_40_megapixels_is_refused_at_upload(client, tmp_path):
    path = write_sample(tmp_path, "tiff_float32", 40)
    assert path.stat().st_size < 400_000  # small on the wire, 160 MB once decoded
    response = client.post("/api/upload", data={"files": [(io.BytesIO(path.read_bytes()), "x.tiff")]},
                           content_type="multipart/form-data")
    assert response.status_code == 413
    error = response.get_json()["error"]
    assert error["code"] == "image_too_large" and f"{config.MAX_DECODED_IMAGE_MB} MB" in error["message"]


def test_a_huge_jpeg_is_decoded_at_draft_scale_and_accepted():
    big = Image.new("RGB", (8000, 5000), "white")
    big.paste((0, 0, 0), (1000, 1000, 7000, 1200))
    loaded = load_image(encode(big, "JPEG"))
    assert loaded.original_size == (8000, 5000)
    assert max(loaded.pixels.shape[:2]) == config.MAX_IMAGE_SIDE
    bar_row = int(1100 * config.MAX_IMAGE_SIDE / 8000)
    assert loaded.pixels[bar_row, config.MAX_IMAGE_SIDE // 2].max() < 60  # the bar survived the reduction
    assert loaded.pixels[10, 10].min() > 200


def test_a_large_16_bit_grey_keeps_its_levels_after_the_reduction():
    array = np.full((3000, 6000), 40000, dtype=np.uint16)
    array[1000:2000, 1000:5000] = 2000
    loaded = load_image(encode(Image.fromarray(array)))
    assert loaded.pixels.shape == (1200, 2400, 3)
    assert loaded.pixels[0, 0, 0] == 255
    assert loaded.pixels[600, 1200, 0] < 20


def test_the_budget_is_read_from_the_header_of_a_truncated_file():
    big = encode(Image.new("RGBA", (7000, 5000), "white"))
    with pytest.raises(ImageRejected) as err:
        verify_image(big[:2000])  # the header alone already says it is too expensive
    assert err.value.code == "image_too_large"



_FREED_BUFFER_SCRIPT = """
import sys
import numpy as np
from aplicador_ocr import map_large_buffers
map_large_buffers(int(sys.argv[1]))
for _ in range(3):
    buffer = np.ones(20 * 1024 * 1024 // 8)  # 20 MB (under glibc's 32 MB cap), written so its pages are resident
    del buffer
print(int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0]) // 1024)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc")
def test_a_fixed_mmap_threshold_returns_large_freed_buffers_to_the_system():
    def resident_after_freeing(threshold_kb):
        out = subprocess.run([sys.executable, "-c", _FREED_BUFFER_SCRIPT, str(threshold_kb)], capture_output=True,
                             text=True, check=True, cwd=Path(__file__).resolve().parent.parent)
        return int(out.stdout.strip())

    # glibc's own threshold rises to the size of the first large buffer freed, so the next ones
    # come from the heap and stay resident after they are freed; a fixed threshold unmaps them.
    assert resident_after_freeing(4096) + 15 <= resident_after_freeing(0)
