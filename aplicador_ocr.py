"""AplicadorOCR: the OCR engine of the service.

Bytes in, the seed's per-image OCR document out: words with confidence and pixel coordinates,
the text in reading order, and the text rebuilt row by row. Pages turned or photographed askew
are read upright and straight (ocr/reading.py); coordinates stay in the pixels the client sent,
and such a page's words also carry `coordenadas_lectura`, their box in the upright frame
described by `orientacion` (turn, tilt straightened, size of that frame). Each profile's OnnxTR predictor is
built once per process, warmed with one inference, and reused; inference is serialized per process
because concurrent onnxruntime runs on a small machine only fight for the same cores.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import math
import os
import queue
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

import config
import spatial_processor
from ocr.image_safety import ImageRejected, LoadedImage, load_image, sha256_of
from process_wide import process_wide
from ocr.result_cache import ResultCache

if TYPE_CHECKING:  # the reader imports OnnxTR, onnxruntime and OpenCV: web processes never need them
    from ocr.reading import PageReading

logger = logging.getLogger(__name__)

# Pages per call to the predictor: recognition crops of several pages share batches, but a huge
# batch only raises peak memory.
PAGES_PER_CALL = 4


def _load_libc_function(function: str):
    """A glibc allocator function (malloc_trim, mallopt), or None elsewhere."""
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), function, None) if name else None
    except OSError:
        return None


_MALLOC_TRIM = _load_libc_function("malloc_trim")
_MALLOPT = _load_libc_function("mallopt")
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number


def release_freed_memory() -> None:
    """Hand memory freed by onnxruntime and numpy back to the system.

    glibc keeps freed heap pages for reuse; after a batch of differently sized images an OCR
    process otherwise grows by a few hundred MB over a thousand images (measured: 374 -> 542 MB
    without, 192 -> 205 MB with a trim after each batch, same speed).
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def map_large_buffers(threshold_kb: int) -> None:
    """Serve buffers of at least `threshold_kb` with their own mapping, returned to the system when
    freed (0 keeps glibc's default).

    glibc raises its mmap threshold to the largest buffer freed so far (up to 32 MB), so after the
    first page the images and onnxruntime's activations come from the heap, where a page's
    buffers fragment it and the peak grows through a batch. A fixed threshold stops that, at the
    price of zeroing fresh pages for every such buffer: 4 MB cut the peak over a batch by ~40 MB
    and cost ~15% per page, 128 KB -85 MB and +20-40%. So it is an operator's choice, off by default.
    """
    if threshold_kb > 0 and _MALLOPT is not None:
        _MALLOPT(_M_MMAP_THRESHOLD, threshold_kb * 1024)


def inference_streams(configured: int) -> int:
    """Pages this process reads at the same time, each by its own copy of the models.

    0 picks one per core, at most 2: two single-threaded copies keep both cores busy through the
    Python parts between inferences (decoding, crops, CTC, rows), where one copy with two
    onnxruntime threads leaves a core idle, and spin less on a busy host; they cost 100-160 MB more
    peak RSS (two pages' activations at once), so the default (OCR_INFERENCE_STREAMS) is 1.
    Always 1 in a gevent-patched process (a web process reading a batch): its threads are greenlets.
    """
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("threading"):
        return 1
    if configured > 0:
        return configured
    return max(1, min(2, os.cpu_count() or 1))


def _warmup_page() -> np.ndarray:
    """A small receipt-like page, so warm-up exercises detection and recognition both."""
    page = Image.new("RGB", (544, 960), "white")
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=28)
    for row, text in enumerate(["Pago Movil", "Monto Bs. 1.234,56", "Referencia 000123456789", "Fecha 20/06/2025"]):
        draw.text((30, 60 + row * 70), text, fill="black", font=font)
    return np.asarray(page)


class AplicadorOCR:
    def __init__(self, ocr_config: dict[str, Any] | None = None) -> None:
        self.config = ocr_config or config.OCR_CONFIG
        self.default_profile: str = self.config["default_profile"]
        self.predictors: dict[str, Any] = {}
        self.load_times: dict[str, dict[str, float]] = {}
        memory = self.config.get("memory_management", {})
        self.clear_cache_after_batch = bool(memory.get("clear_cache_after_batch", False))
        self.gc_frequency = int(memory.get("garbage_collect_frequency", 0))
        self.cache = ResultCache(memory.get("max_cache_entries", 500), memory.get("max_cache_size_mb", 512))
        map_large_buffers(int(memory.get("malloc_mmap_threshold_kb", 0)))
        self._build_lock = threading.Lock()
        self._inference_lock = threading.Lock()
        self.streams = inference_streams(int(self.config.get("inference_streams", 1)))
        # Per profile, the extra copies of the predictor (streams - 1) waiting for a page; copy 0
        # is always self.predictors[profile].
        self._copies: dict[str, queue.SimpleQueue] = {}
        self._executor = ThreadPoolExecutor(self.streams, thread_name_prefix="ocr-stream") if self.streams > 1 else None
        self.images_processed = 0

    # --- predictors ---------------------------------------------------------------------------
    def profiles(self) -> list[str]:
        return sorted(self.config["profiles"])

    def resolve_profile(self, profile: str | None) -> str:
        name = profile or self.default_profile
        if name not in self.config["profiles"]:
            raise ValueError(f"Unknown OCR profile {name!r}; available: {', '.join(self.profiles())}")
        return name

    def get_predictor(self, profile: str | None = None, warm: bool = False) -> Any:
        """The profile's predictor, built on first use. `warm` runs one inference first: worth it
        before serving (the first upload does not pay for it), wasted when a page is about to be
        read anyway (`main.py extract`, a batch in a web process)."""
        name = self.resolve_profile(profile)
        predictor = self.predictors.get(name)
        if predictor is not None:
            return predictor
        with self._build_lock:
            if name not in self.predictors:
                # Imported here: web processes that never run OCR must not pay for onnxruntime,
                # OnnxTR and OpenCV (about 170 MB each).
                from ocr.models import build_predictor

                started = time.perf_counter()
                ocr_config = dict(self.config)
                if self.streams > 1 and not ocr_config.get("intra_op_threads"):
                    ocr_config["intra_op_threads"] = max(1, (os.cpu_count() or 1) // self.streams)
                predictor = build_predictor(self.config["profiles"][name], ocr_config)
                copies = [build_predictor(self.config["profiles"][name], ocr_config) for _ in range(self.streams - 1)]
                loaded = time.perf_counter()
                if warm:
                    with self._inference_lock:
                        for each in [predictor, *copies]:
                            each([_warmup_page()])
                warmed = time.perf_counter()
                release_freed_memory()  # the warm-up's buffers: idle RSS is what stays
                self._copies[name] = queue.SimpleQueue()
                for each in copies:
                    self._copies[name].put(each)
                self.load_times[name] = {"load_seconds": round(loaded - started, 3), "warmup_seconds": round(warmed - loaded, 3)}
                logger.info("OCR profile %s ready: load %.2fs, warm-up %.2fs", name, loaded - started, warmed - loaded)
                self.predictors[name] = predictor
                # The models' ~100,000 objects live as long as the process: frozen out of the
                # collector's sight, each gc pass (OCR_GC_FREQUENCY) takes microseconds instead
                # of 60-170 ms, and scans only what the batches allocated. (No collect first: it
                # costs 0.2-0.3 s of start-up for a few KB.)
                gc.freeze()
        return self.predictors[name]

    def preload(self, profile: str | None = None) -> None:
        """Build and warm a profile (the default one when None) before serving."""
        self.get_predictor(profile, warm=True)

    def method_used(self, profile: str) -> str:
        from ocr.models import PPOCR_PREFIX

        det = self.config["profiles"][profile]["det_model"]
        return "ONNXTR_PPOCRV6" if det.startswith(PPOCR_PREFIX) else "ONNXTR_DOCTR"

    # --- processing ---------------------------------------------------------------------------
    def procesar_imagen(self, image_bytes: bytes, profile: str | None = None) -> dict[str, Any]:
        """OCR one image. Raises ImageRejected for unreadable images, ValueError for bad profiles."""
        result = self.procesar_lote([image_bytes], profile)[0]
        if isinstance(result, ImageRejected):
            raise result
        return result

    def reads_closer(self, profile: str | None = None) -> bool:
        """Whether the profile takes a second, closer reading (config: second_reading_det_input_size)."""
        return bool(self.config["profiles"][self.resolve_profile(profile)].get("second_reading_det_input_size"))

    def procesar_lote(self, images: list[bytes], profile: str | None = None,
                      closer: bool = False) -> list[dict[str, Any] | ImageRejected]:
        """OCR a batch. Each item is a result dict or the ImageRejected explaining its failure.
        `closer` reads the pages again more closely (ocr/reading.py): only for profiles that
        `reads_closer`."""
        name = self.resolve_profile(profile)
        if closer and not self.reads_closer(name):
            raise ValueError(f"OCR profile {name!r} takes no closer reading")
        cache_key = f"{name}+cerca" if closer else name
        results: list[dict[str, Any] | ImageRejected | None] = [None] * len(images)
        todo: list[tuple[int, bytes]] = []
        for index, data in enumerate(images):
            started = time.perf_counter()
            cached = self.cache.get(sha256_of(data), cache_key) if data else None
            if cached is not None:
                cached["cache_hit"] = True
                cached["processing_time"] = round(time.perf_counter() - started, 4)
                results[index] = cached
            else:
                todo.append((index, data))
        if todo:
            self.get_predictor(name)
        # Up to PAGES_PER_CALL pages per call, spread over the streams: 4 pages on 2 streams are
        # two calls of 2 at the same time.
        size = max(1, min(PAGES_PER_CALL, math.ceil(len(todo) / self.streams)))
        chunks = [todo[start:start + size] for start in range(0, len(todo), size)]
        flags = [closer] * len(chunks)
        read = self._executor.map(self._read_chunk, [name] * len(chunks), chunks, flags) \
            if self._executor is not None and len(chunks) > 1 else map(self._read_chunk, [name] * len(chunks), chunks, flags)
        # Results are built here, in order, while the streams read the next chunks.
        for decoded, readings, seconds in read:
            pages = [(index, loaded) for index, loaded, _ in decoded if not isinstance(loaded, ImageRejected)]
            share = seconds / max(len(pages), 1)
            for index, loaded, _ in decoded:
                if isinstance(loaded, ImageRejected):
                    results[index] = loaded
            # Time of a page = its decode time + its share of the chunk's inference.
            decode_time = {index: seconds_decoding for index, _, seconds_decoding in decoded}
            for (index, loaded), page in zip(pages, readings):
                result = self._page_result(page, loaded, name, decode_time[index] + share)
                self.cache.put(loaded.sha256, cache_key, result)
                results[index] = result  # the cache keeps its own copy
                self.images_processed += 1
                if self.gc_frequency and self.images_processed % self.gc_frequency == 0:
                    gc.collect()
        if self.clear_cache_after_batch:
            self.cache.clear()
        return results  # type: ignore[return-value]

    def _read_chunk(self, name: str, chunk: list[tuple[int, bytes]], closer: bool = False
                    ) -> tuple[list[tuple[int, LoadedImage | ImageRejected, float]], list[PageReading], float]:
        """Decode a chunk's images and read them with a free copy of the profile's predictor."""
        decoded: list[tuple[int, LoadedImage | ImageRejected, float]] = []
        for index, data in chunk:
            started = time.perf_counter()
            try:
                loaded: LoadedImage | ImageRejected = load_image(data)
            except ImageRejected as exc:
                loaded = exc
            decoded.append((index, loaded, time.perf_counter() - started))
        pixels = [loaded.pixels for _, loaded, _ in decoded if not isinstance(loaded, ImageRejected)]
        if not pixels:
            return decoded, [], 0.0
        started = time.perf_counter()
        copies = self._copies.get(name)
        # Copy 0 is the one in self.predictors (it stands alone when streams is 1): whoever finds
        # no spare copy waits for it.
        copy = None
        if copies is not None:
            try:
                copy = copies.get_nowait()
            except queue.Empty:
                copy = None
        try:
            if copy is not None:
                readings = copy(pixels, closer=closer)
            else:
                with self._inference_lock:
                    readings = self.predictors[name](pixels, closer=closer)
        finally:
            if copy is not None:
                copies.put(copy)
            # Per call, not per batch: a batch of 50 pages otherwise fragments the heap page by page.
            release_freed_memory()
        return decoded, readings, time.perf_counter() - started

    def _page_result(self, page: PageReading, loaded: LoadedImage, profile: str, seconds: float) -> dict[str, Any]:
        width, height = loaded.original_size
        # Decoded pixels may be downscaled (MAX_IMAGE_SIDE): results are in the client's pixels.
        scale = width / loaded.pixels.shape[1]
        transform = page.transform
        reading_h, reading_w = transform.reading_shape
        words: list[dict[str, Any]] = []
        for word in page.words:
            rx1, ry1, rx2, ry2 = word.box
            reading_box = (rx1 * reading_w, ry1 * reading_h, rx2 * reading_w, ry2 * reading_h)
            for piece in spatial_processor.split_segment_into_words(
                    word.text, _rounded(reading_box), round(word.confidence, 4), word.pieces):
                if not transform.identity:
                    piece["coordenadas_lectura"] = _rounded(v * scale for v in piece["coordenadas"])
                piece["coordenadas"] = _rounded(v * scale for v in transform.to_sent(piece["coordenadas"]))
                words.append(piece)
        # Rows are found in the upright, straightened frame, where they are rows.
        lines = spatial_processor.group_words_into_lines(
            words, "coordenadas" if transform.identity else "coordenadas_lectura")
        # Words are listed in the order a person reads the receipt: row by row, left to right.
        renumbered, lineas = [], []
        for line in lines:
            indices = list(range(len(renumbered), len(renumbered) + len(line["palabras"])))
            renumbered.extend(words[i] for i in line["palabras"])
            lineas.append({**line, "palabras": indices})
        confidences = [w["confianza"] for w in renumbered]
        return {
            "palabras_detectadas": renumbered,
            "lineas": lineas,
            "original_text_ocr": "\n".join(page.reading_order_lines),
            "structured_text_ocr": spatial_processor.lines_to_text(lineas),
            "image_size": [width, height],
            "orientacion": {
                "giro": transform.turn,
                "inclinacion": transform.skew,
                "tamano_lectura": [round(reading_w * scale), round(reading_h * scale)],
            },
            "image_format": loaded.image_format,
            "image_sha256": loaded.sha256,
            "coordinates_available": len(renumbered),
            "confidence_average": round(float(np.mean(confidences)), 4) if confidences else 0.0,
            "processing_time": round(seconds, 4),
            "profile_used": profile,
            "method_used": self.method_used(profile),
            "cache_hit": False,
        }

    def cache_stats(self) -> dict[str, Any]:
        return self.cache.stats()

    def status(self) -> dict[str, Any]:
        return {
            "default_profile": self.default_profile,
            "profiles": self.profiles(),
            "models_loaded": sorted(self.predictors),
            "load_times": self.load_times,
            "images_processed": self.images_processed,
            "cache": self.cache_stats(),
        }


def _rounded(values: Any) -> list[int]:
    return [int(round(v)) for v in values]


@process_wide
def get_aplicador() -> AplicadorOCR:
    """The process-wide engine: models are loaded once per process and shared by every caller."""
    return AplicadorOCR()
