"""Slow clients can't stall the service: against the real gunicorn server, with its defaults.

200 sockets that never finish their request head and 50 that trickle an upload body one byte a
second stay open while another client's /api/health requests and uploads each answer within 1 s.
Loopback only, bounded in sockets and time; SQLite and (with TEST_DATABASE_URL) PostgreSQL.
"""
import time

import pytest

from benchmarks.service_process import running_service
from benchmarks.slow_clients import SlowClients, probe_latencies, receipt_png

STALLED, TRICKLING, PROBES = 200, 50, 10
MAX_LATENCY_SECONDS = 1.0


@pytest.mark.slow
def test_slow_clients_leave_health_and_uploads_answering_within_a_second(tmp_path, database_url):
    image = receipt_png()
    with running_service(tmp_path / "storage", database_url, WORKER_ENABLED="false") as svc:
        with SlowClients("127.0.0.1", svc.port, STALLED, TRICKLING) as attack:
            time.sleep(2)  # the trickle is under way
            latencies = probe_latencies(svc.base, PROBES, image, timeout=5)
            still_open = sum(1 for sock in attack.sockets if sock.fileno() != -1)
        assert still_open == STALLED + TRICKLING
        assert latencies["failed"] == [], svc.log_tail()
        assert max(latencies["health"]) < MAX_LATENCY_SECONDS, latencies
        assert max(latencies["upload"]) < MAX_LATENCY_SECONDS, latencies
