"""The layout model of an OCR result: words (with pixel boxes) -> lines -> segments, and the
regions of text around a label where its value may be printed.

Words are grouped into lines, and each line into *segments*: runs of words separated by less
than `segment_gap_factor` x the word height. A label and its value on the same row ("Fecha:" ...
"14/05/2025") are two segments; so are the columns of a multi-column receipt.

The phone status bar (a row in the top `status_bar_fraction` of the image showing a clock, a
battery level or only icons) and an app's bottom tab bar are marked as chrome, which no unlabelled
rule reads, so the status bar's clock is never the operation time; a cropped receipt whose first
row is text keeps that row.

Nothing here knows the rules: the region search takes the ids of the segments that are labels
(they end a value and bound a column) and the layout settings of the rules file. Likewise
`label_second_line` only finds the segment set as the second line of a wrapped label, and
`join_lines_of_labels` makes the pairs the extraction accepts one segment.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from extraction.normalizers import ascii_digits
from spatial_processor import group_boxes_into_rows

# ------------------------------------------------------------------------------------------------
# Words, lines and segments
# ------------------------------------------------------------------------------------------------

@dataclass
class Word:
    index: int
    text: str
    confidence: float
    box: tuple[float, float, float, float]  # upright reading frame: where rows are rows
    sent_box: tuple[float, float, float, float] | None = None  # in the image as sent, when different
    # The probability of its least sure character, when the recognizer gave one per character.
    weakest: float | None = None

    @property
    def client_box(self) -> tuple[float, float, float, float]:
        return self.sent_box or self.box

    @property
    def height(self) -> float:
        return max(1.0, self.box[3] - self.box[1])


@dataclass
class Segment:
    id: int
    line: int
    words: list[Word]
    text: str = ""
    spans: list[tuple[int, int, Word]] = field(default_factory=list)
    box: tuple[float, float, float, float] = (0, 0, 0, 0)
    in_chrome: bool = False  # phone status bar or app tab bar: never a value
    height: float = 1.0
    confidence: float = 1.0
    tokens: list | None = None  # plain tokens, computed on first use

    def __post_init__(self) -> None:
        self.height = _median([w.height for w in self.words])
        self.confidence = min(w.confidence for w in self.words)
        parts, cursor = [], 0
        for word in self.words:
            if parts:
                cursor += 1
            self.spans.append((cursor, cursor + len(word.text), word))
            parts.append(word.text)
            cursor += len(word.text)
        self.text = " ".join(parts)
        self.box = _union(w.box for w in self.words)



@dataclass
class Line:
    index: int
    segments: list[Segment]
    box: tuple[float, float, float, float]


@dataclass
class Document:
    words: list[Word]
    lines: list[Line]
    segments: list[Segment]
    width: float
    height: float
    median_height: float
    top: float = 0.0  # where the page's first words are: below a photo's desk or a viewer's bar

    def y_at(self, fraction: float) -> float:
        """The height `fraction` of the way down from the page's first words to the image's foot."""
        return self.top + fraction * (self.height - self.top)


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _union(boxes: Iterable[tuple[float, float, float, float]]) -> tuple[float, float, float, float]:
    boxes = list(boxes)
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def _parse_words(raw_words: Any, limit: int) -> list[Word]:
    words: list[Word] = []
    if not isinstance(raw_words, list):
        return words
    for index, raw in enumerate(raw_words[:limit]):
        if not isinstance(raw, dict):
            continue
        text = raw.get("texto")
        sent = _box(raw.get("coordenadas"))
        reading = _box(raw.get("coordenadas_lectura")) if "coordenadas_lectura" in raw else sent
        try:
            confidence = float(raw.get("confianza", 1.0))
        except (TypeError, ValueError):
            continue
        if not isinstance(text, str) or not text.strip() or sent is None or reading is None or not _finite(confidence):
            continue
        confidence = min(1.0, max(0.0, confidence))
        words.append(Word(index, ascii_digits(text.strip()[:200]), confidence, reading,
                          sent if reading is not sent else None, _weakest(raw, confidence)))
    return words


def _weakest(raw: dict[str, Any], confidence: float) -> float | None:
    """`confianza_minima_caracter` when present and sane: no character is read surer than the
    word's mean says the least sure one is."""
    try:
        weakest = float(raw["confianza_minima_caracter"])
    except (KeyError, TypeError, ValueError):
        return None
    return min(confidence, max(0.0, weakest)) if _finite(weakest) else None


def _box(raw: Any) -> tuple[float, float, float, float] | None:
    if not isinstance(raw, (list, tuple)) or len(raw) != 4:
        return None
    try:
        x1, y1, x2, y2 = (float(v) for v in raw)
    except (TypeError, ValueError):
        return None
    if not all(map(_finite, (x1, y1, x2, y2))) or x2 < x1 or y2 < y1:
        return None
    return x1, y1, x2, y2


def _finite(value: float) -> bool:
    return value == value and value not in (float("inf"), float("-inf"))


def _group_lines(words: list[Word]) -> list[list[Word]]:
    """Rows of words (used when the OCR result carries no `lineas`)."""
    return [[words[i] for i in row] for row in group_boxes_into_rows([w.box for w in words])]


_CLOCK_OR_BATTERY = re.compile(r"(?<!\d)\d{1,2}\s?[:.]\s?\d{2}(?!\d)|\d{1,3}\s?%")


def _is_status_row(row: list[Word], limit: float) -> bool:
    """The phone's status bar: a row at the very top showing a clock, a battery level or only
    icon glyphs. A cropped receipt's first row of text is not one."""
    if not row or (row[0].box[1] + row[0].box[3]) / 2 >= limit:
        return False
    text = " ".join(w.text for w in row)
    return bool(_CLOCK_OR_BATTERY.search(text)) or all(len(re.findall(r"[^\W_]", w.text)) <= 3 for w in row)


def _is_tab_row(row: list[Word], height: float, gap_factor: float) -> bool:
    """An app's bottom tab bar ("CUENTAS  TARJETAS  PAGOS  DIVISAS"): a row in the bottom 15% of
    the image made of three or more short, widely spaced items."""
    if not row or height <= 0 or row[0].box[1] < 0.85 * height:
        return False
    items = 1 + sum(1 for a, b in zip(row, row[1:]) if b.box[0] - a.box[2] > 2 * gap_factor * a.height)
    return items >= 3 and all(len(w.text) <= 14 for w in row) and len(row) <= 2 * items


def build_document(ocr_result: dict[str, Any], settings: dict[str, float], status_bar: bool = True) -> Document:
    words = _parse_words(ocr_result.get("palabras_detectadas") if isinstance(ocr_result, dict) else None,
                         int(settings["max_words"]))
    by_index = {w.index: w for w in words}
    rows: list[list[Word]] = []
    raw_lines = ocr_result.get("lineas") if isinstance(ocr_result, dict) else None
    if isinstance(raw_lines, list) and raw_lines:
        used: set[int] = set()
        for raw in raw_lines:
            members = raw.get("palabras") if isinstance(raw, dict) else None
            if not isinstance(members, list):
                continue
            row = [by_index[i] for i in members if isinstance(i, int) and i in by_index and i not in used]
            used.update(w.index for w in row)
            if row:
                rows.append(sorted(row, key=lambda w: w.box[0]))
        leftovers = [w for w in words if w.index not in used]
        if leftovers:
            rows.extend(_group_lines(leftovers))
            rows.sort(key=lambda r: min(w.box[1] for w in r))
    else:
        rows = _group_lines(words)

    size = ocr_result.get("image_size") if isinstance(ocr_result, dict) else None
    orientation = ocr_result.get("orientacion") if isinstance(ocr_result, dict) else None
    if isinstance(orientation, dict) and "tamano_lectura" in orientation:
        size = orientation["tamano_lectura"]
    width = height = 0.0
    if isinstance(size, (list, tuple)) and len(size) == 2:
        try:
            width, height = float(size[0]), float(size[1])
        except (TypeError, ValueError):
            width = height = 0.0
    if words:
        width = max(width, max(w.box[2] for w in words))
        height = max(height, max(w.box[3] for w in words))
    status_limit = height * settings["status_bar_fraction"] if status_bar else -1.0
    chrome_rows = {i for i, row in enumerate(rows) if _is_status_row(row, status_limit)}
    if status_bar:
        chrome_rows |= {i for i, row in enumerate(rows) if _is_tab_row(row, height, gap_factor=settings["segment_gap_factor"])}

    lines: list[Line] = []
    segments: list[Segment] = []
    gap_factor = settings["segment_gap_factor"]
    for row_index, row in enumerate(rows):
        groups: list[list[Word]] = [[row[0]]]
        for previous, word in zip(row, row[1:]):
            gap = word.box[0] - previous.box[2]
            if gap > gap_factor * (previous.height + word.height) / 2:
                groups.append([word])
            else:
                groups[-1].append(word)
        line_segments = []
        for group in groups:
            segment = Segment(len(segments), len(lines), group)
            segment.in_chrome = row_index in chrome_rows
            segments.append(segment)
            line_segments.append(segment)
        lines.append(Line(len(lines), line_segments, _union(s.box for s in line_segments)))
    median_height = _median([w.height for w in words]) if words else 1.0
    top = min(w.box[1] for w in words) if words else 0.0
    return Document(words, lines, segments, width, height, median_height, top)


# ------------------------------------------------------------------------------------------------
# Value regions
# ------------------------------------------------------------------------------------------------
@dataclass
class Region:
    text: str
    spans: list[tuple[int, int, Word]]
    kind: str  # inline | right | below
    gap_ratio: float = 0.0  # label -> value vertical gap / label height (below only)
    wrapped: bool = False


def _wide_gap_at(words: list[Word], cut: int) -> bool:
    """A label and its value joined into one segment only because the value is long: the gap
    after the label is clearly wider than the spaces between the other words."""
    gap = words[cut].box[0] - words[cut - 1].box[2]
    height = _median([w.height for w in words])
    others = [b.box[0] - a.box[2] for i, (a, b) in enumerate(zip(words, words[1:]), 1) if i != cut]
    usual = _median(others) if others else 0.3 * height
    return gap >= 0.7 * height and gap >= 1.7 * max(usual, 0.1 * height)


def _continuation_ok(segment: Segment, settings: dict[str, float]) -> bool:
    """Second and later lines of a value must be confidently read text, not icon noise."""
    return segment.confidence >= max(0.5, settings["min_word_confidence"]) and \
        len(re.findall(r"[^\W_]", segment.text)) >= 2


def _region(pieces: list[tuple[str, list[tuple[int, int, Word]]]], kind: str) -> Region:
    text, spans, cursor = [], [], 0
    for piece_text, piece_spans in pieces:
        if text:
            cursor += 1
        offset = cursor
        spans.extend((offset + s, offset + e, w) for s, e, w in piece_spans)
        text.append(piece_text)
        cursor += len(piece_text)
    return Region(" ".join(text), spans, kind)


def _segment_piece(segment: Segment, start: int = 0) -> tuple[str, list[tuple[int, int, Word]]]:
    text = segment.text[start:]
    spans = [(max(s, start) - start, e - start, w) for s, e, w in segment.spans if e > start]
    return text, spans


def right_segments(doc: Document, label: Segment, labels: set[int]) -> list[Segment]:
    """Segments right of a label on its line, up to the next label."""
    line = doc.lines[label.line]
    out = []
    after = False
    for segment in line.segments:
        if segment is label:
            after = True
            continue
        if not after:
            continue
        if segment.id in labels:
            break
        out.append(segment)
    return out


def _column_bounds(doc: Document, label: Segment, labels: set[int]) -> tuple[float, float]:
    """Where a label's column starts and ends when other labels share its row (multi-column
    layouts): from the label's left edge to the next label's."""
    line = doc.lines[label.line]
    others = [s for s in line.segments if s is not label and s.id in labels]
    margin = 0.4 * label.height
    left = label.box[0] - margin if any(s.box[2] <= label.box[0] for s in others) else float("-inf")
    right = min((s.box[0] for s in others if s.box[0] >= label.box[2]), default=float("inf")) - margin
    return left, right


def _in_column(line: Line, column: tuple[float, float], bounds: tuple[float, float]) -> list[Segment]:
    """Segments of a line under a column; a segment that runs across columns (two columns
    read as one) keeps only the words inside this one."""
    left, right = bounds
    out = []
    for segment in line.segments:
        if not (segment.box[0] < column[1] and segment.box[2] > column[0]):
            continue
        if segment.box[0] < left or segment.box[2] > right:
            words = [w for w in segment.words if left <= w.box[0] < right]
            if not words:
                continue
            if len(words) < len(segment.words):
                part = Segment(segment.id, segment.line, words)
                part.in_chrome = segment.in_chrome
                segment = part
        out.append(segment)
    return out


def below_lines(doc: Document, label: Segment, block_lines: int, labels: set[int],
                settings: dict[str, float]) -> tuple[list[list[Segment]], float]:
    """Segments below a label in its column: up to `block_lines` lines of one value block."""
    lx1, _, lx2, _ = label.box
    tolerance = 0.5 * label.height
    max_first_gap = settings["below_max_gap_factor"] * label.height
    block_gap = settings["block_gap_factor"]
    collected: list[list[Segment]] = []
    first_gap = 0.0
    previous_bottom = label.box[3]
    column = (lx1 - tolerance, lx2 + tolerance)
    bounds = _column_bounds(doc, label, labels)
    for line in doc.lines[label.line + 1:]:
        in_column = _in_column(line, column, bounds)
        gap = line.box[1] - previous_bottom
        if not collected:
            if gap > max_first_gap:
                break
            if not in_column:
                continue
        else:
            in_column = [s for s in in_column if _continuation_ok(s, settings)]
            if not in_column or gap > block_gap * max(collected[-1][0].height, in_column[0].height):
                break
        if any(s.id in labels for s in in_column):
            break
        if not collected:
            first_gap = max(0.0, gap) / label.height
        collected.append(in_column)
        previous_bottom = max(s.box[3] for s in in_column)
        column = (max(bounds[0], min(column[0], *(s.box[0] for s in in_column))),
                  min(bounds[1], max(column[1], *(s.box[2] for s in in_column))))
        if len(collected) >= block_lines:
            break
    return collected, first_gap


def wrap_lines(doc: Document, label: Segment, value_words: list[Word], labels: set[int],
               settings: dict[str, float], max_lines: int = 2) -> list[list[Segment]]:
    """Continuation of a same-line value on the following line(s): under the value, right of
    the label, tightly spaced, nothing else on those lines."""
    if not value_words:
        return []
    vx1 = min(w.box[0] for w in value_words)
    vx2 = max(w.box[2] for w in value_words)
    bottom = max(w.box[3] for w in value_words)
    height = _median([w.height for w in value_words])
    label_right = max((w.box[2] for w in label.words if w.box[2] <= vx1), default=label.box[0])
    out = []
    for line in doc.lines[label.line + 1:label.line + 1 + max_lines]:
        gap = line.box[1] - bottom
        if gap > settings["wrap_gap_factor"] * height:
            break
        if any(s.id in labels for s in line.segments):
            break
        if any(s.box[0] < label_right for s in line.segments):
            break
        if not all(s.box[0] < vx2 + height and s.box[2] > vx1 - height for s in line.segments):
            break
        if not all(_continuation_ok(s, settings) for s in line.segments):
            break
        out.append(line.segments)
        bottom = line.box[3]
    return out


# ------------------------------------------------------------------------------------------------
# Labels wrapped over two lines
# ------------------------------------------------------------------------------------------------
def share_column(a: Segment, b: Segment) -> bool:
    """The two segments overlap horizontally."""
    return a.box[0] < b.box[2] and a.box[2] > b.box[0]


def _similar_height(a: Segment, b: Segment) -> bool:
    # Detection boxes of one font size differ by a fifth (accents, descenders): only a clearly
    # different size (a title, a large amount) is another kind of text.
    return min(a.height, b.height) >= 0.75 * max(a.height, b.height)


def segments_above(doc: Document, segment: Segment, max_gap: float) -> list[Segment]:
    """Segments of the few lines above `segment` that share its column and end at most `max_gap`
    above its top (overlapping boxes included), nearest first."""
    out = []
    for line in reversed(doc.lines[max(0, segment.line - 3):segment.line]):
        for other in line.segments:
            gap = segment.box[1] - other.box[3]
            if share_column(segment, other) and -0.5 * segment.height <= gap <= max_gap:
                out.append(other)
    return sorted(out, key=lambda s: segment.box[1] - s.box[3])


def label_second_line(doc: Document, first: Segment, settings: dict[str, float]) -> Segment | None:
    """The segment that would be the second line of `first` if `first` were a label wrapped in its
    column: right below it (gap at most `label_wrap_gap_factor` x its height), starting where it
    starts, text of the same size. None when no segment, or more than one, is there."""
    height = first.height
    found = []
    # The next line may be another column's text that sits a little higher: look two lines on.
    for line in doc.lines[first.line + 1:first.line + 3]:
        for other in line.segments:
            gap = other.box[1] - first.box[3]
            if -0.3 * height <= gap <= settings["label_wrap_gap_factor"] * height \
                    and abs(other.box[0] - first.box[0]) <= 0.5 * height \
                    and share_column(first, other) and _similar_height(first, other):
                found.append(other)
    return found[0] if len(found) == 1 else None


def join_lines_of_labels(doc: Document, pairs: list[tuple[Segment, Segment]]) -> None:
    """Make each (first line, second line) pair of a wrapped label one segment, in the first
    line's place: the value search then starts right of its first line or below its second. A
    line left empty goes; lines and segments are numbered again."""
    seconds = {id(second) for _first, second in pairs}
    joined = {}
    for first, second in pairs:
        segment = Segment(first.id, first.line, first.words + second.words)
        segment.in_chrome = first.in_chrome
        joined[id(first)] = segment
    lines: list[Line] = []
    for line in doc.lines:
        segments = [joined.get(id(s), s) for s in line.segments if id(s) not in seconds]
        if segments:
            lines.append(Line(len(lines), segments, _union(s.box for s in segments)))
    doc.lines = lines
    renumber(doc)


def renumber(doc: Document) -> None:
    """After segments were split or joined: the document's segments in reading order, each with
    its index there as id and its line's index as line."""
    doc.segments = [s for line in doc.lines for s in line.segments]
    for index, segment in enumerate(doc.segments):
        segment.id = index
    for line in doc.lines:
        for segment in line.segments:
            segment.line = line.index
