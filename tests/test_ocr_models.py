"""Profiles that name docTR architectures load local weight files, and never download."""
import socket

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxtr.utils import VOCABS

import config
from aplicador_ocr import AplicadorOCR
from ocr.models import ModelNotFoundError, build_predictor
from tests.ocr_helpers import draw_rows, encode


def _save(graph, path):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def tiny_doctr_detector(path):
    """docTR's DBNet layout: (N, 3, 1024, 1024) in, (N, 1, 1024, 1024) logits out (dark pixels = text)."""
    scale = numpy_helper.from_array(np.array(-8.0, dtype=np.float32), "scale")
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["input"], ["mean"], axes=[1], keepdims=1),
            helper.make_node("Mul", ["mean", "scale"], ["logits"]),
        ],
        "tiny_det",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 1024, 1024])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1, 1024, 1024])],
        initializer=[scale],
    )
    _save(graph, path)


def tiny_doctr_recognizer(path, classes):
    """docTR's CRNN layout: (N, 3, 32, 128) in, (N, 32, vocab + 1) logits out."""
    weights = numpy_helper.from_array(np.random.default_rng(0).normal(size=(4, classes)).astype(np.float32), "w")
    shape = numpy_helper.from_array(np.array([0, 32, 4], dtype=np.int64), "shape")
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["input"], ["columns"], axes=[1, 2], keepdims=0),
            helper.make_node("Reshape", ["columns", "shape"], ["steps"]),
            helper.make_node("MatMul", ["steps", "w"], ["logits"]),
        ],
        "tiny_reco",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 32, 128])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 32, classes])],
        initializer=[weights, shape],
    )
    _save(graph, path)


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the OCR engine tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _doctr_config(models_dir):
    profile = {"det_model": "db_mobilenet_v3_large", "reco_model": "crnn_mobilenet_v3_small", "det_input_size": (1024, 1024)}
    return {**config.OCR_CONFIG, "models_dir": str(models_dir), "default_profile": "doctr", "profiles": {"doctr": profile}}


def test_doctr_profile_runs_on_local_weights(tmp_path, no_network):
    tiny_doctr_detector(tmp_path / "db_mobilenet_v3_large.onnx")
    # OnnxTR's own cache name (the release file's basename) is found too.
    (tmp_path / "models").mkdir()
    tiny_doctr_recognizer(tmp_path / "models" / "crnn_mobilenet_v3_small-bded4d49.onnx", len(VOCABS["french"]) + 1)
    engine = AplicadorOCR(_doctr_config(tmp_path))
    page, _ = draw_rows([("Monto", "Bs. 10,00"), ("Referencia", "000123456")])
    result = engine.procesar_imagen(encode(page))
    assert result["profile_used"] == "doctr"
    assert result["method_used"] == "ONNXTR_DOCTR"
    assert result["coordinates_available"] >= 1  # the fake detector finds the dark text
    for word in result["palabras_detectadas"]:
        x1, y1, x2, y2 = word["coordenadas"]
        assert 0 <= x1 <= x2 <= 540 and 0 <= y1 <= y2 <= 900


def test_missing_weights_fail_fast_naming_file_and_setting(tmp_path, no_network):
    tiny_doctr_detector(tmp_path / "db_mobilenet_v3_large.onnx")
    with pytest.raises(ModelNotFoundError) as err:
        build_predictor(_doctr_config(tmp_path)["profiles"]["doctr"], _doctr_config(tmp_path))
    message = str(err.value)
    assert "crnn_mobilenet_v3_small.onnx" in message
    assert "OCR_MODELS_DIR" in message
    assert str(tmp_path) in message


def test_empty_file_left_by_a_failed_download_is_not_a_model(tmp_path, no_network):
    (tmp_path / "db_mobilenet_v3_large.onnx").write_bytes(b"")
    with pytest.raises(ModelNotFoundError):
        build_predictor(_doctr_config(tmp_path)["profiles"]["doctr"], _doctr_config(tmp_path))


def test_unknown_architecture_is_refused():
    bad = {"det_model": "not_a_model", "reco_model": "ppocrv6:tiny", "det_input_size": (960, 544)}
    with pytest.raises(ValueError, match="not_a_model"):
        build_predictor(bad, config.OCR_CONFIG)
