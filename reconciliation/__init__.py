"""Reconciliation of payment receipts against the business's own bank statement exports.

    from reconciliation import parse_statement, reconcile, Receipt
    statement = parse_statement(file_bytes)            # or format_id="banesco_qif"
    report = reconcile(receipts, [statement])          # report.results[receipt_id]["estado"]

Pure library: no database, no HTTP. The service stores statements and results and calls these.
"""
from typing import Any

from reconciliation.errors import FormatNotDetected, StatementError
from reconciliation.matching import AMBIGUO, CONCILIADO, ESTADOS, NO_ENCONTRADO, PENDIENTE, MatchSettings, Report, reconcile
from reconciliation.movement import CREDIT, DEBIT, Movement, Statement
from reconciliation.receipts import Receipt
from reconciliation.summary import daily_summary

__all__ = ["AMBIGUO", "AUTO", "CONCILIADO", "CREDIT", "DEBIT", "ESTADOS", "FormatNotDetected", "MatchSettings",
           "Movement", "NO_ENCONTRADO", "PENDIENTE", "Receipt", "Report", "Statement", "StatementError",
           "daily_summary", "parse_statement", "reconcile"]


def __getattr__(name: str) -> Any:
    # The parsers (lxml, calamine, mt940: ~15 MB resident) load with the first statement parsed:
    # the OCR worker matches receipts but never parses a statement.
    if name in ("AUTO", "parse_statement"):
        from reconciliation import formats  # noqa: PLC0415 - deliberate lazy import

        return getattr(formats, name)
    raise AttributeError(f"module 'reconciliation' has no attribute {name!r}")
