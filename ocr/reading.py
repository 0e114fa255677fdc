"""Reading a page however it lies: OnnxTR's detection and recognition with the page turned upright
and straightened first, and each word returned with its own pieces.

`ReceiptPredictor` composes OnnxTR's `OCRPredictor` (its detection predictor, crop preparation and
document builder) and adds the geometry step between detection and recognition:

1. detect on the page as sent; the detection map's text-line blobs give the tilt and whether the
   page stands a quarter turned (ocr/page_geometry.py);
2. a page turned a quarter is asked of the orientation classifier (90 or 270), turned upright and
   detected again; a tilt of `min_skew_degrees` or more is straightened and detected again;
3. recognize; a page read with unusually low confidence is asked of the classifier too, and read
   upside down when the classifier is sure it is.

A page whose text is small in its own pixels (a thumbnail forwarded over WhatsApp: 640 px on the
long side, JPEG q40) is recognized by the profile's small-text recognizer when it names one: the
tiny recognizer drops or invents digits in 12 px high lines, a larger one reads them. It is built
the first time such a page arrives, so a process that only sees usual screenshots never loads it.

An upright, straight screenshot costs one detection and one recognition, as before: the survey of
the map is a few milliseconds.

A closer reading (`closer=True`) is the second look the service takes at a page whose first left a
key value unread or unsure (extraction/second_reading.py): detection on the profile's larger
`closer_det_canvas` (a photographed screen's underlined green reference is no text to the detector
at 960x544 and is at 1280x736) and recognition by the small-text recognizer whatever the text's
height (the tiny one reads such a reference's 0 as a 9, the small one does not).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from onnxtr.utils.geometry import detach_scores

from ocr.page_geometry import (
    OrientationClassifier,
    PageTransform,
    straighten,
    survey_lines,
    turn_upright,
)

# Pieces of one word: (text, start, end, confidence, weakest character's probability), start/end
# as fractions of the word's box.
Pieces = list[tuple[str, float, float, float, float]]


@dataclass
class ReadWord:
    text: str
    confidence: float
    box: tuple[float, float, float, float]  # reading frame, fractions of its width and height
    pieces: Pieces | None


@dataclass
class PageReading:
    words: list[ReadWord]
    reading_order_lines: list[str]  # OnnxTR's blocks and lines, for the text in reading order
    transform: PageTransform

    @property
    def confidence(self) -> float:
        return float(np.mean([w.confidence for w in self.words])) if self.words else 0.0


@dataclass(frozen=True)
class GeometrySettings:
    # The profile's detection canvas (height, width): pages of other proportions get their own
    # input with as many pixels. None keeps the detector's fixed input for every page.
    det_canvas: tuple[int, int] | None = None
    # Smaller tilts are left to the row grouping (spatial_processor.RESIDUAL_TILT): straightening
    # costs a second detection.
    min_skew_degrees: float = 1.0
    # Mean word confidence under which a page may be upside down, and the orientation classifier
    # (about 7 ms) is asked. Upside-down text mostly reads as noise, but a small page turned
    # over read at 0.80 (wa-1780156689); upright photos and thumbnails read as low as 0.75. The
    # page is only turned when the classifier is sure and the turned reading is surer still.
    low_confidence: float = 0.88
    # Classifier probability needed to turn a page.
    min_turn_probability: float = 0.6
    # Pages whose detected lines are at most this high (median, in the page's pixels) are read by
    # the small-text recognizer; 0 never. See config.OCR_PROFILES.
    small_text_max_height: float = 0.0
    # The detection canvas of a closer reading; None: the profile takes no second look.
    closer_det_canvas: tuple[int, int] | None = None


# Pages whose proportions are within this factor of the detector's canvas keep the canvas.
CANVAS_ASPECT_TOLERANCE = 1.67


def detection_size(page_shape: tuple[int, int], canvas: tuple[int, int]) -> tuple[int, int]:
    """(height, width) of the detector's input for a page. A page shaped about like the canvas
    (a phone screenshot on a portrait canvas) keeps it; any other (a landscape page, a turned
    one, a very long one) gets its own proportions with as many pixels, sides in multiples of 32
    (the detector's stride): a portrait canvas squeezes a landscape page until its text is no
    longer text."""
    height, width = page_shape
    aspect = (height / max(width, 1)) / (canvas[0] / canvas[1])
    if 1 / CANVAS_ASPECT_TOLERANCE <= aspect <= CANVAS_ASPECT_TOLERANCE:
        return canvas
    pixels = canvas[0] * canvas[1]
    scaled_h = (pixels * height / max(width, 1)) ** 0.5
    scaled_w = pixels / max(scaled_h, 1)
    return max(32, int(round(scaled_h / 32)) * 32), max(32, int(round(scaled_w / 32)) * 32)


def text_height(loc_preds: np.ndarray, page_height: int) -> float:
    """Median height, in the page's pixels, of the detected text boxes (relative coordinates)."""
    return float(np.median((loc_preds[:, 3] - loc_preds[:, 1]) * page_height))


class ReceiptPredictor:
    def __init__(self, ocr: Any, classifier: OrientationClassifier | None,
                 settings: GeometrySettings | None = None,
                 small_text_reader: Callable[[], Any] | None = None) -> None:
        self.ocr = ocr  # an OnnxTR OCRPredictor: det_predictor, reco_predictor, doc_builder
        self.classifier = classifier
        self.settings = settings or GeometrySettings()
        # Builds the small-text recognition predictor; called once, on the first small-text page.
        self._small_text_reader = small_text_reader
        self._small_text_reco: Any = None

    @property
    def reco_predictor(self) -> Any:
        return self.ocr.reco_predictor

    @property
    def small_text_loaded(self) -> bool:
        return self._small_text_reco is not None

    @property
    def reads_closer(self) -> bool:
        return self.settings.closer_det_canvas is not None

    def __call__(self, pages: list[np.ndarray], closer: bool = False) -> list[PageReading]:
        settings = self.settings
        if closer:
            if settings.closer_det_canvas is None:
                raise ValueError("this profile takes no closer reading (no closer_det_canvas)")
            settings = replace(settings, det_canvas=settings.closer_det_canvas,
                               small_text_max_height=math.inf if self._small_text_reader is not None else 0.0)
        transforms = [PageTransform(reading_shape=page.shape[:2]) for page in pages]
        pages, loc_preds = self._upright_and_straight(list(pages), transforms, settings)
        small = [self._small_text(page, preds, settings) for page, preds in zip(pages, loc_preds)]
        readings: list[PageReading] = [None] * len(pages)  # type: ignore[list-item]
        for use_small in (False, True):
            chosen = [i for i in range(len(pages)) if small[i] == use_small]
            if chosen:
                reco = self._small_text_recognizer() if use_small else self.ocr.reco_predictor
                for index, reading in zip(chosen, self._recognize([pages[i] for i in chosen], [loc_preds[i] for i in chosen],
                                                                  [transforms[i] for i in chosen], reco)):
                    readings[index] = reading
        for index, reading in enumerate(readings):
            if reading.transform.turn == 0 and reading.confidence < settings.low_confidence:
                reco = self._small_text_recognizer() if small[index] else None
                readings[index] = self._maybe_upside_down(pages[index], reading, settings, reco)
        return readings

    # -- geometry -------------------------------------------------------------------------------
    def _detect(self, pages: list[np.ndarray], settings: GeometrySettings) -> tuple[list[np.ndarray], list[np.ndarray]]:
        if settings.det_canvas is None:
            loc_preds, maps = self.ocr.det_predictor(pages, return_maps=True)
        else:
            loc_preds, maps = [], []
            for page in pages:  # one page per detector call anyway (det_bs=1)
                self.ocr.det_predictor.pre_processor.resize.size = detection_size(page.shape[:2], settings.det_canvas)
                page_preds, page_maps = self.ocr.det_predictor([page], return_maps=True)
                loc_preds.extend(page_preds)
                maps.extend(page_maps)
        threshold = getattr(self.ocr.det_predictor.model.postprocessor, "bin_thresh", 0.3)
        binary = [np.ascontiguousarray((np.squeeze(m) > threshold).astype(np.uint8) * 255) for m in maps]
        return loc_preds, binary

    def _upright_and_straight(self, pages: list[np.ndarray], transforms: list[PageTransform],
                              settings: GeometrySettings) -> tuple[list[np.ndarray], list[np.ndarray]]:
        loc_preds, maps = self._detect(pages, settings)
        for index in range(len(pages)):
            survey = survey_lines(maps[index], pages[index].shape[:2])
            changed = False
            if survey.turned_quarter and self.classifier is not None:
                probs = self.classifier.probabilities(pages[index])
                turn = 90 if probs.get(90, 0.0) >= probs.get(270, 0.0) else 270
                pages[index] = turn_upright(pages[index], turn, transforms[index])
                survey = survey_lines(self._detect([pages[index]], settings)[1][0], pages[index].shape[:2])
                changed = True
            if abs(survey.skew) >= settings.min_skew_degrees:
                pages[index] = straighten(pages[index], survey.skew, transforms[index])
                changed = True
            if changed:
                loc_preds[index] = self._detect([pages[index]], settings)[0][0]
        return pages, loc_preds

    def _maybe_upside_down(self, page: np.ndarray, reading: PageReading, settings: GeometrySettings,
                           reco: Any = None) -> PageReading:
        if self.classifier is None:
            return reading
        probs = self.classifier.probabilities(page)
        if probs.get(180, 0.0) < settings.min_turn_probability:
            return reading
        transform = PageTransform(matrix=reading.transform.matrix.copy(), skew=reading.transform.skew,
                                  reading_shape=page.shape[:2])
        turned = turn_upright(page, 180, transform)
        again = self._recognize([turned], self._detect([turned], settings)[0], [transform], reco)[0]
        return again if again.confidence > reading.confidence else reading

    # -- recognition ----------------------------------------------------------------------------
    def _small_text(self, page: np.ndarray, loc_preds: np.ndarray, settings: GeometrySettings) -> bool:
        if self._small_text_reader is None or settings.small_text_max_height <= 0 or len(loc_preds) == 0:
            return False
        return text_height(loc_preds, page.shape[0]) <= settings.small_text_max_height

    def _small_text_recognizer(self) -> Any:
        if self._small_text_reco is None:
            assert self._small_text_reader is not None
            self._small_text_reco = self._small_text_reader()
        return self._small_text_reco

    def _recognize(self, pages: list[np.ndarray], loc_preds: list[np.ndarray],
                   transforms: list[PageTransform], reco: Any = None) -> list[PageReading]:
        boxes, scores = detach_scores(loc_preds)
        crops, boxes = self.ocr._prepare_crops(pages, boxes, channels_last=True, assume_straight_pages=True,
                                               assume_horizontal=True)
        flat = [crop for page_crops in crops for crop in page_crops]
        reco = reco if reco is not None else self.ocr.reco_predictor
        results = reco.read(flat) if hasattr(reco, "read") else [(t, c, None) for t, c in reco(flat)]
        out, cursor = [], 0
        for page, page_boxes, page_scores, transform in zip(pages, boxes, scores, transforms):
            page_results = results[cursor:cursor + len(page_boxes)]
            cursor += len(page_boxes)
            if len(page_scores) != len(page_boxes):  # a zero-sized crop was dropped
                page_scores = np.ones(len(page_boxes))
            words = [ReadWord(text, float(conf), tuple(float(v) for v in box[:4]), pieces)
                     for (text, conf, pieces), box in zip(page_results, page_boxes)]
            document = self.ocr.doc_builder([page], [page_boxes], [page_scores],
                                            [[(w.text, w.confidence) for w in words]], [page.shape[:2]],
                                            [[{"value": 0, "confidence": None}] * len(words)])
            lines = [" ".join(w.value.strip() for w in line.words if w.value.strip())
                     for block in document.pages[0].blocks for line in block.lines]
            out.append(PageReading(words, [line for line in lines if line], transform))
        return out
