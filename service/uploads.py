"""Storing the images of one upload request with their rows: all or nothing, under unique names."""
from __future__ import annotations

import uuid
from typing import Any, Callable

from sqlalchemy.exc import IntegrityError

from database import DEFAULT_TENANT_ID, Upload
from image_store import ImageRef
from service.results import original_or_duplicate
from service.runtime import Runtime
from service.wakeup import announce_new_work
from service.webhooks import UploadRoute, add_upload_route
from storage import build_stored_name

# Each failed attempt lost a race for "first of these bytes" to a request that has committed
# since, so the next attempt sees it; identical uploads arriving together need a few.
STORE_ATTEMPTS = 8


def _placeholder_name() -> str:
    # Unique until the row has its id and with it its name (a dot: never a name given to a file).
    return f".naming-{uuid.uuid4().hex}"


def store_uploads(rt: Runtime, staged: list[tuple[str, Any, Any]], metadata: dict[str, str],
                  tenant_id: int = DEFAULT_TENANT_ID, route: UploadRoute | None = None,
                  before_commit: Callable[[Any, list[Upload]], None] | None = None) -> list[Upload]:
    """Records and files of one request, all or nothing.

    Each row is flushed for its id, which completes its stored name (storage.build_stored_name:
    unique without a search, and telling nothing about other tenants); its image is stored inside
    the open transaction (linked into the inbox, or written to the database) and the transaction
    is then committed, which wakes the workers; if the commit fails, linked files are removed again.
    `before_commit(session, uploads)` writes in the same transaction (the idempotency key's response).
    """
    for attempt in range(STORE_ATTEMPTS):
        published: list[ImageRef] = []
        with rt.db.session() as session:
            try:
                uploads = []
                for original, item, info in staged:
                    upload = Upload(stored_name=_placeholder_name(), original_name=original, sha256=item.sha256,
                                    size_bytes=item.size, image_format=info.image_format, upload_metadata=metadata,
                                    tenant_id=tenant_id, **original_or_duplicate(session, tenant_id, item.sha256))
                    session.add(upload)
                    session.flush()
                    upload.stored_name = build_stored_name(metadata, info.extension, upload.id)
                    session.flush()
                    add_upload_route(session, upload, route)  # where its webhooks go, with the upload itself
                    rt.images.put(session, upload, item)
                    published.append(ImageRef.of(upload))
                    uploads.append(upload)
                if before_commit is not None:
                    before_commit(session, uploads)
                announce_new_work(rt, session)
                session.commit()
                return uploads
            except BaseException as exc:
                # Files first: a rollback on a lost connection can raise too, and must not leave them behind.
                for ref in published:
                    rt.images.discard(ref)
                session.rollback()
                # Another request recorded the same bytes first: retry.
                if isinstance(exc, (IntegrityError, FileExistsError)) and attempt + 1 < STORE_ATTEMPTS:
                    continue
                raise
    raise AssertionError("unreachable")
