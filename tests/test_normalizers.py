"""Normalizers: every printed format of the contract, and hostile input."""
import pytest

from extraction.normalizers import (
    NORMALIZERS,
    compact,
    edit_distance,
    fold,
    normalize_account,
    normalize_amount,
    normalize_cedula,
    normalize_date,
    normalize_digits,
    normalize_phone,
    normalize_rif,
    normalize_text,
    normalize_time,
    tokenize,
)
from extraction.phrases import PhraseIndex

HOSTILE = [None, "", "   ", 12345, b"1.234,56", ["1"], "x" * 100_000, "1" * 100_000, "\x00\x01",
           "'; DROP TABLE pagos; --", "<script>alert(1)</script>", "${jndi:ldap://x}", "🙂🙂", "\u202e1234"]


@pytest.mark.parametrize("name", sorted(NORMALIZERS))
@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_normalizers_never_raise_and_reject_garbage(name, value):
    assert NORMALIZERS[name](value) in (None,) or isinstance(NORMALIZERS[name](value), str)
    if name != "text":
        assert NORMALIZERS[name](value) is None


@pytest.mark.parametrize("printed, expected", [
    ("1.234,56", "1234.56"),
    ("187,43", "187.43"),
    ("Bs. 187.43", "187.43"),
    ("3.415,00 Bs", "3415.00"),
    ("31.208,77 Bs", "31208.77"),
    ("Bs.230,69", "230.69"),
    ("187,43Bs", "187.43"),
    ("Bs 1 234,56", "1234.56"),
    ("1,234.56", "1234.56"),
    ("1.234.567,89", "1234567.89"),
    ("Bs.S 10,00", "10.00"),
    ("VES 10,5", "10.50"),
    ("1.234", "1234.00"),  # documented: three digits after a single separator = thousands
    ("1,234", "1234.00"),
    ("0,69", "0.69"),
    ("٣٤٥,٠٠", "345.00"),  # Arabic-Indic digits
    ("2.000, 66 BS.", "2000.66"),  # OCR space after the decimal comma
])
def test_amount_formats(printed, expected):
    assert normalize_amount(printed) == expected


@pytest.mark.parametrize("printed", ["1.23.45", "12,3456", "1.234,5,6", "-5,00", "abc", "1.2345,00", "1,234,56",
                                     "12.34.567", "Bs.", ",", "105 00"])
def test_amount_ambiguous_or_malformed_is_refused(printed):
    assert normalize_amount(printed) is None


def test_amount_require_decimals_refuses_integers_and_bare_thousands():
    assert normalize_amount("10500", require_decimals=True) is None
    assert normalize_amount("1.234", require_decimals=True) is None
    assert normalize_amount("1.234,00", require_decimals=True) == "1234.00"


@pytest.mark.parametrize("printed", ["0414-7650321", "+58 414 7650321", "0414 765 03 21", "04147650321",
                                     "(0414) 765.03.21", "58-414-7650321", "4147650321", "+58-414-765-03-21"])
def test_phone_formats(printed):
    assert normalize_phone(printed) == "04147650321"


@pytest.mark.parametrize("printed", ["0414-…321", "0414 - ••••321", "0414765032", "041476503215", "+1 412 5318244",
                                     "0414-765032a", "V-12345678"])
def test_phone_refused(printed):
    assert normalize_phone(printed) is None


@pytest.mark.parametrize("printed, expected", [
    ("V-12345678", "V-12345678"),
    ("V12345678", "V-12345678"),
    ("V - 12.345.678", "V-12345678"),
    ("v-18.234.567", "V-18234567"),
    ("E-84123456", "E-84123456"),
    ("12345678", "12345678"),
    ("12.345.678", "12345678"),
    ("V- 512345", "V-512345"),
])
def test_cedula_formats(printed, expected):
    assert normalize_cedula(printed) == expected


@pytest.mark.parametrize("printed", ["X-12345678", "V-", "V-12a45678", "12", "V-1.2.3"])
def test_cedula_refused(printed):
    assert normalize_cedula(printed) is None


@pytest.mark.parametrize("printed", ["J-40123456-7", "J401234567", "J-40.123.456-7", "j 40123456 7"])
def test_rif_formats(printed):
    assert normalize_rif(printed) == "J-40123456-7"


def test_rif_refused():
    assert normalize_rif("J-4012345-7") is None
    assert normalize_rif("X-40123456-7") is None


@pytest.mark.parametrize("printed, expected", [
    ("14/05/2025", "2025-05-14"),
    ("14/05/ 2025", "2025-05-14"),
    ("14/05/25", "2025-05-14"),
    ("14-05-2025", "2025-05-14"),
    ("14.05.2025", "2025-05-14"),
    ("14 may 2025", "2025-05-14"),
    ("14 May. 2025", "2025-05-14"),
    ("14 de mayo de 2025", "2025-05-14"),
    ("1 de septiembre de 2024", "2024-09-01"),
    ("2025-05-14", "2025-05-14"),
    ("5/7/2025", "2025-07-05"),
    ("7 de junlo de 2024", "2024-06-07"),  # one OCR error in the month name
])
def test_date_formats(printed, expected):
    assert normalize_date(printed) == expected


@pytest.mark.parametrize("printed", ["31/02/2025", "13/13/2025", "14/05", "14 foo 2025", "00/00/0000", "14/05-2025"])
def test_date_refused(printed):
    assert normalize_date(printed) is None


@pytest.mark.parametrize("printed, expected", [
    ("07:41:15", "07:41"),
    ("2:15 PM", "14:15"),
    ("02:32 PM", "14:32"),
    ("9:37 p. m.", "21:37"),
    ("9:37 p.m.", "21:37"),
    ("12:00 am", "00:00"),
    ("12:30 p. m.", "12:30"),
    ("18:05", "18:05"),
    ("14:05 h", "14:05"),
    ("07:41:19 pm", "19:41"),
])
def test_time_formats(printed, expected):
    assert normalize_time(printed) == expected


@pytest.mark.parametrize("printed", ["25:00", "12:60", "13:00 pm", "0:00 am", "1234", "12:3"])
def test_time_refused(printed):
    assert normalize_time(printed) is None


@pytest.mark.parametrize("printed, expected", [
    ("0102****4821", "0102****4821"),
    ("***3317", "***3317"),
    ("•••• 5810", "••••5810"),
    ("…5810", "…5810"),
    ("0105-0012-34-0123456789", "01050012340123456789"),
    ("0102xxxx4821", "0102xxxx4821"),
])
def test_account_formats(printed, expected):
    assert normalize_account(printed) == expected


@pytest.mark.parametrize("printed", ["1234", "0102****", "Cuenta", "12.345", "0105001234"])
def test_account_refused(printed):
    assert normalize_account(printed) is None


def test_digits_keep_leading_zeros_and_repair_lookalikes():
    assert normalize_digits("004512398761") == "004512398761"
    assert normalize_digits("0O4512398761") == "004512398761"
    assert normalize_digits("1.5") is None
    assert normalize_digits("12", min_length=4) is None


def test_text_trims_and_refuses_empty():
    assert normalize_text("  pago   de cuota  ") == "pago de cuota"
    assert normalize_text(" : - ") is None
    assert normalize_text("x" * 500) is None


def test_fold_tokenize_compact():
    assert fold("Operación") == "operacion"
    assert [t.norm for t in tokenize("PagomóvilBDV Personas")] == ["pagomovil", "bdv", "personas"]
    assert [t.norm for t in tokenize("Cta. CorrienteBNC: ***3317")] == ["cta", "corriente", "bnc", "3317"]
    assert compact("Nro. Ref") == "nroref"
    assert compact("١٢٣") == "123"


def test_edit_distance_bounded():
    assert edit_distance("operacion", "0peracion", 1) == 1
    assert edit_distance("fecha", "fecho", 1) == 1
    assert edit_distance("referencia", "xxx", 2) == 3


def test_phrase_index_tolerates_one_error_and_prefers_longest():
    index = PhraseIndex([(("fecha",), "F"), (("fecha", "hora"), "FH"), (("ref",), "R"), (("operacion",), "O")])
    assert index.match_at(["fecha", "hora"], 0)[0].payload == "FH"
    assert index.match_at(["0peracion"], 0)[0].payload == "O"
    assert index.match_at(["fech"], 0)[0].payload == "F"
    assert index.match_at(["rel"], 0) == []  # short words must match exactly


@pytest.mark.parametrize("text,name", [
    ("0414-7650321 PANADERÍA SOL V-18234567 - MERCANTIL", "PANADERÍA SOL"),
    ("Farmacia 24 Horas", "Farmacia 24 Horas"),  # its own digits: the name as printed
    # Regressions (generated Mercantil receipt 1003, thumbnail and photo): what is left of a
    # misread cédula or masked phone beside the name is not part of it.
    ("Zuleima diaz V-28.094 436", None),
    ("0412 ~.060 Zulema diaz", None),
])
def test_beneficiary_name_drops_to_none_when_stray_digits_remain(text, name):
    from extraction.banks import get_catalog
    from extraction.beneficiary import beneficiary_name

    assert beneficiary_name(text, get_catalog()) == name
