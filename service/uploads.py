"""Storing the files of one upload request with their rows: all or nothing, under unique names."""
from __future__ import annotations

from typing import Any, Callable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from database import DEFAULT_TENANT_ID, Upload
from service.results import original_or_duplicate
from service.runtime import Runtime
from service.wakeup import announce_new_work
from service.webhooks import UploadRoute, add_upload_route
from storage import UploadRejected, build_stored_name

NAME_ATTEMPTS = 1000
# Each failed attempt lost a race for a name or for "first of these bytes" to a request that has
# committed since, so the next attempt sees it; identical uploads arriving together need a few.
STORE_ATTEMPTS = 8


def _free_name(session: Any, rt: Runtime, metadata: dict[str, str], extension: str) -> str:
    for attempt in range(NAME_ATTEMPTS):
        name = build_stored_name(metadata, extension, attempt)
        taken = session.scalar(select(Upload.id).where(Upload.stored_name == name))
        if taken is None and rt.storage.locate(name) is None:
            return name
    raise UploadRejected("name_exhausted", "Too many files with the same metadata; change horamin or nombre", status=409)


def store_uploads(rt: Runtime, staged: list[tuple[str, Any, Any]], metadata: dict[str, str],
                  tenant_id: int = DEFAULT_TENANT_ID, route: UploadRoute | None = None,
                  before_commit: Callable[[Any, list[Upload]], None] | None = None) -> list[Upload]:
    """Records and files of one request, all or nothing.

    Each file is linked into the inbox inside the open transaction and the transaction is then
    committed, which wakes the workers; if the commit fails, the linked files are removed again.
    `before_commit(session, uploads)` writes in the same transaction (the idempotency key's response).
    """
    for attempt in range(STORE_ATTEMPTS):
        published: list[tuple[Any, str]] = []
        with rt.db.session() as session:
            try:
                uploads = []
                for original, item, info in staged:
                    name = _free_name(session, rt, metadata, info.extension)
                    upload = Upload(stored_name=name, original_name=original, sha256=item.sha256,
                                    size_bytes=item.size, image_format=info.image_format, upload_metadata=metadata,
                                    tenant_id=tenant_id, **original_or_duplicate(session, tenant_id, item.sha256))
                    session.add(upload)
                    session.flush()
                    add_upload_route(session, upload, route)  # where its webhooks go, with the upload itself
                    rt.storage.publish(item, name)
                    published.append((item, name))
                    uploads.append(upload)
                if before_commit is not None:
                    before_commit(session, uploads)
                announce_new_work(rt, session)
                session.commit()
                return uploads
            except BaseException as exc:
                # Files first: a rollback on a lost connection can raise too, and must not leave them behind.
                for _staged, name in published:
                    rt.storage.path("inbox", name).unlink(missing_ok=True)
                session.rollback()
                # Another request took one of the names, or recorded the same bytes first: retry.
                if isinstance(exc, (IntegrityError, FileExistsError)) and attempt + 1 < STORE_ATTEMPTS:
                    continue
                raise
    raise AssertionError("unreachable")
