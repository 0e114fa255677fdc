"""The one reader for every table format: it does what the format's JSON mapping says.

The `table` section of a mapping:

- `containers`: which of "delimited", "html", "spreadsheet" the bank produces; `delimiters` for
  the delimited ones; `sheet` for a spreadsheet (the only sheet is used when it has one).
- `columns`: field -> header aliases. Fields: date, time, reference, description, amount, debit,
  credit, dc, balance. `description_extra`: more columns appended to the description.
  `ignore_columns`: other headers the export is known to have. A header row is recognised when
  every `required` field has a column and every non-empty header cell is known, so two banks
  whose headers only overlap are never mistaken for each other.
- `date_formats` (strptime), `decimal_separator`, `sign`: "columns" (a debit and a credit
  column), "signed_amount" (negative is a debit) or "dc_column" (with `dc_values`).
- `skip_descriptions`: regular expressions for rows that are not movements (opening balance...).
- `check_balance`: every balance must follow from the previous one (proves the sign).
"""
from __future__ import annotations

import re
from decimal import Decimal

from extraction.normalizers import fold
from reconciliation import containers
from reconciliation.build import check_balances, make_movement, make_statement
from reconciliation.errors import FormatConfigError, StatementError
from reconciliation.movement import Statement
from reconciliation.spec import FormatSpec
from reconciliation.values import parse_amount, parse_date, parse_reference

FIELDS = ("date", "time", "reference", "description", "amount", "debit", "credit", "dc", "balance")
SIGNS = ("columns", "signed_amount", "dc_column")
HEADER_SCAN_ROWS = 30


def header_key(text: object) -> str:
    return " ".join(re.sub(r"[^0-9a-z]+", " ", fold(str(text or ""))).split())


class TableLayout:
    """The validated `table` section of one format."""

    def __init__(self, spec: FormatSpec) -> None:
        table = spec.table or {}
        self.spec = spec
        self.containers = tuple(table.get("containers", ()))
        self.delimiters = tuple(table.get("delimiters", (",",)))
        self.sheet = table.get("sheet")
        self.columns = {f: tuple(header_key(a) for a in aliases) for f, aliases in table.get("columns", {}).items()}
        self.extra = tuple(header_key(a) for a in table.get("description_extra", ()))
        self.ignored = {header_key(a) for a in table.get("ignore_columns", ())}
        self.required = tuple(table.get("required", ("date", "description")))
        self.date_formats = list(table.get("date_formats", ()))
        self.decimal_separator = table.get("decimal_separator")
        self.sign = table.get("sign")
        self.dc_values = {header_key(k): v for k, v in table.get("dc_values", {}).items()}
        self.skip = tuple(re.compile(p, re.IGNORECASE) for p in table.get("skip_descriptions", ()))
        self.check_balance = bool(table.get("check_balance", False))
        self._validate()

    def _validate(self) -> None:
        where = f"{self.spec.id}.table"
        if not self.containers or any(c not in (containers.DELIMITED, containers.HTML, containers.SPREADSHEET)
                                      for c in self.containers):
            raise FormatConfigError(f"{where}: containers must list delimited/html/spreadsheet")
        unknown = set(self.columns) - set(FIELDS)
        if unknown:
            raise FormatConfigError(f"{where}: unknown fields {sorted(unknown)}")
        if self.sign not in SIGNS or self.decimal_separator not in (",", ".") or not self.date_formats:
            raise FormatConfigError(f"{where}: needs sign {SIGNS}, decimal_separator and date_formats")
        needed = {"columns": ("debit", "credit"), "signed_amount": ("amount",), "dc_column": ("amount", "dc")}
        for field in (*self.required, *needed[self.sign]):
            if field not in self.columns:
                raise FormatConfigError(f"{where}: no column aliases for {field!r}")

    # -- reading -----------------------------------------------------------------------------
    def rows(self, data: bytes) -> tuple[list[containers.Row], int, dict[str, int], list[int]]:
        """The rows, the header's index, field -> column and the extra description columns."""
        kind = containers.container_of(data)
        if kind not in self.containers:
            raise StatementError(f"este formato no se exporta como {kind}", None, self.spec.id)
        attempts = ([containers.delimited_rows(data, d) for d in self.delimiters] if kind == containers.DELIMITED
                    else [containers.html_rows(data)] if kind == containers.HTML
                    else [containers.spreadsheet_rows(data, self.sheet)])
        for rows in attempts:
            for index, (_, cells) in enumerate(rows[:HEADER_SCAN_ROWS]):
                found = self._header(cells)
                if found:
                    return rows, index, found[0], found[1]
        raise StatementError("no se encontró la fila de encabezados de este formato", None, self.spec.id)

    def _header(self, cells: list) -> tuple[dict[str, int], list[int]] | None:
        keys = [header_key(c) for c in cells]
        positions: dict[str, int] = {}
        extra: list[int] = []
        for index, key in enumerate(keys):
            if not key:
                continue
            field = next((f for f, aliases in self.columns.items() if key in aliases), None)
            if field and field not in positions:
                positions[field] = index
            elif key in self.extra:
                extra.append(index)
            elif key not in self.ignored and not field:
                return None
        if any(f not in positions for f in self.required):
            return None
        needed = {"columns": ("debit", "credit"), "signed_amount": ("amount",), "dc_column": ("amount", "dc")}
        if any(f not in positions for f in needed[self.sign]):
            return None
        return positions, extra


SNIFF_BYTES = 64 * 1024


def fits(spec: FormatSpec, data: bytes) -> bool:
    """Whether the header of this format is in the file (text is sniffed from its first lines)."""
    if containers.container_of(data) != containers.SPREADSHEET and len(data) > SNIFF_BYTES:
        data = data[:data.rfind(b"\n", 0, SNIFF_BYTES) + 1] or data[:SNIFF_BYTES]
    try:
        TableLayout(spec).rows(data)
    except StatementError:
        return False
    return True


def parse(spec: FormatSpec, data: bytes) -> Statement:
    layout = TableLayout(spec)
    rows, header_index, positions, extra = layout.rows(data)
    movements = []
    for line, cells in rows[header_index + 1:]:
        if all(_blank(c) for c in cells):
            continue
        cell = _Cells(cells, positions)
        parts = [str(cell("description") or "").strip()] + [str(cells[i]).strip() for i in extra if i < len(cells)]
        description = " / ".join(p for p in parts if p)
        if any(p.search(description) for p in layout.skip) or _blank(cell("date")):
            continue  # "Saldo Inicial" and totals rows carry no date or say what they are
        try:
            day, at = parse_date(cell("date"), layout.date_formats)
            if positions.get("time") is not None and not _blank(cell("time")):
                _, at = parse_date(f"2000-01-01 {cell('time')}", ["%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"])
            reference = parse_reference(cell("reference"))
            signed = _signed_amount(layout, cell)
            balance = None if _blank(cell("balance")) else parse_amount(cell("balance"), layout.decimal_separator)
        except ValueError as exc:
            raise StatementError(str(exc), line, spec.id) from exc
        movements.append(make_movement(spec, line, day, at, reference, description, signed, balance))
    if layout.check_balance:
        check_balances(spec, movements)
    return make_statement(spec, movements)


class _Cells:
    """One row's cells by field name; None for a field the row is too short to have."""

    def __init__(self, cells: list, positions: dict[str, int]) -> None:
        self.cells, self.positions = cells, positions

    def __call__(self, field: str):
        index = self.positions.get(field)
        return self.cells[index] if index is not None and index < len(self.cells) else None


def _signed_amount(layout: TableLayout, cell: _Cells) -> Decimal:
    separator = layout.decimal_separator
    if layout.sign == "signed_amount":
        return parse_amount(cell("amount"), separator)
    if layout.sign == "dc_column":
        direction = layout.dc_values.get(header_key(cell("dc")))
        if direction not in ("debito", "credito"):
            raise ValueError(f"indicador débito/crédito desconocido: {cell('dc')!r}")
        amount = abs(parse_amount(cell("amount"), separator))
        return amount if direction == "credito" else -amount
    debit = Decimal(0) if _blank(cell("debit")) else abs(parse_amount(cell("debit"), separator))
    credit = Decimal(0) if _blank(cell("credit")) else abs(parse_amount(cell("credit"), separator))
    if bool(debit) == bool(credit):
        raise ValueError("la fila debe tener monto en débito o en crédito, y solo en uno")
    return credit or -debit


def _blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())
