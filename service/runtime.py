"""What the web app and the worker share: settings, database and storage, and the ids they hand out."""
from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from database import Database, utcnow
from image_store import LOCAL, ImageStore
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
        # Result files only beside local images: with the images in the database a host's disk holds nothing.
        local = settings.get("IMAGE_STORAGE", LOCAL) == LOCAL
        runtime = cls(settings=settings, db=Database(settings["DATABASE_URL"], settings.get("DATABASE_POOL_TIMEOUT_SECONDS")),
                      storage=Storage(settings["ASYNC_DIRECTORIES"], result_files=local))
        runtime.storage.ensure_directories()
        if local:
            runtime.storage.identity()  # made at start-up, not by the first upload
        runtime.images  # noqa: B018 - refuses a storage the database cannot hold, at start-up
        return runtime

    @property
    def images(self) -> ImageStore:
        """Where upload images are stored and read (image_store.py), made on first use."""
        store = self.__dict__.get("_images")
        if store is None or store.storage is not self.storage or store.db is not self.db:
            store = self.__dict__["_images"] = ImageStore(self.settings.get("IMAGE_STORAGE", LOCAL), self.storage, self.db,
                                                          self._s3())
        return store

    def _s3(self) -> Any:
        """The bucket's client when S3_BUCKET is set (boto3 is imported only then)."""
        bucket = self.settings.get("S3_BUCKET")
        if not bucket:
            return None
        from image_store_s3 import S3Images  # noqa: PLC0415 - boto3 is loaded only where S3 is used

        return S3Images(bucket, self.settings.get("S3_PREFIX") or "", self.settings.get("S3_ENDPOINT_URL"),
                        self.settings.get("S3_REGION"))

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
