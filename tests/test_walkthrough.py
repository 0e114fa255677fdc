"""README's walk-through, run as written: its curl commands against the real service (gunicorn,
the background worker, real OCR of a generated receipt), on SQLite and PostgreSQL. The commands
are read from README.md, so the walk-through cannot drift from what the service does; the only
substitutions are the server's address and the ids the service handed out (42, the batch id)."""
import csv
import io
import json
import re
import subprocess
import time
from pathlib import Path

import pytest
import requests

from benchmarks.service_process import running_service
from tools.receipt_generator import generate_receipt

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_ID, EXAMPLE_BATCH = "/api/uploads/42", "BATCH_20250711_143052_a8f"
EXAMPLE_NAME = "20250711-A--123456@lid_Juan_14-30~42.png"


def walkthrough_commands() -> list[str]:
    block = (ROOT / "README.md").read_text(encoding="utf-8").split("## Walk-through with curl", 1)[1]
    block = block.split("```bash", 1)[1].split("```", 1)[0]
    commands, current = [], None
    for line in block.splitlines():
        line = line.strip()
        if current is None and not line.startswith("curl"):
            continue
        line = re.sub(r"\s+#\s.*$", "", line)  # a comment after the command
        piece = line.removesuffix("\\").strip()
        current = piece if current is None else f"{current} {piece}"
        if not line.endswith("\\"):
            commands.append(current)
            current = None
    return commands


def run(command: str, cwd: Path) -> tuple[int, str]:
    done = subprocess.run(["bash", "-c", command + " -sS -w '\\n%{http_code}'"], cwd=cwd, capture_output=True,
                          text=True, timeout=320)
    assert done.returncode == 0, (command, done.stderr)
    body, _, status = done.stdout.rpartition("\n")
    return int(status), body


def test_the_readme_walkthrough_as_written(tmp_path, database_url):
    commands = walkthrough_commands()
    assert len(commands) >= 15 and commands[0].startswith("curl -X POST http://localhost:5000/api/upload")
    receipt = generate_receipt(29, variant="clean")
    work = tmp_path / "client"
    work.mkdir()
    (work / "receipt.png").write_bytes(receipt.image_bytes)
    with running_service(tmp_path / "storage", database_url, print_log_tail=True) as service:
        known: dict[str, str] = {}

        def here(command: str) -> str:
            command = command.replace("http://localhost:5000", service.base)
            for example, actual in known.items():
                command = command.replace(example, actual)
            return command

        answers: dict[str, tuple[int, str]] = {}
        for command in commands:
            if EXAMPLE_ID in command and EXAMPLE_ID not in known or EXAMPLE_BATCH in command and EXAMPLE_BATCH not in known:
                raise AssertionError(f"the walk-through uses an id before it has one: {command}")
            status, body = run(here(command), work)
            if command == f"curl {'http://localhost:5000'}{EXAMPLE_ID}":
                # "Follow the upload at its status_url until its status is processed".
                deadline = time.monotonic() + 180
                while json.loads(body)["upload"]["status"] in ("pending", "processing") and time.monotonic() < deadline:
                    time.sleep(0.3)
                    status, body = run(here(command), work)
                known[EXAMPLE_BATCH] = json.loads(body)["upload"]["request_id"]
            answers[command] = (status, body)
            assert status < 500, (command, status, body[:500])
            if "/api/upload " in command + " ":
                entry = json.loads(body)["files_processed"][0]
                known[EXAMPLE_ID] = entry["status_url"]
                known[EXAMPLE_NAME] = entry["stored_name"]
                first_upload = body

        def answer(fragment: str, exact: bool = False) -> tuple[int, object]:
            (status, body), = [a for c, a in answers.items() if (c.endswith(fragment) if exact else fragment in c)]
            return status, (json.loads(body) if body.strip().startswith("{") else body)

        # 1. The upload's answer carries how to follow it.
        entry = json.loads(first_upload)["files_processed"][0]
        assert entry["stored_name"] == f"20250711-A--123456@lid_Juan_14-30~{entry['id']}.png"
        assert entry["status"] == "pending" and entry["status_url"] == f"/api/uploads/{entry['id']}"
        # 2. Followed until processed: its batch, flags and result.
        status, followed = answer(f"localhost:5000{EXAMPLE_ID}", exact=True)
        upload = followed["upload"]
        assert status == 200 and upload["status"] == "processed" and upload["batch"]["request_id"] == upload["request_id"]
        assert upload["review"]["estado"] == "pendiente" and upload["corrections"] == []
        assert upload["image_url"] == f"/api/uploads/{entry['id']}/image" and upload["duplicado_de"] is None
        fields = upload["result"]["extracted_fields"]
        assert re.sub(r"\D", "", receipt.fields["referencia"]) == fields["referencia"]
        assert (work / "receipt-stored.png").read_bytes() == receipt.image_bytes
        status, batch = answer("process_batch")
        assert status == 200 and batch["status"] == "success" and batch["files_processed"] == 0  # the worker had it
        # 3. Results under the upload's batch id.
        status, result = answer(f"/api/ocr/result/{EXAMPLE_BATCH}")
        assert status == 200 and [f["filename"] for f in result["files"]] == [entry["stored_name"]]
        status, one = answer("/api/ocr/result_data/")
        assert status == 200 and one["data"]["extracted_fields"]["referencia"] == fields["referencia"]
        status, consolidated = answer(f"extract_results?request_id={EXAMPLE_BATCH}")
        assert status == 200 and [d["filename"] for d in consolidated["results"]] == [entry["stored_name"]]
        rows = list(csv.DictReader(io.StringIO((work / "results.csv").read_text(encoding="utf-8-sig"))))
        assert [(r["filename"], r["referencia"], r["nombre"]) for r in rows] == [(entry["stored_name"], fields["referencia"], "Juan")]
        # 4. The correction is what every read path shows; the review is recorded.
        status, corrected = answer("/fields")
        assert status == 200 and corrected["upload"]["result"]["extracted_fields"]["monto"] == "1234.56"
        assert corrected["upload"]["corrections"][0]["campo"] == "monto"
        assert corrected["upload"]["result"]["campos_detalle"]["monto"]["valor_extraido"] == fields["monto"]
        served = requests.get(f"{service.base}/api/ocr/result_data/{entry['stored_name']}", timeout=30).json()["data"]
        assert served["extracted_fields"]["monto"] == "1234.56"
        status, reviewed = answer("/review")
        assert status == 200 and reviewed["upload"]["review"]["estado"] == "aprobado"
        status, left = answer("revision=pendiente")
        assert status == 200 and left["count"] == 0
        # 5. Housekeeping: nothing old enough to clean; nothing errored to requeue.
        assert answer("/api/clean")[0] == 200 and answer("/api/health/ready")[0] == 200
        retries = [status for command, (status, _body) in answers.items() if command.endswith("/retry")]
        assert len(retries) == 2 and retries[0] == 409, retries  # a processed upload is no errored one
        # The bot's retry of step 1 (same Idempotency-Key): the first answer, nothing new stored.
        status, again = run(here(commands[0]), work)
        assert status == 200 and json.loads(again) == json.loads(first_upload)
        processed = requests.get(f"{service.base}/api/files/processed", timeout=30).json()
        assert processed["count"] == 1
