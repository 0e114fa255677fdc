"""Matching receipts against statements: generated scenarios per format, and the rules one by one."""
from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal

import pytest

from reconciliation import AMBIGUO, CONCILIADO, NO_ENCONTRADO, PENDIENTE, MatchSettings, Receipt, daily_summary, parse_statement, reconcile
from reconciliation.spec import load_specs
from tools.statement_generator import generate_statement

FORMATS = sorted(load_specs())


def receipts_of(generated) -> list[Receipt]:
    return [Receipt.from_fields(r["id"], r) for r in generated.receipts]


@pytest.fixture(scope="module", params=FORMATS)
def scenario(request):
    generated = generate_statement(request.param, seed=0, receipts=200)
    statement = parse_statement(generated.data)
    receipts = receipts_of(generated)
    return generated, statement, receipts, reconcile(receipts, [statement])


def test_every_receipt_in_its_expected_state(scenario):
    generated, _, receipts, report = scenario
    assert len(receipts) == 200
    confusion = Counter((generated.expected[r.id]["estado"], report.results[r.id]["estado"]) for r in receipts)
    wrong = {pair: n for pair, n in confusion.items() if pair[0] != pair[1]}
    assert not wrong, wrong
    expected_states = Counter(e["estado"] for e in generated.expected.values())
    assert all(expected_states[s] > 0 for s in (CONCILIADO, AMBIGUO, NO_ENCONTRADO, PENDIENTE))


def test_no_receipt_is_conciliado_with_the_wrong_movement(scenario):
    generated, _, receipts, report = scenario
    for receipt in receipts:
        result = report.results[receipt.id]
        if result["estado"] == CONCILIADO:
            assert result["movimiento"]["linea"] == generated.expected[receipt.id]["linea"], receipt
            assert result["movimiento"]["monto"] == str(receipt.monto)
            assert not result["movimiento"]["comision"] and result["movimiento"]["tipo"] == "credito"
            assert result["requiere_revision"] is False and "monto" in result["coincidencias"]


def test_one_credit_pays_one_receipt_and_reuse_is_flagged(scenario):
    generated, _, receipts, report = scenario
    taken = Counter(r["movimiento"]["huella"] for r in report.results.values() if r["estado"] == CONCILIADO)
    assert max(taken.values()) == 1
    reused = [r for r in receipts if "reutilizacion" in report.results[r.id]]
    assert len(reused) == 10
    by_id = {r.id: r for r in receipts}
    for receipt in reused:
        flag = report.results[receipt.id]
        original = by_id[flag["reutilizacion"]["recibo"]]
        assert (original.referencia, original.monto) == (receipt.referencia, receipt.monto)
        assert report.results[original.id]["estado"] == CONCILIADO
        assert flag["requiere_revision"] is True


def test_ambiguous_receipts_list_every_candidate(scenario):
    _, _, receipts, report = scenario
    for receipt in receipts:
        result = report.results[receipt.id]
        if result["estado"] == AMBIGUO:
            assert result["requiere_revision"] is True and len(result["candidatos"]) == 2
            assert all(c["movimiento"]["monto"] == str(receipt.monto) for c in result["candidatos"])


def test_unmatched_credits_are_the_extra_and_the_ambiguous_ones(scenario):
    generated, statement, _, report = scenario
    unmatched = {m.line for m in report.unmatched_credits}
    assert set(generated.extra_credit_lines) <= unmatched
    assert not unmatched & {e["linea"] for e in generated.expected.values() if e["linea"]}
    credits = [m for m in statement.movements if m.is_credit and not m.is_commission]
    assert len(unmatched) + len(report.matched) == len(credits)


def test_daily_summary_adds_up(scenario):
    _, statement, receipts, report = scenario
    days = daily_summary(report, receipts, [statement])
    credits = [m for m in statement.movements if m.is_credit and not m.is_commission]
    assert sum(d["creditos_recibidos"] for d in days) == len(credits)
    assert sum(Decimal(d["monto_recibido"]) for d in days) == sum(m.amount for m in credits)
    assert sum(d["creditos_conciliados"] for d in days) == len(report.matched)
    assert sum(d["creditos_sin_recibo"] for d in days) == len(report.unmatched_credits)
    states = Counter(r["estado"] for r in report.results.values())
    assert sum(d["recibos_pendientes"] for d in days) == states[PENDIENTE]
    assert sum(d["recibos_ambiguos"] for d in days) == states[AMBIGUO]
    assert [d["fecha"] for d in days] == sorted(d["fecha"] for d in days)


def test_idempotent_and_overlapping_uploads_change_nothing(scenario):
    generated, statement, receipts, report = scenario
    assert reconcile(receipts, [statement]).results == report.results
    again = parse_statement(generated.data)
    assert reconcile(receipts, [statement, again]).results == report.results


def test_bdv_internal_references_are_matched_by_payer_and_say_so():
    generated = generate_statement("bdv_online_xlsx", seed=0, receipts=200)
    report = reconcile(receipts_of(generated), [parse_statement(generated.data)])
    internal = [r for r in report.results.values()
                if r["estado"] == CONCILIADO and r["movimiento"]["referencia"].startswith("06772")]
    assert internal
    for result in internal:
        assert result["metodo"] == "bdv_interno_monto_fecha_pagador"
        assert "cedula_pagador" in result["coincidencias"]


def test_without_any_statement_everything_is_pending():
    generated = generate_statement("bnc_tsv", seed=1, receipts=40)
    report = reconcile(receipts_of(generated), [])
    assert {r["estado"] for r in report.results.values()} == {PENDIENTE}


# -- the rules one at a time, on a small statement ------------------------------------------------
@pytest.fixture(scope="module")
def banesco():
    generated = generate_statement("banesco_online", seed=5, receipts=40)
    return generated, parse_statement(generated.data)


def _first_credit(statement):
    return next(m for m in statement.movements if m.is_credit and m.reference)


def test_commission_lines_never_match(banesco):
    _, statement = banesco
    commission = next(m for m in statement.movements if m.is_commission and m.reference)
    receipt = Receipt("X", commission.amount, commission.date, referencia=commission.reference)
    assert reconcile([receipt], [statement]).results["X"]["estado"] == NO_ENCONTRADO
    as_credit = dataclasses.replace(commission, direction="credito")  # even if it were a credit
    statement = dataclasses.replace(statement, movements=(*statement.movements, as_credit))
    assert reconcile([receipt], [statement]).results["X"]["estado"] == NO_ENCONTRADO


def test_amount_and_date_alone_are_never_proof(banesco):
    _, statement = banesco
    credit = _first_credit(statement)
    receipt = Receipt("X", credit.amount, credit.date)  # OCR lost the reference, no payer data
    result = reconcile([receipt], [statement]).results["X"]
    assert result["estado"] == AMBIGUO and result["requiere_revision"]
    assert [c["metodo"] for c in result["candidatos"]] == ["solo_monto_fecha"]


def test_amount_must_be_exactly_equal(banesco):
    _, statement = banesco
    credit = _first_credit(statement)
    receipt = Receipt("X", credit.amount + Decimal("0.01"), credit.date, referencia=credit.reference)
    assert reconcile([receipt], [statement]).results["X"]["estado"] == NO_ENCONTRADO


def test_a_different_reference_is_a_different_payment(banesco):
    _, statement = banesco
    credit = _first_credit(statement)
    other = str(int(credit.reference) + 1).zfill(len(credit.reference))
    receipt = Receipt("X", credit.amount, credit.date, referencia=other)
    assert reconcile([receipt], [statement]).results["X"]["estado"] == NO_ENCONTRADO


def test_reference_by_suffix_and_date_window(banesco):
    _, statement = banesco
    credit = _first_credit(statement)
    longer = "9" + credit.reference  # the receipt prints one digit more than the statement
    later = credit.date - timedelta(days=2)
    receipt = Receipt("X", credit.amount, credit.date, referencia=longer)
    result = reconcile([receipt], [statement]).results["X"]
    assert result["estado"] == CONCILIADO and result["metodo"] == "referencia_sufijo"
    assert f"referencia_sufijo_{len(credit.reference)}" in result["coincidencias"]
    early = Receipt("Y", credit.amount, later, referencia=longer)
    assert reconcile([early], [statement]).results["Y"]["estado"] != CONCILIADO
    wide = reconcile([early], [statement], MatchSettings(date_window_days=2)).results["Y"]
    assert wide["estado"] == CONCILIADO and wide["movimiento"]["huella"] == credit.fingerprint


def test_too_short_a_suffix_is_no_match(banesco):
    _, statement = banesco
    credit = _first_credit(statement)
    receipt = Receipt("X", credit.amount, credit.date, referencia=credit.reference[-7:])
    assert reconcile([receipt], [statement]).results["X"]["estado"] != CONCILIADO


def test_two_different_receipts_claiming_one_credit_are_both_ambiguous(banesco):
    _, statement = banesco
    credit = _first_credit(statement)
    one = Receipt("A", credit.amount, credit.date, referencia=credit.reference[-9:])
    two = Receipt("B", credit.amount, credit.date, referencia=credit.reference[-8:])
    results = reconcile([one, two], [statement]).results
    assert results["A"]["estado"] == results["B"]["estado"] == AMBIGUO


def test_the_stronger_claim_keeps_the_credit_whatever_the_order(banesco):
    _, statement = banesco
    credit = _first_credit(statement)
    exact = Receipt("EXACT", credit.amount, credit.date, referencia=credit.reference)
    suffix = Receipt("SUFFIX", credit.amount, credit.date, referencia=credit.reference[-8:])
    for order in ([exact, suffix], [suffix, exact]):
        results = reconcile(order, [statement]).results
        assert results["EXACT"]["estado"] == CONCILIADO
        assert results["SUFFIX"]["reutilizacion"]["recibo"] == "EXACT"


def test_statement_of_another_bank_does_not_cover_the_receipt(banesco):
    _, statement = banesco
    credit = _first_credit(statement)
    receipt = Receipt("X", credit.amount, credit.date, referencia=credit.reference, banco_destino="Banco Mercantil")
    assert reconcile([receipt], [statement]).results["X"]["estado"] == PENDIENTE
    mine = dataclasses.replace(receipt, banco_destino="Banesco")
    assert reconcile([mine], [statement]).results["X"]["estado"] == CONCILIADO


def test_receipt_without_amount_or_date_needs_review(banesco):
    _, statement = banesco
    result = reconcile([Receipt("X", None, date(2025, 3, 1), referencia="123")], [statement]).results["X"]
    assert result["estado"] == PENDIENTE and result["requiere_revision"] is True


def test_receipt_from_extracted_fields():
    fields = {"monto": "1136.52", "fecha": "2025-03-05", "referencia": "004512398761", "telefono": "04141234567",
              "cedula": "V-12345678", "banco_origen": "Banesco", "banco_destino": None, "concepto": "x"}
    receipt = Receipt.from_fields(17, fields)
    assert receipt == Receipt("17", Decimal("1136.52"), date(2025, 3, 5), "004512398761", "04141234567",
                              "V-12345678", "Banesco", None)
    broken = Receipt.from_fields("9", {"monto": "abc", "fecha": "05/03/2025"})
    assert broken.monto is None and broken.fecha is None
    for hostile in ("NaN", "Infinity", "-5.00", "0", "1.001", "1e400"):
        assert Receipt.from_fields("h", {"monto": hostile}).monto is None
    assert Receipt.from_fields("n", {"referencia": 123456789, "cedula": "V" * 10_000}).referencia == "123456789"


def test_receipt_ids_must_be_unique(banesco):
    _, statement = banesco
    with pytest.raises(ValueError):
        reconcile([Receipt("X", None, None), Receipt("X", None, None)], [statement])


def test_two_receipts_without_reference_for_one_payer_credit_are_both_ambiguous():
    generated = generate_statement("provincial_online", seed=3, receipts=40)
    statement = parse_statement(generated.data)
    credit = next(m for m in statement.movements if m.is_credit and m.payer_phone)
    one = Receipt("A", credit.amount, credit.date, telefono=credit.payer_phone)
    two = Receipt("B", credit.amount, credit.date, telefono=credit.payer_phone)
    alone = reconcile([one], [statement]).results["A"]
    assert alone["estado"] == CONCILIADO and alone["metodo"] == "monto_fecha_pagador"
    results = reconcile([one, two], [statement]).results
    assert results["A"]["estado"] == results["B"]["estado"] == AMBIGUO
