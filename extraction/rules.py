"""Extraction rules as data: load, validate, compile (with a time bound) and hold the active set.

`config/extraction_rules.json` describes, for each field, where its value lies (after which
labels, on the same line or below), what it looks like (a regular expression), how it is
normalized and validated, and how much it is trusted (priority, confidence). This module turns
that file into a `RuleSet`, refusing it with a `RulesError` that names the rule and key at fault:
unknown keys, wrong types, unknown fields/normalizers/validators, regexes that do not compile, and
regexes that do not finish on adversarial probe text within
`config.EXTRACTION_CONFIG['regex_time_bound_seconds']` (catastrophic backtracking such as
`(a+)+$`). Probing runs in a separate Python process that is killed on timeout, since a runaway
`re` match cannot be interrupted inside this process.

Document: {id, version, description?, settings? (see DEFAULT_SETTINGS), token_aliases?
("n°" -> "nro"), stopwords?, label_tail_pattern?, exclusion_labels? [{id, labels, motivo}],
boilerplate? (the apps' sentences and button captions: never a value, and a value's block ends
there), none_values? (printed values that mean "none": "No indicado"), doubt_null_fields? (fields
returned as None, the reading kept in campos_detalle, when a bare run of digits of theirs was read
unsure and nothing confirms it: see settings.doubt_char_confidence; otherwise kept, flagged),
second_reading_fields? (fields whose label standing without a value asks for a second, closer
reading of the page: extraction/second_reading.py), rules}.
Every rule has id, field, priority (0-1000, highest wins), confidence (0-1] and a strategy:
- "label" (default): labels (synonyms), positions ["right", "below"], wrap (a same-line value may
  continue on the next line), block_lines (lines of a value below), inline_without_colon,
  require_colon (the label counts only when printed with a colon: a row, not a title),
  pattern + group ("valor"), normalizer (+ normalizer_options), validators, exclude_patterns,
  match ("unique": several different values -> none).
- "unlabelled": pattern applied to whole segments no label claims; select "unique"|"largest",
  min_height_ratio.
- "header_bank": a bank named in the header (lines above the first label).
- "derived": source_field + via "account_bank" (the bank of an account's code prefix).
- "page_bank": the bank the page shows without naming it under a label (config/banks.json):
  signals ["app" (an app's name or signature: "Tpago"), "domain" (an online-banking domain in
  the address bar, within top_fraction of the image)].
- "keyword": keywords {value: [phrases]} found outside other fields' values (include_values_of
  lists fields whose values may be searched), scope "all"|"header".
Regexes are compiled with re.IGNORECASE.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from extraction.errors import RulesError
from extraction.label_words import label_tokens, made_of_label_words
from extraction.normalizers import NORMALIZERS, Token, compact, tokenize
from extraction.pattern_guard import check_patterns_time_bound
from extraction.rule_checks import _Checker, _compile
from extraction.phrases import PhraseIndex
from process_wide import process_wide

# ------------------------------------------------------------------------------------------------
# Schema
# ------------------------------------------------------------------------------------------------
STRATEGIES = ("label", "unlabelled", "header_bank", "page_bank", "derived", "keyword")
POSITIONS = ("right", "below")
# Normalizers that need the bank catalog live in the extractor.
EXTRA_NORMALIZERS = ("bank", "beneficiary")
DERIVATIONS = ("account_bank",)
# What a page shows of the bank that issued it (config/banks.json): its apps' names, and the
# online-banking domain in a browser's address bar.
PAGE_SIGNALS = ("app", "domain")

DEFAULT_SETTINGS: dict[str, float] = {
    "status_bar_fraction": 0.06,  # top share of the image holding the phone status bar
    "segment_gap_factor": 1.2,  # a horizontal gap wider than this x word height splits a line
    "below_max_gap_factor": 2.6,  # label -> value below: vertical gap at most this x label height
    "block_gap_factor": 1.0,  # lines of one value block: gap at most this x line height
    "wrap_gap_factor": 0.8,  # wrapped value continuation: gap at most this x line height
    "label_wrap_gap_factor": 0.3,  # second line of a wrapped label: gap at most this x its height
    "header_fraction": 0.4,  # without any label, the header is this top share of the image
    "min_word_confidence": 0.3,  # words below this are ignored by unlabelled rules
    "max_value_chars": 300,  # longest value text a pattern is applied to
    "max_words": 1500,  # words beyond this are ignored (hostile input)
    "conflict_margin": 0.15,  # same-priority candidates with different values need this lead
    # A value with a character read below this goes to a person (lectura_dudosa). The recognizer's
    # per-character probability when it gives one, else the least the word's mean allows.
    "doubt_char_confidence": 0.7,
}

_TOP_KEYS = {"id", "version", "description", "settings", "token_aliases", "stopwords",
             "label_tail_pattern", "exclusion_labels", "boilerplate", "none_values", "doubt_null_fields", "second_reading_fields", "rules", "_comment"}
_RULE_KEYS = {
    "id", "field", "strategy", "priority", "confidence", "description", "labels", "positions",
    "wrap", "block_lines", "inline_without_colon", "pattern", "group", "normalizer",
    "normalizer_options", "validators", "exclude_patterns", "match", "select", "skip_top_fraction",
    "min_height_ratio", "join_lines", "source_field", "via", "keywords", "scope", "include_values_of", "_comment",
    "signals", "top_fraction", "require_colon",
}
_EXCLUSION_KEYS = {"id", "labels", "motivo", "_comment"}


@dataclass(frozen=True)
class LabelRef:
    """What a label phrase announces: a rule's value, or an excluded value (e.g. "Comisión")."""
    owner: str  # rule id or exclusion id
    field: str | None  # None for exclusions
    excluded: bool


@dataclass
class Rule:
    id: str
    field: str
    strategy: str
    priority: int
    confidence: float
    description: str = ""
    labels: tuple[str, ...] = ()
    positions: tuple[str, ...] = ("right", "below")
    wrap: bool = False
    block_lines: int = 1
    inline_without_colon: bool = False
    pattern: re.Pattern | None = None
    group: str | int = 0
    normalizer: str | None = None
    normalizer_options: dict[str, Any] = field(default_factory=dict)
    validators: tuple[str, ...] = ()
    exclude_patterns: tuple[re.Pattern, ...] = ()
    match: str = "unique"
    select: str = "unique"
    skip_top_fraction: float | None = None
    min_height_ratio: float = 0.0
    join_lines: int = 1  # unlabelled: a value may run over this many consecutive lines
    source_field: str | None = None
    via: str | None = None
    keywords: tuple[tuple[str, tuple[str, ...]], ...] = ()
    scope: str = "all"
    include_values_of: tuple[str, ...] = ()
    require_colon: bool = False  # label: only a label printed with its colon ("Comprobante:")
    signals: tuple[str, ...] = ()  # page_bank: which of PAGE_SIGNALS to look for
    top_fraction: float = 0.15  # page_bank: where a browser's address bar may be


@dataclass
class RuleSet:
    id: str
    version: str
    rules: tuple[Rule, ...]
    settings: dict[str, float]
    token_aliases: dict[str, str]
    stopwords: frozenset[str]
    exclusions: dict[str, str]  # exclusion id -> reason
    label_index: PhraseIndex
    label_tail: re.Pattern
    document: dict[str, Any]
    source: str
    sha256: str
    loaded_at: str
    # The page's furniture: boilerplate sentences and button captions, as folded token tuples.
    boilerplate: tuple[tuple[str, ...], ...] = ()
    # Values that say there is no value ("No indicado"), compacted.
    none_values: frozenset[str] = frozenset()
    # Fields returned as None (the reading kept in campos_detalle) when read unsure and unconfirmed.
    doubt_null_fields: frozenset[str] = frozenset()
    # Fields whose label standing without a value asks for a second, closer reading of the page.
    second_reading_fields: frozenset[str] = frozenset()
    # Every word the labels are written with (stopwords and alias keys too): what a run of glued
    # label words is cut back into.
    label_words: frozenset[str] = frozenset()

    def label_tokens(self, text: str) -> list[Token]:
        """Tokens used to match labels (extraction/label_words.py)."""
        return label_tokens(text, self.token_aliases, self.stopwords, self.label_words)

    def made_of_label_words(self, text: str) -> bool:
        """Whether `text` is one of the labels' words or several of them run together."""
        return made_of_label_words(text, self.label_words)

    def rules_by_strategy(self, strategy: str) -> list[Rule]:
        return [rule for rule in self.rules if rule.strategy == strategy]

    def rule(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)


def _fields() -> list[str]:
    import config

    return list(config.EXTRACTION_CONFIG["fields"])


def _validator_names() -> set[str]:
    import validador_ocr

    return set(validador_ocr.VALIDATORS)


def _time_bound() -> float:
    import config

    return float(config.EXTRACTION_CONFIG.get("regex_time_bound_seconds", 0.25))


def _parse_rule(index: int, obj: Any, fields: list[str], validators: set[str]) -> Rule:
    rid = obj.get("id") if isinstance(obj, dict) else None
    where = f"rule '{rid}'" if isinstance(rid, str) and rid else f"rule #{index}"
    c = _Checker(where, obj, _RULE_KEYS)
    rule_id = c.get("id", str, check=lambda v: bool(re.fullmatch(r"[A-Za-z0-9_.\-]{1,80}", v)),
                    hint="must be 1-80 characters of letters, digits, '_', '.', '-'")
    field_name = c.get("field", str, check=lambda v: v in fields, hint=f"must be one of {', '.join(fields)}")
    strategy = c.get("strategy", str, "label", check=lambda v: v in STRATEGIES,
                     hint=f"must be one of {', '.join(STRATEGIES)}")
    rule = Rule(
        id=rule_id, field=field_name, strategy=strategy,
        priority=c.get("priority", int, check=lambda v: 0 <= v <= 1000, hint="must be an integer 0-1000"),
        confidence=float(c.get("confidence", (int, float), check=lambda v: 0 < v <= 1, hint="must be a number in (0, 1]")),
        description=c.get("description", str, ""),
    )
    normalizer = c.get("normalizer", str, None, check=lambda v: v in NORMALIZERS or v in EXTRA_NORMALIZERS,
                       hint=f"must be one of {', '.join(sorted([*NORMALIZERS, *EXTRA_NORMALIZERS]))}")
    rule.normalizer = normalizer
    rule.normalizer_options = c.get("normalizer_options", dict, {})
    for name in c.str_list("validators", []):
        if name not in validators:
            raise RulesError(f"{where}: key 'validators' names unknown validator '{name}' "
                             f"(known: {', '.join(sorted(validators))})")
    rule.validators = tuple(c.str_list("validators", []))
    rule.exclude_patterns = tuple(_compile(where, "exclude_patterns", p) for p in c.str_list("exclude_patterns", []))
    rule.skip_top_fraction = c.get("skip_top_fraction", (int, float), None, check=lambda v: 0 <= v < 1,
                                   hint="must be a number in [0, 1)")
    if strategy in ("label", "unlabelled"):
        rule.pattern = _compile(where, "pattern", c.get("pattern", str))
        group = c.get("group", (str, int), 0)
        if isinstance(group, int) and group > rule.pattern.groups:
            raise RulesError(f"{where}: key 'group' refers to group {group} but the pattern has {rule.pattern.groups}")
        if isinstance(group, str) and group not in rule.pattern.groupindex:
            raise RulesError(f"{where}: key 'group' names '{group}' which the pattern does not define")
        rule.group = group
        if normalizer is None:
            raise RulesError(f"{where}: missing required key 'normalizer'")
        rule.match = c.get("match", str, "unique", check=lambda v: v in ("first", "unique"),
                           hint="must be 'first' or 'unique'")
    if strategy == "label":
        rule.labels = tuple(c.str_list("labels", non_empty=True))
        positions = c.str_list("positions", list(POSITIONS), non_empty=True)
        if any(p not in POSITIONS for p in positions):
            raise RulesError(f"{where}: key 'positions' entries must be among {', '.join(POSITIONS)}")
        rule.positions = tuple(positions)
        rule.wrap = c.get("wrap", bool, False, hint="must be true or false")
        rule.block_lines = c.get("block_lines", int, 1, check=lambda v: 1 <= v <= 8, hint="must be an integer 1-8")
        rule.inline_without_colon = c.get("inline_without_colon", bool, False, hint="must be true or false")
        rule.require_colon = c.get("require_colon", bool, False, hint="must be true or false")
    if strategy == "unlabelled":
        rule.select = c.get("select", str, "unique", check=lambda v: v in ("unique", "largest"),
                            hint="must be 'unique' or 'largest'")
        rule.min_height_ratio = float(c.get("min_height_ratio", (int, float), 0.0, check=lambda v: 0 <= v <= 5,
                                            hint="must be a number 0-5"))
        rule.join_lines = c.get("join_lines", int, 1, check=lambda v: 1 <= v <= 3, hint="must be an integer 1-3")
    if strategy == "derived":
        rule.source_field = c.get("source_field", str, check=lambda v: v in fields, hint="must name a field")
        rule.via = c.get("via", str, check=lambda v: v in DERIVATIONS, hint=f"must be one of {', '.join(DERIVATIONS)}")
    if strategy == "keyword":
        keywords = c.get("keywords", dict, check=bool, hint="must be a non-empty object value -> [phrases]")
        parsed = []
        for value, phrases in keywords.items():
            if not isinstance(phrases, list) or not phrases or not all(isinstance(p, str) and p.strip() for p in phrases):
                raise RulesError(f"{where}: key 'keywords' entry '{value}' must be a non-empty list of strings")
            parsed.append((value, tuple(p for p in phrases)))
        rule.keywords = tuple(parsed)
        include = c.str_list("include_values_of", [])
        if any(name not in fields for name in include):
            raise RulesError(f"{where}: key 'include_values_of' must list field names")
        rule.include_values_of = tuple(include)
    if strategy == "page_bank":
        rule.signals = tuple(c.str_list("signals", list(PAGE_SIGNALS), non_empty=True))
        if any(s not in PAGE_SIGNALS for s in rule.signals):
            raise RulesError(f"{where}: key 'signals' entries must be among {', '.join(PAGE_SIGNALS)}")
        rule.top_fraction = float(c.get("top_fraction", (int, float), 0.15, check=lambda v: 0 < v <= 1,
                                        hint="must be a number in (0, 1]"))
    if strategy in ("keyword", "header_bank"):
        rule.scope = c.get("scope", str, "header" if strategy == "header_bank" else "all",
                           check=lambda v: v in ("all", "header"), hint="must be 'all' or 'header'")
    return rule


def parse_rules(document: Any, source: str = "<dict>", time_bound: float | None = None) -> RuleSet:
    """Validate and compile a rules document (already parsed JSON)."""
    fields, validators = _fields(), _validator_names()
    c = _Checker("rules document", document, _TOP_KEYS)
    doc_id = c.get("id", str, check=bool, hint="must be a non-empty string")
    version = c.get("version", str, check=bool, hint="must be a non-empty string")
    settings = dict(DEFAULT_SETTINGS)
    for key, value in c.get("settings", dict, {}).items():
        if key not in DEFAULT_SETTINGS:
            raise RulesError(f"rules document: key 'settings' has unknown setting '{key}'")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise RulesError(f"rules document: setting '{key}' must be a non-negative number")
        settings[key] = float(value)
    aliases = c.get("token_aliases", dict, {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in aliases.items()):
        raise RulesError("rules document: key 'token_aliases' must map strings to strings")
    stopwords = frozenset(c.str_list("stopwords", []))
    label_tail = _compile("rules document", "label_tail_pattern",
                          c.get("label_tail_pattern", str, r"^[\s:.\-()\[\]]*$"))

    rules: list[Rule] = []
    seen: set[str] = set()
    for index, obj in enumerate(c.get("rules", list, check=bool, hint="must be a non-empty list")):
        rule = _parse_rule(index, obj, fields, validators)
        if rule.id in seen:
            raise RulesError(f"rule '{rule.id}': duplicate id")
        seen.add(rule.id)
        rules.append(rule)
    derived_sources = {r.source_field for r in rules if r.strategy == "derived"}
    for rule in rules:
        if rule.strategy == "derived" and rule.source_field == rule.field:
            raise RulesError(f"rule '{rule.id}': key 'source_field' must differ from 'field'")
        if rule.strategy == "derived" and rule.field in derived_sources:
            raise RulesError(f"rule '{rule.id}': derived fields cannot feed other derived rules")

    exclusions: dict[str, str] = {}
    phrases: list[tuple[tuple[str, ...], object]] = []
    token_aliases = {str(k).lower(): str(v).lower() for k, v in aliases.items()}

    label_words: set[str] = set(stopwords) | set(token_aliases)

    def label_form(text: str) -> tuple[str, ...]:
        out = []
        for token in tokenize(text):
            if token.norm.isalpha():
                label_words.add(token.norm)
            norm = token_aliases.get(token.norm, token.norm)
            if norm not in stopwords:
                out.append(norm)
        return tuple(out)

    for index, obj in enumerate(c.get("exclusion_labels", list, [])):
        ex_id = obj.get("id") if isinstance(obj, dict) else None
        ec = _Checker(f"exclusion '{ex_id}'" if ex_id else f"exclusion #{index}", obj, _EXCLUSION_KEYS)
        ex_id = ec.get("id", str, check=bool, hint="must be a non-empty string")
        if ex_id in seen or ex_id in exclusions:
            raise RulesError(f"exclusion '{ex_id}': duplicate id")
        exclusions[ex_id] = ec.get("motivo", str, "valor excluido")
        for label in ec.str_list("labels", non_empty=True):
            form = label_form(label)
            if not form:
                raise RulesError(f"exclusion '{ex_id}': label {label!r} has no letters or digits")
            phrases.append((form, LabelRef(ex_id, None, True)))
    for rule in rules:
        for label in rule.labels:
            form = label_form(label)
            if not form:
                raise RulesError(f"rule '{rule.id}': label {label!r} has no letters or digits left "
                                 "once stopwords are removed")
            phrases.append((form, LabelRef(rule.id, rule.field, False)))

    patterns = [(f"rule '{r.id}'", "pattern", r.pattern.pattern) for r in rules if r.pattern is not None]
    patterns += [(f"rule '{r.id}'", "exclude_patterns", p.pattern) for r in rules for p in r.exclude_patterns]
    patterns.append(("rules document", "label_tail_pattern", label_tail.pattern))
    check_patterns_time_bound(patterns, _time_bound() if time_bound is None else time_bound,
                              int(settings["max_value_chars"]))

    boilerplate = []
    for phrase in c.str_list("boilerplate", []):
        tokens = tuple(t.norm for t in tokenize(phrase))
        if not tokens:
            raise RulesError(f"rules document: boilerplate phrase {phrase!r} has no letters or digits")
        boilerplate.append(tokens)
    none_values = frozenset(compact(v) for v in c.str_list("none_values", []))
    doubt_null_fields = frozenset(c.str_list("doubt_null_fields", []))
    if doubt_null_fields - set(fields):
        raise RulesError("rules document: key 'doubt_null_fields' must list field names")
    second_reading_fields = frozenset(c.str_list("second_reading_fields", []))
    if second_reading_fields - set(fields):
        raise RulesError("rules document: key 'second_reading_fields' must list field names")

    raw = json.dumps(document, sort_keys=True, ensure_ascii=False)
    return RuleSet(
        boilerplate=tuple(boilerplate), none_values=none_values, doubt_null_fields=doubt_null_fields,
        second_reading_fields=second_reading_fields,
        label_words=frozenset(w for w in label_words if len(w) >= 2), id=doc_id, version=version, rules=tuple(rules), settings=settings,
        token_aliases=token_aliases, stopwords=stopwords, exclusions=exclusions,
        label_index=PhraseIndex(phrases, fuzzy_from=5), label_tail=label_tail,
        document=copy.deepcopy(document), source=source,
        sha256=hashlib.sha256(raw.encode()).hexdigest(),
        loaded_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def load_rules(path: str | os.PathLike | None = None, time_bound: float | None = None) -> RuleSet:
    """Read, validate and compile the rules file (config.EXTRACTION_RULES_PATH by default)."""
    if path is None:
        import config

        path = config.EXTRACTION_RULES_PATH
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"Cannot read rules file {path}: {exc}") from exc
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise RulesError(f"Rules file {path} is not valid JSON: {exc}") from exc
    return parse_rules(document, source=str(path), time_bound=time_bound)


# ------------------------------------------------------------------------------------------------
# Registry of the active rules
# ------------------------------------------------------------------------------------------------
class RuleRegistry:
    """Holds the active RuleSet. `reload` swaps in a new file only when it is valid."""

    def __init__(self, path: str | os.PathLike | None = None, rules: RuleSet | None = None) -> None:
        self._lock = threading.Lock()
        self._path = path
        self._rules = rules
        self.last_error: str | None = None

    @property
    def path(self) -> str:
        if self._path is None:
            import config

            return config.EXTRACTION_RULES_PATH
        return str(self._path)

    @property
    def current(self) -> RuleSet:
        rules = self._rules
        if rules is None:
            with self._lock:
                if self._rules is None:
                    self._rules = load_rules(self.path)
                rules = self._rules
        return rules

    def reload(self, path: str | os.PathLike | None = None) -> RuleSet:
        """Load `path` (the registry's path by default) and make it active.

        On error the previous rules stay active, `last_error` records why, and RulesError is raised.
        """
        target = path if path is not None else self.path
        try:
            rules = load_rules(target)
        except RulesError as exc:
            self.last_error = str(exc)
            raise
        with self._lock:
            self._rules = rules
            if path is not None:
                self._path = path
            self.last_error = None
        return rules

    def as_json(self) -> dict[str, Any]:
        """The active rules for `GET /api/config/extraction_rules` (JSON-serialisable)."""
        rules = self.current
        # File names only: the server's directories are nobody's business.
        directory = os.path.dirname(rules.source)
        error = self.last_error.replace(directory + os.sep, "") if self.last_error and directory else self.last_error
        return {
            "id": rules.id,
            "version": rules.version,
            "source": os.path.basename(rules.source),
            "sha256": rules.sha256,
            "loaded_at": rules.loaded_at,
            "last_reload_error": error,
            "fields": sorted({r.field for r in rules.rules}),
            "rules": copy.deepcopy(rules.document),
        }


@process_wide
def get_registry() -> RuleRegistry:
    """The process-wide registry (rules loaded lazily from config.EXTRACTION_RULES_PATH)."""
    return RuleRegistry()
