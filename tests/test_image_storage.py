"""Where images live (IMAGE_STORAGE, issue 22) and stored names per tenant (issue 21, item 4).

Database tests run on SQLite and, with TEST_DATABASE_URL, on PostgreSQL; the tests of the
`postgresql` storage run on PostgreSQL only (it refuses SQLite). tests/test_two_hosts.py runs the
real service on two hosts.
"""
import io

import pytest
from PIL import Image
from pydantic import ValidationError
from sqlalchemy import event, func, insert, select

from config import Settings
from database import Result, Upload, UploadImage
from service.access import create_key
from service.housekeeping import adopt_inbox_files, purge_finished
from tools.receipt_generator import generate_receipt
from worker import Worker

ADMIN_KEY = "bootstrap-admin-key-for-tests-7a2e"


def image_bytes(seed: int) -> bytes:
    image = Image.new("RGB", (64, 48), (seed % 251, (seed * 7) % 251, (seed * 13) % 251))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def upload(client, key, files, **metadata):
    response = client.post("/api/upload", headers={"X-API-Key": key} if key else {}, content_type="multipart/form-data",
                           data={**metadata, "files": [(io.BytesIO(data), "r.png") for data in files]})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["files_processed"]


def disk_files(rt):
    return sorted(p.relative_to(rt.storage.dirs["inbox"].parent).as_posix()
                  for key in ("inbox", "processing", "processed", "errors", "results")
                  for p in rt.storage.dirs[key].iterdir())


class StatementCounter:
    def __init__(self, engine):
        self.engine, self.count = engine, 0

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._seen)

    def _seen(self, *args):
        self.count += 1


# --- names per tenant (issue 21, item 4) --------------------------------------------------------
def test_another_tenants_names_neither_exhaust_nor_show_in_a_tenants_names(make_app):
    """Tenant beta holds the 1,000 names the old search tried for metadata-less uploads: alfa's
    next upload is still stored (it was 409 name_exhausted), under a name that says nothing about
    beta, found with as many statements as when beta had nothing."""
    app = make_app(API_KEYS=[ADMIN_KEY])
    rt = app.extensions["ocr_runtime"]
    alfa, _ = create_key(rt.db, "alfa")
    beta, beta_key = create_key(rt.db, "beta")
    client = app.test_client()
    engine = rt.db.engine
    with StatementCounter(engine) as before:
        first = upload(client, alfa, [image_bytes(1)], nombre="Solo")[0]
    with rt.db.session() as session:
        session.execute(insert(Upload), [
            {"stored_name": "---__.png" if n == 1 else f"---___{n}.png", "original_name": "r.png",
             "sha256": f"{n:064x}", "size_bytes": 1, "tenant_id": beta_key.tenant_id, "upload_metadata": {}}
            for n in range(1, 1001)])
        session.commit()
    with StatementCounter(engine) as after:
        second = upload(client, alfa, [image_bytes(3)])[0]
    assert first["stored_name"] == f"---_Solo_~{first['id']}.png"
    assert second["stored_name"] == f"---__~{second['id']}.png"  # no _2: beta's names are not alfa's business
    assert after.count <= before.count  # no search over names: constant whatever the others hold
    # Same metadata in two tenants: the same name but for each upload's own id.
    same = {"fechasorteo": "20250711", "numerosorteo": "A", "idWhatsapp": "1@lid", "nombre": "Ana", "horamin": "10-00"}
    mine, theirs = upload(client, alfa, [image_bytes(4)], **same)[0], upload(client, beta, [image_bytes(5)], **same)[0]
    assert mine["stored_name"].replace(f"~{mine['id']}.", "~.") == theirs["stored_name"].replace(f"~{theirs['id']}.", "~.")


# --- the inbox is not a way into another tenant ------------------------------------------------
def test_a_restored_database_never_turns_a_tenants_images_into_defaults(make_app):
    """A dump taken before acme's uploads is restored: their rows are gone, their images are still
    in the inbox. They are never registered again as uploads of `default` (they were, before)."""
    app = make_app(API_KEYS=[ADMIN_KEY])
    rt = app.extensions["ocr_runtime"]
    acme, _ = create_key(rt.db, "acme")
    stored = upload(app.test_client(), acme, [image_bytes(n) for n in range(3)])
    with rt.db.session() as session:  # what restoring the older dump does to these rows
        session.query(Upload).filter(Upload.id.in_([f["id"] for f in stored])).delete(synchronize_session=False)
        session.commit()
    dropped = rt.storage.dirs["inbox"] / "20250711-B--999@lid_Ana_09-15.png"
    dropped.write_bytes(image_bytes(9))
    assert adopt_inbox_files(rt) == 1  # an image an operator drops is still registered...
    with rt.db.session() as session:
        assert session.scalars(select(Upload.stored_name)).all() == ["20250711-B--999@lid_Ana_09-15.png"]
    # ...the service's own files stay where they are, for an operator to look at.
    assert all((rt.storage.dirs["inbox"] / f["stored_name"]).is_file() for f in stored)


def test_an_id_handed_out_again_after_a_restore_sets_the_old_image_aside(make_app):
    app = make_app()
    rt = app.extensions["ocr_runtime"]
    client = app.test_client()
    first = upload(client, None, [image_bytes(1)])[0]
    # The image of an upload with the next id, whose row a restore took away.
    stale_name = first["stored_name"].replace(f"~{first['id']}.", f"~{first['id'] + 1}.")
    (rt.storage.dirs["inbox"] / stale_name).write_bytes(b"old image")
    second = upload(client, None, [image_bytes(2)], **{})[0]
    assert second["stored_name"] == stale_name
    assert (rt.storage.dirs["inbox"] / stale_name).read_bytes() == image_bytes(2)
    assert [p.read_bytes() for p in rt.storage.dirs["errors"].iterdir()] == [b"old image"]


# --- the setting ----------------------------------------------------------------------------------
def test_postgresql_image_storage_refuses_sqlite_with_a_message(tmp_path):
    with pytest.raises(ValidationError, match="IMAGE_STORAGE=postgresql .* needs a PostgreSQL DATABASE_URL"):
        Settings(IMAGE_STORAGE="postgresql", DATABASE_URL=f"sqlite:///{tmp_path}/x.db")
    with pytest.raises(ValidationError, match="PostgreSQL DATABASE_URL"):
        Settings(IMAGE_STORAGE="postgresql", DATA_DIR=tmp_path)  # the default database is SQLite
    assert Settings(IMAGE_STORAGE="postgresql", DATABASE_URL="postgresql+psycopg2://u@h/db").IMAGE_STORAGE == "postgresql"
    with pytest.raises(ValidationError):
        Settings(IMAGE_STORAGE="ftp")


def test_local_storage_records_where_each_image_is(client, runtime):
    entry = upload(client, None, [image_bytes(1)])[0]
    with runtime.db.session() as session:
        assert session.scalar(select(Upload.image_store).where(Upload.id == entry["id"])) == "local"
    assert (runtime.storage.dirs["inbox"] / entry["stored_name"]).is_file()


# --- images in PostgreSQL -----------------------------------------------------------------------
@pytest.fixture
def pg_app(make_app, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("IMAGE_STORAGE=postgresql runs on the PostgreSQL variant only (TEST_DATABASE_URL)")
    return make_app(IMAGE_STORAGE="postgresql")


def test_postgresql_storage_keeps_images_only_in_the_database(pg_app, orquestador):
    rt = pg_app.extensions["ocr_runtime"]
    client = pg_app.test_client()
    receipts = [generate_receipt(seed, variant="clean").image_bytes for seed in (1, 2)]
    files = upload(client, None, receipts, nombre="Ana")
    with rt.db.session() as session:
        assert set(session.scalars(select(Upload.image_store))) == {"postgresql"}
        assert session.scalar(select(func.count()).select_from(UploadImage)) >= 2
    assert disk_files(rt) == []  # nothing on this host's disk
    for entry, data in zip(files, receipts):
        answer = client.get(f"/api/uploads/{entry['id']}/image")
        assert answer.status_code == 200 and answer.data == data and answer.mimetype == "image/png"
    # A dropped file is imported into the database and leaves the host's inbox.
    (rt.storage.dirs["inbox"] / "dropped.png").write_bytes(generate_receipt(3, variant="clean").image_bytes)
    worker = Worker(rt, orquestador, "pg-worker")
    worker.start()
    try:
        assert worker.tick() == 3
    finally:
        worker.shutdown()
    with rt.db.session() as session:
        assert set(session.scalars(select(Upload.status))) == {"processed"}
        assert set(session.scalars(select(Result.processing_status))) == {"success"}
    assert disk_files(rt) == []  # no moves, no result files
    assert client.get(f"/api/uploads/{files[0]['id']}/image").data == receipts[0]
    report = purge_finished(rt, 0)
    assert report["uploads_removed"] == 3 and report["bytes_freed"] >= sum(map(len, receipts))
    with rt.db.session() as session:
        assert session.scalar(select(func.count()).select_from(UploadImage)) == 0
    assert client.get(f"/api/uploads/{files[0]['id']}/image").status_code == 404


def test_a_big_image_is_stored_in_chunks_and_read_whole(pg_app):
    from image_store import CHUNK_BYTES

    rt = pg_app.extensions["ocr_runtime"]
    client = pg_app.test_client()
    noise = Image.frombytes("RGB", (1200, 800), bytes((i * 7919) % 256 for i in range(1200 * 800 * 3)))
    buffer = io.BytesIO()
    noise.save(buffer, "PNG", compress_level=0)
    data = buffer.getvalue()
    assert len(data) > 2 * CHUNK_BYTES
    entry = upload(client, None, [data])[0]
    with rt.db.session() as session:
        chunks = session.scalars(select(UploadImage.chunk).where(UploadImage.upload_id == entry["id"])
                                 .order_by(UploadImage.chunk)).all()
    assert chunks == list(range(len(data) // CHUNK_BYTES + 1))
    assert client.get(f"/api/uploads/{entry['id']}/image").data == data


def test_an_upload_that_fails_to_commit_leaves_no_image(pg_app, monkeypatch):
    import service.uploads

    rt = pg_app.extensions["ocr_runtime"]

    def refuse(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(service.uploads, "announce_new_work", refuse)
    answer = pg_app.test_client().post("/api/upload", content_type="multipart/form-data",
                                       data={"files": [(io.BytesIO(image_bytes(1)), "r.png")]})
    assert answer.status_code == 503
    with rt.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Upload)) == 0
        assert session.scalar(select(func.count()).select_from(UploadImage)) == 0


# --- local images on a disk of one's own ---------------------------------------------------------
def test_a_host_never_claims_nor_purges_a_local_image_on_another_hosts_disk(make_app, tmp_path):
    """Two hosts on one database with a DATA_DIR each and IMAGE_STORAGE=local (a misconfiguration
    for several hosts, README says): B's worker leaves A's uploads to A instead of failing them as
    file_missing, and B's retention leaves A's rows instead of deleting rows whose files stay on A."""
    from datetime import timedelta

    from service.jobs import claim_uploads, next_tenant_with_work

    host_a = make_app(DATA_DIR=str(tmp_path / "a")).extensions["ocr_runtime"]
    host_b = make_app(DATA_DIR=str(tmp_path / "b")).extensions["ocr_runtime"]
    shared = make_app(DATA_DIR=str(tmp_path / "a")).extensions["ocr_runtime"]  # a host mounting A's disk
    entries = upload(make_app(DATA_DIR=str(tmp_path / "a")).test_client(), None, [image_bytes(1), image_bytes(2)])
    lease = timedelta(seconds=60)
    assert host_b.storage.identity() != host_a.storage.identity() == shared.storage.identity()
    assert next_tenant_with_work(host_b.db, host_b.images.readable()) is None
    assert claim_uploads(host_b.db, "worker-b", 10, lease, readable=host_b.images.readable()) == []
    claimed = claim_uploads(shared.db, "worker-shared", 10, lease, readable=shared.images.readable())
    assert [u.id for u in claimed] == [e["id"] for e in entries]
    with host_a.db.session() as session:
        session.query(Upload).update({"status": "processed", "claimed_by": None, "processed_at": None},
                                     synchronize_session=False)
        session.commit()
    assert purge_finished(host_b, 0)["uploads_removed"] == 0
    assert all((host_a.storage.dirs["inbox"] / e["stored_name"]).is_file() for e in entries)
    assert purge_finished(host_a, 0)["uploads_removed"] == 2
    assert not any((host_a.storage.dirs[key] / e["stored_name"]).exists() for e in entries
                   for key in ("inbox", "processed"))


# --- images in an S3 bucket (moto's S3 server: no S3 service runs here) -----------------------------
@pytest.fixture
def s3_server(monkeypatch):
    from moto.server import ThreadedMotoServer

    from benchmarks.service_process import free_port

    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="receipts")
    yield endpoint, client
    server.stop()


def objects(client):
    return sorted(item["Key"] for item in client.list_objects_v2(Bucket="receipts").get("Contents", []))


def test_s3_storage_keeps_images_in_the_bucket(make_app, s3_server, orquestador):
    endpoint, client = s3_server
    app = make_app(IMAGE_STORAGE="s3", S3_BUCKET="receipts", S3_PREFIX="ocr/", S3_ENDPOINT_URL=endpoint)
    rt = app.extensions["ocr_runtime"]
    web = app.test_client()
    receipts = [generate_receipt(seed, variant="clean").image_bytes for seed in (4, 5)]
    files = upload(web, None, receipts, nombre="Ana")
    assert objects(client) == sorted(f"ocr/{f['stored_name']}" for f in files)
    with rt.db.session() as session:
        assert set(session.execute(select(Upload.image_store, Upload.image_host))) == {("s3", "receipts")}
    assert disk_files(rt) == []
    # Another host (its own DATA_DIR) serves them from the bucket.
    other = make_app(IMAGE_STORAGE="s3", S3_BUCKET="receipts", S3_PREFIX="ocr/", S3_ENDPOINT_URL=endpoint,
                     DATA_DIR=str(rt.storage.dirs["inbox"].parent.parent / "other-host"))
    for entry, data in zip(files, receipts):
        assert other.test_client().get(f"/api/uploads/{entry['id']}/image").data == data
    (rt.storage.dirs["inbox"] / "dropped.png").write_bytes(generate_receipt(6, variant="clean").image_bytes)
    worker = Worker(rt, orquestador, "s3-worker")
    worker.start()
    try:
        assert worker.tick() == 3
    finally:
        worker.shutdown()
    with rt.db.session() as session:
        assert set(session.scalars(select(Upload.status))) == {"processed"}
    assert disk_files(rt) == [] and len(objects(client)) == 3
    report = purge_finished(other.extensions["ocr_runtime"], 0)  # retention on the other host
    assert report["uploads_removed"] == 3 and report["bytes_freed"] >= sum(map(len, receipts))
    assert objects(client) == []
    assert web.get(f"/api/uploads/{files[0]['id']}/image").status_code == 404


def test_s3_upload_that_fails_to_commit_leaves_no_object(make_app, s3_server, monkeypatch):
    import service.uploads

    endpoint, client = s3_server
    app = make_app(IMAGE_STORAGE="s3", S3_BUCKET="receipts", S3_ENDPOINT_URL=endpoint)

    def refuse(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(service.uploads, "announce_new_work", refuse)
    answer = app.test_client().post("/api/upload", content_type="multipart/form-data",
                                    data={"files": [(io.BytesIO(image_bytes(1)), "r.png")]})
    assert answer.status_code == 503
    assert objects(client) == []


def test_s3_storage_needs_a_bucket():
    with pytest.raises(ValidationError, match="IMAGE_STORAGE=s3 needs S3_BUCKET"):
        Settings(IMAGE_STORAGE="s3")


def test_an_unreachable_bucket_is_a_503_and_nothing_is_kept(make_app, monkeypatch):
    from benchmarks.service_process import free_port

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    app = make_app(IMAGE_STORAGE="s3", S3_BUCKET="receipts", S3_REGION="us-east-1",
                   S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}")  # nothing listens there
    answer = app.test_client().post("/api/upload", content_type="multipart/form-data",
                                    data={"files": [(io.BytesIO(image_bytes(1)), "r.png")]})
    assert answer.status_code == 503 and answer.get_json()["error"]["code"] == "storage_unavailable"
    with app.extensions["ocr_runtime"].db.session() as session:
        assert session.scalar(select(func.count()).select_from(Upload)) == 0
