"""The whole way: receipt images -> real OCR and extraction -> reconciliation against a statement.

Receipt screenshots come from tools/receipt_generator.py; the statement credits the payments their
ground truth describes (tools/statement_generator.statement_for_receipts). Whatever OCR reads,
no receipt may end `conciliado` with another payment's credit; receipts read correctly must
end `conciliado` with their own.
"""
from __future__ import annotations

import dataclasses

import pytest

from extraction import extract_fields
from reconciliation import CONCILIADO, NO_ENCONTRADO, Receipt, parse_statement, reconcile
from tools.receipt_generator import generate_receipt
from tools.statement_generator import statement_for_receipts

SEEDS = range(100, 116)
MISSING = 3  # the last receipts get no credit: their money never arrived


def _payable(fields: dict) -> bool:
    return all(fields.get(k) for k in ("monto", "fecha", "referencia"))


@pytest.mark.slow
@pytest.mark.parametrize("format_id", ["bdv_online_xlsx", "banesco_qif"])
def test_receipt_images_reconcile_against_their_statement(engine, format_id):
    generated = [generate_receipt(seed) for seed in SEEDS]
    generated = [g for g in generated if _payable(g.fields)]
    assert len(generated) >= 10
    paid, unpaid = generated[:-MISSING], generated[-MISSING:]
    payments = [{"id": f"IMG{g.seed}", **g.fields} for g in paid]
    statement_data = statement_for_receipts(format_id, payments, seed=1)
    statement = parse_statement(statement_data.data)

    receipts = []
    for g in generated + [paid[0]]:  # the first paid receipt is submitted a second time
        ocr = engine.procesar_imagen(g.image_bytes, "ultra_rapido")
        fields = extract_fields(ocr)["extracted_fields"]
        receipt_id = f"IMG{g.seed}" if len(receipts) < len(generated) else "REUSED"
        # The statement is of the account the business chose; the receipt's destination bank
        # is not what this test is about.
        receipts.append((dataclasses.replace(Receipt.from_fields(receipt_id, fields), banco_destino=None), g))
    report = reconcile([r for r, _ in receipts], [statement])

    read_right = 0
    for receipt, g in receipts:
        result = report.results[receipt.id]
        expected = statement_data.expected.get(receipt.id)
        if result["estado"] == CONCILIADO:
            assert expected and result["movimiento"]["linea"] == expected["linea"], (receipt, result)
        ocr_right = all(str(getattr(receipt, k)) == g.fields[k] for k in ("monto", "fecha", "referencia"))
        if expected and ocr_right and receipt.id != "REUSED":
            read_right += 1
            assert result["estado"] == CONCILIADO, (receipt, g.fields, result)
    assert read_right >= len(paid) // 2, "OCR read too few receipts right for the test to mean anything"
    for g in unpaid:
        assert report.results[f"IMG{g.seed}"]["estado"] != CONCILIADO
    reused = report.results["REUSED"]
    if report.results[f"IMG{paid[0].seed}"]["estado"] == CONCILIADO:
        assert reused["estado"] == NO_ENCONTRADO and reused["reutilizacion"]["recibo"] == f"IMG{paid[0].seed}"
