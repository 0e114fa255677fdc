"""The words a person reads for the machine's names: field titles, review and reconciliation
states, and why a receipt needs review. The desk's script has the same words; the exports use
these (the API itself keeps its machine names)."""
from __future__ import annotations

import re
from typing import Any

FIELD_TITLES = {
    "monto": "Monto", "referencia": "Referencia", "telefono": "Teléfono", "cedula": "Cédula", "fecha": "Fecha",
    "banco_origen": "Banco origen", "banco_destino": "Banco destino", "concepto": "Concepto",
    "beneficiario": "Beneficiario", "cuenta_origen": "Cuenta origen", "cuenta_destino": "Cuenta destino",
    "tipo_transaccion": "Tipo de operación", "hora_operacion": "Hora", "identificador_fiscal": "RIF",
    "comprobante": "Número de comprobante", "canal_pago": "Canal",
}
REVIEW_NAMES = {"pendiente": "Pendiente", "aprobado": "Aprobado", "rechazado": "Rechazado"}
RECONCILIATION_NAMES = {"conciliado": "Conciliado", "ambiguo": "Ambiguo", "no_encontrado": "No encontrado",
                        "pendiente": "Pendiente"}
TRANSACTION_NAMES = {"pago_movil": "Pago móvil", "transferencia": "Transferencia"}
REUSE_NAMES = {"misma_imagen": "la misma imagen", "mismo_pago": "el mismo pago (referencia y monto)",
               "mismo_pago_sin_banco": "el mismo pago (sin banco en uno de los dos)"}
_LOW = re.compile(r"^confianza ([\d.]+)")


def review_reasons(document: dict[str, Any], duplicado_de: Any = None) -> list[str]:
    """Why the receipt needs review, in words (empty when nothing flags it)."""
    validation = document.get("validacion") or {}
    missing = list(validation.get("campos_faltantes") or [])
    reasons = [f"falta {FIELD_TITLES.get(name, name).lower()}" for name in missing]
    for warning in validation.get("advertencias") or []:
        name, _, rest = str(warning).partition(": ")
        if name in missing or name not in FIELD_TITLES:
            continue
        low = _LOW.match(rest)
        title = FIELD_TITLES[name].lower()
        reasons.append(f"{title} se leyó con poca seguridad ({round(float(low.group(1)) * 100)} %)" if low
                       else f"{title} no es válido ({rest})")
    if duplicado_de:
        reasons.append(f"es la misma imagen que el comprobante #{duplicado_de}")
    reuse = document.get("posible_reutilizacion") or {}
    if reuse and not duplicado_de:
        where = f"en el comprobante #{reuse['upload_id']}" if reuse.get("upload_id") else "en otra empresa"
        reasons.append(f"ya se presentó {REUSE_NAMES.get(reuse.get('reason'), 'este pago')} {where}")
    conciliacion = document.get("conciliacion") or {}
    if conciliacion.get("requiere_revision") and conciliacion.get("motivo"):
        reasons.append(f"conciliación: {conciliacion['motivo']}")
    return reasons


def matched_credit(document: dict[str, Any]) -> dict[str, Any]:
    """The bank credit the receipt was reconciled with ({} when none)."""
    conciliacion = document.get("conciliacion") or {}
    movement = conciliacion.get("movimiento") if conciliacion.get("estado") == "conciliado" else None
    return movement if isinstance(movement, dict) else {}
