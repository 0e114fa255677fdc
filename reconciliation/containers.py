"""Bytes to rows of cells for the table formats: delimited text, HTML tables saved as .xls,
and real spreadsheets (xlsx and xls, read by python-calamine).

Every row keeps the 1-based line (text, HTML) or row number (spreadsheet) it came from, so an
error can point at it.
"""
from __future__ import annotations

import csv
import hashlib
import io
import re
import zipfile
import zlib

import lxml.etree
import lxml.html
from python_calamine import load_workbook

from reconciliation.errors import StatementError

Row = tuple[int, list]
DELIMITED, HTML, SPREADSHEET = "delimited", "html", "spreadsheet"
_XLSX_MAGIC = b"PK\x03\x04"
_XLS_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_HTML_START = re.compile(rb"^\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)?<(?:!doctype|html|head|body|table|meta)",
                         re.IGNORECASE | re.DOTALL)
MAX_CELL_CHARS = 2000
MAX_INFLATED_BYTES = 200 * 2**20  # a 16 MB upload of real movements inflates to a few times that
# The reader allocates rows x columns cells from A1 to the farthest cell (declared or present): a
# 1.6 KB sheet declaring A1:XFD1048576 asks for 512 GiB. A month of movements is far below these.
MAX_SHEET_ROWS = 200_000
MAX_SHEET_COLUMNS = 256
MAX_SHEET_CELLS = 4_000_000
_CELL_REFERENCE = re.compile(r"\$?([A-Za-z]{1,3})\$?([0-9]{1,7})\Z")


def container_of(data: bytes) -> str:
    if data.startswith(_XLSX_MAGIC) or data.startswith(_XLS_MAGIC):
        return SPREADSHEET
    head = data[:4096].lstrip(b"\xef\xbb\xbf")
    if _HTML_START.match(head) or b"<table" in head.lower():
        return HTML
    return DELIMITED


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 with a BOM (Excel's "Unicode text") or, failing
    those, Windows-1252 as Venezuelan banks' PCs write."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise StatementError(f"texto UTF-16 ilegible: {exc}") from exc
    if b"\x00" in data[:4096]:
        raise StatementError("el archivo es binario, no texto")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def delimited_rows(data: bytes, delimiter: str) -> list[Row]:
    reader = csv.reader(io.StringIO(decode_text(data), newline=""), delimiter=delimiter)
    rows = []
    try:
        start = 1
        for cells in reader:
            rows.append((start, [c[:MAX_CELL_CHARS] for c in cells]))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise StatementError(f"texto delimitado ilegible: {exc}", reader.line_num) from exc
    return rows


def html_rows(data: bytes) -> list[Row]:
    text = re.sub(r"^\s*<\?xml[^>]*>", "", decode_text(data))
    parser = lxml.html.HTMLParser(no_network=True, remove_comments=True, huge_tree=False)
    try:
        document = lxml.html.document_fromstring(text, parser=parser)
    except (lxml.etree.ParserError, ValueError) as exc:
        raise StatementError(f"HTML ilegible: {exc}") from exc
    rows = []
    for tr in document.iter("tr"):
        cells = [" ".join(td.text_content().split())[:MAX_CELL_CHARS] for td in tr if td.tag in ("td", "th")]
        rows.append((tr.sourceline or 0, cells))
    if not rows:
        raise StatementError("el HTML no contiene ninguna tabla")
    return rows


def spreadsheet_rows(data: bytes, sheet: str | None) -> list[Row]:
    if data.startswith(_XLSX_MAGIC):
        _refuse_zip_bomb(data)
        _refuse_huge_sheets(data)
    try:
        workbook = load_workbook(io.BytesIO(data))
        names = workbook.sheet_names
        if not names:
            raise StatementError("el libro no tiene hojas")
        if sheet and sheet in names:
            chosen = sheet
        elif sheet and len(names) != 1:
            raise StatementError(f"la hoja {sheet!r} no está en el libro (hojas: {', '.join(names)})")
        else:
            chosen = names[0]
        values = workbook.get_sheet_by_name(chosen).to_python(skip_empty_area=False)
    except StatementError:
        raise
    except Exception as exc:  # calamine raises CalamineError, ValueError, OSError... on hostile files
        raise StatementError(f"hoja de cálculo ilegible: {exc}") from exc
    return [(index + 1, [_cell(v) for v in row]) for index, row in enumerate(values)]


def _refuse_zip_bomb(data: bytes) -> None:
    """An xlsx is a zip: refuse one that would inflate far beyond any month of movements."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            inflated = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError, NotImplementedError, EOFError, OSError) as exc:
        raise StatementError(f"hoja de cálculo ilegible: {exc}") from exc
    if inflated > MAX_INFLATED_BYTES:
        raise StatementError(f"la hoja de cálculo se descomprime a {inflated // 2**20} MB, más de "
                             f"{MAX_INFLATED_BYTES // 2**20} MB")


def _column_number(letters: str) -> int:
    number = 0
    for letter in letters.upper():
        number = number * 26 + ord(letter) - ord("A") + 1
    return number


def _extent(reference: str) -> tuple[int, int] | None:
    """(row, column) of a reference such as 'XFD1048576' or '$B$7'; None when it is not one."""
    found = _CELL_REFERENCE.match(reference.strip())
    return (int(found.group(2)), _column_number(found.group(1))) if found else None


def _refuse_huge_sheets(data: bytes) -> None:
    """Every worksheet's declared dimension and the rows and cells it actually holds, read as a
    stream (entities off, elements freed as they pass) before the reader allocates anything.
    Checked once per file: auto-detection opens the same workbook for every spreadsheet format."""
    digest = hashlib.sha256(data).digest()
    if digest not in _CHECKED_SHEETS:
        try:
            _check_sheets(data)
            _CHECKED_SHEETS[digest] = None
        except StatementError as exc:
            _CHECKED_SHEETS[digest] = exc
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError) as exc:
            _CHECKED_SHEETS[digest] = StatementError(f"hoja de cálculo ilegible: {exc}")
    if _CHECKED_SHEETS[digest] is not None:
        raise _CHECKED_SHEETS[digest]


# sha256 of a workbook -> the reason it was refused (None: within the limits); one parse per process.
_CHECKED_SHEETS: dict[bytes, StatementError | None] = {}


def _check_sheets(data: bytes) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            name = info.filename.lower()
            if name.startswith("xl/worksheets/") and name.endswith(".xml"):
                with archive.open(info) as stream:
                    rows, columns = _sheet_extent(stream)
                if rows > MAX_SHEET_ROWS or columns > MAX_SHEET_COLUMNS or rows * columns > MAX_SHEET_CELLS:
                    raise StatementError(
                        f"la hoja {info.filename} abarca {rows} filas por {columns} columnas; el máximo es "
                        f"{MAX_SHEET_ROWS} filas, {MAX_SHEET_COLUMNS} columnas y {MAX_SHEET_CELLS} celdas")


def _sheet_extent(stream) -> tuple[int, int]:
    rows = columns = 0
    row_number = 0
    column_number = 0
    # Only these elements, in any namespace, reach Python: the scan stays in C for everything else.
    parser = lxml.etree.iterparse(stream, events=("start", "end"), tag=("{*}dimension", "{*}row", "{*}c"),
                                  resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False)
    try:
        for event, element in parser:
            tag = element.tag.rsplit("}", 1)[-1]
            if event == "end":
                if tag == "row":
                    element.clear()  # keep memory flat on a sheet of millions of cells
                    while element.getprevious() is not None:
                        del element.getparent()[0]
                continue
            if tag == "dimension":
                for part in (element.get("ref") or "").split(":"):
                    corner = _extent(part)
                    if corner:
                        rows, columns = max(rows, corner[0]), max(columns, corner[1])
            elif tag == "row":
                declared = element.get("r")
                row_number = int(declared) if declared and declared.isascii() and declared.isdigit() and \
                    len(declared) <= 8 else row_number + 1
                column_number = 0
                rows = max(rows, row_number)
            elif tag == "c":
                corner = _extent(element.get("r") or "")
                if corner:
                    row_number, column_number = max(row_number, corner[0]), corner[1]
                else:
                    column_number += 1
                rows, columns = max(rows, row_number), max(columns, column_number)
            if rows > MAX_SHEET_ROWS or columns > MAX_SHEET_COLUMNS:
                break  # already too large: no need to read the rest
    except lxml.etree.LxmlError as exc:
        raise StatementError(f"hoja de cálculo ilegible: {exc}") from exc
    return rows, columns


def _cell(value):
    if isinstance(value, str):
        return value[:MAX_CELL_CHARS]
    return value
