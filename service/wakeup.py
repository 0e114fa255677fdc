"""Waking a waiting worker the moment an upload is committed; the worker's polling stays the safety net.

* PostgreSQL: the upload's own transaction runs `pg_notify`, which the server delivers at commit
  (and never for a rolled-back upload) to every worker LISTENing on any host. The channel is
  named after the schema, so deployments sharing a database do not wake each other.
* SQLite (one host): each worker owns a FIFO in `$DATA_DIR/wakeup/`; once the upload is committed,
  one byte is written to every FIFO there. A FIFO rather than a UNIX datagram socket: a socket's
  address is limited to 108 bytes, and the data directory may be deeper than that.

A queued manual batch (process_batch) wakes the workers the same way, just after its commit.

A wake-up is only a hint. One that is lost (no worker listening yet, the listening connection
dropped, a FIFO full or removed) costs at most WORKER_POLL_INTERVAL_SECONDS, never an upload: the
worker looks for work after every wait, woken or not. WORKER_WAKE_ON_UPLOAD=false turns the whole
mechanism off (e.g. behind a PgBouncer in transaction mode, where LISTEN does not work).
"""
from __future__ import annotations

import errno
import logging
import os
import re
import selectors
import stat
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.orm import Session

from service.runtime import Runtime

logger = logging.getLogger(__name__)

WAKEUP_DIRECTORY = "wakeup"
FIFO_SUFFIX = ".fifo"
# The schema's channel: an identifier (63 bytes at most) whatever the schema is called.
CHANNEL_SQL = "'ocr_work_' || md5(current_schema())"
NOTIFY_SQL = f"SELECT pg_notify({CHANNEL_SQL}, '')"
# A listener that lost its PostgreSQL connection tries again at most this often.
RECONNECT_SECONDS = 5.0
# libpq options of the listening connection. It only ever waits, so without TCP keepalives a
# connection silently dropped on the way (host gone, NAT or firewall timeout) would never be noticed
# and every later wake-up lost; with them it is noticed within about a minute and opened again.
LISTEN_CONNECT_OPTIONS = {"connect_timeout": 5, "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
                          "keepalives_count": 3}
READ_CHUNK = 4096


def enabled(rt: Runtime) -> bool:
    return bool(rt.settings.get("WORKER_WAKE_ON_UPLOAD", True))


def wakeup_directory(rt: Runtime) -> Path:
    return Path(rt.settings["DATA_DIR"]) / WAKEUP_DIRECTORY


# --- the web side -----------------------------------------------------------------------------
def announce_new_work(rt: Runtime, session: Session) -> None:
    """Inside the transaction that adds work, before its commit: wake the workers when it commits."""
    if not enabled(rt):
        return
    if rt.db.dialect == "postgresql":
        session.execute(text(NOTIFY_SQL))
    else:
        directory = wakeup_directory(rt)
        event.listen(session, "after_commit", lambda _session: ring_local_workers(directory), once=True)


def wake_workers(rt: Runtime) -> None:
    """After a commit that added work (a queued manual batch): wake the workers now."""
    if not enabled(rt):
        return
    if rt.db.dialect == "postgresql":
        with rt.db.session() as session:
            session.execute(text(NOTIFY_SQL))
            session.commit()
    else:
        ring_local_workers(wakeup_directory(rt))


def ring_local_workers(directory: Path) -> int:
    """One byte to every worker FIFO in `directory`; returns how many were rung.

    A FIFO nobody reads any more (its worker died without removing it) is removed; a full one
    already holds a wake-up, which is all it needs.
    """
    rung = 0
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if not entry.name.endswith(FIFO_SUFFIX) or not _is_fifo(entry.path):
            continue  # never write into anything else that ended up there
        try:
            fd = os.open(entry.path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # no reader: a dead worker's FIFO
                _remove(entry.path)
            continue
        try:
            os.write(fd, b"\0")
            rung += 1
        except BlockingIOError:
            rung += 1
        except OSError as exc:
            logger.debug("Could not wake %s: %s", entry.name, exc)
        finally:
            os.close(fd)
    return rung


def _is_fifo(path: str) -> bool:
    try:
        return stat.S_ISFIFO(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# --- the worker side --------------------------------------------------------------------------
class WakeupListener:
    """What a worker waits on between rounds: wake-ups from uploads, its own stop, or the timeout.

    Open it before the first look for work: wake-ups that arrive while the worker is busy are
    kept, so the next wait returns at once and nothing committed in between waits for the poll.
    """

    def __init__(self, rt: Runtime, worker_id: str) -> None:
        self.rt = rt
        self.fifo_path = wakeup_directory(rt) / (re.sub(r"[^A-Za-z0-9._-]", "_", worker_id) + FIFO_SUFFIX)
        # Made by the first open() or wait(): a Worker that never waits holds no descriptors.
        self._selector: selectors.BaseSelector | None = None
        self._interrupt_read = self._interrupt_write = -1
        self._source: Any = None  # the FIFO's descriptor or the LISTENing connection
        self._source_fd = -1  # what the selector watches: still known once a connection is closed
        self._next_connect = 0.0

    @property
    def listening(self) -> bool:
        return self._source is not None

    def open(self) -> None:
        self._ensure_selector()
        if self._source is not None or not enabled(self.rt):
            return
        if self.rt.db.dialect == "postgresql":
            self._listen()
        else:
            self._open_fifo()

    def wait(self, timeout: float) -> bool:
        """Until a wake-up, interrupt() or `timeout` seconds; true when woken before the timeout."""
        selector = self._ensure_selector()
        if self._source is None and self.rt.db.dialect == "postgresql" and time.monotonic() >= self._next_connect:
            self.open()
        deadline = time.monotonic() + timeout
        while True:
            for key, _events in selector.select(max(0.0, deadline - time.monotonic())):
                if key.fileobj == self._interrupt_read:
                    _drain(self._interrupt_read)
                    return True
                if self._take_wakeups():
                    return True
            if time.monotonic() >= deadline:
                return False

    def interrupt(self) -> None:
        """Ends a wait now (safe from a signal handler): the worker is stopping."""
        if self._interrupt_write < 0:
            return  # not waiting yet, or closed
        try:
            os.write(self._interrupt_write, b"\0")
        except OSError:
            pass  # already interrupted (the pipe is full), or closed meanwhile by the worker's thread

    def close(self) -> None:
        if self._selector is None:
            return
        self._drop_source()
        self._selector.close()
        self._selector = None
        read, write = self._interrupt_read, self._interrupt_write
        self._interrupt_read = self._interrupt_write = -1
        os.close(read)
        os.close(write)

    def _ensure_selector(self) -> selectors.BaseSelector:
        if self._selector is None:
            self._interrupt_read, self._interrupt_write = os.pipe()
            os.set_blocking(self._interrupt_read, False)
            os.set_blocking(self._interrupt_write, False)
            self._selector = selectors.DefaultSelector()
            self._selector.register(self._interrupt_read, selectors.EVENT_READ)
        return self._selector

    # --- sources ------------------------------------------------------------------------------
    def _open_fifo(self) -> None:
        self.fifo_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkfifo(self.fifo_path, 0o600)
        except FileExistsError:
            if not stat.S_ISFIFO(os.lstat(self.fifo_path).st_mode):
                raise
        # Read-write: the FIFO never reports end-of-file when the last writer closes it.
        self._source = self._source_fd = os.open(self.fifo_path, os.O_RDWR | os.O_NONBLOCK)
        self._ensure_selector().register(self._source_fd, selectors.EVENT_READ)

    def _listen(self) -> None:
        connection = None
        engine = self.rt.db.engine
        if engine.dialect.driver != "psycopg2":  # poll() and notifies below are psycopg2's
            logger.warning("Wake-ups need the psycopg2 driver, not %s; polling only", engine.dialect.driver)
            self._next_connect = float("inf")
            return
        try:
            # A connection of its own, outside the pool: a LISTENing one must never be handed out.
            args, options = engine.dialect.create_connect_args(engine.url)
            connection = engine.dialect.dbapi.connect(*args, **{**options, **LISTEN_CONNECT_OPTIONS})
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT {CHANNEL_SQL}")
                channel = cursor.fetchone()[0]
                cursor.execute(f'LISTEN "{channel}"')
        except Exception as exc:  # the database is away: poll until it is back
            if connection is not None:
                connection.close()
            self._next_connect = time.monotonic() + RECONNECT_SECONDS
            logger.warning("Not listening for uploads (%s: %s); polling only until it works", type(exc).__name__, exc)
            return
        self._source, self._source_fd = connection, connection.fileno()
        self._ensure_selector().register(self._source_fd, selectors.EVENT_READ)

    def _take_wakeups(self) -> bool:
        if isinstance(self._source, int):
            return _drain(self._source)
        try:
            self._source.poll()
        except Exception as exc:  # the connection broke: notifications are lost, polling covers them
            logger.warning("Lost the connection that listens for uploads (%s: %s); reconnecting", type(exc).__name__, exc)
            self._drop_source()
            self._next_connect = time.monotonic() + RECONNECT_SECONDS
            return True  # look for work now: something may have been committed meanwhile
        woken = bool(self._source.notifies)
        self._source.notifies.clear()
        return woken

    def _drop_source(self) -> None:
        source, self._source = self._source, None
        if source is None:
            return
        if self._selector is not None:
            self._selector.unregister(self._source_fd)
        if isinstance(source, int):
            os.close(source)
            _remove(str(self.fifo_path))
        else:
            try:
                source.close()
            except Exception:
                pass  # already broken


def _drain(fd: int) -> bool:
    got = False
    while True:
        try:
            chunk = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return got
        if not chunk:
            return got
        got = True
