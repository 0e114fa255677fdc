"""The PP-OCR detector on OpenVINO, behind onnxruntime's `InferenceSession.run` interface.

OCR_DETECTION_RUNTIME=openvino. Measured on the fp32 tiny detector (issue 24): 0.61x of
onnxruntime's time per pass at the fixed 960x544 canvas, largest output difference 3e-4;
recognition stays on onnxruntime (OpenVINO ran the recognizers 1.3x slower).

Two compiled models:
- the profile's canvas (most pages: a phone screenshot keeps it, ocr.reading.detection_size)
  as a static shape, where OpenVINO is fastest;
- any other shape (a landscape, turned or very long page) through the graph's dynamic shape,
  compiled on the first such page.
Both use OpenVINO's model cache (CACHE_DIR, build/openvino_cache): a later start loads the
compiled blob instead of compiling again. Precision is pinned to f32 (OpenVINO would pick bf16 on
CPUs that have it) and threads are not pinned to cores (several OCR processes share a host).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

CACHE_DIR = Path(__file__).resolve().parents[1] / "build" / "openvino_cache"


def _core(cache_dir: Path) -> Any:
    try:
        import openvino as ov  # noqa: PLC0415 - only the openvino runtime pays for its import (~180 MB wheel)
    except ImportError as exc:
        raise RuntimeError("OCR_DETECTION_RUNTIME=openvino needs the openvino package: "
                           ".venv/bin/pip install -r requirements-openvino.txt (or set OCR_DETECTION_RUNTIME=onnxruntime)") from exc

    core = ov.Core()
    cache_dir.mkdir(parents=True, exist_ok=True)
    core.set_property({"CACHE_DIR": str(cache_dir)})
    return core


class OpenVINODetectionSession:
    """A detector graph compiled by OpenVINO, answering `run(output_names, {input: x})` like onnxruntime."""

    def __init__(self, model_path: Path, canvas: tuple[int, int], threads: int = 0,
                 cache_dir: Path = CACHE_DIR) -> None:
        self.model_path = Path(model_path)
        self.core = _core(Path(cache_dir))
        self.config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32",
                                       "ENABLE_CPU_PINNING": False}
        if threads > 0:
            self.config["INFERENCE_NUM_THREADS"] = threads
        model = self.core.read_model(str(self.model_path))
        self.input_name = model.inputs[0].get_any_name()
        self.fixed_shape = (1, 3, int(canvas[0]), int(canvas[1]))
        model.reshape({self.input_name: list(self.fixed_shape)})
        self._static = self.core.compile_model(model, "CPU", self.config)
        self._dynamic: Any = None
        # Passes through each path, for tests and the bench.
        self.calls = {"static": 0, "dynamic": 0}

    def _dynamic_model(self) -> Any:
        if self._dynamic is None:
            self._dynamic = self.core.compile_model(self.core.read_model(str(self.model_path)), "CPU", self.config)
        return self._dynamic

    def run(self, output_names: Any, feed: dict[str, np.ndarray], run_options: Any = None) -> list[np.ndarray]:
        (x,) = feed.values()
        x = np.ascontiguousarray(x, dtype=np.float32)
        static = tuple(x.shape) == self.fixed_shape
        compiled = self._static if static else self._dynamic_model()
        self.calls["static" if static else "dynamic"] += 1
        # share_outputs=False: the caller keeps each page's map while the next page is detected.
        result = compiled(x, share_inputs=False, share_outputs=False)
        return [np.asarray(result[compiled.output(0)])]


def warm_cache(cache_dir: Path = CACHE_DIR) -> list[str]:
    """Compile the PP-OCR detector of every profile at its canvas into the cache (`make models` with
    OCR_DETECTION_RUNTIME=openvino), so the first start loads blobs instead of compiling."""
    import config  # noqa: PLC0415
    from ocr.ppocr import model_file  # noqa: PLC0415

    done = []
    for profile in config.OCR_PROFILES.values():
        name = profile["det_model"]
        if not name.startswith("ppocrv6:"):
            continue
        size = name.removeprefix("ppocrv6:").removesuffix("-int8")
        canvas = tuple(profile["det_input_size"])
        label = f"{size} {canvas[0]}x{canvas[1]}"
        if label not in done:
            OpenVINODetectionSession(model_file(size, "det"), canvas, cache_dir=cache_dir)._dynamic_model()
            done.append(label)
    return done


if __name__ == "__main__":
    import time

    started = time.perf_counter()
    compiled = warm_cache()
    print(f"OpenVINO detectors compiled into {CACHE_DIR} ({', '.join(compiled)}) in {time.perf_counter() - started:.1f} s")
