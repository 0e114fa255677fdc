"""Values paired with their labels by type as well as by place.

Some pages print a table of "label | value" rows whose values do not sit beside their labels: a
web banking page leaves one value out and the rest move up a row ("Beneficiario" beside a phone,
"Teléfono" beside a date), or a value wraps onto a second row and the rest move down. Read by
place, such a table gives wrong values or none.

A table here is a run of tightly spaced lines, each a label alone at the left with at most one
value right of it, or a value alone at the right (the row a value moved to). Its labels and its
values are aligned in reading order (neither may cross the other) so as to maximise what the
labels' own rules accept: a typed value (a date, a phone, a reference, a bank) accepted by its
label's rule scores high, free text a little, a value beside its own label a little more. When
that alignment accepts more typed values than reading by place, the labels whose value changed
are read from their new value, and `campos_detalle` says so (`emparejamiento: por_tipo` and how
many rows the value sat away from its label).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from extraction.confusions import repair_numeric
from extraction.layout import Segment, _region, _segment_piece
from extraction.rules import Rule
from extraction.run import Extraction, LabelOcc

TEXT_NORMALIZERS = {"text", "beneficiary"}
TYPED_SCORE, TEXT_SCORE, PLACE_BONUS = 2.0, 0.5, 0.25
MIN_LABEL_ROWS = 3
# Free text has letters: a value of digits and punctuation (a date, a phone, a cédula) is not a concept.
_NOT_TEXT = re.compile(r"^\W*(?:[VEJGP]\s*-?\s*)?[\d\s.,/:\-+()]+\W*$", re.IGNORECASE)


@dataclass
class _Row:
    line: int
    label: LabelOcc | None
    value: Segment | None


def _primary_rules(run: Extraction, occs: list[LabelOcc]) -> list[Rule]:
    """The rules a label is first of all the label of: those of highest priority among its owners
    ("Beneficiario" is the name's label before it is a block holding a phone)."""
    rules = [run.rules.rule(o.ref.owner) for o in occs if not o.ref.excluded]
    rules = [r for r in rules if r is not None and r.strategy == "label"]
    if not rules:
        return []
    top = max(r.priority for r in rules)
    return [r for r in rules if r.priority == top]


def _accepts(run: Extraction, rule: Rule, text: str) -> bool:
    """Whether the rule reads exactly one valid value in `text` (without recording anything)."""
    assert rule.pattern is not None
    for attempt in (text, repair_numeric(text)):
        values = set()
        for count, match in enumerate(rule.pattern.finditer(attempt[:300])):
            if count >= 8:
                break
            raw = match.group(rule.group)
            if not raw or not raw.strip() or any(p.search(raw) for p in rule.exclude_patterns):
                continue
            value, reason = run.normalize(rule, raw)
            if value is not None and not run.validate(rule, value):
                values.add(value)
        if len(values) == 1:
            return True
        if attempt == text and rule.normalizer in TEXT_NORMALIZERS:
            break
    return False


def _score(run: Extraction, rules: list[Rule], value: Segment, cache: dict) -> float | None:
    key = (tuple(r.id for r in rules), value.id)
    if key not in cache:
        best = None
        for rule in rules:
            if rule.normalizer in TEXT_NORMALIZERS:
                if not _NOT_TEXT.match(value.text) and _accepts(run, rule, value.text):
                    best = max(best or 0.0, TEXT_SCORE)
            elif _accepts(run, rule, value.text):
                best = TYPED_SCORE
        cache[key] = best
    return cache[key]


def _tables(run: Extraction) -> list[list[_Row]]:
    """Runs of tightly spaced lines that are label rows (a whole-segment label at the left, at
    most one value right of it) or lone values right of the labels' column."""
    tables: list[list[_Row]] = []
    current: list[_Row] = []
    previous_bottom = None

    def close() -> None:
        nonlocal current
        while current and current[-1].label is None and current[-1].value is None:
            current.pop()
        if sum(1 for r in current if r.label is not None) >= MIN_LABEL_ROWS:
            tables.append(current)
        current = []

    for line in run.doc.lines:
        segments = [s for s in line.segments if not s.in_chrome]
        row = None
        if 1 <= len(segments) <= 2:
            first = segments[0]
            occs = [o for o in run.labels.get(first.id, []) if o.strong and o.inline is None]
            label_right = max((r.label.segment.box[2] for r in current if r.label), default=None)
            if occs and _primary_rules(run, occs) and (len(segments) == 1 or segments[1].id not in run.label_segments):
                row = _Row(line.index, occs[0], segments[1] if len(segments) == 2 else None)
            elif len(segments) == 1 and label_right is not None and first.box[0] > label_right \
                    and first.id not in run.label_segments:
                row = _Row(line.index, None, first)
        height = line.box[3] - line.box[1]
        if row is None or (previous_bottom is not None and line.box[1] - previous_bottom > 0.8 * height):
            close()
            if row is None:
                previous_bottom = None
                continue
        if row.label is None and not current:
            previous_bottom = None
            continue
        current.append(row)
        previous_bottom = line.box[3]
    close()
    return tables


def pair_by_type(run: Extraction) -> None:
    for table in _tables(run):
        _pair_table(run, table)


def _pair_table(run: Extraction, table: list[_Row]) -> None:
    labels = [(index, row) for index, row in enumerate(table) if row.label is not None]
    values = [(index, row) for index, row in enumerate(table) if row.value is not None]
    cache: dict = {}
    rules_of = {index: _primary_rules(run, run.labels[row.label.segment.id]) for index, row in labels}

    def pair_score(label_at: int, value_at: int) -> float | None:
        score = _score(run, rules_of[labels[label_at][0]], values[value_at][1].value, cache)
        if score is None:
            return None
        return score + (PLACE_BONUS if labels[label_at][0] == values[value_at][0] else 0.0)

    # Monotone alignment (neither labels nor values cross): best[i][j] over the first i labels
    # and j values.
    n, m = len(labels), len(values)
    best = [[0.0] * (m + 1) for _ in range(n + 1)]
    move = [[""] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        for j in range(m + 1):
            if i == 0 and j == 0:
                continue
            options = []
            if i > 0:
                options.append((best[i - 1][j], "skip_label"))
            if j > 0:
                options.append((best[i][j - 1], "skip_value"))
            if i > 0 and j > 0:
                score = pair_score(i - 1, j - 1)
                if score is not None:
                    options.append((best[i - 1][j - 1] + score, "pair"))
            best[i][j], move[i][j] = max(options, key=lambda o: o[0])
    assignment: dict[int, int] = {}
    i, j = n, m
    while i > 0 or j > 0:
        step = move[i][j]
        if step == "pair":
            assignment[labels[i - 1][0]] = values[j - 1][0]
            i, j = i - 1, j - 1
        elif step == "skip_label":
            i -= 1
        else:
            j -= 1
    typed_by_type = sum(1 for li, vi in assignment.items()
                        if _score(run, rules_of[li], table[vi].value, cache) == TYPED_SCORE)
    typed_by_place = sum(1 for li, row in labels if row.value is not None
                         and _score(run, rules_of[li], row.value, cache) == TYPED_SCORE)
    if typed_by_type <= typed_by_place:
        return  # reading by place is as good: nothing moves
    for label_index, row in labels:
        value_index = assignment.get(label_index)
        if value_index == label_index:
            continue
        label_id = row.label.segment.id
        owners = {o.ref.owner for o in run.labels[label_id]}
        for name in {r.field for r in rules_of[label_index]}:
            dropped = [c for c in run.candidates.get(name, []) if c.label_id == label_id and c.rule in owners]
            if dropped:
                run.candidates[name] = [c for c in run.candidates[name] if c not in dropped]
        if value_index is None:
            continue
        segment = table[value_index].value
        run.claims.setdefault(segment.id, set()).update(r.field for r in rules_of[label_index])
        for rule in rules_of[label_index]:
            region = _region([_segment_piece(segment)], "right")
            if run.apply_pattern(rule, region, 0.95):
                candidate = run.candidates[rule.field][-1]
                candidate.label_id = label_id
                candidate.notes = {**(candidate.notes or {}), "emparejamiento": "por_tipo",
                                   "filas_desde_etiqueta": table[value_index].line - row.line}
