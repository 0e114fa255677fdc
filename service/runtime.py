"""What the web app and the worker share: settings, database and storage, and the ids they hand out."""
from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from database import Database, utcnow
from storage import Storage


def new_request_id(now: datetime | None = None) -> str:
    moment = now or utcnow()
    return f"BATCH_{moment:%Y%m%d_%H%M%S}_{secrets.token_hex(2)[:3]}"


def process_identity(role: str) -> str:
    return f"{role}:{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass
class Runtime:
    """Settings (config.load_settings' dict), database and storage of one process."""

    settings: dict[str, Any]
    db: Database
    storage: Storage

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> "Runtime":
        runtime = cls(settings=settings, db=Database(settings["DATABASE_URL"], settings.get("DATABASE_POOL_TIMEOUT_SECONDS")),
                      storage=Storage(settings["ASYNC_DIRECTORIES"]))
        runtime.storage.ensure_directories()
        return runtime

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.settings["CLAIM_LEASE_SECONDS"])

    @property
    def batch_size(self) -> int:
        return self.settings["OCR_MAX_IMAGES_PER_BATCH"]

    @property
    def max_chunk_bytes(self) -> int:
        return self.settings["OCR_MAX_BATCH_SIZE_MB"] * 1024 * 1024

    @property
    def batch_timeout_seconds(self) -> int:
        return self.settings["OCR_BATCH_TIMEOUT_SECONDS"]

    @property
    def default_profile(self) -> str:
        return self.settings["OCR_DEFAULT_PROFILE"]
