"""A tenant's learned rules: proposed from its staff's corrections, accepted or switched off by its
admins, applied by the worker to its later receipts of the same layout.

- `propose_from_corrections` runs after a correction commits (service/corrections.py): for each
  field given a value, extraction/learning.py looks for that value among the page's words and the
  label that would have found it. A new label becomes a `propuesta`; the same label taught again
  on a compatible layout adds to the rule's page labels and its count (`veces`), whatever its state:
  a switched-off rule stays off. Learning never fails a correction: an error is logged.
- `accept` / `switch_off` set the state and record who did it (the name api/learned_rules.py
  `who` gives: the one place a staff account's person would slot in) and when. Another tenant's rule is missing (RuleNotFound).
- `reread_with_active` re-reads the tenant's pending receipts when an admin asks on acceptance.
- `apply_to_document` is the worker's hook (service/batches.py): the tenant's active rules that
  match the page's layout fill what the shipped rules missed, or replace only a value of a shipped
  rule a correction proved wrong on that layout (the policy of extraction/learning.py). A tenant
  without active rules costs one indexed query per receipt; an error leaves the shipped document.

Nothing here touches the shipped rules or another tenant's rows.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from database import LearnedRuleRow, LearnedRuleState, iso, utcnow
from extraction.learning import LearnedRule, Lesson, apply_learned, label_form, learn_from_correction, merged, same_rule
from service.learned_reread import reread_pending
from service.runtime import Runtime

logger = logging.getLogger(__name__)

class RuleNotFound(LookupError):
    """No learned rule of that id in the tenant (another tenant's answers the same)."""


@dataclass
class Page:
    items: list[dict[str, Any]]
    last_id: int | None


def as_learned(row: LearnedRuleRow) -> LearnedRule:
    return LearnedRule(row.id, row.campo, row.etiqueta, row.posicion, row.banco, tuple(row.etiquetas_pagina or ()),
                       tuple(row.reglas_corregidas or ()))


def view(row: LearnedRuleRow) -> dict[str, Any]:
    return {
        "id": row.id, "estado": row.estado, "campo": row.campo, "etiqueta": row.etiqueta, "posicion": row.posicion,
        "banco": row.banco, "etiquetas_pagina": list(row.etiquetas_pagina or []),
        "reglas_corregidas": list(row.reglas_corregidas or []), "upload_id": row.upload_id,
        "valor_ejemplo": row.valor_ejemplo, "veces": row.veces,
        "propuesta_por": row.propuesta_por, "propuesta_en": iso(row.propuesta_en),
        "aceptada_por": row.aceptada_por, "aceptada_en": iso(row.aceptada_en),
        "desactivada_por": row.desactivada_por, "desactivada_en": iso(row.desactivada_en),
    }


# ------------------------------------------------------------------------------------------------
# Proposals
# ------------------------------------------------------------------------------------------------
def _store_lesson(session: Session, tenant_id: int, upload_id: int, lesson: Lesson, actor: str) -> LearnedRuleRow:
    key = lesson.as_rule().key()
    rows = session.scalars(select(LearnedRuleRow).where(LearnedRuleRow.tenant_id == tenant_id,
                                                        LearnedRuleRow.clave == key)
                           .order_by(LearnedRuleRow.id).with_for_update()).all()
    for row in rows:
        rule = as_learned(row)
        if same_rule(rule, lesson):
            taught = merged(rule, lesson)
            row.etiquetas_pagina, row.reglas_corregidas = list(taught.etiquetas_pagina), list(taught.reglas_corregidas)
            row.banco = taught.banco
            row.veces += 1
            return row
    row = LearnedRuleRow(tenant_id=tenant_id, clave=key, campo=lesson.campo, etiqueta=lesson.etiqueta[:200],
                         posicion=lesson.posicion, banco=lesson.banco, etiquetas_pagina=list(lesson.etiquetas_pagina),
                         reglas_corregidas=list(lesson.reglas_corregidas), estado=LearnedRuleState.PROPOSED,
                         upload_id=upload_id, valor_ejemplo=lesson.valor, veces=1, propuesta_por=actor,
                         propuesta_en=utcnow())
    session.add(row)
    return row


def propose_from_corrections(rt: Runtime, tenant_id: int, upload_id: int, document: dict[str, Any],
                             changed: list[tuple[str, str | None, str | None]], actor: str) -> list[int]:
    """Proposals from the fields a correction set on the page of `document` (the result before
    it). Returns the ids of the rules proposed or taught again; never raises."""
    try:
        wanted = [(field, new) for field, _old, new in changed if new is not None]
        if not wanted:
            return []
        with rt.db.session() as session:
            known = all_rules(session, tenant_id)
        # The page is read outside any transaction: it takes tens of milliseconds per field.
        lessons = [lesson for field, new in wanted
                   if (lesson := learn_from_correction(document, field, new, learned=known)) is not None]
        if not lessons:
            return []
        with rt.db.session() as session:
            rows = [_store_lesson(session, tenant_id, upload_id, lesson, actor) for lesson in lessons]
            session.commit()
            return [row.id for row in rows]
    except Exception:  # noqa: BLE001 - a proposal is a bonus; the correction itself is committed
        logger.exception("Learning from the correction of upload %s failed", upload_id)
        return []


# ------------------------------------------------------------------------------------------------
# Listing, accepting, switching off
# ------------------------------------------------------------------------------------------------
def list_rules(rt: Runtime, tenant_id: int, estado: str | None, limit: int, after_id: int) -> Page:
    query = select(LearnedRuleRow).where(LearnedRuleRow.tenant_id == tenant_id, LearnedRuleRow.id > after_id)
    if estado is not None:
        query = query.where(LearnedRuleRow.estado == estado)
    with rt.db.session() as session:
        rows = session.scalars(query.order_by(LearnedRuleRow.id).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    return Page([view(r) for r in rows], rows[-1].id if more and rows else None)


def get_rule(rt: Runtime, tenant_id: int, rule_id: int) -> dict[str, Any]:
    with rt.db.session() as session:
        row = session.scalar(select(LearnedRuleRow).where(LearnedRuleRow.id == rule_id,
                                                          LearnedRuleRow.tenant_id == tenant_id))
        if row is None:
            raise RuleNotFound(rule_id)
        return view(row)


def _set_state(rt: Runtime, tenant_id: int, rule_id: int, state: str, actor: str) -> dict[str, Any]:
    with rt.db.session() as session:
        row = session.scalar(select(LearnedRuleRow).where(LearnedRuleRow.id == rule_id,
                                                          LearnedRuleRow.tenant_id == tenant_id).with_for_update())
        if row is None:
            raise RuleNotFound(rule_id)
        if row.estado != state:
            row.estado = state
            if state == LearnedRuleState.ACTIVE:
                row.aceptada_por, row.aceptada_en = actor, utcnow()
            else:
                row.desactivada_por, row.desactivada_en = actor, utcnow()
        session.commit()
        return view(row)


def accept(rt: Runtime, tenant_id: int, rule_id: int, actor: str) -> dict[str, Any]:
    """The rule applies from now on to the tenant's receipts of its layout."""
    return _set_state(rt, tenant_id, rule_id, LearnedRuleState.ACTIVE, actor)


def switch_off(rt: Runtime, tenant_id: int, rule_id: int, actor: str) -> dict[str, Any]:
    """The rule no longer applies (values it already gave stay, marked with its id)."""
    return _set_state(rt, tenant_id, rule_id, LearnedRuleState.OFF, actor)


# ------------------------------------------------------------------------------------------------
# Applying
# ------------------------------------------------------------------------------------------------
def all_rules(session: Session, tenant_id: int) -> list[LearnedRule]:
    """Every rule of the tenant (their labels are labels of its layouts, whatever their state)."""
    rows = session.scalars(select(LearnedRuleRow).where(LearnedRuleRow.tenant_id == tenant_id)
                           .order_by(LearnedRuleRow.id)).all()
    return [as_learned(row) for row in rows]


def active_rules(session: Session, tenant_id: int) -> list[LearnedRule]:
    rows = session.scalars(select(LearnedRuleRow).where(LearnedRuleRow.tenant_id == tenant_id,
                                                        LearnedRuleRow.estado == LearnedRuleState.ACTIVE)
                           .order_by(LearnedRuleRow.id)).all()
    return [as_learned(row) for row in rows]


def reread_with_active(rt: Runtime, tenant_id: int) -> int:
    """Re-read the tenant's pending receipts with its active rules (service/learned_reread.py)."""
    with rt.db.session() as session:
        rules = active_rules(session, tenant_id)
    return reread_pending(rt, tenant_id, rules)


def apply_to_document(rt: Runtime, tenant_id: int, document: dict[str, Any]) -> dict[str, Any]:
    """The worker's document with the tenant's matching active rules applied (or as it was)."""
    if not isinstance(document, dict) or document.get("processing_status") != "success":
        return document
    with rt.db.session() as session:
        rules = active_rules(session, tenant_id)
    if not rules:
        return document
    try:
        return apply_learned(document, rules) or document
    except Exception:  # noqa: BLE001 - the shipped reading is still a reading
        logger.exception("Applying the learned rules of tenant %s failed", tenant_id)
        return document


__all__ = ["LearnedRuleState", "Page", "RuleNotFound", "accept", "active_rules", "apply_to_document", "get_rule",
           "label_form", "list_rules", "propose_from_corrections", "reread_with_active", "switch_off"]
