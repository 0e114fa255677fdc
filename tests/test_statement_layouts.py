"""Hand-written lines in the published layouts, independent of the generator.

The generator and the readers could share a misreading of a layout; these snippets are written
field by field from the anonymized public samples' layouts (invented values, no personal data).
"""
from __future__ import annotations

import io
import zipfile
from datetime import date, time
from decimal import Decimal

import pytest

from reconciliation import StatementError, parse_statement


def test_bdv_fixed_width_fields():
    account = "01020000000000000042"
    line = (account + "05032025" + "0425199887766" + "TRANSFERENCIAS RECIBIDAS".ljust(30)
            + "0" * 18 + "000000000000113652" + "000000000050113652" + "NC" + "1700")
    opening = account + "01032025" + "0" * 13 + "SALDO INICIAL".ljust(30) + "0" * 36 + "000000000050000000" + "SI0000"
    assert len(line) == len(opening) == 131
    statement = parse_statement(f"{opening}\r\n{line}\r\n".encode("ascii"))
    assert statement.format_id == "bdv_fixed" and statement.account == account
    (movement,) = statement.movements
    assert (movement.line, movement.date, movement.reference, movement.description) == (
        2, date(2025, 3, 5), "0425199887766", "TRANSFERENCIAS RECIBIDAS")
    assert (movement.direction, movement.amount, movement.balance) == ("credito", Decimal("1136.52"), Decimal("501136.52"))


def test_bdv_fixed_type_and_amount_must_agree():
    line = ("01020000000000000042" + "05032025" + "0425199887766" + "TRANSFERENCIAS RECIBIDAS".ljust(30)
            + "000000000000113652" + "0" * 18 + "000000000050113652" + "NC" + "1700")
    with pytest.raises(StatementError, match="línea 1: tipo NC con débito"):
        parse_statement(line.encode("ascii"), "bdv_fixed")


def test_banesco_qif_record():
    text = ("!Tipo:Banco\nD05/03/2025\nT+13.000.000,00\nN00000559762\nPTRF.OB 0174 V012345678 ESTANDAR\n"
            "LCategoria1Abono1\n^\nD06/03/2025\nT-23.000,00\nN11500559762\nPCOMISION TRF OTROS BCOS\n^\n")
    credit, commission = parse_statement(text.encode("cp1252")).movements
    assert (credit.line, credit.date, credit.amount, credit.direction, credit.reference) == (
        2, date(2025, 3, 5), Decimal("13000000.00"), "credito", "00000559762")
    assert (credit.payer_cedula, credit.payer_bank_code, credit.is_commission) == ("V-12345678", "0174", False)
    assert (commission.direction, commission.amount, commission.is_commission) == ("debito", Decimal("23000.00"), True)


def test_mercantil_mt940_lines():
    text = (":20:D010325H310325\r\n:25:001700000042\r\n:28:50301/31\r\n:60F:C250301VES23670095,36\r\n"
            ":61:2503050305C1136,52NMSCNONREF//23900192151\r\n"
            ":86:670?00PAGO MOVIL 0134 04141234567?100239?20TERMINAL:0033?21SALDO:      23.671.231,88\r\n"
            ":62F:C250305VES23671231,88\r\n")
    statement = parse_statement(text.encode("ascii"))
    (movement,) = statement.movements
    assert statement.format_id == "mercantil_mt940" and statement.account == "001700000042"
    assert (movement.line, movement.date, movement.reference, movement.amount, movement.balance) == (
        5, date(2025, 3, 5), "23900192151", Decimal("1136.52"), Decimal("23671231.88"))
    assert (movement.payer_phone, movement.payer_bank_code) == ("04141234567", "0134")
    assert statement.covers == (date(2025, 3, 1), date(2025, 3, 5))
    assert statement.to_dict() == {"formato": "mercantil_mt940", "banco": "0105", "cuenta": "001700000042",
                                   "desde": "2025-03-01", "hasta": "2025-03-05", "movimientos": 1, "creditos": 1}


def test_provincial_netcash_records_and_totals():
    lines = ["00,0098,250306,", "11,0108,2431,0100000042,250305,250305,2,00000050000000,928,3,ESTANDAR,",
             "22,0108,4688,250305,250305,00,017,2,00000000113652,0000021076,CR.I/REC 0134 V012345678",
             "22,0108,4688,250305,250305,00,524,1,00000000000341,0000021077,COMIS. TRF OB",
             "33,0108,2431,0100000042,00001,00000000000341,00001,00000000113652,2,00000050113311,928",
             "88,999999999999999999,000006,"]
    statement = parse_statement("\n".join(lines).encode("ascii"))
    credit, fee = statement.movements
    assert (credit.line, credit.date, credit.reference, credit.amount, credit.direction) == (
        3, date(2025, 3, 5), "0000021076", Decimal("1136.52"), "credito")
    assert (credit.payer_cedula, credit.payer_bank_code) == ("V-12345678", "0134")
    assert (fee.amount, fee.direction, fee.is_commission) == (Decimal("3.41"), "debito", True)
    lines[4] = lines[4].replace("00001,00000000113652", "00002,00000000113652")
    with pytest.raises(StatementError, match="línea 5: los totales del registro 33"):
        parse_statement("\n".join(lines).encode("ascii"))


BNC = ("Fecha\tReferencia\t Cod, Transacción \t Tipo Transacción \t Tip, Operación \tDescripción\t Debe \t Haber "
       "\t Saldo \tReferencia 2\t\tReferencia 2\n"
       "2/28/2025\t\t\t\t Saldo Inicial \t\t\t\t1,188,801.28 \t\t\t\n"
       "3/5/2025\t45775572442\t  262 \t CDRUAP \t Abono por Creditos Directos \tTRANSFERENCIA RECIBIDA DE :BANESCO "
       "POR CUENTA DE : V012345678 REF: 75572442\t\t80,000.00 \t1,268,801.28 \t221612210147120\t\t\n"
       "3/5/2025\t75572442\t  262 \t COMISI \t Comision Tranferencias BNCNet \t\t-27.00 \t\t1,268,774.28 \t75572442\t\t\n")


def test_bnc_tsv_with_the_sample_header_and_us_numbers():
    credit, fee = parse_statement(BNC.encode("utf-8")).movements
    assert (credit.line, credit.date, credit.reference, credit.amount, credit.balance) == (
        3, date(2025, 3, 5), "45775572442", Decimal("80000.00"), Decimal("1268801.28"))
    assert credit.description.startswith("TRANSFERENCIA RECIBIDA DE :BANESCO")
    assert (credit.payer_cedula, credit.payer_bank_code) == ("V-12345678", "0134")
    assert (fee.direction, fee.amount, fee.is_commission) == ("debito", Decimal("27.00"), True)


def test_utf16_export_reads_the_same():
    text = parse_statement(BNC.encode("utf-8")).movements
    assert parse_statement(BNC.encode("utf-16")).movements == text


def test_banplus_tsv_quoted_headers_and_opening_row():
    text = ('"Fecha"\t"Referencia"\t"Descripción"\t"Concepto"\t"Débito"\t"Crédito"\t"Saldo"\n'
            '\t\t"Saldo Inicial"\t\t\t\t3098,59\n'
            '05/03/2025\t179039\t"Pago Movil 0102 04121234567"\t""\t0,00\t1136,52\t4235,11\n'
            '12/03/2025\t179040\t"Mantenimiento de Cuenta"\t""\t75,00\t0,00\t4160,11\n')
    credit, fee = parse_statement(text.encode("cp1252")).movements
    assert (credit.line, credit.date, credit.amount, credit.balance, credit.payer_phone) == (
        3, date(2025, 3, 5), Decimal("1136.52"), Decimal("4235.11"), "04121234567")
    assert fee.date == date(2025, 3, 12) and fee.is_commission  # 12/03 is 12 March, never 3 December


def test_bdv_online_time_and_float_cells():
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "data"
    sheet.append(["fecha", "referencia", "descripcion", "debito", "credito", "saldo", "tipoMovimiento", "importe"])
    sheet.append(["05-03-2025 14:32", "067721234567", "PAGOMOVIL BDV V012345678 ANA", None, 1136.52, 5136.52, "NC", 1136.52])
    buffer = io.BytesIO()
    workbook.save(buffer)
    (movement,) = parse_statement(buffer.getvalue()).movements
    assert (movement.date, movement.time, movement.amount, movement.balance) == (
        date(2025, 3, 5), time(14, 32), Decimal("1136.52"), Decimal("5136.52"))
    assert (movement.reference, movement.payer_cedula, movement.payer_bank_code) == ("067721234567", "V-12345678", "0102")


def test_xlsx_zip_bomb_is_refused():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("xl/worksheets/sheet1.xml", "w") as member:  # streamed: little memory
            chunk = b"\0" * 2**20
            for _ in range(260):
                member.write(chunk)
    with pytest.raises(StatementError, match="se descomprime"):
        parse_statement(buffer.getvalue(), "bdv_online_xlsx")
