"""The strategies of the rules file that are not a label's value: beneficiary names out of
multi-entity blocks, unlabelled values, the bank of the header, keywords and derived values.
"""
from __future__ import annotations

import re
import statistics

from extraction.layout import Region, Segment, _region, _segment_piece
from extraction.normalizers import compact, tokenize
from extraction.phrases import PhraseIndex
from extraction.rules import Rule, RuleSet
from extraction.run import Candidate, Extraction, Rejection


# ------------------------------------------------------------------------------------------------
# Strategies
# ------------------------------------------------------------------------------------------------
def run_label_rules(run: Extraction) -> None:
    for rule in run.rules.rules_by_strategy("label"):
        for occ in run.by_owner.get(rule.id, ()):
            if rule.require_colon and ":" not in occ.segment.text:
                continue
            factor = max(0.5, 1.0 - 0.05 * occ.edits)
            for region in run.regions(occ, rule):
                region_factor = factor * (0.95 if region.wrapped else 1.0)
                if run.apply_pattern(rule, region, region_factor):
                    run.candidates[rule.field][-1].label_id = occ.segment.id
                    break


def below_gap_check(run: Extraction) -> None:
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


def _unlabelled_regions(run: Extraction, rule: Rule) -> list[tuple[float, Region]]:
    """(text height, region) where an unlabelled rule may find its value: single usable segments,
    or, for rules whose value may wrap (`join_lines`), whole lines of usable segments and runs of
    consecutive such lines (tried only when the shorter run holds no match)."""
    min_height = rule.min_height_ratio * run.doc.median_height

    def usable(segment: Segment) -> bool:
        if not _usable(run, segment) or segment.height < min_height:
            return False
        centre = (segment.box[1] + segment.box[3]) / 2
        return not (rule.skip_top_fraction and centre < rule.skip_top_fraction * run.doc.height)

    if rule.join_lines == 1:
        return [(s.height, _region([_segment_piece(s)], "unlabelled")) for s in run.doc.segments if usable(s)]
    lines = [line.segments if line.segments and all(usable(s) for s in line.segments) else None
             for line in run.doc.lines]
    out = []
    for start in range(len(lines)):
        for span in range(1, rule.join_lines + 1):
            run_lines = lines[start:start + span]
            if len(run_lines) < span or any(line is None for line in run_lines):
                break
            segments = [s for line in run_lines for s in line]  # type: ignore[union-attr]
            region = _region([_segment_piece(s) for s in segments], "unlabelled")
            out.append((min(s.height for s in segments), region))
            assert rule.pattern is not None
            if rule.pattern.search(region.text):
                break
    return out


def run_unlabelled(run: Extraction, rule: Rule) -> None:
    assert rule.pattern is not None
    found: list[tuple[float, Candidate]] = []
    for height, region in _unlabelled_regions(run, rule):
        before = len(run.candidates.get(rule.field, []))
        run.apply_pattern(rule, region, 1.0)
        cands = run.candidates.get(rule.field, [])
        if len(cands) > before:
            found.append((height, cands.pop()))
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


def _brand_segments(run: Extraction) -> list[Segment]:
    """Where an app prints its own name: the header, and the tab bar at the bottom of the screen."""
    header = _header_segments(run)
    footer = [s for s in run.doc.segments if s.box[1] >= 0.85 * run.doc.height and s not in header]
    return header + footer


def _is_brand(segment: Segment, match_start: int, match_end: int) -> bool:
    """A bank name that is the segment's point (a logo, a title, "PagomóvilBDV Personas"), not
    a mention inside a line of data ("E-82836752 - MERCANTIL") or the tail of one ("- MERCANTIL"),
    which names someone else's bank. A logo's icon read as a stray character does not count."""
    text = segment.text
    if len(re.findall(r"\d", text)) >= 3 or re.match(r"\s*[-–/|,]", text):
        return False
    words = [w for w in re.findall(r"[^\W\d_]+", text[:match_start] + " " + text[match_end:]) if len(w) > 1]
    inside = len(re.findall(r"[^\W\d_]", text[match_start:match_end]))
    return inside >= sum(len(w) for w in words)


def run_header_bank(run: Extraction, rule: Rule) -> None:
    """The app's own brand gives the origin bank; a bank named anywhere else never does."""
    segments = _brand_segments(run) if rule.scope == "header" else [s for s in run.doc.segments if _usable(run, s)]
    found: dict[str, Candidate] = {}
    for segment in segments:
        if segment.id in run.claims:
            continue
        confident = segment.confidence >= run.settings["min_word_confidence"]
        for match in run.catalog.find(segment.text):
            raw = segment.text[match.start:match.end]
            if not _is_brand(segment, match.start, match.end):
                continue
            if not confident and not _exact_brand(raw, match.bank.name, match.bank.aliases):
                continue
            words = [w for s, e, w in segment.spans if s < match.end and e > match.start]
            found.setdefault(match.bank.name, Candidate.build(rule, match.bank.name, raw, words, 1.0, segment.text))
    if len(found) == 1:
        run.add_candidate(next(iter(found.values())))
    elif len(found) > 1:
        run.reject(rule, ", ".join(sorted(found)), "varios bancos en la cabecera")


def run_page_bank(run: Extraction, rule: Rule) -> None:
    """The bank a page shows without naming it under a label: one of its apps' names or
    signatures anywhere outside another field's value ("Tu Tpago fue exitoso" -> Mercantil), or its
    online-banking domain in a browser's address bar at the top of the page (measured from its
    first words: a photographed screen sits lower in the frame). Banks merely named in the body
    never count (that is the payee's bank as often as not)."""
    allowed = {rule.field, None}
    found: dict[str, Candidate] = {}
    top = run.doc.y_at(rule.top_fraction)
    for segment in run.doc.segments:
        owners = run.claims.get(segment.id)
        if owners and not owners <= allowed:
            continue
        matches = []
        if "domain" in rule.signals and segment.box[1] < top:
            domain = run.catalog.from_domain(segment.text)
            if domain is not None:
                matches.append(domain)
        if "app" in rule.signals and not segment.in_chrome:
            matches.extend(run.catalog.find_apps(segment.text))
        for match in matches:
            words = [w for s, e, w in segment.spans if s < match.end and e > match.start]
            if not words or min(w.confidence for w in words) < run.settings["min_word_confidence"]:
                continue
            raw = segment.text[match.start:match.end]
            found.setdefault(match.bank.name, Candidate.build(rule, match.bank.name, raw, words, 1.0, segment.text))
    if len(found) == 1:
        run.add_candidate(next(iter(found.values())))
    elif len(found) > 1:
        run.reject(rule, ", ".join(sorted(found)), "la página muestra varios bancos")


def run_keyword(run: Extraction, rule: Rule, index: PhraseIndex) -> None:
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


def run_derived(run: Extraction, rule: Rule, chosen: dict[str, Candidate]) -> None:
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


def keyword_index(rules: RuleSet, rule: Rule) -> PhraseIndex:
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


