"""Per-day totals of a reconciliation: money received, matched, and receipts still open."""
from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from reconciliation.matching import AMBIGUO, NO_ENCONTRADO, PENDIENTE, Report
from reconciliation.movement import Statement
from reconciliation.receipts import Receipt


def daily_summary(report: Report, receipts: list[Receipt], statements: list[Statement]) -> list[dict]:
    days: dict[str, dict] = defaultdict(lambda: {
        "creditos_recibidos": 0, "monto_recibido": Decimal("0.00"),
        "creditos_conciliados": 0, "monto_conciliado": Decimal("0.00"),
        "creditos_sin_recibo": 0, "monto_sin_recibo": Decimal("0.00"),
        "recibos_pendientes": 0, "recibos_no_encontrados": 0, "recibos_ambiguos": 0,
    })
    seen = set()
    for statement in statements:
        for movement in statement.movements:
            if not movement.is_credit or movement.is_commission or movement.fingerprint in seen:
                continue
            seen.add(movement.fingerprint)
            day = days[movement.date.isoformat()]
            day["creditos_recibidos"] += 1
            day["monto_recibido"] += movement.amount
            key = "conciliados" if movement.fingerprint in report.matched else "sin_recibo"
            day[f"creditos_{key}"] += 1
            day["monto_conciliado" if key == "conciliados" else "monto_sin_recibo"] += movement.amount
    counters = {PENDIENTE: "recibos_pendientes", NO_ENCONTRADO: "recibos_no_encontrados", AMBIGUO: "recibos_ambiguos"}
    for receipt in receipts:
        counter = counters.get(report.results[receipt.id]["estado"])
        if counter and receipt.fecha:
            days[receipt.fecha.isoformat()][counter] += 1
    return [{"fecha": day, **{k: (str(v) if isinstance(v, Decimal) else v) for k, v in values.items()}}
            for day, values in sorted(days.items())]
