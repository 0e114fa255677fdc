"""Rules learned from the tenant's corrections (service/learned_rules.py): listed for its staff,
accepted or switched off by its admins.

    GET  /learned_rules                      ?estado=propuesta|activa|desactivada&limit=&cursor=  (id order)
    GET  /learned_rules/<id>
    POST /learned_rules/<id>/accept          (admin) the rule applies to later receipts of its layout;
                                             {"releer_pendientes": true} re-reads the pending ones too
    POST /learned_rules/<id>/switch_off      (admin) it no longer applies

Another tenant's rule answers 404 exactly as a missing one.
"""
from __future__ import annotations

from typing import Any, Callable

from flask import Blueprint, Response, g, request

from api import browser_session
from api.auth import is_admin
from api.errors import ApiError, ok
from api.inputs import bool_field, cursor_arg, cursor_for, json_body, limit_arg, runtime, tenant_id
from api.openapi import endpoint
from api.schemas_learned import AcceptBody, LearnedRuleOut, LearnedRulesOut, LearnedRulesQuery
from database import LearnedRuleState, StaffRole
from service import learned_rules
from service.access import Principal
from service.corrections import actor_name
from service.runtime import Runtime

blueprint = Blueprint("learned_rules", __name__)

MAX_ID = 2**31 - 1
NOT_FOUND = "not_found: no learned rule of this id in the tenant (another tenant's is missing too)"


def who(rt: Runtime, principal: Principal | None) -> str:
    """The name recorded for who accepted or switched off a rule: the principal's display name (a
    staff account's person slots in here); today the key's name, as corrections record it."""
    return actor_name(rt, principal)


FORBIDDEN = "forbidden: neither an admin key nor the tenant's team admin account"


def _require_rule_admin() -> None:
    """Learned rules are the tenant admins' to decide: an admin key, or a person signed in to the desk
    with the tenant's admin account (a staff principal is otherwise a client)."""
    staff = browser_session.signed_in_staff()
    if is_admin() or (staff is not None and staff.staff_role == StaffRole.ADMIN):
        return
    raise ApiError(403, "forbidden", "Accepting or switching off a learned rule needs an admin key or a team admin account")


def _rule_id(rule_id: int) -> int:
    if rule_id > MAX_ID:
        raise _not_found(rule_id)
    return rule_id


def _not_found(rule_id: int) -> ApiError:
    return ApiError(404, "not_found", f"No learned rule {rule_id}")


@blueprint.get("/learned_rules")
@endpoint("The tenant's learned rules (proposed, active, switched off), in id order", query=LearnedRulesQuery,
          ok=LearnedRulesOut)
def list_learned() -> Response:
    estado = request.args.get("estado")
    if estado is not None and estado not in LearnedRuleState.ALL:
        raise ApiError(400, "invalid_parameter", f"estado must be one of {', '.join(LearnedRuleState.ALL)}",
                       details={"field": "estado"})
    page = learned_rules.list_rules(runtime(), tenant_id(), estado, limit_arg(), cursor_arg())
    return ok({"count": len(page.items), "items": page.items, "next_cursor": cursor_for(page.last_id)})


@blueprint.get("/learned_rules/<int:rule_id>")
@endpoint("One learned rule of the tenant", ok=LearnedRuleOut, errors={404: NOT_FOUND})
def get_learned(rule_id: int) -> Response:
    try:
        return ok({"regla": learned_rules.get_rule(runtime(), tenant_id(), _rule_id(rule_id))})
    except learned_rules.RuleNotFound:
        raise _not_found(rule_id) from None


def _change(rule_id: int, action: Callable[[Runtime, int, int, str], dict[str, Any]]) -> Response:
    rt = runtime()
    try:
        return ok({"regla": action(rt, tenant_id(), _rule_id(rule_id), who(rt, g.get("principal")))})
    except learned_rules.RuleNotFound:
        raise _not_found(rule_id) from None


@blueprint.post("/learned_rules/<int:rule_id>/accept")
@endpoint("Accept a learned rule: it applies to the tenant's later receipts of its layout (records who); "
          "releer_pendientes re-reads its pending, uncorrected receipts with the active rules",
          json=AcceptBody, ok=LearnedRuleOut, errors={403: FORBIDDEN, 404: NOT_FOUND})
def accept_learned(rule_id: int) -> Response:
    _require_rule_admin()
    reread = bool_field(json_body(), "releer_pendientes", False)
    rt = runtime()
    try:
        rule = learned_rules.accept(rt, tenant_id(), _rule_id(rule_id), who(rt, g.get("principal")))
    except learned_rules.RuleNotFound:
        raise _not_found(rule_id) from None
    answer = {"regla": rule}
    if reread:
        answer["releidos"] = learned_rules.reread_with_active(rt, tenant_id())
    return ok(answer)


@blueprint.post("/learned_rules/<int:rule_id>/switch_off")
@endpoint("Switch a learned rule off: it no longer applies (records who)", ok=LearnedRuleOut,
          errors={403: FORBIDDEN, 404: NOT_FOUND})
def switch_off_learned(rule_id: int) -> Response:
    _require_rule_admin()
    return _change(rule_id, learned_rules.switch_off)
