"""The extraction engine: OCR words and lines in, the 16 receipt fields out.

How a receipt is read:

1. Layout (extraction/layout.py). Words (with pixel boxes) are grouped into lines, and each line
   into *segments*: a label and its value on the same row ("Fecha:" ... "14/05/2025") are two
   segments; so are the columns of a multi-column receipt.
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

The phone status bar and an app's tab bar (chrome, marked by the layout) are ignored by every
unlabelled rule, so the status bar's clock is never the operation time.
"""
from __future__ import annotations

import re
import statistics
import time
from dataclasses import dataclass
from typing import Any

import config
from extraction.banks import BankCatalog, get_catalog
from extraction.layout import (Document, Region, Segment, Word, _region, _segment_piece, _union, _wide_gap_at,
                               below_lines, build_document, right_segments, wrap_lines)
from extraction.normalizers import NORMALIZERS, PhraseIndex, compact, normalize_text, tokenize
from extraction.rules import LabelRef, Rule, RuleSet, get_registry
from validador_ocr import ValidadorOCR, reference_conflicts


# ------------------------------------------------------------------------------------------------
# Labels
# ------------------------------------------------------------------------------------------------
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
