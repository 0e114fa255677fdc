"""What a correction teaches: the label that would have found the corrected value, and the layout
it was found on; and how a learned label is applied to a later receipt.

Learning (`learn_from_correction`): the corrected value is looked for among the page's words (every
run of words inside one segment, read with the field's own normalizers, must give the corrected
value). Around each place it is printed, the labels that could announce it are tried: the words
before it in its segment ("Valor transado: 12,50"), the segment to its left on the same line
(position "right"), the segment just above it (position "below"). A label is kept only when a
rule made of it (a copy of the field's shipped label rule with that one label and position)
finds exactly the corrected value on this page through the extraction engine itself: what is
proposed is what would have found it.

The layout's signature is the bank the shipped rules read on the page and the set of labels on
the page (`page_labels`): digit-free short segments that end in a colon, have a value to their
right on the same line or a number right under them, or are known labels (the shipped rules' or the tenant's learned ones).

Applying (`apply_learned`): only rules whose signature matches the page (a compatible bank,
unless the rule learns the bank itself; its label on the page; at least MIN_LAYOUT_SHARE of the
smaller label set, the page's or the signature's, in the other: a layout's optional rows come and
go, another layout shares few labels)
are added to the shipped rules, and only their own fields are taken from that extraction, by
this policy (documented in the README and tested):

- a field the shipped rules left empty is filled by the learned rule's value;
- a field the shipped rules read is replaced only when the shipped rule that read it is one a
  correction on this layout proved wrong (`reglas_corregidas`: the rule whose value staff
  corrected); a value read by any other shipped rule, which passed its validators, is kept.

Every other field stays exactly what the shipped rules gave, so a learned label cannot move a
value it does not own.
"""
from __future__ import annotations

import copy
import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Iterable

import config
from extraction.banks import get_catalog
from extraction.extractor import extract_fields
from extraction.layout import Document, Segment, build_document
from extraction.normalizers import tokenize
from extraction.rules import RuleSet, get_registry, parse_rules
from extraction.run import normalize_value
from validador_ocr import ValidadorOCR

POSITIONS = ("right", "below")
# A page matches a learned rule's layout when this share of its labels is in the rule's signature.
MIN_LAYOUT_SHARE = 0.6
LEARNED_PRIORITY = 1000  # its candidate is the one reported for its field in the trial extraction
LEARNED_ID_PREFIX = "aprendida."
MAX_LABEL_TOKENS = 6
MAX_LABEL_CHARS = 60
MAX_SPAN_WORDS = 8
MAX_PLACES = 6  # places the corrected value is printed at that are tried


@dataclass(frozen=True)
class LearnedRule:
    """A label learned for one field on one layout (the service stores it per tenant)."""

    id: int | str
    campo: str
    etiqueta: str  # as printed on the page it was learned from, colon and spaces trimmed
    posicion: str  # "right" (same line, or after the label in its segment) or "below"
    banco: str | None  # the bank the shipped rules read on that page (the layout signature)
    etiquetas_pagina: tuple[str, ...] = ()  # the page's labels, folded (the layout signature)
    reglas_corregidas: tuple[str, ...] = ()  # shipped rules a correction proved wrong on this layout

    @property
    def rule_id(self) -> str:
        return f"{LEARNED_ID_PREFIX}{self.id}"

    def key(self) -> str:
        """Identity of a proposal: the same label at the same place for the same field (a tenant's
        rules of one key differ only by bank, see `same_bank`)."""
        raw = json.dumps([self.campo, label_form(self.etiqueta), self.posicion])
        return hashlib.sha256(raw.encode()).hexdigest()


@dataclass
class Lesson:
    """What one correction teaches (None when the value is not among the page's words)."""

    campo: str
    valor: str
    etiqueta: str
    posicion: str
    banco: str | None
    etiquetas_pagina: tuple[str, ...]
    reglas_corregidas: tuple[str, ...] = field(default_factory=tuple)

    def as_rule(self, rule_id: int | str = "propuesta") -> LearnedRule:
        return LearnedRule(rule_id, self.campo, self.etiqueta, self.posicion, self.banco, self.etiquetas_pagina,
                           self.reglas_corregidas)


# ------------------------------------------------------------------------------------------------
# The page
# ------------------------------------------------------------------------------------------------
def ocr_of(document: dict[str, Any]) -> dict[str, Any] | None:
    """The OCR words and lines a stored result document keeps (None without word coordinates)."""
    words = document.get("palabras_detectadas") if isinstance(document, dict) else None
    if not isinstance(words, list) or not words or not all(isinstance(w, dict) and "coordenadas" in w for w in words):
        return None
    size = (document.get("processing_metadata") or {}).get("image_size") or document.get("image_size")
    return {"palabras_detectadas": words, "lineas": document.get("lineas") or [], "image_size": size}


def label_form(text: str) -> str:
    """A label's folded form: its letter and digit tokens, accents and case gone."""
    return " ".join(token.norm for token in tokenize(text or ""))


def _clean_label(text: str) -> str:
    return text.strip().rstrip(":.-–").strip()


def _looks_like_label(text: str) -> bool:
    cleaned = _clean_label(text)
    tokens = tokenize(cleaned)
    letters = sum(ch.isalpha() for ch in cleaned)
    return (0 < len(tokens) <= MAX_LABEL_TOKENS and len(cleaned) <= MAX_LABEL_CHARS and letters >= 2
            and not any(ch.isdigit() for ch in cleaned))


def _right_neighbour(doc: Document, segment: Segment) -> Segment | None:
    right = [s for s in doc.lines[segment.line].segments if s.box[0] >= segment.box[2]]
    return min(right, key=lambda s: s.box[0]) if right else None


def _left_neighbour(doc: Document, segment: Segment) -> Segment | None:
    left = [s for s in doc.lines[segment.line].segments if s.box[2] <= segment.box[0]]
    return max(left, key=lambda s: s.box[2]) if left else None


def _above(doc: Document, segment: Segment) -> Segment | None:
    """The nearest segment on an earlier line that overlaps this one horizontally."""
    for index in range(segment.line - 1, max(-1, segment.line - 3), -1):
        overlapping = [s for s in doc.lines[index].segments
                       if min(s.box[2], segment.box[2]) - max(s.box[0], segment.box[0]) > 0]
        if overlapping:
            return min(overlapping, key=lambda s: abs(s.box[0] - segment.box[0]))
    return None


def page_labels(doc: Document, known: Iterable[str] = ()) -> set[str]:
    """The folded labels of a page (see the module docstring)."""
    known_forms = set(known)
    found: set[str] = set()
    for segment in doc.segments:
        if segment.in_chrome:
            continue
        text = segment.text
        head, colon, _rest = text.partition(":")
        if colon and _looks_like_label(head):
            found.add(label_form(head))
            continue
        if not _looks_like_label(text):
            continue
        form = label_form(text)
        if (form in known_forms or text.rstrip().endswith(":") or _right_neighbour(doc, segment) is not None
                or _number_below(doc, segment)):
            found.add(form)
    return found


def _number_below(doc: Document, segment: Segment) -> bool:
    """A stacked row's label: the segment right under it (same column) holds a number."""
    if segment.line + 1 >= len(doc.lines):
        return False
    below = [s for s in doc.lines[segment.line + 1].segments
             if min(s.box[2], segment.box[2]) - max(s.box[0], segment.box[0]) > 0]
    return bool(below) and any(ch.isdigit() for ch in below[0].text)


def known_label_forms(rules: RuleSet, learned: Iterable[LearnedRule] = ()) -> set[str]:
    forms = {label_form(label) for rule in rules.rules for label in rule.labels}
    return forms | {label_form(rule.etiqueta) for rule in learned}


# ------------------------------------------------------------------------------------------------
# Rules made of learned labels
# ------------------------------------------------------------------------------------------------
def template_rule(rules: RuleSet, campo: str) -> dict[str, Any] | None:
    """The field's highest-priority shipped label rule, as written in the rules document."""
    own = sorted((r for r in rules.rules if r.field == campo and r.strategy == "label"), key=lambda r: -r.priority)
    if not own:
        return None
    for entry in rules.document.get("rules", []):
        if entry.get("id") == own[0].id:
            return entry
    return None


def rule_entry(rules: RuleSet, learned: LearnedRule) -> dict[str, Any] | None:
    template = template_rule(rules, learned.campo)
    if template is None:
        return None
    entry = {k: copy.deepcopy(v) for k, v in template.items() if k not in ("_comment", "description")}
    # One cell, as it was learned: the value was found inside one segment (a shipped rule's block of
    # lines would run on into the next row when that row's label is one the rules do not know).
    entry.update(id=learned.rule_id, labels=[learned.etiqueta], positions=[learned.posicion],
                 priority=LEARNED_PRIORITY, description=f"aprendida de una corrección: {learned.etiqueta}",
                 block_lines=1, wrap=False)
    return entry


_augmented: OrderedDict[tuple, RuleSet] = OrderedDict()
_augmented_lock = threading.Lock()
_AUGMENTED_CACHE = 64


def with_learned(rules: RuleSet, learned: Iterable[LearnedRule]) -> RuleSet:
    """The shipped rules plus learned ones (cached: a tenant's set is reused receipt after receipt)."""
    entries = [e for e in (rule_entry(rules, r) for r in learned) if e is not None]
    key = (rules.sha256, json.dumps(entries, sort_keys=True, ensure_ascii=False))
    with _augmented_lock:
        found = _augmented.get(key)
        if found is not None:
            _augmented.move_to_end(key)
            return found
    document = copy.deepcopy(rules.document)
    document["rules"] = [*document["rules"], *entries]
    # The learned rules' patterns are the shipped ones, already proven within the time bound.
    augmented = parse_rules(document, source=rules.source)
    with _augmented_lock:
        _augmented[key] = augmented
        while len(_augmented) > _AUGMENTED_CACHE:
            _augmented.popitem(last=False)
    return augmented


# ------------------------------------------------------------------------------------------------
# Learning
# ------------------------------------------------------------------------------------------------
def _reads_as(rules: RuleSet, campo: str, text: str, value: str) -> bool:
    catalog = get_catalog()
    for rule in rules.rules:
        if rule.field == campo and rule.normalizer:
            got, _reason = normalize_value(rule, text, catalog)
            if got is not None and got.casefold() == value.casefold():
                return True
    return False


def _taken_boxes(document: dict[str, Any], campo: str) -> list[tuple[float, ...]]:
    """Where the other fields' values were read: a value of another field is not this one's."""
    boxes = []
    for name, info in (document.get("campos_detalle") or {}).items():
        box = info.get("coordenadas") if isinstance(info, dict) and name != campo else None
        if isinstance(box, (list, tuple)) and len(box) == 4 and info.get("valor") is not None:
            boxes.append(tuple(float(v) for v in box))
    return boxes


def _overlaps(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def _places(doc: Document, rules: RuleSet, campo: str, value: str,
            taken: list[tuple[float, ...]] = ()) -> list[tuple[Segment, int]]:
    """(segment, index of the value's first word) of each run of words that reads as `value`."""
    places: list[tuple[Segment, int]] = []
    for segment in doc.segments:
        if segment.in_chrome or any(_overlaps(w.client_box, box) for w in segment.words for box in taken):
            continue
        words = segment.words
        for start in range(len(words)):
            for end in range(len(words), start, -1):
                if end - start > MAX_SPAN_WORDS:
                    continue
                text = " ".join(w.text for w in words[start:end])
                if _reads_as(rules, campo, text, value):
                    places.append((segment, start))
                    break
            else:
                continue
            break
        if len(places) >= MAX_PLACES:
            break
    return places


def _label_candidates(doc: Document, segment: Segment, start: int) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if start > 0:
        out.append((" ".join(w.text for w in segment.words[:start]), "right"))
    left = _left_neighbour(doc, segment)
    if left is not None:
        out.append((left.text, "right"))
    above = _above(doc, segment)
    # Below only in stacked rows (one column or several side by side): a value with a label at its
    # left, or a label with a value at its right, is a row of its own ("Destino:  0412..." above
    # "Banco:  0102 - BANCO..." is not the bank's label).
    beside = None if above is None else _right_neighbour(doc, above)
    if (above is not None and (left is None or not _looks_like_label(left.text))
            and (beside is None or _looks_like_label(beside.text))):
        out.append((above.text, "below"))
    return [(_clean_label(text), pos) for text, pos in out if _looks_like_label(text)]


def finds(rules: RuleSet, ocr: dict[str, Any], learned: LearnedRule) -> str | None:
    """The value `learned` reads on this page (None when its own rule is not what gave the field)."""
    result = extract_fields(ocr, with_learned(rules, [learned]))
    detail = result["campos_detalle"].get(learned.campo) or {}
    if detail.get("regla") != learned.rule_id:
        return None
    return result["extracted_fields"].get(learned.campo)


def learn_from_correction(document: dict[str, Any], campo: str, valor: str | None,
                          rules: RuleSet | None = None, learned: Iterable[LearnedRule] = ()) -> Lesson | None:
    """What would have found `valor` for `campo` on the page of this result document, or None.
    `learned`: the tenant's rules so far, whose labels count among the page's."""
    rules = rules or get_registry().current
    ocr = ocr_of(document)
    if ocr is None or not valor or template_rule(rules, campo) is None:
        return None
    shipped = extract_fields(ocr, rules)
    found = shipped["extracted_fields"].get(campo)
    if found == valor:
        return None  # the shipped rules read it on this page: nothing to learn
    wrong_rule = (shipped["campos_detalle"].get(campo) or {}).get("regla") if found is not None else None
    doc = build_document(ocr, rules.settings)
    bank = shipped["extracted_fields"].get("banco_origen")
    tried: set[tuple[str, str]] = set()
    for segment, start in _places(doc, rules, campo, valor, _taken_boxes(document, campo)):
        for label, position in _label_candidates(doc, segment, start):
            if (label_form(label), position) in tried or not label_form(label):
                continue
            tried.add((label_form(label), position))
            candidate = LearnedRule("propuesta", campo, label, position, bank)
            if finds(rules, ocr, candidate) == valor:
                labels = page_labels(doc, known_label_forms(rules, learned)) | {label_form(label)}
                return Lesson(campo, valor, label, position, bank, tuple(sorted(labels)),
                              (wrong_rule,) if wrong_rule else ())
    return None


# ------------------------------------------------------------------------------------------------
# Applying
# ------------------------------------------------------------------------------------------------
def same_bank(a: str | None, b: str | None) -> bool:
    """Banks of one layout: equal, or one of them not read (a header brand is not always legible)."""
    return a is None or b is None or a == b


def matches_layout(rule: LearnedRule, bank: str | None, labels: set[str]) -> bool:
    if rule.campo != "banco_origen" and not same_bank(rule.banco, bank):
        return False
    if label_form(rule.etiqueta) not in labels:
        return False
    signature = set(rule.etiquetas_pagina) | {label_form(rule.etiqueta)}
    return len(labels & signature) / min(len(labels), len(signature)) >= MIN_LAYOUT_SHARE


def apply_learned(document: dict[str, Any], learned: list[LearnedRule],
                  rules: RuleSet | None = None) -> dict[str, Any] | None:
    """The document with the fields the matching learned rules read (see the policy above), or
    None when none of them changes anything."""
    if not learned:
        return None
    rules = rules or get_registry().current
    ocr = ocr_of(document)
    fields = document.get("extracted_fields") if isinstance(document, dict) else None
    if ocr is None or not isinstance(fields, dict):
        return None
    doc = build_document(ocr, rules.settings)
    labels = page_labels(doc, known_label_forms(rules, learned))
    bank = fields.get("banco_origen")
    matching = [r for r in learned if matches_layout(r, bank, labels) and template_rule(rules, r.campo)]
    if not matching:
        return None
    trial = extract_fields(ocr, with_learned(rules, matching))
    detail = document.get("campos_detalle") or {}
    new_fields, new_detail, applied = dict(fields), copy.deepcopy(detail), []
    for rule in matching:
        got = trial["campos_detalle"].get(rule.campo) or {}
        value = trial["extracted_fields"].get(rule.campo)
        if got.get("regla") != rule.rule_id or value is None:
            continue
        old = fields.get(rule.campo)
        old_rule = (detail.get(rule.campo) or {}).get("regla")
        if old == value or (old is not None and old_rule not in rule.reglas_corregidas):
            continue  # a value the shipped rules read and validated stays
        entry = dict(got)
        entry["regla_aprendida"] = {"id": rule.id, "etiqueta": rule.etiqueta, "posicion": rule.posicion,
                                    "reemplaza": None if old is None else {"valor": old, "regla": old_rule}}
        new_fields[rule.campo] = value
        new_detail[rule.campo] = entry
        applied.append(rule.id)
    filled = {r.campo for r in matching if r.id in applied}
    for rule in rules.rules_by_strategy("derived"):
        # A shipped derivation of a learned value ("0102****8063" -> its bank) fills an empty field too.
        got = trial["campos_detalle"].get(rule.field) or {}
        value = trial["extracted_fields"].get(rule.field)
        if (rule.source_field in filled and new_fields.get(rule.field) is None and value is not None
                and got.get("regla") == rule.id):
            new_fields[rule.field] = value
            new_detail[rule.field] = {**got, "regla_aprendida": {"derivada_de": rule.source_field}}
    if not applied:
        return None
    out = dict(document)
    out["extracted_fields"] = new_fields
    out["campos_detalle"] = new_detail
    out["validacion"] = ValidadorOCR(config.EXTRACTION_CONFIG, get_catalog()).validar(
        {name: new_fields.get(name) for name in config.FIELDS}, new_detail)
    meta = dict(out.get("metadatos_extraccion") or {})
    meta["reglas_aprendidas"] = applied
    out["metadatos_extraccion"] = meta
    return out


def merged(rule: LearnedRule, lesson: Lesson) -> LearnedRule:
    """A stored rule taught again by another correction on its layout: the page's labels and the
    shipped rules proven wrong are added to what it knew (the layout's optional rows vary)."""
    labels = tuple(sorted(set(rule.etiquetas_pagina) | set(lesson.etiquetas_pagina)))
    wrong = tuple(sorted(set(rule.reglas_corregidas) | set(lesson.reglas_corregidas)))
    return LearnedRule(rule.id, rule.campo, rule.etiqueta, rule.posicion, rule.banco or lesson.banco, labels, wrong)


def same_rule(rule: LearnedRule, lesson: Lesson) -> bool:
    """Whether a correction teaches again what `rule` knows (same key, compatible bank)."""
    return rule.key() == lesson.as_rule().key() and same_bank(rule.banco, lesson.banco)
