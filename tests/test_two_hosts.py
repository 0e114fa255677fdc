"""Two hosts, one PostgreSQL (issue 22): the real service twice (gunicorn, web processes and the OCR
worker each), as a reviewer would run two copies, with SECRET_KEY, WEBHOOK_SECRETS_KEY and API_KEYS
given.

* IMAGE_STORAGE=postgresql: each host its own DATA_DIR, nothing shared but the database.
* IMAGE_STORAGE=local: one DATA_DIR for both (a shared disk).
* IMAGE_STORAGE=s3: each host its own DATA_DIR, the images in a bucket of moto's S3 server.

Host A serves the API only (WORKER_ENABLED=false), so every upload sent to it is read by host B's
worker: 10 uploads to A, each processed and its image served by B; uploads to B are served by A;
retention run on A removes what B served; a SIGKILL of B's worker in the middle of a round loses
nothing and reads nothing twice. Needs TEST_DATABASE_URL; slow (two services, the OCR models).
"""
import os
import signal
import time
from contextlib import ExitStack

import psutil
import pytest
import requests
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, text

from benchmarks.service_process import running_service
from tests.conftest import TEST_DATABASE_URL, fresh_postgres_schema
from tools.receipt_generator import generate_receipt

pytestmark = pytest.mark.slow

ADMIN_KEY = "two-hosts-admin-key-0b5f9c1e"
HEADERS = {"X-API-Key": ADMIN_KEY}
IMAGE_DIRECTORIES = ("inbox", "processing", "processed", "errors", "results")


def query(url, sql):
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(text(sql)).all()
    finally:
        engine.dispose()


def upload(base, images):
    files = [("files", (f"r{n}.png", data, "image/png")) for n, data in enumerate(images)]
    answer = requests.post(f"{base}/api/upload", headers=HEADERS, files=files, data={"nombre": "Ana"}, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()["files_processed"]


def wait_finished(base, ids, timeout=240):
    deadline = time.monotonic() + timeout
    pending = set(ids)
    statuses = {}
    while pending and time.monotonic() < deadline:
        for upload_id in sorted(pending):
            status = requests.get(f"{base}/api/uploads/{upload_id}", headers=HEADERS, timeout=30).json()["upload"]["status"]
            statuses[upload_id] = status
            if status in ("processed", "error"):
                pending.discard(upload_id)
        time.sleep(0.5)
    assert not pending, f"not finished in {timeout}s: {statuses}"
    return statuses


def image(base, upload_id):
    return requests.get(f"{base}/api/uploads/{upload_id}/image", headers=HEADERS, timeout=30)


def files_on_disk(root):
    data = root / "data"
    return sorted(str(p.relative_to(data)) for key in IMAGE_DIRECTORIES if (data / key).is_dir()
                  for p in (data / key).iterdir())


def ocr_worker(service):
    found = [p for p in service.processes() if "worker" in " ".join(p.cmdline()) and "gunicorn" not in " ".join(p.cmdline())]
    assert len(found) == 1, found
    return found[0]


def bucket_objects(storage, settings):
    if storage != "s3":
        return []
    import boto3

    client = boto3.client("s3", endpoint_url=settings["S3_ENDPOINT_URL"], region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    return [item["Key"] for item in client.list_objects_v2(Bucket=settings["S3_BUCKET"]).get("Contents", [])]


def s3_settings(stack):
    """moto's S3 server with a bucket, and the settings both hosts need to use it."""
    import boto3
    from moto.server import ThreadedMotoServer

    from benchmarks.service_process import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    stack.callback(server.stop)
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket="receipts")
    return dict(S3_BUCKET="receipts", S3_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="testing",
                AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")


@pytest.mark.parametrize("storage", ["postgresql", "local", "s3"])
def test_two_hosts_read_serve_and_clean_each_others_uploads(storage, tmp_path):
    if not TEST_DATABASE_URL:
        pytest.skip("two hosts share one PostgreSQL: set TEST_DATABASE_URL")
    shared_disk = storage == "local"
    root_a = tmp_path / ("shared" if shared_disk else "host-a")
    root_b = tmp_path / ("shared" if shared_disk else "host-b")
    settings = dict(IMAGE_STORAGE=storage, API_KEYS=ADMIN_KEY, SECRET_KEY="two-hosts-session-secret-4e8a1d",
                    WEBHOOK_SECRETS_KEY=Fernet.generate_key().decode(), OCR_MAX_IMAGES_PER_BATCH="3",
                    CLEANUP_INTERVAL_SECONDS="0")
    receipts = [generate_receipt(seed, variant="clean").image_bytes for seed in range(40, 61)]
    with fresh_postgres_schema("twohosts") as url, ExitStack() as stack:
        if storage == "s3":
            settings.update(s3_settings(stack))
        host_b = stack.enter_context(running_service(root_b, url, log_path=tmp_path / "host-b.log", **settings))
        host_a = stack.enter_context(running_service(root_a, url, log_path=tmp_path / "host-a.log",
                                                     WORKER_ENABLED="false", **settings))

        # 10 uploads to A (no worker of its own): every one read by B's worker and served by B.
        to_a = upload(host_a.base, receipts[:10])
        assert set(wait_finished(host_b.base, [f["id"] for f in to_a]).values()) == {"processed"}
        for entry, data in zip(to_a, receipts):
            served = image(host_b.base, entry["id"])
            assert served.status_code == 200 and served.content == data
        # Uploads to B are served by A.
        to_b = upload(host_b.base, receipts[10:13])
        wait_finished(host_a.base, [f["id"] for f in to_b])
        for entry, data in zip(to_b, receipts[10:13]):
            assert image(host_a.base, entry["id"]).content == data
        rows = query(url, "SELECT DISTINCT image_store FROM uploads")
        assert rows == [(storage,)]
        if not shared_disk:
            # Nothing of the uploads on either host's disk: the database (or the bucket) holds the images.
            assert files_on_disk(root_a) == files_on_disk(root_b) == []
        if storage == "s3":
            assert len(bucket_objects(storage, settings)) == 13

        # Retention on A removes what B served, bytes included.
        cleaned = requests.post(f"{host_a.base}/api/clean", headers=HEADERS, json={"retention_hours": 0}, timeout=60)
        assert cleaned.status_code == 200 and cleaned.json()["uploads_removed"] == 13
        assert all(image(host_b.base, f["id"]).status_code == 404 for f in to_a + to_b)
        assert query(url, "SELECT count(*) FROM upload_images") == [(0,)]
        assert files_on_disk(root_b) == [] and bucket_objects(storage, settings) == []

        # B's worker killed (SIGKILL) while it holds a round: nothing lost, nothing read twice.
        worker = ocr_worker(host_b)
        batch = upload(host_a.base, receipts[13:21])
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            held = query(url, f"SELECT count(*) FROM uploads WHERE status = 'processing' AND claimed_by LIKE '%:{worker.pid}:%'")
            if held[0][0]:
                break
            time.sleep(0.05)
        else:
            pytest.fail("B's worker never claimed the uploads")
        os.kill(worker.pid, signal.SIGKILL)
        statuses = wait_finished(host_a.base, [f["id"] for f in batch], timeout=300)
        assert set(statuses.values()) == {"processed"}
        counts = query(url, "SELECT upload_id, count(*) FROM results GROUP BY upload_id ORDER BY upload_id")
        assert counts == [(f["id"], 1) for f in batch]
        for entry, data in zip(batch, receipts[13:21]):
            assert image(host_a.base, entry["id"]).content == data
            assert image(host_b.base, entry["id"]).content == data
        assert not psutil.pid_exists(worker.pid) or psutil.Process(worker.pid).status() == psutil.STATUS_ZOMBIE
        assert ocr_worker(host_b).pid != worker.pid  # B's supervisor started another one
