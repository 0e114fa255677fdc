"""The real service under gunicorn as a child process: start on a free loopback port, wait, stop.

One piece of code for every script and test that drives the service over HTTP
(tests/test_e2e_gunicorn.py, tests/test_fuzz.py, benchmarks/service_bench.py, benchmarks/load_test.py):

    from benchmarks.service_process import running_service

    with running_service(tmp / "storage", WORKER_ENABLED="false") as svc:
        requests.get(f"{svc.base}/api/health")
        svc.rss_bytes()          # master + web workers + OCR worker, summed

The service listens on 127.0.0.1 only, keeps its files under `storage_root` (its database too,
unless `database_url` is given) and writes gunicorn's log next to it. Settings are environment
variables, passed as keyword arguments.
"""
from __future__ import annotations

import base64
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import psutil
import requests

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 120
STOP_TIMEOUT = 60
# Defaults for a service under test: quick worker polling, no process_batch rate limit.
DEFAULT_SETTINGS = {
    "WEB_CONCURRENCY": "2",
    "WEB_THREADS": "4",
    "WORKER_POLL_INTERVAL_SECONDS": "0.2",
    "PROCESS_BATCH_MIN_INTERVAL_SECONDS": "0",
    # Tests and benchmarks upload far faster than one client may (tests/test_tenants.py checks the limit).
    "UPLOAD_RATE_LIMIT_PER_MINUTE": "0",
    "STATEMENT_RATE_LIMIT_PER_MINUTE": "0",
    "INBOX_ADOPT_MIN_AGE_SECONDS": "0.5",
    "LOG_LEVEL": "INFO",
    # One OCR worker unless a test or benchmark asks for more: each one loads its own models.
    "OCR_WORKERS": "1",
}
# Settings a developer's shell could carry in and change what is being measured or tested.
ISOLATED_ENV = ("API_KEYS", "DATA_DIR", "DATABASE_URL", "STORAGE_ROOT", "WORKER_ENABLED", "CORS_ORIGINS", "PROMETHEUS_MULTIPROC_DIR",
                "SESSION_SECRET", "SECRET_KEY", "TRUSTED_PROXY_COUNT", "MAX_FILES_PER_UPLOAD", "MAX_FILE_SIZE_MB",
                "MAX_REQUEST_SIZE_MB", "PROCESS_BATCH_MIN_INTERVAL_SECONDS", "RETENTION_HOURS", "ALLOW_ANONYMOUS",
                "PAYMENT_MEMORY_DAYS", "REUSE_CHECK_ACROSS_TENANTS")


# Made once per test process, so every service it starts (every "host") shares them, as a deployment's hosts do.
POSTGRES_TEST_SECRETS = {"SECRET_KEY": secrets.token_hex(32),
                         "WEBHOOK_SECRETS_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_processes(master_pid: int) -> list[psutil.Process]:
    """The gunicorn master and every descendant: web workers and the OCR worker process."""
    try:
        master = psutil.Process(master_pid)
        return [master] + master.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def tree_rss(master_pid: int) -> int:
    total = 0
    for process in service_processes(master_pid):
        try:
            total += process.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass  # a web worker recycled between listing and reading
    return total


def tree_cpu_seconds(master_pid: int) -> float:
    """User + system CPU seconds used so far by the service's live processes."""
    total = 0.0
    for process in service_processes(master_pid):
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


class CpuMeter:
    """CPU used by the service and by everything else on the host between start() and stop().

    The host is shared (other benchmarks, test runs): `others_cores` says how many cores the
    rest of the machine kept busy meanwhile, so a slow figure can be told from a contended one.
    """

    def __init__(self, master_pid: int) -> None:
        self.master_pid = master_pid
        self.service_seconds = self.host_busy_seconds = self.wall_seconds = 0.0

    @staticmethod
    def _host_busy() -> float:
        times = psutil.cpu_times()
        return sum(times) - times.idle - getattr(times, "iowait", 0.0)

    def start(self) -> "CpuMeter":
        self._service0 = tree_cpu_seconds(self.master_pid)
        self._host0 = self._host_busy()
        self._wall0 = time.monotonic()
        return self

    def stop(self) -> "CpuMeter":
        self.service_seconds = tree_cpu_seconds(self.master_pid) - self._service0
        self.host_busy_seconds = self._host_busy() - self._host0
        self.wall_seconds = time.monotonic() - self._wall0
        return self

    @property
    def service_cores(self) -> float:
        return self.service_seconds / self.wall_seconds if self.wall_seconds else 0.0

    @property
    def others_cores(self) -> float:
        """Cores used by other processes (this client included) on average."""
        if not self.wall_seconds:
            return 0.0
        return max(0.0, (self.host_busy_seconds - self.service_seconds) / self.wall_seconds)


def high_water_rss(pid: int) -> int:
    """Peak RSS of one process over its whole life (the kernel's VmHWM), 0 if unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


class RssSampler:
    """Samples the summed RSS of the service's processes every `interval` seconds in a thread, and
    the largest single process's own peak (VmHWM: exact, not sampled), the OCR process's."""

    def __init__(self, master_pid: int, interval: float = 0.2) -> None:
        self.master_pid = master_pid
        self.interval = interval
        self.peak = 0
        self.last = 0
        self.samples = 0
        self.process_peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> int:
        value = tree_rss(self.master_pid)
        for process in service_processes(self.master_pid):
            self.process_peak = max(self.process_peak, high_water_rss(process.pid))
        self.last = value
        self.peak = max(self.peak, value)
        self.samples += 1
        return value

    def start(self) -> "RssSampler":
        self.sample()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def reset_peak(self) -> None:
        self.peak = self.last

    def stop(self) -> int:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.sample()
        return self.peak

    def __enter__(self) -> "RssSampler":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class Service:
    base: str
    port: int
    process: subprocess.Popen
    storage_root: Path
    log_path: Path
    env: dict[str, str] = field(repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def processes(self) -> list[psutil.Process]:
        return service_processes(self.process.pid)

    def rss_bytes(self) -> int:
        return tree_rss(self.process.pid)

    def rss_sampler(self, interval: float = 0.2) -> RssSampler:
        return RssSampler(self.process.pid, interval)

    def cpu_meter(self) -> CpuMeter:
        return CpuMeter(self.process.pid)

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def health(self, timeout: float = 5) -> requests.Response:
        return requests.get(f"{self.base}/api/health", timeout=timeout)


def wait_until_ready(base: str, process: subprocess.Popen, log_path: Path, need_worker: bool,
                     timeout: float = START_TIMEOUT) -> None:
    """Until /api/health answers with the database up (and a ready OCR worker when one is expected)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"gunicorn exited with {process.returncode}:\n" + log_path.read_text(errors="replace"))
        try:
            body = requests.get(f"{base}/api/health", timeout=2).json()
            if body["checks"]["database"]["ok"] and (body["checks"]["worker"]["ready"] or not need_worker):
                return
        except (requests.ConnectionError, requests.Timeout, ValueError, KeyError, TypeError):
            pass
        time.sleep(0.3)
    raise AssertionError("service did not become ready:\n" + log_path.read_text(errors="replace"))


def stop_service(process: subprocess.Popen, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM to the master (which stops its web workers and the OCR worker), SIGKILL if it hangs."""
    if process.poll() is not None:
        return
    children = service_processes(process.pid)[1:]
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    # The OCR worker runs in its own session; if the master was killed, do not leave it behind.
    for child in children:
        try:
            child.wait(timeout=5)
        except psutil.TimeoutExpired:
            child.kill()
        except psutil.NoSuchProcess:
            pass


@contextmanager
def running_service(storage_root: Path, database_url: str | None = None, *, root: Path = ROOT,
                    port: int | None = None, log_path: Path | None = None, start_timeout: float = START_TIMEOUT,
                    print_log_tail: bool = False, **settings: object) -> Iterator[Service]:
    """`gunicorn -c gunicorn.conf.py "main:create_app()"` from `root` on a free loopback port, ready on entry.

    `settings` are environment variables (e.g. WORKER_ENABLED="false"); they win over
    DEFAULT_SETTINGS. Without `database_url` the service uses its default SQLite file under
    `storage_root/data`. `port` defaults to a free one.
    """
    storage_root = Path(storage_root)
    storage_root.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    env = dict(os.environ)
    for name in ISOLATED_ENV:
        env.pop(name, None)
    env.update(DEFAULT_SETTINGS)
    env.update(STORAGE_ROOT=str(storage_root), HOST="127.0.0.1", PORT=str(port))
    if database_url:
        env["DATABASE_URL"] = database_url
    if database_url and database_url.startswith("postgresql"):
        # Hosts sharing PostgreSQL are given the same secrets (these are test values) and migrate as a
        # deploy does, before the service starts: it does not migrate PostgreSQL by itself.
        env.update(POSTGRES_TEST_SECRETS)
    env.update({key: str(value) for key, value in settings.items()})
    if database_url and database_url.startswith("postgresql"):
        subprocess.run([sys.executable, "main.py", "migrate"], cwd=root, env=env, check=True, capture_output=True,
                       timeout=start_timeout)
    log_path = Path(log_path) if log_path else storage_root.parent / f"gunicorn-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "main:create_app()"],
                                   cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    service = Service(base=f"http://127.0.0.1:{port}", port=port, process=process, storage_root=storage_root,
                      log_path=log_path, env=env)
    try:
        wait_until_ready(service.base, process, log_path,
                         need_worker=env.get("WORKER_ENABLED", "true").strip().lower() in {"1", "true", "yes", "on"},
                         timeout=start_timeout)
        yield service
    finally:
        stop_service(process)
        if print_log_tail:
            print(service.log_tail())


def all_results(base: str, timeout: float = 60) -> list[dict]:
    """Every stored result document, following `next_cursor` page by page."""
    documents: list[dict] = []
    cursor = None
    while True:
        params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = requests.get(f"{base}/api/extract_results", params=params, timeout=timeout).json()
        documents.extend(page["results"])
        cursor = page.get("next_cursor")
        if not cursor:
            return documents
