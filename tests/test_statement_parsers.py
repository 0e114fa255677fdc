"""Statement readers: every format on its generated fixture, malformed files and rows, overlap."""
from __future__ import annotations

import dataclasses
import io
import json
import re
import shutil
from decimal import Decimal

import pytest

from reconciliation import FormatNotDetected, StatementError, parse_statement
from reconciliation.errors import FormatConfigError
from reconciliation.spec import DEFAULT_DIR, load_specs
from reconciliation.table_format import TableLayout
from reconciliation.values import parse_amount, parse_date, parse_reference
from tools.statement_generator import generate_statement, money, render

SPECS = load_specs()
FORMATS = sorted(SPECS)
# Formats whose export carries the balance after each line.
WITH_BALANCE = {f for f, s in SPECS.items()
                if s.reader in ("bdv_fixed", "mercantil_mt940") or (s.table and "balance" in s.table["columns"])}
WITH_TIME = {"bdv_online_xlsx"}


@pytest.fixture(scope="module", params=FORMATS)
def generated(request):
    return generate_statement(request.param, seed=3, receipts=60)


def expected_description(format_id: str, line) -> str:
    table = SPECS[format_id].table
    if table and table.get("description_extra"):  # a second description column, appended
        return " / ".join(p for p in (line.description, line.kind) if p)
    return line.description


def test_every_field_of_every_row(generated):
    statement = parse_statement(generated.data, generated.format_id)
    assert statement.format_id == generated.format_id
    assert statement.bank_code == SPECS[generated.format_id].bank_code
    assert len(statement.movements) == len(generated.lines)
    by_line = {m.line: m for m in statement.movements}
    for line in generated.lines:
        movement = by_line[line.line]
        assert movement.date == line.date
        assert movement.time == (line.time if generated.format_id in WITH_TIME else None)
        assert movement.reference == line.reference
        if generated.format_id == "mercantil_mt940":  # the :86: subfields after the text
            assert movement.description == f"{line.description} TERMINAL 0033"
        else:
            assert movement.description == expected_description(generated.format_id, line)
        assert movement.direction == ("credito" if line.amount > 0 else "debito")
        assert movement.amount == abs(line.amount) and isinstance(movement.amount, Decimal)
        assert movement.balance == (line.balance if generated.format_id in WITH_BALANCE else None)
        assert (movement.payer_phone, movement.payer_cedula, movement.payer_bank_code) == (
            line.payer_phone, line.payer_cedula, line.payer_bank_code)
        commission = bool(re.match(r"(COM|COMIS)", expected_description(generated.format_id, line), re.I))
        assert movement.is_commission == commission, line
        assert re.fullmatch(r"[0-9a-f]{32}", movement.fingerprint)
    assert len({m.fingerprint for m in statement.movements}) == len(statement.movements)


def test_auto_detection_picks_exactly_this_format(generated):
    assert parse_statement(generated.data).format_id == generated.format_id


def test_same_seed_same_statement(generated):
    again = generate_statement(generated.format_id, seed=3, receipts=60)
    assert [dataclasses.astuple(x) for x in again.lines] == [dataclasses.astuple(x) for x in generated.lines]
    assert again.receipts == generated.receipts
    first, second = (parse_statement(g.data).movements for g in (generated, again))
    assert [m.fingerprint for m in first] == [m.fingerprint for m in second]


def test_overlapping_reupload_gives_the_same_fingerprints(generated):
    spec = SPECS[generated.format_id]
    lines = generated.lines
    cut_a, cut_b = len(lines) * 2 // 3, len(lines) // 3
    copy = lambda chunk: [dataclasses.replace(x) for x in chunk]  # noqa: E731 (render sets .line)
    earlier = parse_statement(render(spec, copy(lines[:cut_a])), spec.id)
    later = parse_statement(render(spec, copy(lines[cut_b:])), spec.id)
    full = parse_statement(generated.data, spec.id)
    first = [m.fingerprint for m in earlier.movements]
    second = [m.fingerprint for m in later.movements]
    if spec.row_order == "newest_first":
        first, second = first[::-1], second[::-1]
    overlap = cut_a - cut_b
    assert first[cut_b:] == second[:overlap]
    assert set(first) | set(second) == {m.fingerprint for m in full.movements}


# -- malformed rows and files ------------------------------------------------------------------
def _credit(generated):
    return next(x for x in generated.lines[5:] if x.amount > 0)


def _replace_on_line(data: bytes, number: int, old: str, new: str, encoding: str = "utf-8") -> bytes:
    lines = data.decode(encoding).split("\n")
    assert old in lines[number - 1], (old, lines[number - 1])
    lines[number - 1] = lines[number - 1].replace(old, new, 1)
    return "\n".join(lines).encode(encoding)


def _xlsx_set(data: bytes, row: int, header: str, value) -> bytes:
    from openpyxl import load_workbook

    workbook = load_workbook(io.BytesIO(data))
    sheet = workbook.active
    column = [c.value for c in sheet[1]].index(header) + 1
    sheet.cell(row=row, column=column, value=value)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def malformed_row(generated) -> tuple[bytes, int]:
    """The fixture with the amount of one credit replaced by text that is not a number."""
    spec, line = SPECS[generated.format_id], _credit(generated)
    if spec.reader == "bdv_fixed":
        field = f"{int(line.amount * 100):018d}"
        return _replace_on_line(generated.data, line.line, field, field[:-3] + "1O0", "ascii"), line.line
    if spec.reader == "banesco_qif":
        return _replace_on_line(generated.data, line.line + 1, money(line.amount), "1.2O3,45", "cp1252"), line.line + 1
    if spec.reader == "mercantil_mt940":
        text = f"{line.amount:.2f}".replace(".", ",")
        return _replace_on_line(generated.data, line.line, "C" + text, "C" + text.replace(",", ";"), "ascii"), line.line
    if spec.reader == "provincial_netcash":
        field = f"{int(line.amount * 100):014d}"
        return _replace_on_line(generated.data, line.line, field, field[:-2] + "AB", "ascii"), line.line
    table = spec.table
    if table["containers"][0] == "spreadsheet":
        return _xlsx_set(generated.data, line.line, table["columns"]["credit"][0], "doce bolívares"), line.line
    printed = money(line.amount, table["decimal_separator"], spec.id != "banplus_tsv")
    return _replace_on_line(generated.data, line.line, printed, printed + "x"), line.line


def test_malformed_row_names_the_line(generated):
    data, number = malformed_row(generated)
    with pytest.raises(StatementError) as error:
        parse_statement(data, generated.format_id)
    assert error.value.line == number
    assert f"línea {number}" in str(error.value)


def malformed_file(generated) -> bytes:
    """The fixture cut short or stripped of what identifies its layout."""
    spec, data = SPECS[generated.format_id], generated.data
    if spec.reader == "bdv_fixed":
        return data.replace(b"\r\n", b"\r\n ", 1)  # the second line no longer 131 characters
    if spec.reader in ("banesco_qif", "provincial_netcash"):
        return data[: len(data) * 2 // 3]  # truncated: no closing ^ / no 33 and 88 records
    if spec.reader == "mercantil_mt940":
        return data.replace(b":61:", b":61:99", 1)
    if spec.table["containers"][0] == "spreadsheet":
        return data[: len(data) // 2]  # a zip cut in half
    header_line = data.split(b"\n")[0 if spec.table["containers"][0] == "delimited" else 2]
    return data.replace(header_line, re.sub(rb"Fecha", b"Dia", header_line), 1)


def test_malformed_file_is_refused_whole(generated):
    with pytest.raises(StatementError) as error:
        parse_statement(malformed_file(generated), generated.format_id)
    assert error.value.format_id in (generated.format_id, None)
    assert str(error.value)


def test_truncated_bnc_reference_is_refused_with_its_line():
    generated = generate_statement("bnc_tsv", seed=1, receipts=30)
    line = _credit(generated)
    data = _replace_on_line(generated.data, line.line, f"\t{line.reference}\t", "\t3.46E+10\t")
    with pytest.raises(StatementError, match=rf"línea {line.line}: referencia alterada.*3\.46E\+10"):
        parse_statement(data)


def test_dates_out_of_order_are_caught():
    """A dd/mm export mislabelled as mm/dd (or edited) runs backwards: an error, not wrong dates."""
    generated = generate_statement("banplus_tsv", seed=2, receipts=30)
    late = generated.lines[-1]
    early = next(x for x in generated.lines if x.date.day != late.date.day)
    data = _replace_on_line(generated.data, early.line, early.date.strftime("%d/%m/%Y"), late.date.strftime("%d/%m/%Y"))
    with pytest.raises(StatementError, match="rompe el orden"):
        parse_statement(data, "banplus_tsv")


def test_provincial_sign_is_proved_by_the_balance():
    generated = generate_statement("provincial_online", seed=2, receipts=30)
    line = _credit(generated)
    printed = money(line.amount)
    data = _replace_on_line(generated.data, line.line, f"<td>{printed}</td>", f"<td>-{printed}</td>")
    with pytest.raises(StatementError, match=rf"línea {line.line}: el saldo"):
        parse_statement(data)


def test_banesco_online_also_reads_as_csv():
    spec = SPECS["banesco_online"]
    generated = generate_statement("banesco_online", seed=4, receipts=20)
    html_movements = parse_statement(generated.data).movements
    csv_spec = dataclasses.replace(spec, table={**spec.table, "containers": ["delimited", "html"]})
    lines = [dataclasses.replace(x) for x in generated.lines]
    csv_data = render(csv_spec, lines)
    assert csv_data.startswith(b"Fecha;Referencia")
    csv_movements = parse_statement(csv_data, "banesco_online").movements
    assert [(m.date, m.reference, m.amount, m.direction, m.description) for m in csv_movements] == [
        (m.date, m.reference, m.amount, m.direction, m.description) for m in html_movements]


# -- detection -----------------------------------------------------------------------------------
def test_a_file_that_fits_two_formats_lists_both(tmp_path):
    for name in ("_shared.json", "bnc_tsv.json"):
        shutil.copy(DEFAULT_DIR / name, tmp_path / name)
    twin = json.loads((DEFAULT_DIR / "bnc_tsv.json").read_text(encoding="utf-8"))
    twin["id"] = "bnc_tsv_copy"
    (tmp_path / "bnc_copy.json").write_text(json.dumps(twin), encoding="utf-8")
    data = generate_statement("bnc_tsv", seed=0, receipts=10).data
    with pytest.raises(FormatNotDetected) as error:
        parse_statement(data, formats_dir=tmp_path)
    assert error.value.candidates == ["bnc_tsv", "bnc_tsv_copy"]
    assert error.value.code == "statement_format_ambiguous"
    assert "bnc_tsv, bnc_tsv_copy" in str(error.value)
    assert parse_statement(data, "bnc_tsv_copy", formats_dir=tmp_path).format_id == "bnc_tsv_copy"
    assert error.value.to_error() == {"code": "statement_format_ambiguous", "message": str(error.value),
                                      "linea": None, "formato": None, "candidatos": ["bnc_tsv", "bnc_tsv_copy"]}


def test_row_error_as_the_service_returns_it():
    generated = generate_statement("bnc_tsv", seed=1, receipts=30)
    data, number = malformed_row(generated)
    with pytest.raises(StatementError) as error:
        parse_statement(data)
    assert error.value.to_error() == {"code": "statement_unreadable", "message": str(error.value),
                                      "linea": number, "formato": "bnc_tsv"}


@pytest.mark.parametrize("change, message", [
    ({"reader": "pdf"}, "reader"), ({"bank_code": "12"}, "bank_code"), ({"evidence": "rumor"}, "evidence"),
    ({"reference_suffix_length": 2}, "reference_suffix_length"), ({"row_order": "random"}, "row_order"),
    ({"table": None}, "table"), ({"commission_patterns": ["("]}, "commission"),
    ({"table": {"containers": ["pdf"]}}, "containers"),
])
def test_malformed_mappings_are_deployment_errors(tmp_path, change, message):
    mapping = {**json.loads((DEFAULT_DIR / "bnc_tsv.json").read_text(encoding="utf-8")), **change}
    (tmp_path / "bnc_tsv.json").write_text(json.dumps(mapping), encoding="utf-8")
    with pytest.raises(FormatConfigError, match=message):
        TableLayout(load_specs(tmp_path)["bnc_tsv"])


@pytest.mark.parametrize("data", [
    b"hola, esto no es un extracto\n1,2,3\n",
    b"PK\x03\x04" + b"\x00" * 200,
    b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\xff" * 600,
    b"<html><body><p>sin tabla</p></body></html>",
    b"\x89PNG\r\n\x1a\n" + b"\x00" * 100,
    "Fecha\tReferencia\n" .encode() * 3,
])
def test_unknown_files_get_a_clear_error(data):
    with pytest.raises(FormatNotDetected) as error:
        parse_statement(data)
    assert error.value.candidates == [] and error.value.code == "statement_format_unknown"


@pytest.mark.parametrize("format_id", ["bdv_online_xlsx", "mercantil_xls", "bnc_tsv", "banesco_qif"])
def test_garbage_in_an_explicit_format_is_a_statement_error(format_id):
    with pytest.raises(StatementError):
        parse_statement(b"PK\x03\x04garbage" * 10, format_id)


def test_empty_and_unknown_format_id():
    with pytest.raises(StatementError, match="vacío"):
        parse_statement(b"")
    with pytest.raises(StatementError, match="formato desconocido"):
        parse_statement(b"x", "no_such_bank")


# -- values --------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, separator, value", [
    ("1.136,52", ",", "1136.52"), ("-23,264.45 ", ".", "-23264.45"), ("3098,59", ",", "3098.59"),
    ("+13.000.000,00", ",", "13000000.00"), ("75", ",", "75.00"), (1136.52, ",", "1136.52"), ("1.234,5-", ",", "-1234.50"),
])
def test_amounts_are_read_exactly(text, separator, value):
    assert parse_amount(text, separator) == Decimal(value)


@pytest.mark.parametrize("text, separator", [
    ("1.136,52", "."), ("1,13652", ","), ("12,3x", ","), ("3.46E+10", "."), ("", ","), ("1.2.3,45", ","), (0.1 + 0.2, ","),
    (1e300, ","), (float("nan"), ","), (True, ","), ("1" * 60, ","),
])
def test_ambiguous_or_broken_amounts_are_refused(text, separator):
    with pytest.raises(ValueError):
        parse_amount(text, separator)


def test_dates_follow_the_declared_format_only():
    assert parse_date("05/03/2025", ["%d/%m/%Y"])[0].isoformat() == "2025-03-05"
    assert parse_date("05/03/2025", ["%m/%d/%Y"])[0].isoformat() == "2025-05-03"
    with pytest.raises(ValueError):
        parse_date("13/03/2025", ["%m/%d/%Y"])


@pytest.mark.parametrize("cell", ["3.46E+10", "5.05e+10", 3.46e10 + 0.5, "12 34", "<script>"])
def test_mangled_references_are_refused(cell):
    with pytest.raises(ValueError):
        parse_reference(cell)


def test_references_keep_leading_zeros():
    assert parse_reference("00062554361") == "00062554361"
    assert parse_reference(34600000000.0) == "34600000000"
    assert parse_reference("  ") is None
