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
* `s3`: one object per upload in an S3-compatible store (image_store_s3.py; `image_host` holds the
  bucket), written before the row commits (removed again if it does not) and deleted after the
  row is; any host with the bucket's settings reads any upload.
"""
from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import IO, Any, Iterable

from sqlalchemy import and_, delete, exists, func, or_, select
from sqlalchemy.orm import Session

from database import Database, Upload, UploadImage, UploadStatus
from storage import STATUS_DIRECTORY, StagedFile, Storage

logger = logging.getLogger(__name__)

LOCAL = "local"
POSTGRESQL = "postgresql"
S3 = "s3"
KINDS = (LOCAL, POSTGRESQL, S3)
# Rows of at most 1 MiB: well inside what a bytea parameter or result row handles comfortably.
CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ImageRef:
    """What locating an upload's image needs: its id, its stored name and where it was stored."""

    upload_id: int
    stored_name: str
    store: str | None = None
    host: str | None = None  # uploads.image_host: the data directory's id, or the bucket

    @classmethod
    def of(cls, upload: Any) -> "ImageRef":
        return cls(upload.id, upload.stored_name, upload.image_store, upload.image_host)

    @classmethod
    def columns(cls) -> tuple[Any, ...]:
        """The columns to select for ImageRef(*row)."""
        return Upload.id, Upload.stored_name, Upload.image_store, Upload.image_host

    @property
    def in_database(self) -> bool:
        return self.store == POSTGRESQL

    @property
    def in_s3(self) -> bool:
        return self.store == S3

    @property
    def on_disk(self) -> bool:
        return self.store in (None, LOCAL)


class ImageStore:
    """The images of one process: new ones go where `kind` says, each one is read where it is."""

    def __init__(self, kind: str, storage: Storage, db: Database, s3: Any = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"IMAGE_STORAGE must be one of {', '.join(KINDS)}")
        if kind == POSTGRESQL and db.engine.dialect.name != "postgresql":
            raise ValueError("IMAGE_STORAGE=postgresql needs a PostgreSQL DATABASE_URL")
        if kind == S3 and s3 is None:
            raise ValueError("IMAGE_STORAGE=s3 needs S3_BUCKET")
        self.kind = kind
        self.storage = storage
        self.db = db
        self.s3 = s3  # image_store_s3.S3Images when S3_BUCKET is set

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
        if self.kind == S3:
            upload.image_host = self.s3.bucket
            self.s3.put_file(staged.path, upload.stored_name)
            return
        with open(staged.path, "rb") as handle:
            self._insert_chunks(session, upload.id, iter(lambda: handle.read(CHUNK_BYTES), b""))

    def mark_local(self, upload: Any) -> None:
        """An image already in this host's inbox (adopted), recorded as such."""
        upload.image_store, upload.image_host = LOCAL, self.storage.identity()

    def readable(self) -> Any:
        """SQL condition: uploads whose image this host can read. Every database image; a local
        image only on this host's data directory (or one shared with it), and any stored before
        directories had an id; S3 images when this host has the bucket's settings. A host never claims, nor purges, an upload whose image it cannot reach."""
        identity = self.storage.identity(create=self.kind == LOCAL)
        here = [Upload.image_host == identity] if identity else []
        readable = [Upload.image_store.is_(None), Upload.image_store == POSTGRESQL,
                    and_(Upload.image_store == LOCAL, or_(Upload.image_host.is_(None), *here))]
        if self.s3 is not None:
            readable.append(Upload.image_store == S3)
        return or_(*readable)

    def put_bytes(self, session: Session, upload: Any, data: bytes) -> None:
        """An image already in memory (adopted from an inbox) into the database or the bucket, with its row."""
        upload.image_store = self.kind
        if self.kind == S3:
            upload.image_host = self.s3.bucket
            self.s3.put_bytes(data, upload.stored_name)
            return
        self._insert_chunks(session, upload.id, (data[i:i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)))

    @staticmethod
    def _insert_chunks(session: Session, upload_id: int, chunks: Iterable[bytes]) -> None:
        for number, chunk in enumerate(chunks):
            session.add(UploadImage(upload_id=upload_id, chunk=number, data=chunk))
        session.flush()

    def discard(self, ref: ImageRef) -> None:
        """Undo `put` after its transaction failed: the database's part rolled back by itself."""
        if ref.in_s3:
            self.s3.delete(ref.stored_name, ref.host)
        elif ref.on_disk:
            self.storage.path("inbox", ref.stored_name).unlink(missing_ok=True)

    # --- reading ------------------------------------------------------------------------------
    def read_for_processing(self, ref: ImageRef) -> bytes | None:
        """The bytes a worker reads for a claimed upload; None when the image is gone.

        Local images move to processing/ first (a crash then leaves them where reconcile_files
        looks); an OSError reading them is the disk's failure and propagates.
        """
        if not ref.on_disk:
            return self.read(ref)
        path = self.storage.move(ref.stored_name, "processing")
        return None if path is None else path.read_bytes()

    def read(self, ref: ImageRef) -> bytes | None:
        if ref.in_s3:
            return self._s3().get(ref.stored_name, ref.host)
        if ref.on_disk:
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
        if not ref.on_disk:
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
        if ref.in_s3:
            return self._s3().exists(ref.stored_name, ref.host)
        if ref.on_disk:
            return self.storage.locate(ref.stored_name) is not None
        with self.db.session() as session:
            return bool(session.scalar(select(exists().where(UploadImage.upload_id == ref.upload_id))))

    # --- following the status -----------------------------------------------------------------
    def settle(self, ref: ImageRef, status: str) -> bool:
        """Put the image where an upload of `status` keeps it; False when the image is gone.

        Only local images have a place per status; a database image stays where it is.
        """
        if not ref.on_disk:
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

    def remove_files(self, ref: ImageRef, size_bytes: int = 0) -> int:
        """After the row is deleted: the object in the bucket, or the local image and result file,
        wherever they are; the bytes freed."""
        if ref.in_s3:
            try:
                self._s3().delete(ref.stored_name, ref.host)
            except OSError as exc:
                # The row is gone already: the object is one no row names, which nothing reads.
                logger.warning("Image %s stays in the bucket: %s", ref.stored_name, exc)
                return 0
            return size_bytes + self.storage.remove_upload_files(ref.stored_name)
        return self.storage.remove_upload_files(ref.stored_name)

    def _s3(self) -> Any:
        if self.s3 is None:
            raise OSError("an upload's image is in S3 but this host has no S3_BUCKET")
        return self.s3
