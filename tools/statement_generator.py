"""Deterministic synthetic bank statement exports, with the receipts paid into them and ground truth.

For every format in config/statements/ it writes a file that follows the published layout (see
reconciliation/README.md) and the receipts of the same payments, each with the state the matcher
must give it::

    from tools.statement_generator import generate_statement
    generated = generate_statement("banesco_qif", seed=0, receipts=200)
    generated.data          # the export's bytes, as the bank would give them
    generated.receipts      # [{"id", "monto", "fecha", "referencia", "telefono", "cedula", ...}]
    generated.expected      # receipt id -> {"estado": ..., "linea": line of the credit or None}

    python -m tools.statement_generator OUT_DIR [--receipts 200] [--seed 0] [--formats a,b]

What the payments include (the pitfalls of the notes): matching payments, some booked the next
day; BDV-to-BDV payments whose statement line carries an internal 06772 reference and the payer's
cédula instead of the receipt's reference; commission debits sharing the payment's reference (or
its last 8 digits); pairs of payments of equal amount on the same day; receipts with no statement
line (missing); credits with no receipt (extra); receipts whose reference OCR lost, or kept only
its last 8 digits, with two fitting credits (ambiguous); a receipt submitted twice (reused);
receipts dated after the statement (pending). Statements run from 24 February to 12 March so
most dates are dd/mm that would also parse as mm/dd; Provincial's online export is newest first.

The expected states assume the matcher's default window of one day. Same seed and format give
the same movements and receipts; xlsx files are written with a fixed timestamp.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import html
import io
import json
import random
import sys
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path

from reconciliation.spec import FormatSpec, load_specs

START, END = dt.date(2025, 2, 24), dt.date(2025, 3, 12)
OPENING_BALANCE = Decimal("1500000.00")
PHONE_PREFIXES = ("0412", "0414", "0416", "0424", "0426")
PAYER_BANKS = {"0102": "BANCO DE VENEZUELA", "0105": "MERCANTIL", "0108": "PROVINCIAL", "0134": "BANESCO",
               "0114": "BANCARIBE", "0172": "BANCAMIGA", "0191": "BNC", "0151": "BFC", "0174": "BANPLUS"}
BANK_NAMES = {"0102": "Banco de Venezuela", "0104": "Venezolano de Crédito", "0105": "Banco Mercantil",
              "0108": "BBVA Provincial", "0114": "Bancaribe", "0134": "Banesco", "0151": "BFC Banco Fondo Común",
              "0172": "Bancamiga", "0174": "Banplus", "0175": "Banco Digital de los Trabajadores",
              "0191": "Banco Nacional de Crédito"}
NAMES = ("MARIA PEREZ", "JOSE RODRIGUEZ", "ANA GONZALEZ", "LUIS HERNANDEZ", "CARMEN GARCIA", "PEDRO LOPEZ")

# How each format prints what its mapping does not say: digits of the reference it prints, the
# description of an incoming payment and of its commission, number style.
STYLES: dict[str, dict] = {
    "bdv_fixed": {"ref_digits": 13, "credit": "PAGOMOVIL OB {code} {phone}", "internal": "PAGOMOVIL BDV V0{ced}"},
    "bdv_online_xlsx": {"ref_digits": 12, "credit": "PAGOMOVIL OTROS BANCOS {code} {phone}",
                        "internal": "PAGOMOVIL BDV V0{ced} {name}"},
    "banesco_qif": {"ref_digits": 11, "credit": "PAGO MOVIL CCE {code} {phone}",
                    "commission": "COMISION TRF OTROS BCOS", "commission_ref": "suffix8"},
    "banesco_online": {"ref_digits": 11, "credit": "PAGO MOVIL CCE {code} {phone}",
                       "commission": "COM. PAGO MOVIL CCE", "commission_ref": "same"},
    "mercantil_mt940": {"ref_digits": 11, "credit": "PAGO MOVIL RECIBIDO {code} {phone}",
                        "commission": "COMISION PAGO MOVIL", "commission_ref": "suffix8"},
    "mercantil_xls": {"ref_digits": 11, "credit": "PAGO MOVIL RECIBIDO {code} {phone}",
                      "commission": "COMISION PAGO MOVIL", "commission_ref": "suffix8"},
    "provincial_netcash": {"ref_digits": 10, "credit": "CR.I/REC {code} V0{ced}", "commission": "COMIS. TRF OB",
                           "commission_ref": "suffix8"},
    "provincial_online": {"ref_digits": 0, "credit": "DR OB {phone} {code3}{bank}", "credit_alt": "CR.I/REC {code} V0{ced}",
                          "commission": "COMIS. PAGO MOVIL"},
    "bnc_tsv": {"ref_digits": 11, "credit": "TRANSFERENCIA RECIBIDA DE :{bank} POR CUENTA DE : V0{ced} REF: {ref8}",
                "kind": "Abono por Creditos Directos", "commission": "", "commission_kind": "Comision Tranferencias BNCNet",
                "commission_ref": "same", "negative_debits": True, "opening_row": True},
    "banplus_tsv": {"ref_digits": 9, "credit": "PAGO MOVIL RECIBIDO {code} {phone}", "thousands": False,
                    "opening_row": True},
    "bancaribe_csv": {"ref_digits": 8, "credit": "PAGO MOVIL {code} {phone}"},
    "venezolano_credito": {"ref_digits": 8, "credit": "ABONO PAGO MOVIL {code} {phone}"},
    "bicentenario": {"ref_digits": 10, "credit": "PAGO MOVIL RECIBIDO {code} {phone}"},
}


@dataclass
class Line:
    date: dt.date
    time: dt.time | None
    reference: str | None
    description: str
    amount: Decimal  # signed: negative is a debit
    balance: Decimal | None = None
    kind: str = ""  # the second description column of formats that have one
    line: int = 0  # set when the file is written
    payer_phone: str | None = None  # what the description says about the payer
    payer_cedula: str | None = None
    payer_bank_code: str | None = None


@dataclass
class GeneratedStatement:
    format_id: str
    filename: str
    data: bytes
    lines: list[Line]  # chronological
    receipts: list[dict]
    expected: dict[str, dict]
    extra_credit_lines: list[int] = field(default_factory=list)


@dataclass
class _Payer:
    phone: str
    ced: str
    code: str
    name: str


class _Scenario:
    """The payments of one statement and the receipts that claim them."""

    def __init__(self, spec: FormatSpec, rng: random.Random, receipts: int | None) -> None:
        self.spec, self.rng, self.style = spec, rng, STYLES[spec.id]
        self.lines: list[Line] = []
        self.receipts: list[dict] = []
        self.expected: dict[str, dict] = {}
        self.extra: list[Line] = []
        self._amounts: set[Decimal] = set()
        self._refs: set[str] = set()
        if receipts is not None:
            self._build(receipts)

    # -- random values ---------------------------------------------------------------------------
    def amount(self) -> Decimal:
        while True:
            cents = round(10 ** self.rng.uniform(2, 7.2))
            value = Decimal(cents).scaleb(-2)
            if value not in self._amounts:
                self._amounts.add(value)
                return value

    def reference(self) -> str:
        while True:
            ref = str(self.rng.randint(1, 9)) + "".join(self.rng.choice("0123456789") for _ in range(11))
            if ref[-8:] not in self._refs:
                self._refs.add(ref[-8:])
                return ref

    def payer(self, code: str | None = None) -> _Payer:
        codes = [c for c in sorted(PAYER_BANKS) if c != self.spec.bank_code]
        return _Payer(phone=self.rng.choice(PHONE_PREFIXES) + str(self.rng.randint(1_000_000, 9_999_999)),
                      ced=str(self.rng.randint(4_000_000, 31_999_999)),
                      code=code or self.rng.choice(codes), name=self.rng.choice(NAMES))

    def day(self, last: dt.date = END - dt.timedelta(days=1)) -> dt.date:
        return START + dt.timedelta(days=self.rng.randint(0, (last - START).days))

    def moment(self) -> dt.time:
        return dt.time(self.rng.randint(6, 22), self.rng.randint(0, 59))

    # -- statement lines -------------------------------------------------------------------------
    def printed(self, ref: str) -> str | None:
        digits = self.style["ref_digits"]
        if not digits:
            return None
        return ref.zfill(digits) if digits >= len(ref) else ref[-digits:]

    def credit(self, day: dt.date, ref: str, amount: Decimal, payer: _Payer, internal: bool = False) -> Line:
        if internal:
            template, printed = self.style["internal"], "06772" + ref[-(self.style["ref_digits"] - 5):]
        else:
            alt = self.style.get("credit_alt")
            template = alt if alt and self.rng.random() < 0.4 else self.style["credit"]
            printed = self.printed(ref)
        description = template.format(code=payer.code, code3=payer.code[1:], phone=payer.phone, ced=payer.ced,
                                      name=payer.name, bank=PAYER_BANKS[payer.code], ref8=ref[-8:])
        line = Line(day, self.moment(), printed, description, amount, kind=self.style.get("kind", ""),
                    payer_phone=payer.phone if "{phone}" in template else None,
                    payer_cedula=f"V-{payer.ced}" if "{ced}" in template else None,
                    payer_bank_code=payer.code if internal or any(k in template for k in ("{code}", "{code3}", "{bank}"))
                    else None)  # "PAGOMOVIL BDV" names the payer's bank too
        self.lines.append(line)
        if "commission" in self.style and not internal:
            self._commission(line, ref, amount)
        return line

    def _commission(self, credit: Line, ref: str, amount: Decimal) -> None:
        fee = max(Decimal("0.01"), (amount * Decimal("0.003")).quantize(Decimal("0.01")))
        how = self.style.get("commission_ref")
        printed = (credit.reference if how == "same" else
                   str(self.rng.randint(100, 999)) + ref[-8:] if how == "suffix8" else None)
        if printed and self.style["ref_digits"]:
            printed = printed[-self.style["ref_digits"]:].zfill(self.style["ref_digits"])
        self.lines.append(Line(credit.date, credit.time, printed, self.style["commission"], -fee,
                               kind=self.style.get("commission_kind", "")))

    def debit(self) -> None:
        description = self.rng.choice(("PAGO A PROVEEDORES", "TRANSFERENCIA A TERCEROS", "PAGO SERVICIOS"))
        self.lines.append(Line(self.day(END), self.moment(), self.printed(self.reference()), description,
                               -self.amount(), kind="Cargo"))

    # -- receipts --------------------------------------------------------------------------------
    def receipt(self, state: str, day: dt.date, ref: str | None, amount: Decimal, payer: _Payer,
                credit: Line | None = None) -> dict:
        receipt = {"id": f"R{len(self.receipts) + 1:05d}", "monto": str(amount), "fecha": day.isoformat(),
                   "referencia": ref, "telefono": payer.phone, "cedula": f"V-{payer.ced}",
                   "banco_origen": BANK_NAMES.get(payer.code), "banco_destino": BANK_NAMES[self.spec.bank_code]}
        self.receipts.append(receipt)
        self.expected[receipt["id"]] = {"estado": state, "credit": credit}
        return receipt

    def matched_payment(self, day: dt.date | None = None, amount: Decimal | None = None) -> dict:
        day = day or self.day()
        booked = day + dt.timedelta(days=1) if self.rng.random() < 0.2 else day
        internal = "internal" in self.style and self.rng.random() < 0.3
        payer = self.payer("0102" if internal else None)
        ref, amount = self.reference(), amount or self.amount()
        credit = self.credit(booked, ref, amount, payer, internal=internal)
        return self.receipt("conciliado", day, ref, amount, payer, credit)

    def _build(self, total: int) -> None:
        reused, pending, missing = total // 20, total // 20, total // 10
        ambiguous, pairs = total // 12, total // 20
        for _ in range(pairs):  # equal amounts on one day, told apart by reference or payer
            day, amount = self.day(), self.amount()
            self.matched_payment(day, amount)
            self.matched_payment(day, amount)
        for index in range(ambiguous):
            self._ambiguous(short=index % 2 == 0 and self.style["ref_digits"] > 8)
        for _ in range(missing):
            self.receipt("no_encontrado", self.day(), self.reference(), self.amount(), self.payer())
        for _ in range(pending):
            day = END + dt.timedelta(days=self.rng.randint(1, 5))
            self.receipt("pendiente", day, self.reference(), self.amount(), self.payer())
        while len(self.receipts) < total - reused:
            self.matched_payment()
        for _ in range(total // 10):  # money that arrived with no receipt
            self.extra.append(self.credit(self.day(END), self.reference(), self.amount(), self.payer()))
        for _ in range(total // 12):
            self.debit()
        originals = [r for r in self.receipts if self.expected[r["id"]]["estado"] == "conciliado"]
        for original in self.rng.sample(originals, reused):
            copy = dict(original, id=f"R{len(self.receipts) + 1:05d}")
            self.receipts.append(copy)
            self.expected[copy["id"]] = {"estado": "no_encontrado", "credit": None}
        self.finish(START, END)

    def finish(self, first: dt.date, last: dt.date) -> None:
        """Pin the days the export covers with a first and a last line, as real exports do, then
        sort the lines and run the balance."""
        self.lines.append(Line(first, dt.time(0, 5), self.printed(self.reference()), "COM MANTENIMIENTO DE CUENTA",
                               -Decimal("12.50"), kind="Cargo"))
        self.lines.append(Line(last, dt.time(23, 0), self.printed(self.reference()), "PAGO SERVICIOS",
                               -self.amount(), kind="Cargo"))
        self.lines.sort(key=lambda line: (line.date, line.time or dt.time(0)))
        balance = OPENING_BALANCE
        for line in self.lines:
            balance += line.amount
            line.balance = balance

    def _ambiguous(self, short: bool) -> None:
        """Two credits fit: the receipt kept only the last 8 digits of its reference, or none."""
        day, amount, payer = self.day(), self.amount(), self.payer()
        ref = self.reference()
        self.credit(day, ref, amount, payer)
        if short:
            twin = str(self.rng.randint(1000, 9999)) + ref[-8:]
            self.credit(day, twin, amount, self.payer(payer.code))  # same bank: nothing tells them apart
        else:
            self.credit(day, self.reference(), amount, payer)
        self.receipt("ambiguo", day, ref[-8:] if short else None, amount, payer)


# ------------------------------------------------------------------------------------------------
# Writers: one per layout. Each sets Line.line to where the line lands in the file.
# ------------------------------------------------------------------------------------------------
def money(value: Decimal, decimal_separator: str = ",", thousands: bool = True) -> str:
    whole, cents = f"{abs(value):.2f}".split(".")
    if thousands:
        whole = f"{int(whole):,}".replace(",", "." if decimal_separator == "," else ",")
    return ("-" if value < 0 else "") + whole + decimal_separator + cents


def _write_bdv_fixed(spec: FormatSpec, lines: list[Line], account: str) -> bytes:
    def row(day: dt.date, ref: str, text: str, debit: Decimal, credit: Decimal, balance: Decimal, kind: str, code: str) -> str:
        cents = lambda v: f"{int(v * 100):018d}"  # noqa: E731
        return (f"{account}{day:%d%m%Y}{ref:>013}"[:41] + f"{text[:30]:<30}" + cents(debit) + cents(credit)
                + cents(balance) + kind + code)
    out = [row(lines[0].date, "0", "SALDO INICIAL", Decimal(0), Decimal(0), OPENING_BALANCE, "SI", "0000")]
    for number, line in enumerate(lines, start=2):
        line.line = number
        credit = line.amount > 0
        out.append(row(line.date, line.reference or "0", line.description, Decimal(0) if credit else -line.amount,
                       line.amount if credit else Decimal(0), line.balance, "NC" if credit else "ND",
                       "1700" if credit else "5404"))
    return ("\r\n".join(out) + "\r\n").encode("ascii")


def _write_qif(spec: FormatSpec, lines: list[Line], account: str) -> bytes:
    out = ["!Tipo:Banco"]
    for line in lines:
        line.line = len(out) + 1
        sign = "+" if line.amount > 0 else "-"
        out += [f"D{line.date:%d/%m/%Y}", f"T{sign}{money(abs(line.amount))}", f"N{line.reference}",
                f"P{line.description}", f"LCategoria1{'Abono1' if line.amount > 0 else 'Cargo1'}", "^"]
    return ("\n".join(out) + "\n").encode("cp1252")


def _write_mt940(spec: FormatSpec, lines: list[Line], account: str) -> bytes:
    mt = lambda v: f"{abs(v):.2f}".replace(".", ",")  # noqa: E731
    first, last = lines[0].date, lines[-1].date
    out = [f":20:D{first:%d%m%y}H{last:%d%m%y}", f":25:{account[-12:]}", ":28:91001/31",
           f":60F:C{first:%y%m%d}VES{mt(OPENING_BALANCE)}"]
    for line in lines:
        line.line = len(out) + 1
        dc = "C" if line.amount > 0 else "D"
        out.append(f":61:{line.date:%y%m%d}{line.date:%m%d}{dc}{mt(line.amount)}NMSCNONREF//{line.reference}")
        out.append(f":86:670?00{line.description[:40]}?100239?20TERMINAL:0033?21SALDO:      {money(line.balance)}")
    out.append(f":62F:C{last:%y%m%d}VES{mt(lines[-1].balance)}")
    return ("\r\n".join(out) + "\r\n").encode("ascii")


def _write_netcash(spec: FormatSpec, lines: list[Line], account: str) -> bytes:
    implied = lambda v: f"{int(abs(v) * 100):014d}"  # noqa: E731
    acct = account[-10:]
    first, last = lines[0].date, lines[-1].date
    out = [f"00,0098,{last:%y%m%d},", f"11,0108,2431,{acct},{first:%y%m%d},{last:%y%m%d},2,{implied(OPENING_BALANCE)},928,3,ESTANDAR,"]
    for line in lines:
        line.line = len(out) + 1
        out.append(f"22,0108,4688,{line.date:%y%m%d},{line.date:%y%m%d},00,017,{2 if line.amount > 0 else 1},"
                   f"{implied(line.amount)},{line.reference},{line.description}")
    debits, credits = [x for x in lines if x.amount < 0], [x for x in lines if x.amount > 0]
    closing = lines[-1].balance
    out.append(f"33,0108,2431,{acct},{len(debits):05d},{implied(sum(x.amount for x in debits))},{len(credits):05d},"
               f"{implied(sum(x.amount for x in credits))},2,{implied(closing)},928")
    out.append(f"88,999999999999999999,{len(out) + 1:06d},")
    return ("\n".join(out) + "\n").encode("ascii")


def _table_cells(spec: FormatSpec, line: Line | None) -> tuple[list[str], list]:
    """The header and, for `line`, the cells of a table format, in the mapping's column order."""
    table, style = spec.table, STYLES[spec.id]
    columns = list(table["columns"])
    header = [table["columns"][f][0] for f in columns] + list(table.get("description_extra", ()))[:1]
    header += list(table.get("ignore_columns", ()))
    if line is None:
        return header, []
    fmt = table["date_formats"][0]
    separator, thousands = table["decimal_separator"], style.get("thousands", True)
    spreadsheet = table["containers"][0] == "spreadsheet"
    number = (lambda v: float(v)) if spreadsheet else (lambda v: money(v, separator, thousands))  # noqa: E731
    values = {
        "date": line.date.strftime(fmt) if "%H" not in fmt else dt.datetime.combine(line.date, line.time).strftime(fmt),
        "reference": line.reference or "", "description": line.description,
        "amount": number(line.amount) if table["sign"] == "signed_amount" else number(abs(line.amount)),
        "debit": number(line.amount if style.get("negative_debits") else -line.amount) if line.amount < 0 else "",
        "credit": number(line.amount) if line.amount > 0 else "",
        "dc": "C" if line.amount > 0 else "D",
        "balance": number(line.balance) if line.balance is not None else "",
    }
    if line.balance is None:
        values["debit"] = values["credit"] = values["amount"] = ""
    cells = [values[f] for f in columns] + ([line.kind] if table.get("description_extra") else [])
    return header, cells + [""] * len(table.get("ignore_columns", ()))


def _opening(spec: FormatSpec, first: dt.date) -> Line | None:
    if not STYLES[spec.id].get("opening_row"):
        return None
    return Line(first, None, None, "", Decimal(0), OPENING_BALANCE, kind="Saldo Inicial")


def _write_table(spec: FormatSpec, lines: list[Line], account: str) -> bytes:
    table = spec.table
    ordered = list(reversed(lines)) if spec.row_order == "newest_first" else list(lines)
    header, _ = _table_cells(spec, None)
    rows = []
    opening = _opening(spec, lines[0].date)
    if opening:
        _, cells = _table_cells(spec, opening)
        cells[list(table["columns"]).index("date")] = ""
        rows.append((None, cells))
    rows += [(line, _table_cells(spec, line)[1]) for line in ordered]
    container = table["containers"][0]
    if container == "spreadsheet":
        return _xlsx(spec, header, rows)
    if container == "html":
        out = ['<html><head><meta charset="utf-8"></head><body>', "<table>",
               "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
        for line, cells in rows:
            if line:
                line.line = len(out) + 1
            out.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
        return ("\n".join(out + ["</table></body></html>"]) + "\n").encode("utf-8")
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=table["delimiters"][0], lineterminator="\r\n")
    writer.writerow(header)
    for number, (line, cells) in enumerate(rows, start=2):
        if line:
            line.line = number
        writer.writerow(cells)
    return buffer.getvalue().encode("utf-8")


def _xlsx(spec: FormatSpec, header: list[str], rows: list) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = spec.table.get("sheet") or "Movimientos"
    sheet.append(header)
    for number, (line, cells) in enumerate(rows, start=2):
        if line:
            line.line = number
        sheet.append(cells)
    fixed = dt.datetime(2025, 3, 13, 8, 0, 0)
    workbook.properties.created = workbook.properties.modified = fixed
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


WRITERS = {"bdv_fixed": _write_bdv_fixed, "banesco_qif": _write_qif, "mercantil_mt940": _write_mt940,
           "provincial_netcash": _write_netcash, "table": _write_table}
EXTENSIONS = {"bdv_fixed": ".txt", "banesco_qif": ".qif", "mercantil_mt940": ".txt", "provincial_netcash": ".csv"}


def render(spec: FormatSpec, lines: list[Line], account: str = "01020000000000001234") -> bytes:
    """The export's bytes for these lines (chronological); sets each line's `line`."""
    return WRITERS[spec.reader](spec, lines, spec.bank_code + account[4:])


def _extension(spec: FormatSpec) -> str:
    if spec.reader != "table":
        return EXTENSIONS[spec.reader]
    container = spec.table["containers"][0]
    if container != "delimited":
        return {"spreadsheet": ".xlsx", "html": ".xls"}[container]
    return ".tsv" if spec.table["delimiters"][0] == "\t" else ".csv"


def generate_statement(format_id: str, seed: int = 0, receipts: int = 200, specs: dict | None = None) -> GeneratedStatement:
    spec = (specs or load_specs())[format_id]
    scenario = _Scenario(spec, random.Random(f"{format_id}:{seed}"), receipts)
    data = render(spec, scenario.lines)
    expected = {rid: {"estado": e["estado"], "linea": e["credit"].line if e["credit"] else None}
                for rid, e in scenario.expected.items()}
    return GeneratedStatement(format_id, f"{format_id}_{seed}{_extension(spec)}", data, scenario.lines,
                              scenario.receipts, expected, [line.line for line in scenario.extra])


def statement_for_receipts(format_id: str, payments: list[dict], seed: int = 0,
                           specs: dict | None = None) -> GeneratedStatement:
    """A statement with one credit for each payment: dicts with "id", "monto", "fecha",
    "referencia" and optionally "telefono", "cedula", "banco_origen" (e.g. the ground truth of
    tools/receipt_generator.py receipts). Each payment's expected state is `conciliado`."""
    spec = (specs or load_specs())[format_id]
    scenario = _Scenario(spec, random.Random(f"{format_id}:{seed}:payments"), receipts=None)
    codes = {name: code for code, name in BANK_NAMES.items()}
    expected = {}
    for payment in payments:
        code = codes.get(payment.get("banco_origen") or "")
        payer = scenario.payer(code if code in PAYER_BANKS else None)
        if payment.get("telefono"):
            payer.phone = payment["telefono"]
        if payment.get("cedula"):
            payer.ced = "".join(ch for ch in payment["cedula"] if ch.isdigit())
        line = scenario.credit(dt.date.fromisoformat(payment["fecha"]), payment["referencia"],
                               Decimal(payment["monto"]), payer)
        expected[payment["id"]] = {"estado": "conciliado", "credit": line}
    days = [line.date for line in scenario.lines]
    scenario.finish(min(days), max(days))
    data = render(spec, scenario.lines)
    return GeneratedStatement(format_id, f"{format_id}_{seed}_payments{_extension(spec)}", data, scenario.lines,
                              list(payments), {k: {"estado": v["estado"], "linea": v["credit"].line}
                                               for k, v in expected.items()})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--receipts", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--formats", default="", help="comma-separated format ids (default: all)")
    args = parser.parse_args(argv)
    specs = load_specs()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for format_id in [f for f in args.formats.split(",") if f] or sorted(specs):
        generated = generate_statement(format_id, args.seed, args.receipts, specs)
        (out / generated.filename).write_bytes(generated.data)
        truth = {"format": format_id, "receipts": generated.receipts, "expected": generated.expected,
                 "extra_credit_lines": generated.extra_credit_lines,
                 "lines": [{**asdict(line), "date": line.date.isoformat(),
                            "time": line.time.isoformat() if line.time else None,
                            "amount": str(line.amount), "balance": str(line.balance)} for line in generated.lines]}
        (out / f"{format_id}_{args.seed}.json").write_text(json.dumps(truth, ensure_ascii=False, indent=1))
        print(f"{generated.filename}: {len(generated.lines)} lines, {len(generated.receipts)} receipts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
