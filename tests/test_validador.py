"""validador_ocr: field validators (limits from config) and the `validacion` block."""
from datetime import date, timedelta

import pytest

import config
from validador_ocr import (
    FIELD_VALIDATORS,
    VALIDATORS,
    ValidadorOCR,
    reference_conflicts,
    validate_account,
    validate_amount,
    validate_bank,
    validate_bank_code,
    validate_cedula,
    validate_date,
    validate_phone,
    validate_reference,
    validate_rif,
    validate_time,
)

HOSTILE = [None, "", " ", 5, 3.5, ["04147650321"], {"a": 1}, b"04147650321", "x" * 100_000,
           "'; DROP TABLE x; --", "<img src=x onerror=alert(1)>", "٠٤١٢٥٣١٨٢٤٤", "\x00"]


@pytest.mark.parametrize("name", sorted(VALIDATORS))
@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_validators_never_raise(name, value):
    reason = ValidadorOCR().check(name, value)
    assert reason is None or isinstance(reason, str)


@pytest.mark.parametrize("name", ["phone", "cedula", "amount", "reference", "date", "time", "rif", "account",
                                  "bank", "bank_code"])
@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_structured_validators_reject_hostile_values(name, value):
    assert ValidadorOCR().check(name, value) is not None


def test_phone_prefix_and_length_from_config():
    assert validate_phone("04147650321") is None
    assert validate_phone("04227650321") is None
    assert "prefijo" in validate_phone("02127650321")
    assert "dígitos" in validate_phone("0414765032")
    custom = {"telefono_venezolano": {"prefixes": ["0414"], "length": 11}}
    assert validate_phone("04127650321", custom) is not None
    assert validate_phone("04147650322", custom) is None


def test_cedula_letters_and_length():
    assert validate_cedula("V-12345678") is None
    assert validate_cedula("E-84123456") is None
    assert validate_cedula("18234567") is None
    assert validate_cedula("X-12345678") is not None
    assert validate_cedula("V-123") is not None
    assert validate_cedula("V-12345678901") is not None
    assert validate_cedula("00000000") is not None


def test_amount_positive_and_sane():
    assert validate_amount("187.43") is None
    assert validate_amount("0.00") is not None
    assert validate_amount("2000000000.00") is not None
    assert validate_amount("-1.00") is not None
    assert validate_amount("1,00") is not None


@pytest.mark.parametrize("value, fragment", [
    ("04147650321", "teléfono"),
    ("01020123450123456789", "cuenta"),
    ("14052025", "fecha"),
    ("123", "dígitos"),
    ("0000", "ceros"),
    ("12a4", "numérica"),
])
def test_reference_that_is_something_else_is_rejected(value, fragment):
    assert fragment in validate_reference(value)


def test_reference_accepts_real_references():
    for value in ("004512398761", "51920384756", "583920174", "0001"):
        assert validate_reference(value) is None


def test_reference_conflicts_with_other_fields():
    fields = {"telefono": "04147650321", "cedula": "V-18234567", "cuenta_origen": "01020123450123456789"}
    assert reference_conflicts("04147650321", fields)
    assert reference_conflicts("18234567", fields)
    assert reference_conflicts("0123450123456789", fields)
    assert reference_conflicts("004512398761", fields) is None


def test_dates_real_and_not_in_future():
    today = date(2025, 7, 1)
    assert validate_date("2025-05-14", context={"today": today}) is None
    assert "futuro" in validate_date("2025-07-10", context={"today": today})
    assert validate_date("2025-07-02", context={"today": today}) is None  # one day of time-zone slack
    assert validate_date("2025-02-30", context={"today": today}) is not None
    assert validate_date((today - timedelta(days=4000)).isoformat(), context={"today": today}) is not None


def test_time_rif_account_bank():
    assert validate_time("23:59") is None and validate_time("24:00") is not None
    assert validate_rif("J-40123456-7") is None and validate_rif("J-4012345-7") is not None
    assert validate_account("0102****4821") is None
    assert validate_account("••••5810") is None
    assert validate_account("0414****321") is not None  # a masked phone
    assert validate_account("12345") is not None
    assert validate_bank("Banco Mercantil") is None
    assert validate_bank("Banco Inventado") is not None
    assert validate_bank_code("0105") is None
    assert validate_bank_code("0999") is not None


def test_every_field_has_validators():
    assert set(FIELD_VALIDATORS) == set(config.EXTRACTION_CONFIG["fields"])


def _empty_fields():
    return {name: None for name in config.EXTRACTION_CONFIG["fields"]}


def test_validacion_missing_required_field_requires_review():
    fields = _empty_fields()
    fields["monto"] = "187.43"
    result = ValidadorOCR({**config.EXTRACTION_CONFIG, "required_fields": ["monto", "referencia"]}).validar(
        fields, {"referencia": {"valor": None, "motivo": "la referencia es un número de teléfono"}})
    assert result["valido"] is False
    assert result["campos_faltantes"] == ["referencia"]
    assert result["requiere_revision"] is True
    assert any("teléfono" in w for w in result["advertencias"])


def test_validacion_low_confidence_requires_review_but_stays_valid():
    fields = _empty_fields()
    fields.update(monto="187.43", referencia="004512398761")
    detail = {"monto": {"confianza": 0.4}, "referencia": {"confianza": 0.95}}
    cfg = {**config.EXTRACTION_CONFIG, "required_fields": ["monto", "referencia"], "min_field_confidence": 0.6}
    result = ValidadorOCR(cfg).validar(fields, detail)
    assert result["valido"] is True
    assert result["requiere_revision"] is True
    assert result["campos_faltantes"] == []


def test_validacion_all_good():
    fields = _empty_fields()
    fields.update(monto="187.43", referencia="004512398761", telefono="04147650321")
    detail = {"monto": {"confianza": 0.9}, "referencia": {"confianza": 0.9}}
    result = ValidadorOCR({**config.EXTRACTION_CONFIG, "required_fields": ["monto", "referencia"]}).validar(fields, detail)
    assert result == {"valido": True, "campos_faltantes": [], "advertencias": [], "requiere_revision": False}


def test_validacion_invalid_present_value_is_flagged():
    fields = _empty_fields()
    fields.update(monto="187.43", referencia="004512398761", telefono="02127650321")
    result = ValidadorOCR({**config.EXTRACTION_CONFIG, "required_fields": ["monto"]}).validar(fields, {})
    assert result["valido"] is False and result["requiere_revision"] is True
