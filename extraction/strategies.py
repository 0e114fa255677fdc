"""The strategies of the rules file that are not a label's value: beneficiary names out of
multi-entity blocks, unlabelled values, the bank of the header, keywords and derived values.
"""
from __future__ import annotations

import statistics

from extraction.layout import Segment, _region, _segment_piece
from extraction.normalizers import PhraseIndex, compact, tokenize
from extraction.rules import Rule, RuleSet
from extraction.run import Candidate, Extraction, Rejection


# ------------------------------------------------------------------------------------------------
# Strategies
# ------------------------------------------------------------------------------------------------
def run_label_rules(run: Extraction) -> None:
    for rule in run.rules.rules_by_strategy("label"):
        for occ in run.by_owner.get(rule.id, ()):
            factor = max(0.5, 1.0 - 0.05 * occ.edits)
            for region in run.regions(occ, rule):
                region_factor = factor * (0.95 if region.wrapped else 1.0)
                if run.apply_pattern(rule, region, region_factor):
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


def run_unlabelled(run: Extraction, rule: Rule) -> None:
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


def run_header_bank(run: Extraction, rule: Rule) -> None:
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


