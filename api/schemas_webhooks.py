"""Bodies of the webhook endpoints (api/webhooks.py): configuration, deliveries, resends."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from api.schemas import Closed, PageQuery, Success, Timestamp
from database import DeliveryState
from service.webhooks import EVENT_TYPES

DeliveryStateName = Literal[DeliveryState.ALL]  # type: ignore[valid-type]


class WebhookConfigView(Closed):
    """Never the secret itself: its first characters only."""
    api_key_id: int | None = Field(description="null: the tenant's own configuration; else one key's")
    url: str | None
    allowed_hosts: list[str]
    secret_prefix: str | None
    secret_rotated_at: Timestamp | None
    created_at: Timestamp | None
    updated_at: Timestamp | None


class WebhookConfigsOut(Success):
    config: WebhookConfigView | None
    keys: list[WebhookConfigView]


class WebhookConfigBody(BaseModel):
    """Only the fields given change; a new configuration (or rotate_secret) answers its secret once."""
    model_config = ConfigDict(extra="forbid")

    # Any value reaches the view, which names the precise refusal (invalid_callback_url, ...).
    url: Any = Field(None, description="http(s) URL deliveries go to (null: none)",
                     json_schema_extra={"type": ["string", "null"]})
    allowed_hosts: Any = Field(None, description="Hosts an upload's callback_url may name",
                               json_schema_extra={"type": ["array", "null"], "items": {"type": "string"}})
    rotate_secret: StrictBool = False
    api_key_id: StrictInt | None = Field(None, ge=1, le=2**31 - 1, description="Configure this key's deliveries")


class WebhookConfigSaved(WebhookConfigsOut):
    saved: WebhookConfigView
    secret: str | None = Field(None, description="The signing secret, only when it was made now")
    note: str | None = None


class DeliveryQuery(PageQuery):
    state: DeliveryStateName | None = None
    upload_id: str | None = Field(None, pattern=r"^[0-9]{1,18}$", description="Only this upload's deliveries")


class Attempt(Closed):
    at: Timestamp | None
    status_code: int | None
    error: str | None
    duration_ms: float


class Delivery(Closed):
    id: int
    event_id: str = Field(description="The event's id (a UUID), also in the delivery's headers")
    event_type: str = Field(description=", ".join(EVENT_TYPES))
    upload_id: int | None
    url: str
    state: DeliveryStateName
    attempts: int
    created_at: Timestamp | None
    next_attempt_at: Timestamp | None
    delivered_at: Timestamp | None
    last_status_code: int | None
    last_error: str | None
    history: list[Attempt]


class DeliveriesOut(Success):
    count: int
    deliveries: list[Delivery]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")


class DeliveryOut(Success):
    delivery: Delivery
