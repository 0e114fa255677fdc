"""Webhooks: the tenant's configuration (admin), its deliveries and resending one."""
from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from api.errors import ApiError, ok
from api.inputs import cursor_arg, cursor_for, json_body, limit_arg, runtime, tenant_id
from api.openapi import endpoint
from api.schemas_webhooks import DeliveriesOut, DeliveryOut, DeliveryQuery, WebhookConfigBody, WebhookConfigSaved, WebhookConfigsOut
from database import DeliveryState
from service.webhook_secrets import SecretUnavailable
from service.webhook_targets import TargetRefused
from service.webhooks import NotResendable, config_view, list_deliveries, resend, save_config, tenant_configs

blueprint = Blueprint("webhooks", __name__)
CONFIG_FIELDS = {"url", "allowed_hosts", "rotate_secret", "api_key_id"}


def _configs() -> dict[str, Any]:
    configs = tenant_configs(runtime().db, tenant_id())
    return {"config": config_view(next((c for c in configs if c.api_key_id is None), None)),
            "keys": [config_view(c) for c in configs if c.api_key_id is not None]}


@blueprint.get("/webhooks/config")
@endpoint("The tenant's webhook configuration and its keys' (never the secrets)", ok=WebhookConfigsOut, admin=True)
def get_config() -> Response:
    return ok(_configs())


@blueprint.put("/webhooks/config")
@endpoint("Set the callback URL, allowed hosts or a new signing secret (the tenant's or one key's)",
          json=WebhookConfigBody, ok=WebhookConfigSaved, admin=True,
          errors={400: "invalid_parameter (unknown field, allowed_hosts, api_key_id), invalid_callback_url, "
                       "callback_not_allowed, callback_unresolvable (url)",
                  404: "not_found: the tenant has no key with this api_key_id",
                  503: "secrets_unavailable: the secrets' encryption key is not configured"})
def put_config() -> Response:
    body = json_body()
    unknown = sorted(set(body) - CONFIG_FIELDS)
    if unknown:
        raise ApiError(400, "invalid_parameter", f"Unknown fields: {', '.join(unknown)[:200]}",
                       details={"fields": unknown[:20]})
    api_key_id = body.get("api_key_id")
    if api_key_id is not None and (isinstance(api_key_id, bool) or not isinstance(api_key_id, int)
                                   or not 1 <= api_key_id <= 2**31 - 1):
        raise ApiError(400, "invalid_parameter", "api_key_id must be the id of one of the tenant's keys",
                       details={"field": "api_key_id"})
    rotate = body.get("rotate_secret", False)
    if not isinstance(rotate, bool):
        raise ApiError(400, "invalid_parameter", "rotate_secret must be true or false", details={"field": "rotate_secret"})
    changes = {name: body[name] for name in ("url", "allowed_hosts") if name in body}
    try:
        saved = save_config(runtime().db, runtime().settings, tenant_id(), api_key_id, rotate_secret=rotate, **changes)
    except TargetRefused as exc:
        status = 404 if exc.code == "not_found" else 400
        field = "api_key_id" if exc.code == "not_found" else "allowed_hosts" if exc.code == "invalid_parameter" else "url"
        raise ApiError(status, exc.code, exc.message, details={"field": field}) from None
    except SecretUnavailable as exc:
        raise ApiError(503, "secrets_unavailable", str(exc)) from None
    answer: dict[str, Any] = {"saved": config_view(saved.config), **_configs()}
    if saved.secret is not None:
        answer["secret"] = saved.secret
        answer["note"] = "the signing secret is shown once; rotate_secret makes a new one"
    return ok(answer)


def _optional_int(name: str) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
        raise ApiError(400, "invalid_parameter", f"{name} must be a positive integer", details={"field": name})
    return int(raw)


@blueprint.get("/webhooks/deliveries")
@endpoint("The tenant's webhook deliveries with their attempts, in id order", query=DeliveryQuery, ok=DeliveriesOut)
def deliveries() -> Response:
    state = request.args.get("state")
    if state is not None and state not in DeliveryState.ALL:
        raise ApiError(400, "invalid_parameter", f"state must be one of {', '.join(DeliveryState.ALL)}",
                       details={"field": "state"})
    rows, last_id = list_deliveries(runtime().db, tenant_id(), limit_arg(), cursor_arg(), state,
                                    _optional_int("upload_id"))
    return ok({"count": len(rows), "deliveries": rows, "next_cursor": cursor_for(last_id)})


@blueprint.post("/webhooks/deliveries/<int:delivery_id>/resend")
@endpoint("Send a failed or delivered delivery again (same event and id)", ok=DeliveryOut,
          errors={404: "not_found: no delivery of this id in the tenant",
                  409: "not_resendable: the delivery is still pending or being sent"})
def resend_delivery(delivery_id: int) -> Response:
    try:
        delivery = resend(runtime().db, tenant_id(), delivery_id) if delivery_id <= 2**31 - 1 else None
    except NotResendable as exc:
        raise ApiError(409, "not_resendable", str(exc)) from None
    if delivery is None:
        raise ApiError(404, "not_found", f"No delivery {delivery_id}")
    return ok({"delivery": delivery})
