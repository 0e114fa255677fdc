"""Where upload images live, and the few things done to them: store, read, settle, delete.

Two places, chosen by IMAGE_STORAGE for new uploads and recorded per upload in
`uploads.image_store`, so every host knows where each image is whatever its own setting:

* `local` (and NULL, uploads stored before revision 0007 or by an older release): the data
  directory, an image in inbox/, processing/, processed/ or errors/ as its row's status says
  (storage.py). One machine, or several sharing one disk; `uploads.image_host` names the data
  directory, so a host with a disk of its own leaves other hosts' local images to them.
* `postgresql`: the bytes in `upload_images`, in chunks, written in the transaction that creates
  the upload and deleted in the one that removes it. Any host reads and serves any upload and one
  dump holds rows and images; the status is the row's alone, there is nothing to move.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import IO, Any, Iterable

from sqlalchemy import delete, exists, func, or_, select
from sqlalchemy.orm import Session

from database import Database, Upload, UploadImage, UploadStatus
from storage import STATUS_DIRECTORY, StagedFile, Storage

LOCAL = "local"
POSTGRESQL = "postgresql"
KINDS = (LOCAL, POSTGRESQL)
# Rows of at most 1 MiB: well inside what a bytea parameter or result row handles comfortably.
CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ImageRef:
    """What locating an upload's image needs: its id, its stored name and where it was stored."""

    upload_id: int
    stored_name: str
    store: str | None = None

    @classmethod
    def of(cls, upload: Any) -> "ImageRef":
        return cls(upload.id, upload.stored_name, upload.image_store)

    @property
    def in_database(self) -> bool:
        return self.store == POSTGRESQL


class ImageStore:
    """The images of one process: new ones go where `kind` says, each one is read where it is."""

    def __init__(self, kind: str, storage: Storage, db: Database) -> None:
        if kind not in KINDS:
            raise ValueError(f"IMAGE_STORAGE must be one of {', '.join(KINDS)}")
        if kind == POSTGRESQL and db.engine.dialect.name != "postgresql":
            raise ValueError("IMAGE_STORAGE=postgresql needs a PostgreSQL DATABASE_URL")
        self.kind = kind
        self.storage = storage
        self.db = db

    # --- storing ------------------------------------------------------------------------------
    def put(self, session: Session, upload: Any, staged: StagedFile) -> None:
        """Store a new upload's image in `session`'s transaction (the row is flushed, it has its id).

        Local: linked into the inbox now, unlinked by `discard` if the transaction fails.
        PostgreSQL: chunk rows that commit or roll back with the upload.
        """
        upload.image_store = self.kind
        if self.kind == LOCAL:
            upload.image_host = self.storage.identity()
            self.storage.publish(staged, upload.stored_name)
            return
        with open(staged.path, "rb") as handle:
            self._insert_chunks(session, upload.id, iter(lambda: handle.read(CHUNK_BYTES), b""))

    def mark_local(self, upload: Any) -> None:
        """An image already in this host's inbox (adopted), recorded as such."""
        upload.image_store, upload.image_host = LOCAL, self.storage.identity()

    def readable(self) -> Any:
        """SQL condition: uploads whose image this host can read. Every database image; a local
        image only on this host's data directory (or one shared with it), and any stored before
        directories had an id. A host never claims, nor purges, an upload whose image it cannot reach."""
        identity = self.storage.identity(create=self.kind == LOCAL)
        here = [Upload.image_host == identity] if identity else []
        return or_(Upload.image_store.is_(None), Upload.image_store != LOCAL, Upload.image_host.is_(None), *here)

    def put_bytes(self, session: Session, upload: Any, data: bytes) -> None:
        """An image already in memory (adopted from an inbox) into the database, with its row."""
        upload.image_store = POSTGRESQL
        self._insert_chunks(session, upload.id, (data[i:i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)))

    @staticmethod
    def _insert_chunks(session: Session, upload_id: int, chunks: Iterable[bytes]) -> None:
        for number, chunk in enumerate(chunks):
            session.add(UploadImage(upload_id=upload_id, chunk=number, data=chunk))
        session.flush()

    def discard(self, ref: ImageRef) -> None:
        """Undo `put` after its transaction failed: the database's part rolled back by itself."""
        if not ref.in_database:
            self.storage.path("inbox", ref.stored_name).unlink(missing_ok=True)

    # --- reading ------------------------------------------------------------------------------
    def read_for_processing(self, ref: ImageRef) -> bytes | None:
        """The bytes a worker reads for a claimed upload; None when the image is gone.

        Local images move to processing/ first (a crash then leaves them where reconcile_files
        looks); an OSError reading them is the disk's failure and propagates.
        """
        if ref.in_database:
            return self.read(ref)
        path = self.storage.move(ref.stored_name, "processing")
        return None if path is None else path.read_bytes()

    def read(self, ref: ImageRef) -> bytes | None:
        if not ref.in_database:
            path = self.storage.locate(ref.stored_name)
            try:
                return None if path is None else path.read_bytes()
            except FileNotFoundError:
                return None
        with self.db.session() as session:
            chunks = session.scalars(select(UploadImage.data).where(UploadImage.upload_id == ref.upload_id)
                                     .order_by(UploadImage.chunk)).all()
        return b"".join(chunks) if chunks else None

    def open(self, ref: ImageRef, status: str) -> IO[bytes] | None:
        """A readable file of the image for a response; None when it is gone (purged).

        From the database the whole image is read first (at most MAX_FILE_SIZE_MB): a slow client
        must never hold a pooled connection while it reads.
        """
        if ref.in_database:
            data = self.read(ref)
            return None if data is None else io.BytesIO(data)
        preferred = {UploadStatus.PROCESSED: "processed", UploadStatus.ERROR: "errors"}.get(status, "inbox")
        for _ in range(3):
            path = self.storage.locate(ref.stored_name, preferred=preferred)
            if path is None:
                return None
            try:
                return open(path, "rb")  # noqa: SIM115 - the response closes it
            except FileNotFoundError:
                continue  # a worker moved it between locating and opening: look again
        return None

    def exists(self, ref: ImageRef) -> bool:
        if not ref.in_database:
            return self.storage.locate(ref.stored_name) is not None
        with self.db.session() as session:
            return bool(session.scalar(select(exists().where(UploadImage.upload_id == ref.upload_id))))

    # --- following the status -----------------------------------------------------------------
    def settle(self, ref: ImageRef, status: str) -> bool:
        """Put the image where an upload of `status` keeps it; False when the image is gone.

        Only local images have a place per status; a database image stays where it is.
        """
        if ref.in_database:
            return self.exists(ref)
        return self.storage.move(ref.stored_name, STATUS_DIRECTORY[status]) is not None

    # --- removing -----------------------------------------------------------------------------
    @staticmethod
    def delete_in(session: Session, upload_ids: list[int]) -> int:
        """Delete the database images of these uploads in `session` (the transaction that deletes
        their rows, so a row and its bytes go together); the bytes freed."""
        if not upload_ids:
            return 0
        freed = session.scalar(select(func.coalesce(func.sum(func.length(UploadImage.data)), 0))
                               .where(UploadImage.upload_id.in_(upload_ids)))
        session.execute(delete(UploadImage).where(UploadImage.upload_id.in_(upload_ids)))
        return int(freed or 0)

    def remove_files(self, ref: ImageRef) -> int:
        """After the row is deleted: the local image and result file, wherever they are."""
        return self.storage.remove_upload_files(ref.stored_name)
