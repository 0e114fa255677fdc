"""A corpus of hostile bank statement exports (issue 21, finding 2): each one small to send and
built here from nothing, never stored in git.

`CORPUS` maps a name to a function that returns the file's bytes; `write_xlsx` builds a minimal
workbook around any sheet XML, written a chunk at a time so that a bomb costs this process little.
"""
from __future__ import annotations

import io
import random
import zipfile
from collections.abc import Callable, Iterable

CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>')
ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="xl/workbook.xml"/></Relationships>')
WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<sheets><sheet name="Movimientos" sheetId="1" r:id="rId1"/></sheets></workbook>')
WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
    'Target="worksheets/sheet1.xml"/></Relationships>')
SHEET_OPEN = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
              '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">')


def write_xlsx(sheet_chunks: Iterable[str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", CONTENT_TYPES)
        archive.writestr("_rels/.rels", ROOT_RELS)
        archive.writestr("xl/workbook.xml", WORKBOOK)
        archive.writestr("xl/_rels/workbook.xml.rels", WORKBOOK_RELS)
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
            for chunk in sheet_chunks:
                sheet.write(chunk.encode("utf-8"))
    return buffer.getvalue()


def _sheet(dimension: str | None, cells: str) -> list[str]:
    declared = f'<dimension ref="{dimension}"/>' if dimension else ""
    return [SHEET_OPEN, declared, f"<sheetData>{cells}</sheetData></worksheet>"]


def far_corner(dimension: str | None, corner: str, row: int) -> bytes:
    """The finding's file: one cell at the far corner of a declared dimension (1.6 KB)."""
    return write_xlsx(_sheet(dimension, f'<row r="{row}"><c r="{corner}" t="inlineStr"><is><t>x</t></is></c></row>'))


def zip_bomb() -> bytes:
    """A sheet that inflates to 210 MB of spaces (about 200 KB deflated)."""
    def chunks():
        yield SHEET_OPEN + "<sheetData>"
        for _ in range(210):
            yield " " * 2**20
        yield "</sheetData></worksheet>"
    return write_xlsx(chunks())


def billion_laughs_sheet() -> bytes:
    entities = '<!ENTITY a0 "ha">' + "".join(f'<!ENTITY a{n} "{("&a" + str(n - 1) + ";") * 10}">' for n in range(1, 10))
    sheet = (f'<?xml version="1.0"?><!DOCTYPE worksheet [{entities}]>'
             '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
             '<row r="1"><c r="A1" t="inlineStr"><is><t>&a9;</t></is></c></row></sheetData></worksheet>')
    return write_xlsx([sheet])


def billion_laughs_html() -> bytes:
    entities = '<!ENTITY a0 "ha">' + "".join(f'<!ENTITY a{n} "{("&a" + str(n - 1) + ";") * 10}">' for n in range(1, 10))
    return (f'<?xml version="1.0"?><!DOCTYPE html [{entities}]><html><body><table><tr><td>&a9;</td></tr>'
            '</table></body></html>').encode()


def deep_xml_sheet() -> bytes:
    return write_xlsx([SHEET_OPEN, "<sheetData>", "<x>" * 100_000, "</x>" * 100_000, "</sheetData></worksheet>"])


def many_cells_without_references() -> bytes:
    """Cells without `r` attributes: the reader counts them, so the check must too (300k rows)."""
    def chunks():
        yield SHEET_OPEN + "<sheetData>"
        for _ in range(300):
            yield "<row><c><v>1</v></c></row>" * 1000
        yield "</sheetData></worksheet>"
    return write_xlsx(chunks())


def truncated_xlsx() -> bytes:
    whole = far_corner("A1:B2", "B2", 2)
    return whole[: len(whole) // 2]


def random_bytes() -> bytes:
    return random.Random(21).randbytes(2 * 2**20)


def garbage_xls() -> bytes:
    return b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + random.Random(7).randbytes(64 * 1024)


def one_huge_line() -> bytes:
    return b"Fecha;Referencia;Descripcion;Monto\n" + b"1" * (8 * 2**20) + b"\n"


def nul_text() -> bytes:
    return b"Fecha;Monto\n" + b"\x00" * 4096


CORPUS: dict[str, Callable[[], bytes]] = {
    "xfd_corner": lambda: far_corner("A1:XFD1048576", "XFD1048576", 1048576),
    "z_corner": lambda: far_corner("A1:Z1048576", "Z1048576", 1048576),
    "declared_only": lambda: far_corner("A1:XFD1048576", "A1", 1),
    "present_only": lambda: far_corner(None, "XFD1048576", 1048576),
    "wide_row": lambda: far_corner(None, "ZZ1", 1),
    "zip_bomb": zip_bomb,
    "billion_laughs_sheet": billion_laughs_sheet,
    "billion_laughs_html": billion_laughs_html,
    "deep_xml_sheet": deep_xml_sheet,
    "many_cells_without_references": many_cells_without_references,
    "truncated_xlsx": truncated_xlsx,
    "random_bytes": random_bytes,
    "garbage_xls": garbage_xls,
    "one_huge_line": one_huge_line,
    "nul_text": nul_text,
}
