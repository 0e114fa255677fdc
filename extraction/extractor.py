"""The extraction engine: OCR words and lines in, the 16 receipt fields out.

How a receipt is read:

1. Layout. Words (with pixel boxes) are grouped into lines, and each line into *segments*: runs
   of words separated by less than `segment_gap_factor` x the word height. A label and its value
   on the same row ("Fecha:" ... "14/05/2025") are two segments; so are the columns of a
   multi-column receipt.
2. Labels. A segment that starts with a known label phrase (any rule's, or an exclusion such as
   "Comisión" or "Código autorizador") is a label. Matching is accent/case-insensitive and
   tolerates OCR noise (one edit in words of 5+ letters, "N°"/"Nro."/"Número" as one token).
   When phrases compete for one segment the longest wins ("Teléfono origen" beats "Teléfono").
3. Values. For each rule, the value of a label is looked for where the rule says: in the same
   segment after a colon, to the right on the same line (optionally continued on the next line
   when it wraps: "0108 - BBVA" / "PROVINCIAL"), or below the label in its column (stacked
   layouts, optionally a block of several lines). The rule's regex finds the value in that
   text; its normalizer and validators accept or reject it, with a reason.
4. Fallbacks rank below labelled values: an unlabelled amount with "Bs" (not claimed by any
   label such as "Total"), the bank named in the header (the app: "PagomóvilBDV"), the bank of an
   account prefix ("0102****4821"), keywords ("Pago Móvil" -> pago_movil).
5. Resolution. Per field the highest priority wins; equal-priority candidates that disagree
   give None (a wrong value is worse than a missing one). Cross-field checks reject a reference
   that equals the phone, the cédula or an account.

The phone status bar (a row in the top `status_bar_fraction` of the image showing a clock, a
battery level or only icons) is ignored by every unlabelled rule, so its clock is never the
operation time; a cropped receipt whose first row is text keeps that row.
"""
from __future__ import annotations

import re
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

import config
from extraction.banks import BankCatalog, get_catalog
from extraction.normalizers import NORMALIZERS, PhraseIndex, ascii_digits, compact, normalize_text, tokenize
from extraction.rules import LabelRef, Rule, RuleSet, get_registry
from validador_ocr import ValidadorOCR, reference_conflicts


# ------------------------------------------------------------------------------------------------
# Layout model
# ------------------------------------------------------------------------------------------------
@dataclass
class Word:
    index: int
    text: str
    confidence: float
    box: tuple[float, float, float, float]

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
        text, box = raw.get("texto"), raw.get("coordenadas")
        if not isinstance(text, str) or not text.strip() or not isinstance(box, (list, tuple)) or len(box) != 4:
            continue
        try:
            x1, y1, x2, y2 = (float(v) for v in box)
            confidence = float(raw.get("confianza", 1.0))
        except (TypeError, ValueError):
            continue
        if not all(map(_finite, (x1, y1, x2, y2, confidence))) or x2 < x1 or y2 < y1:
            continue
        words.append(Word(index, ascii_digits(text.strip()[:200]), min(1.0, max(0.0, confidence)), (x1, y1, x2, y2)))
    return words


def _finite(value: float) -> bool:
    return value == value and value not in (float("inf"), float("-inf"))


def _group_lines(words: list[Word]) -> list[list[Word]]:
    """Rows of words by vertical overlap (used when the OCR result carries no `lineas`)."""
    rows: list[dict[str, Any]] = []
    for word in sorted(words, key=lambda w: (w.box[1] + w.box[3]) / 2):
        best, best_ratio = None, 0.5
        for row in rows[-4:]:
            overlap = min(word.box[3], row["bottom"]) - max(word.box[1], row["top"])
            shorter = min(word.height, row["bottom"] - row["top"]) or 1.0
            ratio = max(0.0, overlap) / shorter
            if ratio >= best_ratio:
                best, best_ratio = row, ratio
        if best is None:
            rows.append({"words": [word], "top": word.box[1], "bottom": word.box[3]})
        else:
            best["words"].append(word)
            best["top"] = min(best["top"], word.box[1])
            best["bottom"] = max(best["bottom"], word.box[3])
    rows.sort(key=lambda r: r["top"])
    return [sorted(r["words"], key=lambda w: w.box[0]) for r in rows]


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
    return Document(words, lines, segments, width, height, median_height)


# ------------------------------------------------------------------------------------------------
# Labels and value regions
# ------------------------------------------------------------------------------------------------
@dataclass
class LabelOcc:
    segment: Segment
    ref: LabelRef
    edits: int
    strong: bool  # a colon or nothing but the label in its segment
    inline: str | None  # value text in the label's own segment, if any
    inline_start: int  # where `inline` starts in segment.text


@dataclass
class Region:
    text: str
    spans: list[tuple[int, int, Word]]
    kind: str  # inline | right | below
    gap_ratio: float = 0.0  # label -> value vertical gap / label height (below only)
    wrapped: bool = False


_VALUE_START = re.compile(r"\s*(?:(?:n\s?[°º*]|nro\.?|no\.|#|[°º*](?=\d))\s*)?(?:[+(]?\d|bs\.?\s*\d|[VEJGP]\s*-?\s*\d)",
                          re.IGNORECASE)


# Words ending in a colon, without digits: a label, even when no rule knows it.
_UNKNOWN_LABEL = re.compile(r"^[^\W\d_][^\d:]{1,40}:\s*$")


def _wide_gap_at(words: list[Word], cut: int) -> bool:
    """A label and its value joined into one segment only because the value is long: the gap
    after the label is clearly wider than the spaces between the other words."""
    gap = words[cut].box[0] - words[cut - 1].box[2]
    height = _median([w.height for w in words])
    others = [b.box[0] - a.box[2] for i, (a, b) in enumerate(zip(words, words[1:]), 1) if i != cut]
    usual = _median(others) if others else 0.3 * height
    return gap >= 0.7 * height and gap >= 1.7 * max(usual, 0.1 * height)


def _numeric_start(text: str | None) -> bool:
    """A value that starts like a number ("0104 - Venezolano", "+58 414", "N° 123", "V-123")
    may follow a label without a colon; words ("Operación realizada") may not."""
    return bool(text and _VALUE_START.match(text))


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


_label_cache: dict[tuple[str, str], tuple] = {}


def _label_hits(rules: RuleSet, text: str) -> tuple:
    """(ref, edits, strong, has_inline, value start) for each label at the start of `text`;
    cached per rules and text, since label texts repeat from receipt to receipt."""
    key = (rules.sha256, text)
    cached = _label_cache.get(key)
    if cached is not None:
        return cached
    tokens = rules.label_tokens(text[:120])
    found: list[tuple] = []
    if tokens:
        hits = rules.label_index.match_at([t.norm for t in tokens], 0)
        # A label never spans a colon: "Concepto: Pago ..." is "Concepto", not "Concepto de pago".
        hits = [h for h in hits if ":" not in text[tokens[0].start:tokens[h.length - 1].end]]
        best = hits[0].chars if hits else 0
        owners: set[str] = set()
        for hit in hits:
            ref: LabelRef = hit.payload  # type: ignore[assignment]
            if hit.chars != best or ref.owner in owners:
                continue
            owners.add(ref.owner)
            end = tokens[hit.length - 1].end
            rest = text[end:]
            if rules.label_tail.match(rest):
                found.append((ref, hit.edits, True, False, len(text)))
                continue
            colon = re.match(r"\s*[.)\]]*\s*:\s*", rest)
            if colon:
                found.append((ref, hit.edits, True, True, end + colon.end()))
            else:
                found.append((ref, hit.edits, False, True, end + (len(rest) - len(rest.lstrip(" .-–#°º")))))
    result = tuple(found)
    if len(_label_cache) > 50_000:
        _label_cache.clear()
    _label_cache[key] = result
    return result


class Extraction:
    """One extraction run over a document (all the per-image state lives here)."""

    def __init__(self, doc: Document, rules: RuleSet, catalog: BankCatalog, validator: ValidadorOCR) -> None:
        self.doc, self.rules, self.catalog, self.validator = doc, rules, catalog, validator
        self.settings = rules.settings
        self.labels: dict[int, list[LabelOcc]] = {}  # segment id -> label occurrences
        self.by_owner: dict[str, list[LabelOcc]] = {}
        self.label_segments: set[int] = set()
        self.claims: dict[int, set[str | None]] = {}  # segment id -> fields whose value it is
        self.candidates: dict[str, list[Candidate]] = {}
        self.rejections: dict[str, list[Rejection]] = {}
        self._find_labels()
        self._claim_values()

    # -- labels ------------------------------------------------------------------------------
    def _match(self, segment: Segment) -> list[LabelOcc]:
        """Label occurrences at the start of a segment (ties between owners all kept)."""
        return [LabelOcc(segment, ref, edits, strong, segment.text[start:] if has_inline else None, start)
                for ref, edits, strong, has_inline, start in _label_hits(self.rules, segment.text)]

    def _split_merged_labels(self) -> None:
        """Two labels read as one segment ("Documento de identidad Concepto") become two."""
        changed = False
        for line in self.doc.lines:
            out: list[Segment] = []
            for segment in line.segments:
                pending = segment
                for _ in range(4):
                    occs = self._match(pending)
                    weak = [o for o in occs if not o.strong and o.inline]
                    if not occs or len(weak) != len(occs):
                        break
                    cut = next((i for i, (start, _e, _w) in enumerate(pending.spans) if start == weak[0].inline_start), None)
                    if not cut:
                        break
                    rest = Segment(-1, line.index, pending.words[cut:])
                    if not any(o.strong and not o.inline for o in self._match(rest)) \
                            and not _wide_gap_at(pending.words, cut):
                        break
                    head = Segment(-1, line.index, pending.words[:cut])
                    head.in_chrome = rest.in_chrome = pending.in_chrome
                    out.append(head)
                    pending = rest
                    changed = True
                out.append(pending)
            line.segments = out
        if changed:
            self.doc.segments = [s for line in self.doc.lines for s in line.segments]
            for index, segment in enumerate(self.doc.segments):
                segment.id = index

    def _find_labels(self) -> None:
        self._split_merged_labels()
        for segment in self.doc.segments:
            occs = self._match(segment)
            if occs and self._is_wrapped_value(segment, occs):
                continue
            if not occs:
                if _UNKNOWN_LABEL.match(segment.text):
                    self.label_segments.add(segment.id)  # a label of no rule ("Tipo:"): not a value
                continue
            self.labels[segment.id] = occs
            for occ in occs:
                self.by_owner.setdefault(occ.ref.owner, []).append(occ)
            if any(self._counts_as_label(occ) for occ in occs):
                self.label_segments.add(segment.id)

    def _is_wrapped_value(self, segment: Segment, occs: list[LabelOcc]) -> bool:
        """A colon-less "label" tight under a value in its column is that value's second line
        ("0156 - 100%" / "Banco")."""
        if any(o.inline is not None for o in occs) or ":" in segment.text or segment.line == 0:
            return False
        above = self.doc.lines[segment.line - 1]
        for other in above.segments:
            if other.box[0] < segment.box[2] and other.box[2] > segment.box[0] and other.id not in self.label_segments \
                    and other.id not in self.labels:
                gap = segment.box[1] - other.box[3]
                if gap <= 0.2 * min(segment.height, other.height):
                    return True
        return False

    def _counts_as_label(self, occ: LabelOcc) -> bool:
        """Labels end value scans. A weak label ("Operación realizada") only counts when a number follows."""
        return occ.strong or _numeric_start(occ.inline)

    def _claim_values(self) -> None:
        """Segments that are some label's value: unlabelled rules and keywords leave them alone."""
        max_block = {rule.id: rule.block_lines for rule in self.rules.rules_by_strategy("label")}
        for occs in self.labels.values():
            for occ in occs:
                if not self._counts_as_label(occ):
                    continue
                owner_field = occ.ref.field
                self.claims.setdefault(occ.segment.id, set()).add(owner_field)
                if occ.inline:
                    continue
                segments = self._right_segments(occ)
                if not segments:
                    block = max_block.get(occ.ref.owner, 1)
                    segments = [s for line in self._below_lines(occ, block)[0] for s in line]
                for segment in segments:
                    self.claims.setdefault(segment.id, set()).add(owner_field)

    # -- geometry helpers --------------------------------------------------------------------
    def _right_segments(self, occ: LabelOcc) -> list[Segment]:
        line = self.doc.lines[occ.segment.line]
        out = []
        after = False
        for segment in line.segments:
            if segment is occ.segment:
                after = True
                continue
            if not after:
                continue
            if segment.id in self.label_segments:
                break
            out.append(segment)
        return out

    def _column_bounds(self, label: Segment) -> tuple[float, float]:
        """Where a label's column starts and ends when other labels share its row (multi-column
        layouts): from the label's left edge to the next label's."""
        line = self.doc.lines[label.line]
        others = [s for s in line.segments if s is not label and s.id in self.label_segments]
        margin = 0.4 * label.height
        left = label.box[0] - margin if any(s.box[2] <= label.box[0] for s in others) else float("-inf")
        right = min((s.box[0] for s in others if s.box[0] >= label.box[2]), default=float("inf")) - margin
        return left, right

    def _in_column(self, line: Line, column: tuple[float, float], bounds: tuple[float, float]) -> list[Segment]:
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

    def _below_lines(self, occ: LabelOcc, block_lines: int) -> tuple[list[list[Segment]], float]:
        """Segments below a label in its column: up to `block_lines` lines of one value block."""
        label = occ.segment
        lx1, _, lx2, _ = label.box
        tolerance = 0.5 * label.height
        max_first_gap = self.settings["below_max_gap_factor"] * label.height
        block_gap = self.settings["block_gap_factor"]
        collected: list[list[Segment]] = []
        first_gap = 0.0
        previous_bottom = label.box[3]
        column = (lx1 - tolerance, lx2 + tolerance)
        bounds = self._column_bounds(label)
        for line in self.doc.lines[label.line + 1:]:
            in_column = self._in_column(line, column, bounds)
            gap = line.box[1] - previous_bottom
            if not collected:
                if gap > max_first_gap:
                    break
                if not in_column:
                    continue
            else:
                in_column = [s for s in in_column if _continuation_ok(s, self.settings)]
                if not in_column or gap > block_gap * max(collected[-1][0].height, in_column[0].height):
                    break
            if any(s.id in self.label_segments for s in in_column):
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

    def _wrap_lines(self, occ: LabelOcc, value_words: list[Word], max_lines: int = 2) -> list[list[Segment]]:
        """Continuation of a same-line value on the following line(s): under the value, right of
        the label, tightly spaced, nothing else on those lines."""
        if not value_words:
            return []
        label = occ.segment
        vx1 = min(w.box[0] for w in value_words)
        vx2 = max(w.box[2] for w in value_words)
        bottom = max(w.box[3] for w in value_words)
        height = _median([w.height for w in value_words])
        label_right = max((w.box[2] for w in label.words if w.box[2] <= vx1), default=label.box[0])
        out = []
        for line in self.doc.lines[label.line + 1:label.line + 1 + max_lines]:
            gap = line.box[1] - bottom
            if gap > self.settings["wrap_gap_factor"] * height:
                break
            if any(s.id in self.label_segments for s in line.segments):
                break
            if any(s.box[0] < label_right for s in line.segments):
                break
            if not all(s.box[0] < vx2 + height and s.box[2] > vx1 - height for s in line.segments):
                break
            if not all(_continuation_ok(s, self.settings) for s in line.segments):
                break
            out.append(line.segments)
            bottom = line.box[3]
        return out

    def regions(self, occ: LabelOcc, rule: Rule) -> list[Region]:
        if occ.inline is not None and occ.inline.strip():
            if not occ.strong and not _numeric_start(occ.inline):
                return []
            region = _region([_segment_piece(occ.segment, occ.inline_start)], "inline")
            if rule.wrap:
                wraps = self._wrap_lines(occ, [w for _s, e, w in occ.segment.spans if e > occ.inline_start])
                if wraps:
                    region = _region([_segment_piece(occ.segment, occ.inline_start)]
                                     + [_segment_piece(s) for line in wraps for s in line], "inline")
                    region.wrapped = True
            return [region]
        if not occ.strong:
            return []
        out = []
        for position in rule.positions:
            if position == "right":
                segments = self._right_segments(occ)
                if not segments:
                    continue
                pieces = [_segment_piece(s) for s in segments]
                wrapped = False
                if rule.wrap:
                    for line in self._wrap_lines(occ, [w for seg in segments for w in seg.words]):
                        pieces.extend(_segment_piece(s) for s in line)
                        wrapped = True
                region = _region(pieces, "right")
                region.wrapped = wrapped
                out.append(region)
            else:
                lines, gap_ratio = self._below_lines(occ, rule.block_lines)
                if lines:
                    region = _region([_segment_piece(s) for line in lines for s in line], "below")
                    region.gap_ratio = gap_ratio
                    out.append(region)
        return out

    # -- candidates --------------------------------------------------------------------------
    def add_candidate(self, candidate: "Candidate") -> None:
        self.candidates.setdefault(candidate.field, []).append(candidate)

    def reject(self, rule: Rule, raw: str, reason: str) -> None:
        self.rejections.setdefault(rule.field, []).append(Rejection(rule.field, rule.id, rule.priority, raw[:120], reason))

    def normalize(self, rule: Rule, raw: str) -> tuple[str | None, str | None]:
        name = rule.normalizer
        if name == "bank":
            bank, reason = self.catalog.resolve(raw)
            return (bank.name, None) if bank else (None, reason)
        if name == "beneficiary":
            value = beneficiary_name(raw, self.catalog)
            return (value, None) if value else (None, "no queda un nombre tras quitar teléfono, cédula y banco")
        try:
            value = NORMALIZERS[name](raw, **rule.normalizer_options)  # type: ignore[index]
        except (TypeError, ValueError) as exc:
            return None, f"normalizador {name}: {exc}"
        return (value, None) if value is not None else (None, f"'{raw[:40]}' no es un valor {name} legible")

    def validate(self, rule: Rule, value: str) -> str | None:
        for name in rule.validators:
            reason = self.validator.check(name, value, {"catalog": self.catalog})
            if reason:
                return reason
        return None

    def apply_pattern(self, rule: Rule, region: Region, conf_factor: float) -> bool:
        """Find the rule's value in a region; add a candidate when exactly one valid value is there."""
        text = region.text[: int(self.settings["max_value_chars"])]
        assert rule.pattern is not None
        accepted: dict[str, tuple[str, int, int]] = {}
        for count, match in enumerate(rule.pattern.finditer(text)):
            if count >= 8:
                break
            raw = match.group(rule.group)
            start, end = match.span(rule.group)
            if raw is None or not raw.strip():
                continue
            if any(p.search(raw) for p in rule.exclude_patterns):
                self.reject(rule, raw, "valor excluido por la regla")
                continue
            value, reason = self.normalize(rule, raw)
            if value is not None:
                reason = self.validate(rule, value)
            if reason:
                self.reject(rule, raw, reason)
                continue
            accepted.setdefault(value, (raw, start, end))  # type: ignore[arg-type]
            if rule.match == "first":
                break
        if not accepted:
            return False
        if len(accepted) > 1:
            self.reject(rule, text, "varios valores posibles: " + ", ".join(list(accepted)[:3]))
            return False
        value, (raw, start, end) = next(iter(accepted.items()))
        words = [w for s, e, w in region.spans if s < end and e > start]
        self.add_candidate(Candidate.build(rule, value, raw.strip(), words, conf_factor, region.text, region))
        return True


@dataclass
class Candidate:
    field: str
    rule: str
    priority: int
    value: str
    raw: str
    words: list[Word]
    conf_ocr: float
    conf_rule: float
    region_text: str
    kind: str
    gap_ratio: float = 0.0

    @property
    def confidence(self) -> float:
        return round(self.conf_ocr * self.conf_rule, 4)

    @property
    def box(self) -> list[int] | None:
        if not self.words:
            return None
        x1, y1, x2, y2 = _union(w.box for w in self.words)
        return [int(round(x1)), int(round(y1)), int(round(x2)), int(round(y2))]

    @classmethod
    def build(cls, rule: Rule, value: str, raw: str, words: list[Word], factor: float, region_text: str,
              region: Region | None = None) -> "Candidate":
        conf_ocr = round(sum(w.confidence for w in words) / len(words), 4) if words else 1.0
        return cls(rule.field, rule.id, rule.priority, value, raw, words, conf_ocr,
                   round(min(1.0, rule.confidence * factor), 4), region_text,
                   region.kind if region else "derived", region.gap_ratio if region else 0.0)


@dataclass
class Rejection:
    field: str
    rule: str
    priority: int
    raw: str
    reason: str


# ------------------------------------------------------------------------------------------------
# Beneficiary names out of multi-entity blocks
# ------------------------------------------------------------------------------------------------
_ID_WITH_LETTER = re.compile(
    r"(?:(?<![^\W\d_])[VEJGP]\s*[-.]?\s*|(?<=[^\W\d_])[VEJGP]\s*-\s*)\d[\d.]{4,11}(?:\s*-\s*\d)?(?!\d)",
    re.IGNORECASE,
)
_NUMBERISH = re.compile(r"[+(]?[\d*•·…●][\d*•·…●\s.\-()]{2,}[\d*•·…●]")


def beneficiary_name(text: str, catalog: BankCatalog) -> str | None:
    """The person or business named in a value that may also print phone, ID and bank.

    "0414-7650321 PANADERÍA SOL V-18234567 - MERCANTIL" -> "PANADERÍA SOL". A value without digits
    is taken as printed ("Inversiones Peña C.A.").
    """
    if not text:
        return None
    value = text
    if re.search(r"\d", value):
        value = _ID_WITH_LETTER.sub(" ", value)
        value = catalog.strip_bank_names(value)
        value = _NUMBERISH.sub(" ", value)
        value = re.sub(r"\s[-–|/]\s|^\s*[-–|/]|[-–|/]\s*$", " ", value)
    value = normalize_text(value, 80) or ""  # also OCR's zero for the letter O ("BEG0ÑA")
    value = re.sub(r"\s{2,}", " ", value).strip(" -–,;:")
    if len(re.findall(r"[^\W\d_]", value)) < 3 or re.search(r"\d{4,}", value):
        return None
    return value


# ------------------------------------------------------------------------------------------------
# Strategies
# ------------------------------------------------------------------------------------------------
def _run_label_rules(run: Extraction) -> None:
    for rule in run.rules.rules_by_strategy("label"):
        for occ in run.by_owner.get(rule.id, ()):
            factor = max(0.5, 1.0 - 0.05 * occ.edits)
            for region in run.regions(occ, rule):
                region_factor = factor * (0.95 if region.wrapped else 1.0)
                if run.apply_pattern(rule, region, region_factor):
                    break


def _below_gap_check(run: Extraction) -> None:
    """Drop values found unusually far below their label compared with the rest of the receipt."""
    gaps = [c.gap_ratio for cands in run.candidates.values() for c in cands if c.kind == "below"]
    if len(gaps) < 2:
        return
    typical = statistics.median(gaps)
    limit = max(1.6 * typical + 0.3, 0.8)
    for field_name, cands in run.candidates.items():
        kept = []
        for c in cands:
            if c.kind == "below" and c.gap_ratio > limit:
                run.rejections.setdefault(field_name, []).append(
                    Rejection(field_name, c.rule, c.priority, c.raw, "valor demasiado lejos de su etiqueta"))
            else:
                kept.append(c)
        run.candidates[field_name] = kept


def _usable(run: Extraction, segment: Segment) -> bool:
    return (not segment.in_chrome and segment.id not in run.claims and segment.id not in run.label_segments
            and segment.confidence >= run.settings["min_word_confidence"])


def _run_unlabelled(run: Extraction, rule: Rule) -> None:
    assert rule.pattern is not None
    found: list[tuple[float, Candidate]] = []
    min_height = rule.min_height_ratio * run.doc.median_height
    for segment in run.doc.segments:
        if not _usable(run, segment) or segment.height < min_height:
            continue
        if rule.skip_top_fraction and (segment.box[1] + segment.box[3]) / 2 < rule.skip_top_fraction * run.doc.height:
            continue
        region = _region([_segment_piece(segment)], "unlabelled")
        before = len(run.candidates.get(rule.field, []))
        run.apply_pattern(rule, region, 1.0)
        cands = run.candidates.get(rule.field, [])
        if len(cands) > before:
            found.append((segment.height, cands.pop()))
    if not found:
        return
    values = {c.value for _, c in found}
    if len(values) == 1:
        run.add_candidate(max(found, key=lambda f: f[1].confidence)[1])
        return
    if rule.select == "largest":
        found.sort(key=lambda f: -f[0])
        if found[0][0] >= 1.15 * next(h for h, c in found if c.value != found[0][1].value):
            run.add_candidate(found[0][1])
            return
    run.reject(rule, ", ".join(sorted(values))[:120], "varios valores sin etiqueta; ninguno se impone")


def _header_segments(run: Extraction) -> list[Segment]:
    strong_lines = [occ.segment.line for occs in run.labels.values() for occ in occs if occ.strong]
    if strong_lines:
        limit_line = min(strong_lines)
        return [s for s in run.doc.segments if s.line < limit_line and not s.in_chrome]
    limit_y = run.settings["header_fraction"] * run.doc.height
    return [s for s in run.doc.segments if s.box[1] < limit_y and not s.in_chrome]


def _run_header_bank(run: Extraction, rule: Rule) -> None:
    segments = _header_segments(run) if rule.scope == "header" else [s for s in run.doc.segments if _usable(run, s)]
    found: dict[str, Candidate] = {}
    for segment in segments:
        if segment.id in run.claims:
            continue
        confident = segment.confidence >= run.settings["min_word_confidence"]
        for match in run.catalog.find(segment.text):
            raw = segment.text[match.start:match.end]
            if not confident and not _exact_brand(raw, match.bank.name, match.bank.aliases):
                continue
            words = [w for s, e, w in segment.spans if s < match.end and e > match.start]
            found.setdefault(match.bank.name, Candidate.build(rule, match.bank.name, raw, words, 1.0, segment.text))
    if len(found) == 1:
        run.add_candidate(next(iter(found.values())))
    elif len(found) > 1:
        run.reject(rule, ", ".join(sorted(found)), "varios bancos en la cabecera")


def _run_keyword(run: Extraction, rule: Rule, index: PhraseIndex) -> None:
    allowed = set(rule.include_values_of)
    segments = _header_segments(run) if rule.scope == "header" else run.doc.segments
    found: dict[str, Candidate] = {}
    for segment in segments:
        if segment.in_chrome:
            continue
        confident = segment.confidence >= run.settings["min_word_confidence"]
        owners = run.claims.get(segment.id)
        if owners and not owners <= allowed:
            continue
        if segment.tokens is None:
            segment.tokens = tokenize(segment.text)
        tokens = segment.tokens
        norms = [t.norm for t in tokens]
        for position in range(len(tokens)):
            for hit in index.match_at(norms, position):
                if not confident and (hit.edits or hit.chars < 5):
                    continue  # low-confidence text counts only for an exact, long keyword
                value = str(hit.payload)
                start, end = tokens[position].start, tokens[position + hit.length - 1].end
                words = [w for s, e, w in segment.spans if s < end and e > start]
                found.setdefault(value, Candidate.build(rule, value, segment.text[start:end], words, 1.0, segment.text))
    if len(found) == 1:
        run.add_candidate(next(iter(found.values())))
    elif len(found) > 1:
        run.reject(rule, ", ".join(sorted(found)), "palabras clave contradictorias")


def _run_derived(run: Extraction, rule: Rule, chosen: dict[str, Candidate]) -> None:
    source = chosen.get(rule.source_field or "")
    if source is None:
        return
    bank = run.catalog.from_account(source.value) or run.catalog.from_account(source.region_text)
    if bank is None:
        return
    candidate = Candidate.build(rule, bank.name, source.raw, source.words, 1.0, source.region_text)
    candidate.conf_ocr = source.conf_ocr
    run.add_candidate(candidate)


def _exact_brand(raw: str, name: str, aliases: tuple[str, ...]) -> bool:
    """An alias read exactly (folded) and at least 5 characters long."""
    folded = compact(raw)
    return len(folded) >= 5 and any(folded == compact(a) for a in (name, *aliases))


_keyword_indexes: dict[tuple[str, str], PhraseIndex] = {}


def _keyword_index(rules: RuleSet, rule: Rule) -> PhraseIndex:
    key = (rules.sha256, rule.id)
    index = _keyword_indexes.get(key)
    if index is None:
        phrases = []
        for value, words in rule.keywords:
            for phrase in words:
                tokens = tuple(t.norm for t in tokenize(phrase))
                if tokens:
                    phrases.append((tokens, value))
        index = PhraseIndex(phrases, fuzzy_from=7)
        if len(_keyword_indexes) > 256:
            _keyword_indexes.clear()
        _keyword_indexes[key] = index
    return index


# ------------------------------------------------------------------------------------------------
# Resolution
# ------------------------------------------------------------------------------------------------
def _resolve(cands: list[Candidate], margin: float) -> tuple[Candidate | None, str | None]:
    if not cands:
        return None, None
    top = max(c.priority for c in cands)
    group = sorted((c for c in cands if c.priority == top), key=lambda c: -c.confidence)
    best = group[0]
    rivals = [c for c in group if c.value != best.value]
    if rivals and best.confidence - rivals[0].confidence < margin:
        values = ", ".join(dict.fromkeys(c.value for c in group))
        return None, f"valores en conflicto con igual prioridad: {values[:100]}"
    return best, None


def extract_fields(ocr_result: dict[str, Any], rules: RuleSet | None = None, *, catalog: BankCatalog | None = None,
                   _status_bar: bool = True) -> dict[str, Any]:
    """The 16 receipt fields of one OCR result, with per-field detail and validation.

    Returns {"extracted_fields", "campos_detalle", "validacion", "metadatos_extraccion"}.
    """
    started = time.perf_counter()
    ruleset = rules or get_registry().current
    bank_catalog = catalog or get_catalog()
    validator = ValidadorOCR(config.EXTRACTION_CONFIG, bank_catalog)
    doc = build_document(ocr_result if isinstance(ocr_result, dict) else {}, ruleset.settings, _status_bar)
    run = Extraction(doc, ruleset, bank_catalog, validator)

    _run_label_rules(run)
    _below_gap_check(run)
    for rule in ruleset.rules:
        if rule.strategy == "unlabelled":
            _run_unlabelled(run, rule)
        elif rule.strategy == "header_bank":
            _run_header_bank(run, rule)
        elif rule.strategy == "keyword":
            _run_keyword(run, rule, _keyword_index(ruleset, rule))

    fields = list(config.EXTRACTION_CONFIG["fields"])
    margin = ruleset.settings["conflict_margin"]
    chosen: dict[str, Candidate] = {}
    reasons: dict[str, str] = {}

    def resolve(name: str) -> None:
        cands = list(run.candidates.get(name, []))
        while cands:
            best, reason = _resolve(cands, margin)
            if best is None:
                reasons[name] = reason or ""
                chosen.pop(name, None)
                return
            conflict = _cross_check(name, best.value, {k: v.value for k, v in chosen.items() if k != name})
            if not conflict:
                chosen[name] = best
                return
            run.rejections.setdefault(name, []).append(Rejection(name, best.rule, best.priority, best.raw, conflict))
            cands = [c for c in cands if c.value != best.value]
        chosen.pop(name, None)

    order = [f for f in fields if f not in ("referencia", "comprobante")] + ["referencia", "comprobante"]
    for name in order:
        resolve(name)
    derived = ruleset.rules_by_strategy("derived")
    for rule in derived:
        _run_derived(run, rule, chosen)
    for name in {rule.field for rule in derived}:
        resolve(name)

    extracted: dict[str, Any] = {}
    detail: dict[str, Any] = {}
    for name in fields:
        cand = chosen.get(name)
        if cand is not None:
            extracted[name] = cand.value
            detail[name] = {
                "texto_original": cand.raw,
                "valor": cand.value,
                "confianza_ocr": cand.conf_ocr,
                "confianza_regla": cand.conf_rule,
                "confianza": cand.confidence,
                "coordenadas": cand.box,
                "regla": cand.rule,
            }
            continue
        extracted[name] = None
        rejected = sorted(run.rejections.get(name, []), key=lambda r: -r.priority)
        if name in reasons and reasons[name]:
            detail[name] = {"valor": None, "motivo": reasons[name]}
        elif rejected:
            top = rejected[0]
            detail[name] = {"valor": None, "motivo": top.reason, "texto_original": top.raw, "regla": top.rule}
        else:
            detail[name] = {"valor": None, "motivo": "no se encontró etiqueta ni valor reconocible"}
    validacion = validator.validar(extracted, detail)
    return {
        "extracted_fields": extracted,
        "campos_detalle": detail,
        "validacion": validacion,
        "metadatos_extraccion": {
            "reglas_id": ruleset.id,
            "reglas_version": ruleset.version,
            "tiempo_ms": round((time.perf_counter() - started) * 1000, 3),
        },
    }


def _cross_check(name: str, value: str, others: dict[str, Any]) -> str | None:
    if name in ("referencia", "comprobante"):
        return reference_conflicts(value, others)
    if name == "cedula" and others.get("telefono") and re.sub(r"\D", "", value) == others["telefono"]:
        return "la cédula coincide con el teléfono"
    return None


# ------------------------------------------------------------------------------------------------
# Plain text entry point (same engine)
# ------------------------------------------------------------------------------------------------
CHAR_WIDTH, LINE_HEIGHT, LINE_PITCH, CELL_GAP = 10, 20, 30, 60


def ocr_result_from_text(text: str) -> dict[str, Any]:
    """An OCR-shaped document from plain text: one line per text line; two or more spaces, a tab
    or " | " separate cells (as a wide gap between label and value columns would)."""
    text = text if isinstance(text, str) else ""
    words: list[dict[str, Any]] = []
    lines: list[dict[str, Any]] = []
    width = 0
    for row, line in enumerate(text[:200_000].splitlines()[:2000]):
        y1 = 10 + row * LINE_PITCH
        x = 10
        members = []
        for cell in re.split(r"\t+| {2,}| \| ", line):
            tokens = cell.split()
            if not tokens:
                continue
            for token in tokens:
                x2 = x + CHAR_WIDTH * len(token)
                members.append(len(words))
                words.append({"texto": token, "confianza": 1.0, "coordenadas": [x, y1, x2, y1 + LINE_HEIGHT]})
                x = x2 + 6
            x += CELL_GAP
        if members:
            boxes = [words[i]["coordenadas"] for i in members]
            lines.append({"texto": " ".join(words[i]["texto"] for i in members), "palabras": members,
                          "coordenadas": [boxes[0][0], y1, boxes[-1][2], y1 + LINE_HEIGHT]})
            width = max(width, boxes[-1][2])
    height = 10 + min(len(text[:200_000].splitlines()), 2000) * LINE_PITCH
    return {"palabras_detectadas": words, "lineas": lines, "image_size": [width + 10, height]}


def extract_fields_from_text(text: str, rules: RuleSet | None = None) -> dict[str, Any]:
    """`extract_fields` on plain text (no status bar: a text has no phone chrome)."""
    return extract_fields(ocr_result_from_text(text), rules, _status_bar=False)
