"""One extraction run over a document: labels found, values claimed, regions searched, and the
candidates and rejections each rule leaves (the state of one image; the rules stay in the rules file).

Labels: a segment that starts with a known label phrase (any rule's, or an exclusion such as
"Comisión" or "Código autorizador") is a label. Matching is accent/case-insensitive and tolerates
OCR noise (one edit in words of 5+ letters, "N°"/"Nro."/"Número" as one token). When phrases
compete for one segment the longest wins ("Teléfono origen" beats "Teléfono").

A label wrapped over two lines in its column ("Documento de" / "identidad": left-aligned, the same
text size, tightly spaced) is one label when the joined text is a label and the first line alone
is not that label; its value is then searched right of its first line or below its second. Lines
that continue text above them, or are a label's value, are never the first line of one.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from extraction.banks import BankCatalog
from extraction.beneficiary import beneficiary_name
from extraction.confusions import NUMERIC_NORMALIZERS, repair_numeric
from extraction.layout import (
    Document,
    Region,
    Segment,
    Word,
    _region,
    _segment_piece,
    _union,
    _wide_gap_at,
    below_lines,
    join_lines_of_labels,
    label_second_line,
    renumber,
    right_segments,
    segments_above,
    share_column,
    wrap_lines,
)
from extraction.furniture import is_furniture, is_none_value
from extraction.normalizers import NORMALIZERS, amount_sign
from extraction.label_words import split_glued_word, starts_bank_name
from extraction.rules import LabelRef, Rule, RuleSet
from validador_ocr import ValidadorOCR

# ------------------------------------------------------------------------------------------------
# Labels
# ------------------------------------------------------------------------------------------------
# A repaired value is a little less certain than one read as printed.
REPAIR_CONFIDENCE = 0.9


@dataclass
class LabelOcc:
    segment: Segment
    ref: LabelRef
    edits: int
    strong: bool  # a colon or nothing but the label in its segment
    inline: str | None  # value text in the label's own segment, if any
    inline_start: int  # where `inline` starts in segment.text


_VALUE_START = re.compile(r"\s*(?:(?:n\s?[°º*]|nro\.?|no\.|#|[°º*](?=\d))\s*)?(?:[+(]?\d|bs\.?\s*\d|[VEJGP]\s*-?\s*\d)",
                          re.IGNORECASE)


# Words ending in a colon, without digits: a label, even when no rule knows it.
_UNKNOWN_LABEL = re.compile(r"^[^\W\d_][^\d:]{1,40}:\s*$")


def _numeric_start(text: str | None) -> bool:
    """A value that starts like a number ("0104 - Venezolano", "+58 414", "N° 123", "V-123")
    may follow a label without a colon; words ("Operación realizada") may not."""
    return bool(text and _VALUE_START.match(text))


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


def normalize_value(rule: Rule, raw: str, catalog: BankCatalog) -> tuple[str | None, str | None]:
    """(value, None) when the rule's normalizer reads `raw`, else (None, why); also what a hand
    correction goes through (extraction/corrections.py), so both read values the same way."""
    name = rule.normalizer
    if name == "bank":
        bank, reason = catalog.resolve(raw)
        return (bank.name, None) if bank else (None, reason)
    if name == "beneficiary":
        value = beneficiary_name(raw, catalog)
        return (value, None) if value else (None, "no queda un nombre tras quitar teléfono, cédula y banco")
    try:
        value = NORMALIZERS[name](raw, **rule.normalizer_options)  # type: ignore[index]
    except (TypeError, ValueError) as exc:
        return None, f"normalizador {name}: {exc}"
    return (value, None) if value is not None else (None, f"'{raw[:40]}' no es un valor {name} legible")


def validate_value(rule: Rule, value: str, validator: ValidadorOCR, catalog: BankCatalog) -> str | None:
    """Why the rule's validators refuse `value`, or None."""
    for name in rule.validators:
        reason = validator.check(name, value, {"catalog": catalog})
        if reason:
            return reason
    return None


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
        self._mark_furniture()
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
                    words = pending.words
                    cut = next((i for i, (start, _e, _w) in enumerate(pending.spans) if start == weak[0].inline_start), None)
                    if cut is None:
                        # The second label glued to the first one's last word ("identidafCuenta").
                        words, cut = split_glued_word(pending, weak[0].inline_start, self.rules)
                    if not cut:
                        break
                    rest = Segment(-1, line.index, words[cut:])
                    if not any(o.strong and not o.inline for o in self._match(rest)) \
                            and not _wide_gap_at(words, cut):
                        break
                    head = Segment(-1, line.index, words[:cut])
                    head.in_chrome = rest.in_chrome = pending.in_chrome
                    out.append(head)
                    pending = rest
                    changed = True
                out.append(pending)
            line.segments = out
        if changed:
            renumber(self.doc)

    def _join_wrapped_labels(self) -> None:
        """A label wrapped over two lines in its column ("Documento de" / "identidad") becomes one
        segment, so that its value is found right of its first line or below its second."""
        pairs: list[tuple[Segment, Segment]] = []
        used: set[int] = set()
        for first in self.doc.segments:
            if first.id in used:
                continue
            second = label_second_line(self.doc, first, self.settings)
            if second is None or second.id in used or not self._wraps_onto(first, second):
                continue
            pairs.append((first, second))
            used.update((first.id, second.id))
        if pairs:
            join_lines_of_labels(self.doc, pairs)

    def _whole_labels(self, segment: Segment) -> set[str]:
        """Owners of the labels that are the whole text of a segment (a colon or a unit may follow)."""
        return {o.ref.owner for o in self._match(segment) if o.strong and o.inline is None}

    def _wraps_onto(self, first: Segment, second: Segment) -> bool:
        """Whether two segments one above the other are the two lines of one label. The joined text
        must be a label of the rules with nothing after it, of another rule than any label `first`
        alone is; and `first` must not be text that continues a line above or a value under a label."""
        if first.in_chrome or second.in_chrome:
            return False
        joined = self._whole_labels(Segment(-1, first.line, first.words + second.words))
        alone = self._whole_labels(first)
        if not joined or joined <= alone:
            # Not a label, or one of the first line's own rules: "Concepto" / "pago" is a label and
            # its value, as tight as a wrapped line in stacked layouts ("Monto" / "Bs." adds nothing).
            return False
        if alone and self._whole_labels(second) and self._has_value_right(second):
            return False  # two rows, each a label and its value ("Cuenta" / "Destino")
        return not self._continues_text_above(first)

    def _has_value_right(self, segment: Segment) -> bool:
        """Text that is not a label follows the segment on its line."""
        return any(not self._whole_labels(s) for s in right_segments(self.doc, segment, set()))

    def _continues_text_above(self, segment: Segment) -> bool:
        """A segment tight under text in its column is that text's next line; one under a label
        whose value is not right of it, with nothing between them, is that label's value."""
        above = segments_above(self.doc, segment, self.settings["below_max_gap_factor"] * segment.height)
        if not above:
            return False
        nearest = above[0]
        if nearest.box[1] <= segment.box[1] and \
                segment.box[1] - nearest.box[3] <= self.settings["label_wrap_gap_factor"] * segment.height:
            return True
        occs = self._match(nearest)
        # A label word that is the end of a value ("0156 - 100%" / "Banco") is no label.
        return bool(self._whole_labels(nearest)) and not self._has_value_right(nearest) \
            and not self._is_wrapped_value(nearest, occs)

    def _find_labels(self) -> None:
        self._split_merged_labels()
        self._join_wrapped_labels()
        for segment in self.doc.segments:
            occs = self._match(segment)
            if occs and (self._is_wrapped_value(segment, occs)
                         or starts_bank_name(segment, self.doc.lines[segment.line], self.catalog)):
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

    def _mark_furniture(self) -> None:
        """The apps' boilerplate sentences and button captions (the rules' `boilerplate`) are
        never a value, and a value's block ends where they start: like labels of no rule."""
        if not self.rules.boilerplate:
            return
        for segment in self.doc.segments:
            if segment.id not in self.label_segments and is_furniture(self.rules, segment.text):
                self.label_segments.add(segment.id)

    def _is_wrapped_value(self, segment: Segment, occs: list[LabelOcc]) -> bool:
        """A colon-less one-word "label" tight under a value in its column is that value's second
        line ("0156 - 100%" / "Banco"): tight means within a fifth of a line, and no farther from
        the value than the value is from its own label (a value's lines sit closer together than
        to the next row's label). A label of several words ("NÚMERO DE CELULAR") is a label."""
        if any(o.inline is not None for o in occs) or ":" in segment.text or segment.line == 0:
            return False
        if len(self.rules.label_tokens(segment.text)) >= 2:
            return False
        above = self.doc.lines[segment.line - 1]
        for other in above.segments:
            if share_column(other, segment) and other.id not in self.label_segments \
                    and other.id not in self.labels:
                gap = segment.box[1] - other.box[3]
                if gap <= 0.2 * min(segment.height, other.height) and gap <= self._gap_to_own_label(other):
                    return True
        return False

    def _gap_to_own_label(self, value: Segment) -> float:
        """How far `value` sits under the label above it in its column (infinity without one)."""
        if value.line == 0:
            return float("inf")
        for label in self.doc.lines[value.line - 1].segments:
            if share_column(label, value) and (label.id in self.labels or label.id in self.label_segments):
                return value.box[1] - label.box[3]
        return float("inf")

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
                segments = right_segments(self.doc, occ.segment, self.label_segments)
                if not segments:
                    block = max_block.get(occ.ref.owner, 1)
                    lines = below_lines(self.doc, occ.segment, block, self.label_segments, self.settings)[0]
                    segments = [s for line in lines for s in line]
                for segment in segments:
                    self.claims.setdefault(segment.id, set()).add(owner_field)

    # -- value regions (the geometry is the layout's; where to look is the rule's) -----------
    def regions(self, occ: LabelOcc, rule: Rule) -> list[Region]:
        if occ.inline is not None and occ.inline.strip():
            if not occ.strong and not _numeric_start(occ.inline):
                return []
            region = _region([_segment_piece(occ.segment, occ.inline_start)], "inline")
            if rule.wrap:
                value_words = [w for _s, e, w in occ.segment.spans if e > occ.inline_start]
                wraps = wrap_lines(self.doc, occ.segment, value_words, self.label_segments, self.settings)
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
                segments = right_segments(self.doc, occ.segment, self.label_segments)
                if not segments:
                    continue
                pieces = [_segment_piece(s) for s in segments]
                wrapped = False
                if rule.wrap:
                    value_words = [w for seg in segments for w in seg.words]
                    for line in wrap_lines(self.doc, occ.segment, value_words, self.label_segments, self.settings):
                        pieces.extend(_segment_piece(s) for s in line)
                        wrapped = True
                region = _region(pieces, "right")
                region.wrapped = wrapped
                out.append(region)
            else:
                lines, gap_ratio = below_lines(self.doc, occ.segment, rule.block_lines, self.label_segments,
                                               self.settings)
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
        return normalize_value(rule, raw, self.catalog)

    def validate(self, rule: Rule, value: str) -> str | None:
        return validate_value(rule, value, self.validator, self.catalog)

    def apply_pattern(self, rule: Rule, region: Region, conf_factor: float) -> bool:
        """Find the rule's value in a region; add a candidate when exactly one valid value is there.
        A numeric value that only passes once OCR confusions are undone is taken, with the repair
        recorded and a little less confidence."""
        if self._apply_pattern(rule, region, region.text, conf_factor):
            return True
        if rule.normalizer not in NUMERIC_NORMALIZERS:
            return False
        repaired = repair_numeric(region.text)
        if repaired == region.text:
            return False
        rejections = len(self.rejections.get(rule.field, []))
        if not self._apply_pattern(rule, region, repaired, conf_factor * REPAIR_CONFIDENCE):
            # The literal reading's reasons are the ones to report.
            del self.rejections.get(rule.field, [])[rejections:]
            return False
        candidate = self.candidates[rule.field][-1]
        read = region.text[candidate.span[0]:candidate.span[1]].strip()
        candidate.repair = {"texto_leido": read, "texto_reparado": candidate.raw}
        candidate.raw = read
        return True

    def _apply_pattern(self, rule: Rule, region: Region, full_text: str, conf_factor: float) -> bool:
        text = full_text[: int(self.settings["max_value_chars"])]
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
            if is_none_value(self.rules, raw) or is_none_value(self.rules, value):
                value, reason = None, "el recibo indica que no hay valor"
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
        candidate = Candidate.build(rule, value, raw.strip(), words, conf_factor, full_text, region)
        candidate.span = (start, end)
        if rule.normalizer == "amount" and amount_sign(raw):
            candidate.notes = {"signo": "negativo"}  # a debit printed negative: the amount is its size
        self.add_candidate(candidate)
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
    span: tuple[int, int] = (0, 0)  # where the value is in the region's text
    repair: dict[str, str] | None = None  # OCR confusions undone to read the value
    notes: dict | None = None  # more detail for campos_detalle (sign, pairing, doubt)
    label_id: int | None = None  # the label segment whose value this is

    @property
    def confidence(self) -> float:
        return round(self.conf_ocr * self.conf_rule, 4)

    @property
    def box(self) -> list[int] | None:
        if not self.words:
            return None
        x1, y1, x2, y2 = _union(w.client_box for w in self.words)
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


