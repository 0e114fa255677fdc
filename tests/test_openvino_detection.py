"""OCR_DETECTION_RUNTIME=openvino: the detector on OpenVINO reads pages as onnxruntime's does, at the
profile's fixed canvas and through the dynamic-shape path for any other page shape (issue 24)."""
import io

import numpy as np
import pytest
from PIL import Image

import config
from aplicador_ocr import AplicadorOCR
from ocr.models import engine_config
from ocr.ppocr import PPOCRDetector
from tools.receipt_generator import generate_receipt

pytest.importorskip("openvino")

CANVAS = (960, 544)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def detectors():
    cfg = engine_config(1, False)
    return PPOCRDetector("tiny", CANVAS, cfg), PPOCRDetector("tiny", CANVAS, cfg, runtime="openvino")


@pytest.mark.parametrize("shape", [(1, *CANVAS, 3), (1, 544, 960, 3), (1, 1312, 416, 3)])
def test_the_probability_maps_match_at_the_canvas_and_at_other_shapes(detectors, shape):
    onnx_det, ov_det = detectors
    session = ov_det.runtime
    before = dict(session.calls)
    x = np.random.default_rng(7).standard_normal(shape).astype(np.float32)
    expected, got = onnx_det.run(x), ov_det.run(x)
    assert got.shape == expected.shape
    assert float(np.abs(got - expected).max()) < 1e-3
    path = "static" if shape[1:3] == CANVAS else "dynamic"
    assert session.calls[path] == before[path] + 1


def test_an_unknown_runtime_is_refused():
    with pytest.raises(ValueError, match="detection runtime"):
        PPOCRDetector("tiny", CANVAS, engine_config(1, False), runtime="tensorrt")


def test_a_portrait_and_a_landscape_page_read_the_same_on_both_runtimes():
    """The screenshot keeps the fixed canvas; the same receipt on a wide page takes the dynamic path."""
    receipt = Image.open(io.BytesIO(generate_receipt(41, variant="clean").image_bytes)).convert("RGB")
    wide = Image.new("RGB", (receipt.width * 2 + 200, receipt.height), "white")
    wide.paste(receipt, (100, 0))
    pages = [_png(receipt), _png(wide)]
    documents = {}
    for runtime in ("onnxruntime", "openvino"):
        engine = AplicadorOCR({**config.OCR_CONFIG, "detection_runtime": runtime, "intra_op_threads": 1,
                               "inference_streams": 1})
        documents[runtime] = [engine.procesar_imagen(page) for page in pages]
        if runtime == "openvino":
            session = engine.predictors[engine.default_profile].ocr.det_predictor.model.runtime
            assert session.calls["static"] >= 1 and session.calls["dynamic"] >= 1, session.calls
    for onnx_doc, ov_doc in zip(documents["onnxruntime"], documents["openvino"]):
        assert ov_doc["original_text_ocr"] == onnx_doc["original_text_ocr"]
        assert "Bs" in onnx_doc["original_text_ocr"] or "," in onnx_doc["original_text_ocr"]
        for ours, theirs in zip(ov_doc["palabras_detectadas"], onnx_doc["palabras_detectadas"]):
            assert np.abs(np.subtract(ours["coordenadas"], theirs["coordenadas"])).max() <= 2
