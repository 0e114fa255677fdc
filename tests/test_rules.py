"""Rules as data: schema validation, the regex time bound, and the registry's safe reload."""
import copy
import json

import pytest

import config
from extraction import extract_fields_from_text
from extraction.rules import RuleRegistry, RulesError, get_registry, load_rules, parse_rules

RULES_PATH = config.EXTRACTION_RULES_PATH


@pytest.fixture(scope="module")
def document():
    with open(RULES_PATH, encoding="utf-8") as handle:
        return json.load(handle)


def mutated(document, change):
    doc = copy.deepcopy(document)
    change(doc)
    return doc


def rule(doc, rule_id):
    return next(r for r in doc["rules"] if r["id"] == rule_id)


def test_default_rules_load_and_cover_every_field(document):
    rules = load_rules(RULES_PATH)
    assert rules.id == document["id"] and rules.version == document["version"]
    assert {r.field for r in rules.rules} == set(config.EXTRACTION_CONFIG["fields"])
    assert all(r.pattern is not None for r in rules.rules if r.strategy in ("label", "unlabelled"))


@pytest.mark.parametrize("change, fragments", [
    (lambda d: d.pop("version"), ["'version'"]),
    (lambda d: d.update(colour="red"), ["unknown key", "'colour'"]),
    (lambda d: d.update(rules=[]), ["'rules'"]),
    (lambda d: rule(d, "monto.etiqueta").pop("priority"), ["monto.etiqueta", "'priority'"]),
    (lambda d: rule(d, "monto.etiqueta").update(priority="high"), ["monto.etiqueta", "'priority'"]),
    (lambda d: rule(d, "monto.etiqueta").update(confidence=1.5), ["monto.etiqueta", "'confidence'"]),
    (lambda d: rule(d, "monto.etiqueta").update(field="importe"), ["monto.etiqueta", "'field'"]),
    (lambda d: rule(d, "monto.etiqueta").update(normalizer="magic"), ["monto.etiqueta", "'normalizer'"]),
    (lambda d: rule(d, "monto.etiqueta").update(validators=["nope"]), ["monto.etiqueta", "'validators'", "nope"]),
    (lambda d: rule(d, "monto.etiqueta").update(labels=[]), ["monto.etiqueta", "'labels'"]),
    (lambda d: rule(d, "monto.etiqueta").update(labels=["de"]), ["monto.etiqueta", "stopwords"]),
    (lambda d: rule(d, "monto.etiqueta").update(positions=["left"]), ["monto.etiqueta", "'positions'"]),
    (lambda d: rule(d, "monto.etiqueta").update(pattern="(unclosed"), ["monto.etiqueta", "'pattern'", "regular expression"]),
    (lambda d: rule(d, "monto.etiqueta").update(group="nada"), ["monto.etiqueta", "'group'"]),
    (lambda d: rule(d, "monto.etiqueta").update(block_lines=50), ["monto.etiqueta", "'block_lines'"]),
    (lambda d: rule(d, "monto.etiqueta").update(wrap="yes"), ["monto.etiqueta", "'wrap'"]),
    (lambda d: rule(d, "monto.etiqueta").update(extra=1), ["monto.etiqueta", "'extra'"]),
    (lambda d: d["rules"].append(copy.deepcopy(rule(d, "monto.etiqueta"))), ["monto.etiqueta", "duplicate"]),
    (lambda d: rule(d, "banco_origen.cuenta").update(via="magic"), ["banco_origen.cuenta", "'via'"]),
    (lambda d: rule(d, "tipo.palabras_clave").update(keywords={"pago_movil": []}), ["tipo.palabras_clave", "'keywords'"]),
    (lambda d: d["exclusion_labels"].append({"id": "x", "labels": "Total"}), ["exclusion 'x'", "'labels'"]),
    (lambda d: d["settings"].update(unknown_setting=1), ["unknown_setting"]),
    (lambda d: d["rules"].__setitem__(0, "not an object"), ["rule #0", "object"]),
])
def test_schema_errors_name_the_rule_and_key(document, change, fragments):
    with pytest.raises(RulesError) as error:
        parse_rules(mutated(document, change))
    for fragment in fragments:
        assert fragment in str(error.value)


@pytest.mark.parametrize("pattern", [r"(?P<valor>(a+)+$)", r"(?P<valor>(\d+)+x)", r"(?P<valor>(a|a)*b)",
                                     r"(?P<valor>(\s*\d+\s*)+!)"])
def test_catastrophic_regex_is_refused_naming_the_rule(document, pattern):
    doc = mutated(document, lambda d: rule(d, "referencia.etiqueta").update(pattern=pattern))
    with pytest.raises(RulesError) as error:
        parse_rules(doc, time_bound=0.2)
    assert "referencia.etiqueta" in str(error.value)
    assert "time" in str(error.value) or "did not finish" in str(error.value)


def test_catastrophic_exclude_pattern_is_refused(document):
    doc = mutated(document, lambda d: rule(d, "concepto.etiqueta").update(exclude_patterns=["(x+x+)+y"]))
    with pytest.raises(RulesError, match="concepto.etiqueta"):
        parse_rules(doc, time_bound=0.2)


def test_load_rules_reports_unreadable_files(tmp_path):
    with pytest.raises(RulesError, match="Cannot read"):
        load_rules(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(RulesError, match="not valid JSON"):
        load_rules(bad)


def test_registry_reload_keeps_old_rules_when_new_file_is_invalid(document, tmp_path):
    good = tmp_path / "rules.json"
    good.write_text(json.dumps(document), encoding="utf-8")
    registry = RuleRegistry(good)
    before = registry.current
    assert before.version == document["version"]

    evil = tmp_path / "evil.json"
    evil.write_text(json.dumps(mutated(document, lambda d: rule(d, "monto.etiqueta").update(
        pattern=r"(?P<valor>(a+)+$)"))), encoding="utf-8")
    with pytest.raises(RulesError, match="monto.etiqueta"):
        registry.reload(evil)
    assert registry.current is before
    assert "monto.etiqueta" in registry.as_json()["last_reload_error"]

    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps(mutated(document, lambda d: d.update(version="9.9.9"))), encoding="utf-8")
    assert registry.reload(newer).version == "9.9.9"
    assert registry.current.version == "9.9.9"
    assert registry.as_json()["last_reload_error"] is None


def test_registry_as_json_is_serialisable_and_complete(document):
    payload = RuleRegistry(RULES_PATH).as_json()
    json.dumps(payload)
    assert payload["id"] == document["id"] and payload["version"] == document["version"]
    assert payload["rules"] == document
    assert len(payload["sha256"]) == 64
    assert set(payload["fields"]) == set(config.EXTRACTION_CONFIG["fields"])


def test_shared_registry_loads_the_configured_file():
    assert get_registry().current.source == str(RULES_PATH)


def test_rules_are_data_a_new_synonym_works_without_code(document):
    text = "Importe total transferido:   12,50"
    assert extract_fields_from_text(text)["extracted_fields"]["monto"] is None
    doc = mutated(document, lambda d: rule(d, "monto.etiqueta")["labels"].append("Importe total transferido"))
    rules = parse_rules(doc)
    assert extract_fields_from_text(text, rules)["extracted_fields"]["monto"] == "12.50"
