"""Issue 20 item 7 with the real OCR: a generated layout the shipped rules have never seen
(tools/novel_layouts.py), read by the service's worker; a clerk corrects one receipt, the admin
accepts what it taught, and the next receipt of that layout is read right where the first was
wrong, while a receipt of a shipped layout and the other tenant's receipt of the new layout read
exactly as before."""
import pytest
from sqlalchemy import select

from benchmarks.accuracy import same_value
from database import Upload
from extraction.corrections import read_correction
from service.batches import run_worker_round
from tests.test_learned_rules import desk, fields, rules  # noqa: F401 - desk is a fixture
from tests.test_tenants import keyed, upload
from tools.novel_layouts import generate_novel
from tools.receipt_generator import generate_receipt

pytestmark = pytest.mark.slow


@pytest.fixture
def desk_ocr(desk, orquestador):  # noqa: F811
    app, rt, client, keys, _ = desk
    return app, rt, client, keys, orquestador


def read(env, key, receipt):
    app, rt, client, keys, orchestrator = env
    answer = upload(client, keys[key], receipt.image_bytes)
    assert answer.status_code in (200, 201, 202), answer.get_json()
    while run_worker_round(rt, orchestrator, "w"):
        pass
    with rt.db.session() as session:
        upload_id = session.scalars(select(Upload.id).order_by(Upload.id.desc())).first()
    return upload_id, fields(env, key, upload_id)["extracted_fields"]


def wrong(receipt, got):
    return {name for name, truth in receipt.fields.items() if not same_value(name, truth, got.get(name))}


def test_a_correction_on_one_receipt_reads_the_next_of_that_layout(desk_ocr):
    _, _, client, keys, _ = desk_ocr
    first = generate_novel(1, "novel_transfer", "clean")
    upload_id, got = read(desk_ocr, "staff", first)
    missed = wrong(first, got)
    assert {"referencia", "cuenta_origen", "beneficiario"} <= missed  # labels no shipped rule knows
    body = {name: read_correction(name, first.fields[name])[0] for name in missed if first.fields[name] is not None}
    answer = client.patch(f"/api/uploads/{upload_id}/fields", headers=keyed(keys["staff"]), json=body)
    assert answer.status_code == 200, answer.get_json()
    proposed = rules(desk_ocr, "staff", estado="propuesta")
    assert {"referencia", "cuenta_origen", "beneficiario"} <= {r["campo"] for r in proposed}
    for rule in proposed:
        assert client.post(f"/api/learned_rules/{rule['id']}/accept", headers=keyed(keys["boss"])).status_code == 200

    nxt = generate_novel(100, "novel_transfer", "clean")
    for_other_tenant = read(desk_ocr, "other", nxt)[1]  # the other tenant first: nothing learned there
    _, learned = read(desk_ocr, "staff", nxt)
    assert wrong(nxt, learned) < wrong(nxt, for_other_tenant)
    assert not {"referencia", "cuenta_origen", "beneficiario"} & wrong(nxt, learned)
    right_before = set(nxt.fields) - wrong(nxt, for_other_tenant)
    assert not right_before & wrong(nxt, learned)  # no right value became wrong

    shipped = generate_receipt(5003, variant="clean")
    _, other_tenant = read(desk_ocr, "other", shipped)
    _, this_tenant = read(desk_ocr, "staff", shipped)
    assert this_tenant == other_tenant
