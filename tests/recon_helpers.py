"""Shared by the reconciliation service tests: receipts recorded as the worker records them, a
statement posted, every receipt's state compared with what the generator expects."""
from __future__ import annotations

import hashlib
from collections import Counter
from datetime import timedelta
from typing import Any

from reconciliation import ESTADOS
from service.results import finish_upload

RECEIPT_FIELDS = ("monto", "fecha", "referencia", "telefono", "cedula", "banco_origen", "banco_destino")


def finish_receipt(rt: Any, tenant_id: int, name: str, fields: dict, requiere_revision: bool = False) -> int:
    """An upload of `tenant_id` recorded as processed with these fields through the worker's own
    finish path (service/results.finish_upload: reuse check, reconciliation); its upload id."""
    from database import Upload, utcnow

    with rt.db.session() as session:
        row = Upload(stored_name=name, original_name=name, sha256=hashlib.sha256(name.encode()).hexdigest(),
                     size_bytes=1, tenant_id=tenant_id, status="processing", claimed_by="w",
                     lease_expires_at=utcnow() + timedelta(minutes=5), attempts=1)
        session.add(row)
        session.commit()
    (rt.storage.dirs["inbox"] / name).write_bytes(b"x")
    document = {"processing_status": "success", "request_id": None, "filename": name,
                "validacion": {"requiere_revision": requiere_revision},
                "extracted_fields": {k: fields.get(k) for k in RECEIPT_FIELDS}}
    assert finish_upload(rt, "w", row, document)
    return row.id


def confusion(expected: dict[str, dict], obtained: dict[str, dict | None],
              statement_of: Any = None) -> tuple[Counter, list]:
    """(expected x obtained) counts, and the receipts `conciliado` with another credit than theirs.
    `statement_of(receipt id)` is the stored statement id its credit is in (None: don't check)."""
    table: Counter = Counter()
    wrong = []
    for receipt_id, want in expected.items():
        got = obtained[receipt_id] or {"estado": "ninguno"}
        table[(want["estado"], got["estado"])] += 1
        if got["estado"] == "conciliado":
            movement = got["movimiento"]
            same_statement = statement_of is None or movement.get("extracto") == statement_of(receipt_id)
            if movement["linea"] != want.get("linea") or not same_statement:
                wrong.append((receipt_id, want, got))
    return table, wrong


def format_confusion(table: Counter) -> str:
    states = [*ESTADOS, *sorted({got for _, got in table} - set(ESTADOS))]
    width = max(len(s) for s in states) + 2
    lines = ["expected \\ obtained".ljust(22) + "".join(s.rjust(width) for s in states)]
    for want in ESTADOS:
        lines.append(want.ljust(22) + "".join(str(table[(want, got)]).rjust(width) for got in states))
    return "\n".join(lines)


def off_diagonal(table: Counter) -> int:
    return sum(n for (want, got), n in table.items() if want != got)
