"""Slow clients against the real service: do /api/health and uploads of other clients still answer?

    python benchmarks/slow_clients.py [--stalled 200] [--trickling 50] [--probes 40]
                                      [--worker-class gevent|gthread]

Starts the service under gunicorn on a loopback port (the defaults: 2 web processes), then opens
`stalled` sockets that send half a request head and then nothing, and `trickling` sockets that
send a complete upload head and then its body one byte a second. While they hold on, another
client sends /api/health requests and real uploads one after another; prints p50, p99 and max
latency of each. Loopback only; every socket is closed at the end.
"""
from __future__ import annotations

import argparse
import io
import socket
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.service_process import running_service  # noqa: E402

STALLED_HEAD = b"GET /api/health HTTP/1.1\r\nHost: x\r\n"
TRICKLED_BODY_BYTES = 100_000
TRICKLED_HEAD = (b"POST /api/upload HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                 b"Content-Length: " + str(TRICKLED_BODY_BYTES).encode() + b"\r\n\r\n")


@dataclass
class SlowClients:
    """Sockets that hold the server's attention without ever finishing a request."""

    host: str
    port: int
    stalled: int
    trickling: int
    sockets: list[socket.socket] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> "SlowClients":
        for count, head in ((self.stalled, STALLED_HEAD), (self.trickling, TRICKLED_HEAD)):
            for _ in range(count):
                sock = socket.create_connection((self.host, self.port), timeout=5)
                sock.sendall(head)
                self.sockets.append(sock)
        self._thread = threading.Thread(target=self._trickle, name="trickle", daemon=True)
        self._thread.start()
        return self

    def _trickle(self) -> None:
        trickling = self.sockets[self.stalled:]
        while not self._stop.wait(1.0):
            for sock in trickling:
                try:
                    sock.send(b"x")
                except OSError:
                    pass  # the server hung up on it: fine, that is one way to defend

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for sock in self.sockets:
            sock.close()


def receipt_png() -> bytes:
    from tools.receipt_generator import generate_receipt

    return generate_receipt(1, variant="clean").image_bytes


def probe_latencies(base: str, probes: int, image: bytes, timeout: float = 10) -> dict[str, list[float]]:
    """Seconds each /api/health and each upload took, one request at a time, on fresh connections.
    A request that fails or gets no answer within `timeout` counts as `timeout` seconds and in "failed"."""
    latencies: dict[str, list[float]] = {"health": [], "upload": [], "failed": []}

    def timed(kind: str, send) -> None:
        started = time.perf_counter()
        try:
            ok = send().status_code == 200
        except requests.RequestException:
            ok = False
        latencies[kind].append(time.perf_counter() - started if ok else timeout)
        if not ok:
            latencies["failed"].append(kind)

    for index in range(probes):
        files = {"files": (f"r{index}.png", io.BytesIO(image))}
        timed("health", lambda: requests.get(f"{base}/api/health", timeout=timeout))
        timed("upload", lambda files=files: requests.post(f"{base}/api/upload", files=files, data={"nombre": "Probe"},
                                                          timeout=timeout))
    return latencies


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return f"p50 {statistics.median(ordered) * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms  max {ordered[-1] * 1000:7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stalled", type=int, default=200)
    parser.add_argument("--trickling", type=int, default=50)
    parser.add_argument("--probes", type=int, default=40)
    parser.add_argument("--worker-class", default=None, help="WEB_WORKER_CLASS for the service (default: its own)")
    args = parser.parse_args()
    settings = {"WORKER_ENABLED": "false"}
    if args.worker_class:
        settings["WEB_WORKER_CLASS"] = args.worker_class
    image = receipt_png()
    with tempfile.TemporaryDirectory() as directory, running_service(Path(directory) / "storage", **settings) as svc:
        quiet = probe_latencies(svc.base, args.probes, image)
        with SlowClients("127.0.0.1", svc.port, args.stalled, args.trickling):
            time.sleep(2)  # let the trickle start
            attacked = probe_latencies(svc.base, args.probes, image)
        print(f"worker class {args.worker_class or 'default'}; {args.stalled} stalled heads, "
              f"{args.trickling} trickled bodies; {args.probes} probes each")
        for kind in ("health", "upload"):
            for label, run in (("quiet", quiet), ("attacked", attacked)):
                failed = run["failed"].count(kind)
                print(f"{kind:7} {label:9} {summary(run[kind])}  failed/timed out {failed}/{len(run[kind])}")


if __name__ == "__main__":
    main()
