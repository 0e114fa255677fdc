"""Issue 10 items 1, 4, 5 through the real service (gunicorn, two web processes, real OCR), on
SQLite and PostgreSQL: following an upload, its image, a correction changing what every read
path returns, concurrent corrections, the streamed CSV read back by Python's csv module, and a
second tenant getting 404 from every new endpoint."""
import csv
import io
import json
import threading

import pytest
import requests
from sqlalchemy import create_engine, text

from benchmarks.service_process import running_service
from service.access import create_key
from tests.test_tenants import ADMIN_KEY, _migrated, keyed
from tools.receipt_generator import generate_receipt

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

METADATA = {"nombre": "José Ñúñez", "idWhatsapp": "+584141234567@lid", "numerosorteo": "B", "fechasorteo": "20250711"}


def _missing(base, key, path, method="GET", body=None):
    answer = requests.request(method, f"{base}{path}", headers=keyed(key), json=body, timeout=30)
    error = answer.json()["error"]
    error.pop("request_id")
    return answer.status_code, error


def test_follow_correct_review_export_and_isolation_through_the_real_server(tmp_path, database_url):
    db = _migrated(database_url)
    staff, _ = create_key(db, "victim", name="maria")
    attacker, _ = create_key(db, "attacker")
    db.dispose()
    receipts = [generate_receipt(seed, variant="clean") for seed in (29, 32)]
    with running_service(tmp_path / "storage", database_url, WORKER_ENABLED="false", API_KEYS=ADMIN_KEY) as service:
        base = service.base
        files = [("files", (f"r{i}.png", r.image_bytes, "image/png")) for i, r in enumerate(receipts)]
        entries = requests.post(f"{base}/api/upload", files=files, data=METADATA, headers=keyed(staff),
                                timeout=60).json()["files_processed"]
        ids = [entry["id"] for entry in entries]
        pending = requests.get(f"{base}{entries[0]['status_url']}", headers=keyed(staff), timeout=30).json()["upload"]
        assert pending["status"] == "pending" and pending["result"] is None and pending["requiere_revision"] is None
        early = requests.patch(f"{base}/api/uploads/{ids[0]}/fields", json={"monto": "1,00"}, headers=keyed(staff), timeout=30)
        assert early.status_code == 409 and early.json()["error"]["code"] == "not_processed"
        batch = requests.post(f"{base}/api/ocr/process_batch", json={}, headers=keyed(staff), timeout=300).json()
        assert batch["files_processed"] == 2, batch

        upload = requests.get(f"{base}/api/uploads/{ids[0]}", headers=keyed(staff), timeout=30).json()["upload"]
        assert upload["status"] == "processed", upload["error"]
        assert upload["batch"] == {"request_id": batch["request_id"], "state": "completed"}
        image = requests.get(f"{base}{upload['image_url']}", headers=keyed(staff), timeout=30)
        assert image.content == receipts[0].image_bytes and image.headers["Content-Type"] == "image/png"
        assert image.headers["X-Content-Type-Options"] == "nosniff"

        # A correction changes what every read path returns.
        corrected = requests.patch(f"{base}/api/uploads/{ids[0]}/fields", headers=keyed(staff), timeout=30,
                                   json={"referencia": "00012345678", "monto": "1.234,56"}).json()["upload"]
        assert sorted((c["campo"], c["nuevo"], c["por"]) for c in corrected["corrections"]) == [
            ("monto", "1234.56", "maria"), ("referencia", "00012345678", "maria")]
        expected = {"referencia": "00012345678", "monto": "1234.56"}

        def picked(document):
            return {name: document["extracted_fields"][name] for name in expected}

        name = entries[0]["stored_name"]
        get = lambda path: requests.get(f"{base}{path}", headers=keyed(staff), timeout=30)  # noqa: E731
        assert picked(get(f"/api/uploads/{ids[0]}").json()["upload"]["result"]) == expected
        assert picked(get(f"/api/ocr/result_data/{name}").json()["data"]) == expected
        assert picked(get("/api/extract_results").json()["results"][0]) == expected
        assert picked(json.loads(get("/api/extract_results/export").text.splitlines()[0])) == expected
        assert picked(json.loads(get("/api/extract_results?format=ndjson").text.splitlines()[0])) == expected
        stored = json.loads((tmp_path / "storage" / "data" / "results" / f"{name}.json").read_text(encoding="utf-8"))
        assert picked(stored) == expected
        engine = create_engine(database_url)
        with engine.connect() as connection:
            referencia, monto = connection.execute(text("SELECT referencia, monto FROM results WHERE upload_id = :id"),
                                                   {"id": ids[0]}).one()
            assert (referencia, float(monto)) == ("00012345678", 1234.56)
        engine.dispose()

        # Corrections at the same moment, spread over both web processes: none lost.
        values = {"telefono": "04121234567", "cedula": "V-7654321", "fecha": "01/01/2025", "concepto": "Cuota de julio",
                  "hora_operacion": "10:15", "comprobante": "98765"}
        barrier = threading.Barrier(len(values))
        codes = []

        def correct(field, value):
            barrier.wait(timeout=30)
            codes.append(requests.patch(f"{base}/api/uploads/{ids[1]}/fields", json={field: value}, headers=keyed(staff),
                                        timeout=60).status_code)

        threads = [threading.Thread(target=correct, args=item) for item in values.items()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert codes == [200] * len(values)
        both = get(f"/api/uploads/{ids[1]}").json()["upload"]
        assert sorted(c["campo"] for c in both["corrections"]) == sorted(values)
        assert both["result"]["extracted_fields"]["fecha"] == "2025-01-01"
        assert both["result"]["extracted_fields"]["concepto"] == "Cuota de julio"

        reviewed = requests.post(f"{base}/api/uploads/{ids[1]}/review", json={"estado": "rechazado", "nota": "borrosa"},
                                 headers=keyed(staff), timeout=30).json()["upload"]["review"]
        assert (reviewed["estado"], reviewed["por"]) == ("rechazado", "maria")

        # The CSV, streamed, read by Python's csv module with the accents intact.
        with requests.get(f"{base}/api/extract_results?format=csv", headers=keyed(staff), stream=True, timeout=60) as answer:
            assert answer.headers.get("Transfer-Encoding") == "chunked"
            assert answer.headers["Content-Type"] == "text/csv; charset=utf-8"
            raw = answer.raw.read()
        assert raw.startswith(b"\xef\xbb\xbf")
        rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
        assert [r["upload_id"] for r in rows] == [str(i) for i in ids]
        assert rows[0]["nombre"] == "José Ñúñez" and rows[0]["idWhatsapp"] == "'+584141234567@lid"
        assert (rows[0]["referencia"], rows[0]["monto"]) == ("00012345678", "1234.56")
        assert (rows[1]["revision"], rows[1]["revision_nota"], rows[0]["revision"]) == ("rechazado", "borrosa", "pendiente")
        only = get("/api/extract_results?format=csv&revision=rechazado").content.decode("utf-8-sig")
        assert [r["upload_id"] for r in csv.DictReader(io.StringIO(only))] == [str(ids[1])]

        # Another tenant: 404 from every new endpoint, exactly as for an id that does not exist.
        for method, suffix, body in (("GET", "", None), ("GET", "/image", None),
                                     ("PATCH", "/fields", {"monto": "1,00"}), ("POST", "/review", {"estado": "aprobado"})):
            for victim_id in ids:
                status, error = _missing(base, attacker, f"/api/uploads/{victim_id}{suffix}", method, body)
                missing_status, missing_error = _missing(base, attacker, f"/api/uploads/99999{suffix}", method, body)
                assert status == missing_status == 404, (method, suffix)
                assert error["message"].replace(str(victim_id), "99999") == missing_error["message"]
        for query in ("format=csv", "format=ndjson", "revision=rechazado", "requiere_revision=false"):
            theirs = requests.get(f"{base}/api/extract_results?{query}", headers=keyed(attacker), timeout=30)
            assert theirs.status_code == 200 and "Ñúñez" not in theirs.text and "00012345678" not in theirs.text
        # ...and the victim's upload is untouched by the attempts.
        after = get(f"/api/uploads/{ids[0]}").json()["upload"]
        assert after["review"]["estado"] == "pendiente" and len(after["corrections"]) == 2
