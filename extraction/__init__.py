"""Field extraction from OCR results of Venezuelan payment receipts.

Public API:
    extract_fields(ocr_result, rules=None) -> {"extracted_fields", "campos_detalle", "validacion", ...}
    extract_fields_from_text(text, rules=None) -> same, from plain text (same engine)
    load_rules(path=None) -> RuleSet           (raises RulesError)
    get_registry() -> RuleRegistry             (.current, .reload(path), .as_json())
    get_catalog(path=None) -> BankCatalog      (the bank catalog of config/banks.json)

Modules: normalizers (canonical values), confusions (OCR lookalikes in numbers), phrases (noisy
phrase matching), banks (catalog), rules (rules file; errors, pattern_guard), layout (words, lines,
segments and value regions of an OCR result), run (one image's labels, claims and candidates),
strategies (unlabelled, header, keyword and derived rules), beneficiary (names out of mixed
blocks), extractor (the engine: strategies in order, resolution, cross-checks).
"""
from extraction.banks import Bank, BankCatalog, BankCatalogError, get_catalog
from extraction.extractor import extract_fields, extract_fields_from_text, ocr_result_from_text
from extraction.rules import RuleRegistry, RulesError, RuleSet, get_registry, load_rules, parse_rules

__all__ = [
    "Bank", "BankCatalog", "BankCatalogError", "get_catalog",
    "extract_fields", "extract_fields_from_text", "ocr_result_from_text",
    "RuleRegistry", "RulesError", "RuleSet", "get_registry", "load_rules", "parse_rules",
]
