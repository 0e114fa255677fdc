"""Every supported statement format, auto-detection, and the one entry point to parse a file."""
from __future__ import annotations

import os
from types import ModuleType

from reconciliation import banesco_qif, bdv_fixed, mercantil_mt940, provincial_netcash, table_format
from reconciliation.errors import FormatNotDetected, StatementError
from reconciliation.movement import Statement
from reconciliation.spec import FormatSpec, load_specs

READER_MODULES: dict[str, ModuleType] = {
    "table": table_format,
    "bdv_fixed": bdv_fixed,
    "banesco_qif": banesco_qif,
    "mercantil_mt940": mercantil_mt940,
    "provincial_netcash": provincial_netcash,
}
AUTO = "auto"


def candidates(data: bytes, specs: dict[str, FormatSpec]) -> list[str]:
    """Ids of the formats whose layout this file fits."""
    return sorted(spec.id for spec in specs.values() if _fits(spec, data))


def _fits(spec: FormatSpec, data: bytes) -> bool:
    try:
        return READER_MODULES[spec.reader].fits(spec, data)
    except StatementError:  # e.g. a binary spreadsheet offered to a text format
        return False


def parse_statement(data: bytes, format_id: str = AUTO,
                    formats_dir: str | os.PathLike | None = None) -> Statement:
    """All the movements of an export, or StatementError naming the line; never part of a file."""
    specs = load_specs(formats_dir)
    if not data:
        raise StatementError("el archivo está vacío")
    if format_id == AUTO:
        fitting = candidates(data, specs)
        if len(fitting) != 1:
            raise FormatNotDetected(fitting)
        format_id = fitting[0]
    spec = specs.get(format_id)
    if spec is None:
        raise StatementError(f"formato desconocido {format_id!r}; conocidos: {', '.join(sorted(specs))}")
    try:
        return READER_MODULES[spec.reader].parse(spec, data)
    except StatementError as exc:
        if exc.format_id is None:  # raised below the format's reader (container, decoding)
            raise StatementError(exc.reason, exc.line, spec.id) from exc
        raise
