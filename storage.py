"""Files on disk: the service's directories, stored names, durable writes and idempotent moves.

Every name that reaches the filesystem is built here from validated metadata or checked to be a
plain file name; nothing a client sends is used as a path. An upload is written to a hidden temp
file inside the inbox (same filesystem), fsynced, and only then linked under its final name.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO, Any

from werkzeug.utils import secure_filename

DIRECTORY_KEYS = ("inbox", "processing", "processed", "errors", "results")
# Where a file lives for each upload status (database.UploadStatus values).
STATUS_DIRECTORY = {"pending": "inbox", "processing": "processing", "processed": "processed", "error": "errors"}
IMAGE_DIRECTORIES = ("inbox", "processing", "processed", "errors")
STAGING_PREFIX = ".upload-"
IDENTITY_FILE = ".storage-id"
COPY_CHUNK = 1024 * 1024

METADATA_FIELDS = ("numerosorteo", "fechasorteo", "idWhatsapp", "nombre", "horamin")
_CONTROL_OR_MARKUP = re.compile(r"[<>\"';\x00-\x1f\x7f-\x9f]")
_FORMATS = {
    "numerosorteo": (re.compile(r"^[A-Za-z0-9]{1,10}$"), "1 to 10 letters or digits"),
    # re.ASCII: \d alone also takes other scripts' digits (٢٠٢٥...), which the stored name then loses.
    "fechasorteo": (re.compile(r"^\d{8}$", re.ASCII), "a date as YYYYMMDD"),
    "idWhatsapp": (re.compile(r"^[A-Za-z0-9._+-]{1,64}(@[A-Za-z0-9.-]{1,40})?$"), "a WhatsApp id such as 123456@lid"),
    "horamin": (re.compile(r"^([01]\d|2[0-3])-[0-5]\d$", re.ASCII), "a time as HH-MM"),
    # Letters of any alphabet (accents, ñ), digits, spaces, dots and hyphens.
    "nombre": (re.compile(r"^[\w .\-]*$"), "letters, digits, spaces, dots and hyphens"),
}


class UploadRejected(Exception):
    """A file or its metadata cannot be accepted; `status` is the HTTP status to answer with."""

    def __init__(self, code: str, message: str, status: int = 400, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.field = field


@dataclass
class StagedFile:
    path: Path
    sha256: str
    size: int


# --- metadata and names ---------------------------------------------------------------------
def validate_metadata(form: Any, max_length: int) -> dict[str, str]:
    """The five upload fields, checked and cleaned; absent fields are empty strings.

    Strict formats are rejected when they do not match. The free-text name loses quotes, angle
    brackets, semicolons and control characters, and is rejected if anything else unusual remains.
    """
    metadata: dict[str, str] = {}
    for field in METADATA_FIELDS:
        raw = form.get(field, "") or ""
        value = unicodedata.normalize("NFC", str(raw)).strip()
        if field == "nombre":
            # Tabs and newlines are spacing, not content: turn them into spaces before stripping.
            value = " ".join(_CONTROL_OR_MARKUP.sub("", " ".join(value.split())).split())
        if len(value) > max_length:
            raise UploadRejected("invalid_metadata", f"{field} is longer than {max_length} characters", field=field)
        pattern, expected = _FORMATS[field]
        if value and not pattern.match(value):
            raise UploadRejected("invalid_metadata", f"{field} must be {expected}", field=field)
        metadata[field] = value
    if metadata["fechasorteo"]:
        try:
            date(int(metadata["fechasorteo"][:4]), int(metadata["fechasorteo"][4:6]), int(metadata["fechasorteo"][6:]))
        except ValueError:
            raise UploadRejected("invalid_metadata", "fechasorteo is not a real date (YYYYMMDD)", field="fechasorteo") from None
    return metadata


def name_part(value: str) -> str:
    # secure_filename drops "@"; keep it between safe pieces so ids read as in the seed (123456@lid).
    return "@".join(secure_filename(piece) for piece in value.split("@")) if value else ""


MAX_NAME_STEM = 200


# The upload id closes every name the service gives: `~` never comes out of name_part, so the mark
# tells the service's own files from images an operator drops into the inbox.
ID_MARK = "~"
_SERVICE_NAME = re.compile(r"~\d+\.[A-Za-z0-9]+$")


def build_stored_name(metadata: dict[str, str], extension: str, upload_id: int) -> str:
    """`20250711-A--123456@lid_Juan_14-30~42.png`: the metadata, then the upload's id.

    The id makes the name unique without looking for a free one (constant time, and nothing about
    other tenants' names can be learnt from it).
    """
    base = "{fecha}-{numero}--{wa}_{nombre}_{hora}".format(
        fecha=name_part(metadata.get("fechasorteo", "")),
        numero=name_part(metadata.get("numerosorteo", "")),
        wa=name_part(metadata.get("idWhatsapp", "")),
        nombre=name_part(metadata.get("nombre", "")),
        hora=name_part(metadata.get("horamin", "")),
    )
    # The id is kept whole: only the metadata part gives way to the length limit.
    suffix = f"{ID_MARK}{int(upload_id)}"
    return f"{base[:MAX_NAME_STEM - len(suffix)]}{suffix}.{extension}"


def is_service_name(name: str) -> bool:
    """True for a name build_stored_name gave: the file of an upload, never one to adopt."""
    return bool(_SERVICE_NAME.search(name))


def display_name(client_filename: str | None) -> str:
    """The client's file name for display only: last path part, no control characters, bounded."""
    name = (client_filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = _CONTROL_OR_MARKUP.sub("", unicodedata.normalize("NFC", name)).strip().lstrip(".")
    return name[:255] or "unnamed"


def is_plain_name(name: str) -> bool:
    """True for a single file name with nothing that could climb out of a directory."""
    return bool(name) and name not in {".", ".."} and "/" not in name and "\\" not in name \
        and "\x00" not in name and not name.startswith(".") and len(name) <= 255


def metadata_from_stored_name(name: str) -> dict[str, str]:
    """Best-effort reading of the seed's naming pattern, for files dropped straight into the inbox."""
    match = re.match(r"^(\d{8})?-([A-Za-z0-9]*)--([^_]*)_(.*)_(\d{2}-\d{2})?(?:_\d+|~\d+)?\.[A-Za-z]+$", name)
    if not match:
        return {field: "" for field in METADATA_FIELDS}
    fecha, numero, wa, nombre, hora = (group or "" for group in match.groups())
    return {"numerosorteo": numero, "fechasorteo": fecha, "idWhatsapp": wa, "nombre": nombre.replace("_", " "), "horamin": hora}


# --- durable writes ---------------------------------------------------------------------------
def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Readers see the old file or the whole new one, never a half-written file."""
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    finally:
        if temp.exists():
            temp.unlink()
    _fsync_directory(path.parent)


def remove_file(path: Path) -> int:
    """Delete a file if it is there; returns its size (0 when it was already gone)."""
    try:
        size = path.stat().st_size
        path.unlink()
    except FileNotFoundError:
        return 0
    return size


class Storage:
    """The data directory of one host. `result_files`: also keep each result as results/<name>.json
    (the database holds every result; the files are for an operator of one machine who reads them)."""

    def __init__(self, directories: dict[str, str], result_files: bool = True) -> None:
        self.dirs = {key: Path(directories[key]) for key in DIRECTORY_KEYS}
        self.result_files = result_files

    def ensure_directories(self) -> None:
        for directory in self.dirs.values():
            directory.mkdir(parents=True, exist_ok=True)

    def identity(self, create: bool = True) -> str | None:
        """The id of this data directory, made once (by whichever process comes first) and shared
        by every host that mounts it: recorded with each local image, so a host can tell an image
        on its own (or shared) disk from one on another host's. None if it has none and `create`
        is false (a host that never stored an image on its disk)."""
        cached = getattr(self, "_identity", None)
        if cached:
            return cached
        path = self.dirs["inbox"].parent / IDENTITY_FILE
        try:
            identity = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            identity = ""
        if not identity and not create:
            return None
        if not identity:
            temp = path.with_name(f".{IDENTITY_FILE}.{uuid.uuid4().hex[:8]}.tmp")
            temp.write_text(uuid.uuid4().hex, encoding="ascii")
            try:
                os.link(temp, path)  # never replaces an id another process wrote first
            except FileExistsError:
                pass
            finally:
                temp.unlink(missing_ok=True)
            identity = path.read_text(encoding="ascii").strip()
        self._identity = identity
        return identity

    def path(self, key: str, name: str) -> Path:
        if not is_plain_name(name):
            raise ValueError(f"Refusing unsafe file name {name!r}")
        return self.dirs[key] / name

    # --- uploads ------------------------------------------------------------------------------
    def stage(self, stream: IO[bytes], max_bytes: int) -> StagedFile:
        """Copy an upload stream to a hidden temp file in the inbox, hashing it on the way."""
        path = self.dirs["inbox"] / f"{STAGING_PREFIX}{uuid.uuid4().hex}.tmp"
        digest = hashlib.sha256()
        size = 0
        try:
            with open(path, "wb") as handle:
                while chunk := stream.read(COPY_CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise UploadRejected("file_too_large", f"A file is larger than {max_bytes // (1024 * 1024)} MB", status=413)
                    digest.update(chunk)
                    handle.write(chunk)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return StagedFile(path=path, sha256=digest.hexdigest(), size=size)

    def publish(self, staged: StagedFile, stored_name: str) -> Path:
        """Give a staged file its final inbox name without ever replacing an existing file.

        A hard link keeps the staged name alive until `finish_publish`: while the link count is 2
        the inbox scanner knows the upload is not committed yet and leaves the file alone.
        """
        target = self.path("inbox", stored_name)
        self._set_aside_stale(stored_name)
        try:
            os.link(staged.path, target)
        except FileExistsError:
            raise
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
                raise
            # Filesystems without hard links: the database reserved the name, so a rename is safe.
            if target.exists():
                raise FileExistsError(errno.EEXIST, "exists", str(target)) from exc
            os.rename(staged.path, target)
        _fsync_directory(target.parent)
        return target

    def _set_aside_stale(self, stored_name: str) -> None:
        """A file already under a new upload's name belongs to an upload whose row is gone: the
        database was restored from a dump taken before it, and its ids are handed out again. It
        goes to errors/ under another name (the orphan sweep removes it after the retention), so
        the new upload neither fails for ever nor takes the old image."""
        if not is_service_name(stored_name):
            return
        for key in IMAGE_DIRECTORIES:
            stale = self.path(key, stored_name)
            if stale.is_file():
                aside = self.path("errors", f"orphan-{uuid.uuid4().hex[:8]}-{stored_name}")
                try:
                    os.replace(stale, aside)
                except FileNotFoundError:
                    continue

    def finish_publish(self, staged: StagedFile) -> None:
        staged.path.unlink(missing_ok=True)

    def unpublish(self, staged: StagedFile, stored_name: str) -> None:
        """Undo `publish` after the database refused the record: leave neither half behind."""
        self.path("inbox", stored_name).unlink(missing_ok=True)
        staged.path.unlink(missing_ok=True)

    # --- locating and moving ------------------------------------------------------------------
    def locate(self, name: str, preferred: str | None = None) -> Path | None:
        """Where the image is now: a crash between a database change and a move can leave it anywhere."""
        keys = ([preferred] if preferred else []) + [k for k in IMAGE_DIRECTORIES if k != preferred]
        for key in keys:
            candidate = self.path(key, name)
            if candidate.is_file():
                return candidate
        return None

    def move(self, name: str, to_key: str) -> Path | None:
        """Move an image to a directory; doing it twice is harmless. None if the file is gone."""
        target = self.path(to_key, name)
        for _ in range(3):
            source = self.locate(name, preferred=to_key)
            if source is None:
                return None
            if source == target:
                return target
            try:
                os.replace(source, target)
            except FileNotFoundError:
                # Another process moved it between locate and replace (a worker finishing an image
                # while another one reconciles processing/): look for it again.
                continue
            _fsync_directory(target.parent)
            return target
        return self.locate(name, preferred=to_key)

    def write_result(self, stored_name: str, document: dict[str, Any]) -> Path | None:
        if not self.result_files:
            return None
        path = self.path("results", f"{stored_name}.json")
        atomic_write_bytes(path, json.dumps(document, ensure_ascii=False, indent=2, default=str).encode("utf-8"))
        return path

    def write_results(self, documents: list[tuple[str, dict[str, Any]]]) -> None:
        """Many result files at once (a statement reconciling thousands of receipts): each replaced
        atomically as by write_result, with one sync of the disk for all of them instead of two
        fsyncs per file (20,000 of them for 10,000 receipts)."""
        if not self.result_files:
            return
        if len(documents) <= 2:
            for stored_name, document in documents:
                self.write_result(stored_name, document)
            return
        staged = []
        try:
            for stored_name, document in documents:
                path = self.path("results", f"{stored_name}.json")
                temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
                temp.write_bytes(json.dumps(document, ensure_ascii=False, indent=2, default=str).encode("utf-8"))
                staged.append((temp, path))
            os.sync()  # every new file's bytes on disk before any of them replaces an old one
            for temp, path in staged:
                os.replace(temp, path)
        finally:
            for temp, _ in staged:
                if temp.exists():
                    temp.unlink()
        _fsync_directory(self.dirs["results"])

    def remove_upload_files(self, stored_name: str) -> int:
        """Delete an image wherever it is and its result file; returns the bytes freed."""
        paths = [self.path(key, stored_name) for key in IMAGE_DIRECTORIES]
        paths.append(self.path("results", f"{stored_name}.json"))
        return sum(remove_file(path) for path in paths)

    def inbox_candidates(self, min_age_seconds: float, now: float) -> list[Path]:
        """Files in the inbox that are complete: not being staged or published, old enough."""
        found = []
        for entry in os.scandir(self.dirs["inbox"]):
            try:
                if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                    continue
                stat = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # another worker of this host claimed it (moved it to processing) meanwhile
            if stat.st_nlink > 1 or now - stat.st_mtime < min_age_seconds:
                continue
            found.append(Path(entry.path))
        return sorted(found)

    def stale_temp_files(self, older_than: float) -> list[Path]:
        """Leftovers of interrupted uploads and result writes, older than the cut-off timestamp."""
        found = []
        for path in self.dirs["inbox"].glob(f"{STAGING_PREFIX}*.tmp"):
            found.append(path)
        for key in ("results",) + IMAGE_DIRECTORIES:
            found.extend(self.dirs[key].glob(".*.tmp"))
        stale = []
        for path in found:
            try:
                if path.stat().st_mtime < older_than:
                    stale.append(path)
            except FileNotFoundError:
                continue
        return stale
