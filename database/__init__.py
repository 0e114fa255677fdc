"""Tables and the engine/session factory, importable from one place (`from database import Upload`).

`core` holds the engine, the session factory and the database clock; each further module holds the
tables of one concern. Every table module is imported here so that `Base.metadata` (which the
migrations are checked against) always holds all of them.
"""
from database.core import (
    SQLITE_BUSY_TIMEOUT_SECONDS,
    Base,
    Database,
    JSONType,
    database_now,
    iso,
    make_engine,
    utcnow,
)
from database.install import ANONYMOUS_ACCESS, AnonymousAccess, InstallSetting
from database.learned_rules import LearnedRuleRow, LearnedRuleState
from database.models import (
    DEFAULT_TENANT_ID,
    DEFAULT_TENANT_NAME,
    RESULT_TEXT_FIELDS,
    ApiKey,
    Batch,
    BatchState,
    Payment,
    RateLimit,
    Result,
    Role,
    Tenant,
    Upload,
    UploadImage,
    UploadStatus,
    WorkerState,
)
from database.reviews import Correction, IdempotencyKey, Review, ReviewState
from database.staff import BrowserSession, ReviewDecision, StaffAccount, StaffRole
from database.statements import BankStatement, Conciliacion, StatementMovement
from database.webhooks import (
    TENANT_SCOPE,
    DeliveryState,
    WebhookAttempt,
    WebhookConfig,
    WebhookDelivery,
    WebhookEvent,
    WebhookUploadRoute,
)

__all__ = [
    "SQLITE_BUSY_TIMEOUT_SECONDS", "Base", "Database", "JSONType", "database_now", "iso", "make_engine", "utcnow",
    "DEFAULT_TENANT_ID", "DEFAULT_TENANT_NAME", "RESULT_TEXT_FIELDS", "ApiKey", "Batch", "BatchState", "Payment",
    "RateLimit", "Result", "Role", "Tenant", "Upload", "UploadImage", "UploadStatus", "WorkerState",
    "Correction", "IdempotencyKey", "Review", "ReviewState",
    "BrowserSession", "ReviewDecision", "StaffAccount", "StaffRole",
    "TENANT_SCOPE", "DeliveryState", "WebhookAttempt", "WebhookConfig", "WebhookDelivery", "WebhookEvent",
    "WebhookUploadRoute",
    "BankStatement", "Conciliacion", "StatementMovement",
    "LearnedRuleRow", "LearnedRuleState",
    "ANONYMOUS_ACCESS", "AnonymousAccess", "InstallSetting",
]
