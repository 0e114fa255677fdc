"""Bytes to rows of cells for the table formats: delimited text, HTML tables saved as .xls,
and real spreadsheets (xlsx and xls, read by python-calamine).

Every row keeps the 1-based line (text, HTML) or row number (spreadsheet) it came from, so an
error can point at it.
"""
from __future__ import annotations

import csv
import io
import re
import zipfile

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


def _cell(value):
    if isinstance(value, str):
        return value[:MAX_CELL_CHARS]
    return value
