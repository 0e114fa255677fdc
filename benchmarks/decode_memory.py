"""Peak memory of checking and decoding hostile images: ~40 Mpx files of every allowed kind.

    python benchmarks/decode_memory.py [--megapixels 40] [--repeat 1]

Writes small files that are huge once decoded (16-bit PNG, float TIFF, palette GIF, RGB and RGBA
PNG, a big JPEG, WebP...) into a temporary directory. Each one is checked as the upload does
(`inspect_image`) and decoded as the worker does (`load_image`), each step in a fresh process, so
the peak RSS above that process's resting RSS (after imports) is the step's own. Prints one row
per image: file size, the upload's verdict, and the peak MB above resting of each step.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _canvas(width: int, height: int):
    """A white page with dark text-like bars: compresses well, like a receipt screenshot."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    for top in range(40, height - 40, 120):
        draw.rectangle((60, top, width // 2 + (top * 37) % (width // 3), top + 50), fill=20)
    return image


def _samples(grey):
    import numpy as np
    from PIL import Image

    width, height = grey.size
    return {
        "png_16bit_grey": (lambda: Image.fromarray(np.asarray(grey, dtype=np.uint16) * 257), "PNG", {}),
        "tiff_float32": (lambda: Image.fromarray(np.asarray(grey, dtype=np.float32) / 255.0, mode="F"), "TIFF",
                         {"compression": "tiff_adobe_deflate"}),
        "tiff_int32": (lambda: Image.fromarray(np.asarray(grey, dtype=np.int32) * 1000, mode="I"), "TIFF",
                       {"compression": "tiff_adobe_deflate"}),
        "gif_palette": (lambda: grey.convert("P"), "GIF", {}),
        "png_grey_8bit": (lambda: grey, "PNG", {}),
        "png_rgb": (lambda: grey.convert("RGB"), "PNG", {}),
        "png_rgba": (lambda: grey.convert("RGBA"), "PNG", {}),
        "jpeg_rgb": (lambda: grey.convert("RGB"), "JPEG", {"quality": 80}),
        "webp_rgb": (lambda: grey.convert("RGB").crop((0, 0, min(width, 16383), min(height, 16383))), "WEBP",
                     {"quality": 60}),
    }


KINDS = (
    "png_16bit_grey", "tiff_float32", "tiff_int32", "gif_palette", "png_grey_8bit", "png_rgb", "png_rgba",
    "jpeg_rgb", "webp_rgb")


def write_sample(directory: Path, kind: str, megapixels: float) -> Path:
    height = int(math.sqrt(megapixels * 1e6 / 1.6))
    width = int(height * 1.6)
    make, image_format, options = _samples(_canvas(width, height))[kind]
    path = directory / f"{kind}_{megapixels:.0f}mpx.{image_format.lower()}"
    make().save(path, image_format, **options)
    return path


def largest_accepted(directory: Path, kind: str, refused: Path) -> Path | None:
    """The biggest image of this kind the upload check accepts (about: within 3 %), the worst case."""
    import config
    from ocr.image_safety import ImageRejected, _open, _plan_decoding, verify_image

    with _open(refused.read_bytes()) as image:
        pixels = image.size[0] * image.size[1]
        per_pixel = _plan_decoding(image).cost / pixels
    megapixels = config.MAX_DECODED_IMAGE_MB * 1024 * 1024 / per_pixel / 1e6
    for _ in range(10):
        path = write_sample(directory, kind, megapixels)
        try:
            verify_image(path.read_bytes())
            return path
        except ImageRejected:
            megapixels *= 0.97
    return None


def _high_water_kb() -> int:
    # VmHWM belongs to this process image (ru_maxrss would carry the parent's peak across exec).
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def _measure(step: str, path: str) -> None:
    """In a fresh process: the peak RSS of one step above the resting RSS after imports."""
    from ocr.image_safety import ImageRejected, load_image
    from service.image_check import inspect_image
    from storage import UploadRejected

    data = Path(path).read_bytes()
    resting = _high_water_kb()
    verdict = "ok"
    try:
        if step == "check":
            inspect_image(data)
        else:
            load_image(data)
    except (ImageRejected, UploadRejected) as exc:
        verdict = exc.code
    peak = _high_water_kb()
    print(json.dumps({"peak_mb": (peak - resting) / 1024, "verdict": verdict}))


def measure(step: str, path: Path) -> dict:
    output = subprocess.run([sys.executable, __file__, "--measure", step, str(path)], check=True,
                            capture_output=True, text=True, cwd=ROOT).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megapixels", type=float, default=40.0)
    parser.add_argument("--measure", nargs=2, metavar=("STEP", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        _measure(*args.measure)
        return
    from PIL import Image

    with tempfile.TemporaryDirectory() as directory:
        print(f"{'image':16} {'Mpx':>5} {'size':>8} {'upload check':>15} {'check MB':>9} {'worker decode':>15} "
              f"{'decode MB':>10}")
        for kind in KINDS:
            path = write_sample(Path(directory), kind, args.megapixels)
            rows = [path]
            if measure("check", path)["verdict"] != "ok":
                rows.append(largest_accepted(Path(directory), kind, path))  # the worst case it accepts
            for path in filter(None, rows):
                check, decode = measure("check", path), measure("decode", path)
                with Image.open(path) as image:
                    megapixels = image.size[0] * image.size[1] / 1e6
                size = f"{path.stat().st_size / 1024:.0f} KB"
                print(f"{kind:16} {megapixels:5.1f} {size:>8} {check['verdict']:>15} {check['peak_mb']:9.1f} "
                      f"{decode['verdict']:>15} {decode['peak_mb']:10.1f}", flush=True)

if __name__ == "__main__":
    main()
