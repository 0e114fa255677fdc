"""gunicorn settings: `gunicorn -c gunicorn.conf.py 'main:create_app()'`.

The OCR workers run once per host: the gunicorn master starts OCR_WORKERS `python main.py worker`
processes (0: one per core, as many as memory holds) when it is ready, restarts one that dies, and
stops them on exit. Web processes never load models for the background work, so they stay small
and can be recycled (max_requests) freely.

Prometheus multiprocess mode is set up here, in the master, before any process imports
prometheus_client: this host's directory (metrics_dir.py: `$DATA_DIR/prometheus/<HOST_NAME>`) is
emptied at start and inherited by every web process and the OCR worker; the files of a process that
exits are marked dead. Another host's directory is never touched, even on a shared DATA_DIR.
"""
import os
import signal
import sys
import threading
import time

# Before anything creates a file (the Prometheus directory, the SQLite database): 0600/0700 (app.py).
os.umask(0o077)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import psutil  # noqa: E402

# Every global here named like a gunicorn setting is read as one ("config" is): import under another name.
import config as service_config  # noqa: E402
from metrics_dir import fresh_host_directory  # noqa: E402

_settings = service_config.load_settings()
# A process that may not start (a PostgreSQL database without the shared secrets) stops here, with one message.
service_config.require_shared_secrets(_settings)

# The web processes and the OCR worker inherit it: their settings then name this same directory.
os.environ["PROMETHEUS_MULTIPROC_DIR"] = fresh_host_directory(_settings)
# Only now: prometheus_client picks its multiprocess mode from the environment when imported.
from prometheus_client import multiprocess  # noqa: E402


def _listen_host() -> str:
    """Closed by default (service/access.py): 127.0.0.1 unless a key is configured; exits with a message otherwise."""
    from database import Database  # noqa: PLC0415
    from service.access import keys_configured, listen_host  # noqa: PLC0415

    db = Database(_settings["DATABASE_URL"])
    try:
        return listen_host(_settings, keys_configured(_settings, db, when_unknown=False))
    finally:
        db.dispose()  # before the fork: no connection is shared with the web processes


bind = f"{_listen_host()}:{_settings['PORT']}"
# So `gunicorn -c gunicorn.conf.py` alone serves the app; importing main builds nothing by itself.
wsgi_app = "main:create_app()"
workers = _settings["WEB_CONCURRENCY"]
# gevent by default: every connection is a greenlet, so a client that sends its head or body slowly
# (or never) holds a few KB, not one of a handful of threads (README, "Slow clients"). Requests are
# short database and file work; OCR runs in the worker process.
worker_class = _settings["WEB_WORKER_CLASS"]
worker_connections = _settings["WEB_WORKER_CONNECTIONS"]
threads = _settings["WEB_THREADS"]  # gthread only
# A synchronous process_batch waits for its batch (OCR_BATCH_TIMEOUT_SECONDS, 300 by default).
timeout = _settings["WEB_TIMEOUT_SECONDS"]
graceful_timeout = 30
# ONNX Runtime servers grow in memory over time; recycling web processes keeps them bounded.
max_requests = _settings["WEB_MAX_REQUESTS"]
max_requests_jitter = max(1, max_requests // 10)
# Seconds an idle keep-alive connection stays open (behind a load balancer: longer than its idle timeout).
keepalive = _settings["WEB_KEEPALIVE_SECONDS"]
preload_app = False
# The control socket's default path is one per user, so two deployments (or test services) on a host
# would fight over it; nothing here uses gunicornc.
control_socket_disable = True
accesslog = "-"
errorlog = "-"
loglevel = _settings["LOG_LEVEL"].lower()
# Do not log the query string or headers that could carry an API key.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms request_id=%({x-request-id}o)s'
if _settings["LOG_FORMAT"] == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "logging_setup.JsonFormatter"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}},
        # The app adds its own handler to the root logger (logging_setup); none here, or lines would repeat.
        "root": {"level": "WARNING", "handlers": []},
        "loggers": {
            "gunicorn.error": {"level": loglevel.upper(), "handlers": ["console"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
        },
    }

MAIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "main.py")
RESTART_BACKOFF_MAX_SECONDS = 60


class WorkerSupervisor:
    """Keeps one OCR worker process running beside the gunicorn master (one supervisor per worker)."""

    def __init__(self, index: int = 0, threads: int = 0) -> None:
        self.index = index
        self.threads = threads  # its ORT_INTRA_OP_THREADS when the operator set none
        self.process = None  # a psutil.Process
        self.stopping = threading.Event()
        self.thread = None

    def start(self, log) -> None:
        self.log = log
        self.thread = threading.Thread(target=self._supervise, name=f"ocr-worker-supervisor-{self.index}", daemon=True)
        self.thread.start()

    def _spawn(self):
        env = dict(os.environ, OCR_WORKER_PARENT_PID=str(os.getpid()))
        if self.threads and not _settings["ORT_INTRA_OP_THREADS"]:
            env["ORT_INTRA_OP_THREADS"] = str(self.threads)
        # posix_spawn, not subprocess.Popen: Popen waits on a pipe until the child has exec'd, and a
        # web worker the master forks meanwhile inherits that pipe and holds it for its whole life,
        # so Popen never returned and a dead OCR worker was never restarted. setsid: its own
        # session, so a terminal's Ctrl-C reaches the master only, which then stops it in order.
        pid = os.posix_spawn(sys.executable, [sys.executable, MAIN, "worker"], env, setsid=True)
        return psutil.Process(pid)

    def _supervise(self) -> None:
        backoff = 1.0
        while not self.stopping.is_set():
            started = time.monotonic()
            self.process = self._spawn()
            self.log.info("OCR worker started (pid %s)", self.process.pid)
            # None when the master's SIGCHLD handler reaped it first.
            code = self.process.wait()
            _mark_dead(self.process.pid)
            if self.stopping.is_set():
                return
            self.log.warning("OCR worker (pid %s) exited with %s; restarting in %.0fs", self.process.pid, code, backoff)
            if self.stopping.wait(backoff):
                return
            backoff = 1.0 if time.monotonic() - started > 60 else min(RESTART_BACKOFF_MAX_SECONDS, backoff * 2)

    def stop(self) -> None:
        self.stopping.set()
        process = self.process
        if process is None or not process.is_running():
            return
        try:
            process.terminate()
            process.wait(timeout=graceful_timeout)
        except psutil.TimeoutExpired:
            process.kill()
        except psutil.NoSuchProcess:
            pass


# OCR_WORKERS processes (0: one per core, as many as memory holds), the cores shared out among them
# (ORT_INTRA_OP_THREADS 0), so N workers never run more onnxruntime threads than there are cores.
from ocr.capacity import resolve_workers, threads_per_worker  # noqa: E402

_ocr_workers = resolve_workers(_settings["OCR_WORKERS"])
_supervisors = [WorkerSupervisor(index, threads_per_worker(_settings["ORT_INTRA_OP_THREADS"], _ocr_workers))
                for index in range(_ocr_workers)]


def _mark_dead(pid: int) -> None:
    multiprocess.mark_process_dead(pid)


def child_exit(server, worker) -> None:
    _mark_dead(worker.pid)


def post_worker_init(worker) -> None:
    # Ctrl-C in a terminal signals the whole process group: a web worker's own quick exit (SIGINT)
    # ends its greenlets with SystemExit tracebacks. The master alone handles it (when_ready).
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def when_ready(server) -> None:
    # Ctrl-C stops like SIGTERM: web workers finish their requests, the OCR workers hand work back.
    server.handle_int = server.handle_term
    if _settings["WORKER_ENABLED"]:
        server.log.info("Starting %d OCR worker(s), %d onnxruntime thread(s) each", len(_supervisors),
                        threads_per_worker(_settings["ORT_INTRA_OP_THREADS"], len(_supervisors)))
        for supervisor in _supervisors:
            supervisor.start(server.log)
    else:
        server.log.info("WORKER_ENABLED is off: no OCR worker; process_batch runs in the web processes")


def on_exit(server) -> None:
    # Stopped together: each waits up to graceful_timeout for its worker's batch to hand back.
    stoppers = [threading.Thread(target=supervisor.stop) for supervisor in _supervisors]
    for stopper in stoppers:
        stopper.start()
    for stopper in stoppers:
        stopper.join()
