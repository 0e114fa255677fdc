"""A bank export format as data: one JSON file per format in config/statements/.

Every format, table or not, declares its bank, where it is exported from, how much of a receipt
reference its statement prints, which references are the bank's own internal numbers, and what
a commission line looks like. Table formats also declare their columns (see table_format.py).
`_shared.json` holds what every format has in common (commission wording).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from reconciliation.errors import FormatConfigError

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "config" / "statements"
READERS = ("table", "bdv_fixed", "banesco_qif", "mercantil_mt940", "provincial_netcash")
ROW_ORDERS = ("oldest_first", "newest_first")
EVIDENCE = ("muestra_publica", "descripcion_publica")  # an anonymized real export / other parsers only


@dataclass(frozen=True)
class FormatSpec:
    id: str
    bank_code: str
    title: str
    reader: str
    menu: str | None  # the online-banking menu the export comes from, when known
    evidence: str  # "muestra_publica" (an anonymized real file) or "descripcion_publica" (other parsers)
    source: str
    reference_suffix_length: int
    internal_reference_prefixes: tuple[str, ...]
    commission_patterns: tuple[re.Pattern, ...]
    row_order: str
    table: dict | None

    def is_commission(self, description: str) -> bool:
        return any(p.search(description) for p in self.commission_patterns)


def load_specs(directory: str | os.PathLike | None = None) -> dict[str, FormatSpec]:
    folder = Path(directory) if directory else DEFAULT_DIR
    shared_path = folder / "_shared.json"
    shared = _read_json(shared_path) if shared_path.exists() else {}
    specs = {}
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith("_"):
            continue
        spec = _spec_from_dict(_read_json(path), shared, path.name)
        if spec.id in specs:
            raise FormatConfigError(f"{path.name}: format id {spec.id!r} declared twice")
        specs[spec.id] = spec
    if not specs:
        raise FormatConfigError(f"no statement formats in {folder}")
    return specs


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FormatConfigError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise FormatConfigError(f"{path}: expected an object")
    return data


def _spec_from_dict(data: dict, shared: dict, source: str) -> FormatSpec:
    def need(key: str, kind: type):
        value = data.get(key)
        if not isinstance(value, kind):
            raise FormatConfigError(f"{source}: '{key}' must be a {kind.__name__}")
        return value

    reader = need("reader", str)
    if reader not in READERS:
        raise FormatConfigError(f"{source}: reader {reader!r} is not one of {', '.join(READERS)}")
    bank_code = need("bank_code", str)
    if not re.fullmatch(r"\d{4}", bank_code):
        raise FormatConfigError(f"{source}: bank_code must be 4 digits")
    row_order = data.get("row_order", "oldest_first")
    if row_order not in ROW_ORDERS:
        raise FormatConfigError(f"{source}: row_order must be one of {', '.join(ROW_ORDERS)}")
    if data.get("evidence") not in EVIDENCE:
        raise FormatConfigError(f"{source}: evidence must be one of {', '.join(EVIDENCE)}")
    suffix = need("reference_suffix_length", int)
    if not 4 <= suffix <= 20:
        raise FormatConfigError(f"{source}: reference_suffix_length must be 4..20")
    patterns = [*shared.get("commission_patterns", []), *data.get("commission_patterns", [])]
    try:
        compiled = tuple(re.compile(p, re.IGNORECASE) for p in patterns)
    except (re.error, TypeError) as exc:
        raise FormatConfigError(f"{source}: bad commission pattern: {exc}") from exc
    table = data.get("table")
    if (reader == "table") != isinstance(table, dict):
        raise FormatConfigError(f"{source}: a 'table' section is needed exactly when reader is 'table'")
    return FormatSpec(
        id=need("id", str), bank_code=bank_code, title=need("title", str), reader=reader,
        menu=data.get("menu"), evidence=need("evidence", str), source=need("source", str),
        reference_suffix_length=suffix,
        internal_reference_prefixes=tuple(data.get("internal_reference_prefixes", [])),
        commission_patterns=compiled, row_order=row_order, table=table,
    )
